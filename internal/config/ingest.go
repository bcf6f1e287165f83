package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/schema"
)

// The ingest path's settings: MQTT users, ACLs and login limit (in the mqtt
// section), listener TLS and WebSocket origins, per-stream schema options,
// the schema section and the dead-letter section.

// MQTTAuth is the part of the mqtt section that says who may connect and
// what they may do. It can be reloaded at runtime (Gateway.ReloadAuth).
type MQTTAuth struct {
	// Users log in with a password (bcrypt hash from `edgegw passwd`) or, on
	// a TLS listener with identity_from_cn, a client certificate whose CN is
	// the user's name.
	Users []broker.User `yaml:"users"`
	// ACL is the ordered list of rules; see README "Device authentication
	// and ACLs".
	ACL        broker.ACLConfig `yaml:"acl"`
	LoginLimit LoginLimit       `yaml:"login_limit"`
}

// LoginLimit bounds failed MQTT logins per source address: max_failures in a
// row, then max_failures per window.
type LoginLimit struct {
	MaxFailures int      `yaml:"max_failures"`
	Window      Duration `yaml:"window"`
}

// ListenerTLS is the part of an mqtt.listeners entry for tls, ws and wss.
type ListenerTLS struct {
	// TLS is required for tls and wss listeners.
	TLS *broker.TLSConfig `yaml:"tls"`
	// AllowedOrigins are the browser origins a ws/wss listener accepts besides
	// its own host ("*": any); clients without an Origin header always pass.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// StreamSchema is the part of a streams entry about validating payloads.
// data_type and data_schema are in Stream itself (they also create the
// stream in DIS).
type StreamSchema struct {
	// DataSchemaFile holds the Avro schema instead of data_schema; a relative
	// path is taken from the config file's folder.
	DataSchemaFile string `yaml:"data_schema_file"`
	// CSVDelimiter is the CSV column delimiter (DIS csv_properties.delimiter);
	// empty means the stream's own, or ",".
	CSVDelimiter string `yaml:"csv_delimiter"`
	// CSVHeader is none (default), skip or check.
	CSVHeader          string `yaml:"csv_header"`
	AllowUnknownFields bool   `yaml:"allow_unknown_fields"`
	// AvroBinary: payloads of this BLOB stream are Avro binary records of its
	// schema, checked by decoding.
	AvroBinary bool `yaml:"avro_binary"`
}

// Schema is the schema section: how schemas fetched from DIS are kept.
type Schema struct {
	RefreshInterval Duration `yaml:"refresh_interval"`
	FetchTimeout    Duration `yaml:"fetch_timeout"`
	// NoSchema is what happens to a payload for a stream whose schema has not
	// been fetched yet: accept (unvalidated, counted) or reject.
	NoSchema string `yaml:"no_schema"`
}

// DeadLetter is where payloads that will never reach their stream go.
type DeadLetter struct {
	// TopicPrefix: each dead letter is published to TopicPrefix + stream.
	TopicPrefix string `yaml:"topic_prefix"`
	// Stream, if set, also receives every dead letter as a record, through
	// the buffer like any record (so it survives restarts and outages).
	Stream string `yaml:"stream"`
}

func defaultMQTTAuth() MQTTAuth {
	return MQTTAuth{LoginLimit: LoginLimit{
		MaxFailures: broker.DefaultLoginMaxFailures,
		Window:      Duration(broker.DefaultLoginWindow),
	}}
}

func defaultSchema() Schema {
	return Schema{
		RefreshInterval: Duration(schema.DefaultRefreshInterval),
		FetchTimeout:    Duration(schema.DefaultFetchTimeout),
		NoSchema:        schema.DefaultNoSchema,
	}
}

// DefaultDeadLetterPrefix: topics starting with "$" are not matched by a
// subscription to "#", so only a subscriber who asks gets dead letters.
const DefaultDeadLetterPrefix = "$edgegw/deadletter/"

func defaultDeadLetter() DeadLetter { return DeadLetter{TopicPrefix: DefaultDeadLetterPrefix} }

// AuthConfig is the broker's view of the mqtt section.
func (m MQTT) AuthConfig() broker.AuthConfig {
	return broker.AuthConfig{
		Anonymous:  m.Anonymous,
		Users:      m.Users,
		ACL:        m.ACL,
		LoginLimit: broker.LoginLimit{MaxFailures: m.LoginLimit.MaxFailures, Window: m.LoginLimit.Window.D()},
	}
}

// BrokerListener is the broker's view of a listener entry.
func (l Listener) BrokerListener() broker.ListenerConfig {
	return broker.ListenerConfig{Name: l.Name, Type: l.Type, Address: l.Address, TLS: l.TLS, AllowedOrigins: l.AllowedOrigins}
}

// SchemaConfig is the schema registry's view of the streams and the schema
// section. Streams with create: true validate with the schema they create
// the DIS stream with (data_type defaults to BLOB); streams with create:
// false take theirs from DIS (describe stream, refreshed) unless their entry
// sets data_type, which makes config the source.
func (c *Config) SchemaConfig() schema.Config {
	sc := schema.Config{
		RefreshInterval: c.Schema.RefreshInterval.D(),
		FetchTimeout:    c.Schema.FetchTimeout.D(),
		NoSchema:        c.Schema.NoSchema,
	}
	for _, s := range c.Streams {
		sc.Streams = append(sc.Streams, s.schemaStream())
	}
	return sc
}

func (s Stream) schemaStream() schema.StreamConfig {
	return schema.StreamConfig{
		Name:               s.Name,
		DataType:           s.DataType,
		DataSchema:         s.DataSchema,
		DataSchemaFile:     s.DataSchemaFile,
		CSVDelimiter:       s.CSVDelimiter,
		CSVHeader:          s.CSVHeader,
		AllowUnknownFields: s.AllowUnknownFields,
		AvroBinary:         s.AvroBinary,
	}
}

// streamDefaults fills what a streams entry leaves out. data_type defaults
// to BLOB only for streams the gateway creates; for an existing stream an
// empty data_type means "take the schema from DIS".
func (s *Stream) streamDefaults() {
	if s.Create && s.DataType == "" {
		s.DataType = schema.BLOB
	}
}

// resolvePaths makes relative file paths in the config relative to dir, the
// config file's folder, so a config works from any working directory.
func (c *Config) resolvePaths(dir string) {
	if dir == "" {
		return
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Streams {
		abs(&c.Streams[i].DataSchemaFile)
	}
	for i := range c.MQTT.Listeners {
		if t := c.MQTT.Listeners[i].TLS; t != nil {
			cp := *t // the pointer may be shared with Default()
			abs(&cp.CertFile)
			abs(&cp.KeyFile)
			abs(&cp.ClientCAFile)
			c.MQTT.Listeners[i].TLS = &cp
		}
	}
}

// validateIngest checks the listeners' types and TLS, users and ACLs, the
// streams' schemas, the schema and dead-letter sections.
func (c *Config) validateIngest(bad func(key, format string, args ...any)) []error {
	var errs []error
	for i, l := range c.MQTT.Listeners {
		errs = append(errs, prefixed(fmt.Sprintf("mqtt.listeners[%d].", i), broker.CheckListener(l.BrokerListener()))...)
	}
	auth := c.MQTT.AuthConfig()
	auth.Anonymous = broker.AnonymousLoopback // mqtt.anonymous is checked in Validate
	if auth.LoginLimit.Window < time.Second || auth.LoginLimit.MaxFailures < 1 {
		if auth.LoginLimit.MaxFailures < 1 {
			bad("mqtt.login_limit.max_failures", "%d is out of range; use at least 1 (default %d)", auth.LoginLimit.MaxFailures, broker.DefaultLoginMaxFailures)
		}
		if auth.LoginLimit.Window < time.Second {
			bad("mqtt.login_limit.window", "%s is too short; use at least 1s (default %s)", auth.LoginLimit.Window, broker.DefaultLoginWindow)
		}
		auth.LoginLimit = broker.LoginLimit{MaxFailures: 1, Window: time.Second}
	}
	errs = append(errs, prefixed("mqtt.", broker.CheckAuth(auth))...)

	sc := c.SchemaConfig()
	// Streams whose data_type is refused elsewhere (create: true) or here
	// are left out of the schema check, so each problem is reported once.
	var keep []schema.StreamConfig
	var index []int
	for i, s := range sc.Streams {
		switch strings.ToUpper(s.DataType) {
		case "", schema.BLOB, schema.JSON, schema.CSV:
		default:
			if !c.Streams[i].Create {
				bad(fmt.Sprintf("streams[%d].data_type", i), "%q is not allowed; use one of: BLOB, JSON, CSV, or leave it out to take the stream's schema from DIS", s.DataType)
			}
			continue
		}
		keep = append(keep, s)
		index = append(index, i)
	}
	sc.Streams = keep
	if err := sc.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var ce *schema.ConfigError
			if !errors.As(e, &ce) {
				errs = append(errs, fmt.Errorf("schema: %w", e))
				continue
			}
			key := ce.Key
			var j int
			var rest string
			if n, _ := fmt.Sscanf(key, "streams[%d]%s", &j, &rest); n >= 1 && j < len(index) {
				key = fmt.Sprintf("streams[%d]%s", index[j], rest)
			} else {
				key = "schema." + key
			}
			errs = append(errs, fmt.Errorf("%s: %s", key, ce.Msg))
		}
	}

	d := c.DeadLetter
	switch {
	case d.TopicPrefix == "":
		bad("dead_letter.topic_prefix", "must not be empty; the default is %s", DefaultDeadLetterPrefix)
	case strings.ContainsAny(d.TopicPrefix, "+#\x00"):
		bad("dead_letter.topic_prefix", "%q must not contain + or #: it is the start of topic names", d.TopicPrefix)
	case !strings.HasSuffix(d.TopicPrefix, "/"):
		bad("dead_letter.topic_prefix", "%q must end with /: the stream name follows it", d.TopicPrefix)
	}
	if d.Stream != "" {
		listed := false
		for _, s := range c.Streams {
			listed = listed || s.Name == d.Stream
		}
		if !listed {
			bad("dead_letter.stream", "%q is not listed under streams; add it there (a BLOB or JSON stream)", d.Stream)
		}
	}
	return errs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
