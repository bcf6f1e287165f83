// Package config turns one YAML file into the gateway's typed, validated
// configuration.
//
// Loading is strict: every unknown key is an error naming its key path, line and
// the nearest known key, and Validate reports every problem at once
// (errors.Join), each naming the key and what is allowed. Defaults live in
// Default(); a file only states what differs. The package has no goroutines and
// no global state.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/router"
)

// DefaultPath is where every edgegw command looks for its config when -c is not given.
const DefaultPath = "configs/edgegw.yaml"

// Config is the whole gateway configuration.
type Config struct {
	Gateway Gateway  `yaml:"gateway"`
	Log     Log      `yaml:"log"`
	MQTT    MQTT     `yaml:"mqtt"`
	Buffer  Buffer   `yaml:"buffer"`
	Uplink  Uplink   `yaml:"uplink"`
	DIS     DIS      `yaml:"dis"`
	Streams []Stream `yaml:"streams"`
	Admin   Admin    `yaml:"admin"`
	// Schema and DeadLetter: payload validation and refused payloads (ingest.go).
	Schema     Schema     `yaml:"schema"`
	DeadLetter DeadLetter `yaml:"dead_letter"`
	// Routing is the top-level routes and unmatched keys.
	Routing router.Config `yaml:",inline"`
	// Downlink is the cloud-to-device path (downlink.go).
	Downlink Downlink `yaml:"downlink"`
}

// Gateway identifies this gateway.
type Gateway struct {
	// ID names the gateway in logs and in DIS (e.g. the downlink's app name).
	ID             string `yaml:"id"`
	GatewayRuntime `yaml:",inline"`
}

// Log configures the one logger shared by edgegw, mochi and Badger.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// MQTT configures the embedded broker.
type MQTT struct {
	Listeners []Listener       `yaml:"listeners"`
	MQTTAuth  `yaml:",inline"` // users, acl, login_limit (ingest.go)
	// Anonymous says who may connect without credentials: "loopback" (clients
	// on 127.0.0.1/::1 only, as mosquitto 2 does by default), "always" or "never".
	// A file that leaves it out gets "never": anonymous access is only ever
	// granted explicitly (the shipped configs say loopback).
	Anonymous string `yaml:"anonymous"`
	// MaxPacketSize bounds every inbound packet, hence the memory one client can
	// make the broker hold and the largest record (DIS takes at most 1 MiB).
	MaxPacketSize ByteSize `yaml:"max_packet_size"`
	// MaxSessionExpiry caps how long a disconnected persistent session (and its
	// queued messages) is kept; mochi's default is forever.
	MaxSessionExpiry Duration `yaml:"max_session_expiry"`
	// ReceiveMaximum is the per-client quota of unacknowledged inbound QoS 1/2
	// publishes announced to MQTT 5 clients.
	ReceiveMaximum int `yaml:"receive_maximum"`
	// MaxClientWritesPending is the per-subscriber outbound queue; mochi drops a
	// message when it is full.
	MaxClientWritesPending int `yaml:"max_client_writes_pending"`
}

// Listener is one MQTT network listener.
type Listener struct {
	Name        string           `yaml:"name"`
	Type        string           `yaml:"type"` // tcp, tls, ws, wss
	Address     string           `yaml:"address"`
	ListenerTLS `yaml:",inline"` // tls, allowed_origins (ingest.go)
}

// Buffer configures the durable store-and-forward queue.
type Buffer struct {
	Dir string `yaml:"dir"`
	// Sync is when appended records reach stable storage before the publish is
	// acknowledged: "batch" (one sync per group commit: survives power loss),
	// "always" (one sync per record: slowest), "none" (no sync: survives a
	// process kill, not a power cut).
	Sync     string   `yaml:"sync"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxAge drops records older than this; 0 means the stream's retention in DIS.
	MaxAge Duration `yaml:"max_age"`
	// Overflow is what happens when the buffer is full: "reject" new publishes
	// (they stay on the device) or "drop_oldest".
	Overflow string `yaml:"overflow"`
}

// Uplink configures the drain of the buffer into DIS PutRecords.
type Uplink struct {
	MaxBatchRecords int      `yaml:"max_batch_records"`
	MaxBatchBytes   ByteSize `yaml:"max_batch_bytes"`
	Linger          Duration `yaml:"linger"`
	BackoffInitial  Duration `yaml:"backoff_initial"`
	BackoffMax      Duration `yaml:"backoff_max"`
	// FlushTimeout bounds how long shutdown keeps sending; the rest stays in the buffer.
	FlushTimeout Duration `yaml:"flush_timeout"`
	UplinkFlow   `yaml:",inline"`
}

// DIS configures the DIS endpoint the gateway talks to, and the built-in
// DIS-compatible server.
type DIS struct {
	// Endpoint is the DIS API base URL, e.g. https://dis.cn-north-4.myhuaweicloud.com.
	// Empty means the built-in server (dis.builtin.listen).
	Endpoint  string   `yaml:"endpoint"`
	ProjectID string   `yaml:"project_id"`
	Region    string   `yaml:"region"`
	Timeout   Duration `yaml:"timeout"`
	Auth      DISAuth  `yaml:"auth"`
	Builtin   Builtin  `yaml:"builtin"`
	DISWire   `yaml:",inline"`
}

// DISAuth is how the gateway authenticates to DIS.
type DISAuth struct {
	// Mode is "none" (the built-in server on loopback) or "aksk".
	Mode string `yaml:"mode"`
	// AccessKey and SecretKey; the environment variables EDGEGW_DIS_ACCESS_KEY and
	// EDGEGW_DIS_SECRET_KEY override them, and SecretKeyFile reads the secret from a file.
	AccessKey     string `yaml:"access_key"`
	SecretKey     string `yaml:"secret_key"`
	SecretKeyFile string `yaml:"secret_key_file"`
	DISTokenAuth  `yaml:",inline"`
}

// Builtin configures the embedded DIS-compatible server; its other keys are
// those of `edgegw dis serve` (listen, data_dir, auth, quotas, limits,
// flow_control, faults).
type Builtin struct {
	Enabled bool             `yaml:"enabled"`
	Server  disserver.Config `yaml:",inline"`
}

// Stream is a DIS stream the gateway writes to.
type Stream struct {
	Name string `yaml:"name"`
	// Create creates the stream at startup when it does not exist.
	Create         bool   `yaml:"create"`
	PartitionCount int    `yaml:"partition_count"`
	StreamType     string `yaml:"stream_type"`
	DataType       string `yaml:"data_type"`
	// DataDuration is the retention in hours (24–72 for COMMON streams).
	DataDuration int              `yaml:"data_duration"`
	DataSchema   string           `yaml:"data_schema"`
	StreamSchema `yaml:",inline"` // data_schema_file, csv_*, allow_unknown_fields, avro_binary (ingest.go)
	Buffer       StreamBuffer     `yaml:"buffer"` // per-stream bounds and overflow (streambuffer.go)
}

// Default returns the configuration used for every key a file leaves out.
func Default() Config {
	return Config{
		Gateway: Gateway{ID: "edgegw", GatewayRuntime: defaultGatewayRuntime()},
		Log:     Log{Level: "info", Format: "text"},
		MQTT: MQTT{
			Listeners: []Listener{{Name: "tcp", Type: "tcp", Address: "127.0.0.1:1883"}},
			Anonymous: "never", // granted only by an explicit mqtt.anonymous
			// 256 KiB: telemetry is small; this bounds per-client memory well under
			// DIS's 1 MiB record limit.
			MaxPacketSize: 256 << 10,
			// 24 h: an edge box should not hold sessions of devices gone for good.
			MaxSessionExpiry: Duration(24 * time.Hour),
			// 1024: mochi's default; only QoS 2 holds quota across packets.
			ReceiveMaximum: 1024,
			// 8192: mochi's default; the downlink retries drops it sees.
			MaxClientWritesPending: 8192,
			MQTTAuth:               defaultMQTTAuth(),
		},
		Buffer: Buffer{
			Dir:  "data/buffer",
			Sync: "batch",
			// 1 GiB: about a day of 10 kB/s telemetry; fits the smallest SD cards.
			MaxBytes: 1 << 30,
			Overflow: "reject",
		},
		Uplink: Uplink{
			// 500 records and 4 MiB per request: the DIS Agent's per-request record
			// default and the Python SDK's byte split, well under the 12 MB AK/SK body cap.
			MaxBatchRecords: 500,
			MaxBatchBytes:   4 << 20,
			// 20 ms: a trickle is sent promptly; a flood still fills batches.
			Linger:         Duration(20 * time.Millisecond),
			BackoffInitial: Duration(100 * time.Millisecond),
			// 30 s: the Java SDK's cap; long enough not to hammer a DIS that is down.
			BackoffMax:   Duration(30 * time.Second),
			FlushTimeout: Duration(10 * time.Second),
			UplinkFlow:   defaultUplinkFlow(),
		},
		DIS: DIS{
			ProjectID: "local",
			// 30 s per request: a 4 MiB batch over a slow uplink still completes.
			Timeout: Duration(30 * time.Second),
			Auth:    DISAuth{Mode: "none"},
			Builtin: Builtin{Enabled: true, Server: disserver.DefaultConfig()},
			DISWire: defaultDISWire(),
		},
		Admin:      defaultAdmin(),
		Schema:     defaultSchema(),
		DeadLetter: defaultDeadLetter(),
		// The cloud-to-device path, off until it has routes (downlink.go).
		Downlink: defaultDownlink(),
	}
}

// Load reads and validates the config file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := parse(data, filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("config %s:\n%w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over Default(), then validates. The error lists every problem.
// Relative file paths are taken from the working directory.
func Parse(data []byte) (Config, error) { return parse(data, "") }

// parse is Parse with relative file paths taken from dir.
func parse(data []byte, dir string) (Config, error) {
	cfg := Default()
	cfg.DIS.Builtin.Server = disserver.FileDefaults() // a file states dis.builtin.auth.mode or configures credentials
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, fmt.Errorf("invalid YAML: %w", err)
	}
	if errs := checkKeys(&doc, reflect.TypeFor[Config](), ""); len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	cfg.resolvePaths(dir)
	cfg.DIS.Builtin.Server.ResolveAuthMode()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks every key and returns all problems joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	oneOf := func(key, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(key, "%q is not allowed; use one of: %s", v, strings.Join(allowed, ", "))
	}

	if c.Gateway.ID == "" {
		bad("gateway.id", "must not be empty; name this gateway, e.g. the host name")
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")

	if len(c.MQTT.Listeners) == 0 {
		bad("mqtt.listeners", "at least one listener is needed, e.g. {type: tcp, address: 127.0.0.1:1883}")
	}
	names := map[string]bool{}
	for i, l := range c.MQTT.Listeners {
		key := fmt.Sprintf("mqtt.listeners[%d]", i)
		if l.Name == "" {
			bad(key+".name", "must not be empty; give each listener a unique name")
		} else if names[l.Name] {
			bad(key+".name", "%q is used by another listener; names must be unique", l.Name)
		}
		names[l.Name] = true
		// type, tls and allowed_origins: validateIngest
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			bad(key+".address", "%q is not host:port (%v); e.g. 127.0.0.1:1883 or :1883", l.Address, err)
		}
	}
	oneOf("mqtt.anonymous", c.MQTT.Anonymous, "loopback", "always", "never")
	if c.MQTT.MaxPacketSize < 1024 || c.MQTT.MaxPacketSize > 1<<20+1024 {
		bad("mqtt.max_packet_size", "%s is out of range; use 1KiB to 1MiB (DIS records are at most 1 MiB)", c.MQTT.MaxPacketSize)
	}
	if c.MQTT.MaxSessionExpiry < 0 {
		bad("mqtt.max_session_expiry", "must not be negative")
	}
	if c.MQTT.ReceiveMaximum < 1 || c.MQTT.ReceiveMaximum > 65535 {
		bad("mqtt.receive_maximum", "%d is out of range; use 1 to 65535", c.MQTT.ReceiveMaximum)
	}
	if c.MQTT.MaxClientWritesPending < 1 {
		bad("mqtt.max_client_writes_pending", "%d is out of range; use at least 1", c.MQTT.MaxClientWritesPending)
	}

	if c.Buffer.Dir == "" {
		bad("buffer.dir", "must not be empty; e.g. data/buffer")
	}
	oneOf("buffer.sync", c.Buffer.Sync, "batch", "always", "none")
	oneOf("buffer.overflow", c.Buffer.Overflow, "reject", "drop_oldest")
	if c.Buffer.MaxBytes < 1<<20 {
		bad("buffer.max_bytes", "%s is too small; use at least 1MiB", c.Buffer.MaxBytes)
	}
	if c.Buffer.MaxAge < 0 {
		bad("buffer.max_age", "must not be negative; 0 means the stream's retention")
	}

	u := c.Uplink
	if u.MaxBatchRecords < 1 || u.MaxBatchRecords > 10000 {
		bad("uplink.max_batch_records", "%d is out of range; use 1 to 10000", u.MaxBatchRecords)
	}
	if u.MaxBatchBytes < 1<<20 || u.MaxBatchBytes > 12<<20 {
		bad("uplink.max_batch_bytes", "%s is out of range; use 1MiB to 12MiB (a record may be 1 MiB; DIS caps bodies at 12 MB)", u.MaxBatchBytes)
	}
	if u.Linger < 0 || u.Linger.D() > 10*time.Second {
		bad("uplink.linger", "%s is out of range; use 0 to 10s", u.Linger.D())
	}
	if u.BackoffInitial.D() < time.Millisecond {
		bad("uplink.backoff_initial", "%s is too small; use at least 1ms", u.BackoffInitial.D())
	}
	if u.BackoffMax < u.BackoffInitial {
		bad("uplink.backoff_max", "%s is less than uplink.backoff_initial (%s)", u.BackoffMax.D(), u.BackoffInitial.D())
	}
	if u.FlushTimeout < 0 {
		bad("uplink.flush_timeout", "must not be negative")
	}

	d := c.DIS
	if d.Endpoint == "" && !d.Builtin.Enabled {
		bad("dis.endpoint", "is empty and dis.builtin.enabled is false; set the DIS endpoint URL or enable the built-in server")
	}
	if d.Endpoint != "" && !strings.HasPrefix(d.Endpoint, "http://") && !strings.HasPrefix(d.Endpoint, "https://") {
		bad("dis.endpoint", "%q must start with http:// or https://", d.Endpoint)
	}
	if d.ProjectID == "" || strings.ContainsAny(d.ProjectID, "/?# ") {
		bad("dis.project_id", "%q must be a non-empty project id without '/', '?', '#' or spaces", d.ProjectID)
	}
	if d.Timeout.D() < 100*time.Millisecond {
		bad("dis.timeout", "%s is too small; use at least 100ms", d.Timeout.D())
	}
	oneOf("dis.auth.mode", d.Auth.Mode, "none", "aksk", "token")
	if d.Builtin.Enabled {
		if d.Builtin.Server.Listen == "" {
			bad("dis.builtin.listen", "must not be empty; e.g. 127.0.0.1:9180")
		}
		errs = append(errs, prefixed("dis.builtin.", d.Builtin.Server.Validate())...)
	}

	streams := map[string]bool{}
	for i, s := range c.Streams {
		key := fmt.Sprintf("streams[%d]", i)
		if !validStreamName(s.Name) {
			bad(key+".name", "%q is not a valid DIS stream name: 1-64 characters of A-Z a-z 0-9 _ -", s.Name)
		} else if streams[s.Name] {
			bad(key+".name", "stream %q is listed twice", s.Name)
		}
		streams[s.Name] = true
		if s.Create {
			if s.PartitionCount < 1 || s.PartitionCount > 50 {
				bad(key+".partition_count", "%d is out of range; use 1 to 50", s.PartitionCount)
			}
			oneOf(key+".stream_type", s.StreamType, "COMMON", "ADVANCED")
			oneOf(key+".data_type", s.DataType, "BLOB", "JSON", "CSV")
			if s.DataDuration < 24 || s.DataDuration > 72 {
				bad(key+".data_duration", "%d is out of range; DIS keeps data 24 to 72 hours", s.DataDuration)
			}
		}
	}
	c.validateAdmin(bad)
	errs = append(errs, c.validateIngest(bad)...)
	c.validateDownlink(bad)
	c.validateStoreForward(bad)
	c.validateStreamBuffers(bad)
	if err := c.Routing.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, r := range c.Routing.Routes {
		if r.Stream != "" && !streams[r.Stream] {
			bad(fmt.Sprintf("routes[%d].stream", i), "%q is not listed under streams; add it there (with create: false if it already exists in DIS)", r.Stream)
		}
	}
	if u := c.Routing.Unmatched.Stream; u != "" && !streams[u] {
		bad("unmatched.stream", "%q is not listed under streams; add it there", u)
	}
	return errors.Join(errs...)
}

// UnmarshalYAML fills stream defaults before decoding, so a stream entry only
// states what differs.
func (s *Stream) UnmarshalYAML(n *yaml.Node) error {
	type plain Stream
	p := plain{Create: true, PartitionCount: 1, StreamType: "COMMON", DataDuration: 24}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Stream(p)
	s.streamDefaults()
	return nil
}

// prefixed splits a joined error and puts prefix before each key path.
func prefixed(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return out
}

func validStreamName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
