package disserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Auth modes.
const (
	AuthNone  = "none"  // no authentication: local development only, logged loudly
	AuthAKSK  = "aksk"  // AK/SK signatures (both forms) only
	AuthToken = "token" // IAM-style X-Auth-Token only
	AuthAny   = "any"   // AK/SK signature or token
)

// Environment variables that supply one key pair valid for every project.
const (
	EnvAccessKey = "EDGEGW_DIS_ACCESS_KEY"
	EnvSecretKey = "EDGEGW_DIS_SECRET_KEY"
)

// AnyProject in a key's or user's project list allows every project.
const AnyProject = "*"

// Config configures the DIS-compatible server. Keys are snake_case YAML.
type Config struct {
	// Listen is the address `edgegw dis serve` listens on. Serve takes a
	// listener, so embedders may ignore it.
	Listen string `yaml:"listen"`
	// DataDir holds the Badger database (records, metadata, checkpoints).
	DataDir string `yaml:"data_dir"`

	Auth        AuthConfig  `yaml:"auth"`
	Quotas      Quotas      `yaml:"quotas"`
	Limits      Limits      `yaml:"limits"`
	FlowControl FlowControl `yaml:"flow_control"`
	Faults      Faults      `yaml:"faults"`

	// JanitorInterval is how often expired records are removed and DELETED
	// partitions turn EXPIRED.
	JanitorInterval time.Duration `yaml:"janitor_interval"`
	// ScalingCooldown is the minimum time between two partition-count changes
	// of one stream; 0 means no limit. The reference contradicts itself on
	// this (COMPAT-NOTES C6), so it is off by default.
	ScalingCooldown time.Duration `yaml:"scaling_cooldown"`

	// Clock replaces time.Now (tests). Not configurable from YAML.
	Clock func() time.Time `yaml:"-"`
}

// AuthConfig selects how requests authenticate.
type AuthConfig struct {
	// Mode is none, aksk, token or any. Config files start from FileDefaults,
	// where it is unset (""): it then means any when credentials are
	// configured (keys, users or the environment pair), and is an error
	// otherwise, so that no credential checks happen only when a file says
	// mode: none.
	Mode string `yaml:"mode"`
	// Keys are AK/SK pairs. The environment pair (EDGEGW_DIS_ACCESS_KEY,
	// EDGEGW_DIS_SECRET_KEY) is added to them and is valid for every project.
	Keys []KeyConfig `yaml:"keys"`
	// Users may obtain tokens with POST /v3/auth/tokens.
	Users []UserConfig `yaml:"users"`
	// TokenTTL is the validity of issued tokens (IAM: 24 h, §3.2).
	TokenTTL time.Duration `yaml:"token_ttl"`
	// MaxClockSkew bounds |X-Sdk-Date - now| (APIG: 15 min, §3.2).
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
}

// KeyConfig is one AK/SK pair and the projects it may access.
type KeyConfig struct {
	AccessKey string   `yaml:"access_key"`
	SecretKey string   `yaml:"secret_key"`
	Projects  []string `yaml:"projects"`
}

// UserConfig is one user that may obtain tokens, and its projects.
type UserConfig struct {
	Name     string   `yaml:"name"`
	Password string   `yaml:"password"`
	Domain   string   `yaml:"domain"`
	Projects []string `yaml:"projects"`
}

// Quotas are per-project limits (§5.1.1, §5.1.8).
type Quotas struct {
	CommonPartitions   int `yaml:"common_partitions"`
	AdvancedPartitions int `yaml:"advanced_partitions"`
	Apps               int `yaml:"apps"`
}

// Limits bound requests.
type Limits struct {
	// MaxRequestBytes caps a request body as received (and after
	// decompression); larger requests get HTTP 413.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxRecordsPerRequest caps PutRecords; more gets HTTP 413.
	MaxRecordsPerRequest int `yaml:"max_records_per_request"`
	// MaxRecordBytes is the per-record data limit, a per-record error above it.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// MaxFetchBytes caps one GetRecords reply, whatever max_fetch_bytes asks.
	MaxFetchBytes int `yaml:"max_fetch_bytes"`
}

// FlowControl is the per-partition write limit, answered per record with
// DIS.4303 inside HTTP 200, and a per-project request limit answered with 429.
type FlowControl struct {
	Enabled  bool      `yaml:"enabled"`
	Common   RateLimit `yaml:"common"`
	Advanced RateLimit `yaml:"advanced"`
	// RequestsPerSecond limits the requests of one project; 0 means no limit.
	RequestsPerSecond int `yaml:"requests_per_second"`
}

// RateLimit is a per-partition write rate.
type RateLimit struct {
	BytesPerSecond   int `yaml:"bytes_per_second"`
	RecordsPerSecond int `yaml:"records_per_second"`
}

// Faults are deterministic failures for testing clients. They can also be
// changed at runtime with Server.SetFaults.
type Faults struct {
	// FailEveryNthRecord fails every Nth record of PutRecords with DIS.4303
	// inside HTTP 200. Records are counted across requests in arrival order;
	// only records that would otherwise be stored count. Like real
	// per-partition flow control, the later records of the failed record's
	// partition in that request fail too (uncounted), so clients that resend
	// failures in order keep per-partition order.
	FailEveryNthRecord int `yaml:"fail_every_nth_record"`
	// RejectEveryNthRequest answers every Mth PutRecords request with HTTP 429.
	RejectEveryNthRequest int `yaml:"reject_every_nth_request"`
	// OutageStart and OutageDuration define a window, relative to server start
	// (or to the SetFaults call), in which the data-plane APIs (records,
	// cursors, checkpoints) answer HTTP 503 DIS.5000. Stream and app
	// management stay up so that fixtures can be set up during the window.
	OutageStart    time.Duration `yaml:"outage_start"`
	OutageDuration time.Duration `yaml:"outage_duration"`
}

// DefaultConfig returns the defaults; every number carries its reason.
func DefaultConfig() Config {
	return Config{
		Listen:  "127.0.0.1:9180", // loopback: the embedded server is the gateway's private upstream
		DataDir: "data/dis",
		Auth: AuthConfig{
			Mode:         AuthNone,
			TokenTTL:     24 * time.Hour,   // IAM token validity (§3.2)
			MaxClockSkew: 15 * time.Minute, // APIG's X-Sdk-Date window (§3.2)
		},
		Quotas: Quotas{
			CommonPartitions:   50,  // §5.1.1 default quota
			AdvancedPartitions: 10,  // §5.1.1 default quota
			Apps:               100, // §5.1.8 default app quota
		},
		Limits: Limits{
			MaxRequestBytes:      12 << 20, // AK/SK bodies are at most 12 MB (§3.2)
			MaxRecordsPerRequest: 50000,    // 50 COMMON partitions × 1000 records: the Python SDK's largest batch at default quota
			MaxRecordBytes:       1 << 20,  // 1 MiB per record (COMPAT-NOTES fact 21)
			MaxFetchBytes:        2 << 20,  // per-partition read rate is 2 MB/s; one reply holds at most a second of it
		},
		FlowControl: FlowControl{
			Enabled:  true,
			Common:   RateLimit{BytesPerSecond: 1 << 20, RecordsPerSecond: 1000}, // COMMON partition: 1 MB/s, 1000 records/s
			Advanced: RateLimit{BytesPerSecond: 5 << 20, RecordsPerSecond: 2000}, // ADVANCED: 5 MB/s; 2000 records/s as the Python SDK assumes
		},
		JanitorInterval: time.Minute, // retention is hours; a minute of lag is invisible and costs one scan
	}
}

// FileDefaults returns the defaults a config file is read over: those of
// DefaultConfig with auth.mode unset, so that a file must state mode: none
// (or configure credentials). DefaultConfig keeps mode none for Go callers.
func FileDefaults() Config {
	c := DefaultConfig()
	c.Auth.Mode = ""
	return c
}

// hasCredentials reports whether any credential is configured: auth.keys,
// auth.users or the environment key pair.
func (a AuthConfig) hasCredentials() bool {
	return len(a.Keys) > 0 || len(a.Users) > 0 || (os.Getenv(EnvAccessKey) != "" && os.Getenv(EnvSecretKey) != "")
}

// ResolveAuthMode turns an unset auth.mode into any when credentials are
// configured. Without credentials it stays unset, which Validate refuses.
func (c *Config) ResolveAuthMode() {
	if c.Auth.Mode == "" && c.Auth.hasCredentials() {
		c.Auth.Mode = AuthAny
	}
}

var projectIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate reports every problem at once; each names its YAML key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen", "%q is not host:port; e.g. 127.0.0.1:9180", c.Listen)
		}
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty; e.g. data/dis")
	}
	a := c.Auth
	switch a.Mode {
	case AuthNone, AuthAKSK, AuthToken, AuthAny:
	case "":
		if a.hasCredentials() {
			a.Mode = AuthAny // what ResolveAuthMode makes of it
			break
		}
		bad("auth.mode", "not set and no credentials configured; set mode: none for local development (no credentials are checked), or add auth.keys / auth.users (or set %s and %s)", EnvAccessKey, EnvSecretKey)
	default:
		bad("auth.mode", "%q is not one of none, aksk, token, any", a.Mode)
	}
	envKey := os.Getenv(EnvAccessKey) != "" && os.Getenv(EnvSecretKey) != ""
	if (a.Mode == AuthAKSK) && len(a.Keys) == 0 && !envKey {
		bad("auth.keys", "mode aksk needs at least one key; add auth.keys or set %s and %s", EnvAccessKey, EnvSecretKey)
	}
	if a.Mode == AuthToken && len(a.Users) == 0 {
		bad("auth.users", "mode token needs at least one user; add auth.users with name, password and projects")
	}
	if a.Mode == AuthAny && len(a.Keys) == 0 && len(a.Users) == 0 && !envKey {
		bad("auth.keys", "mode any needs a key or a user; add auth.keys or auth.users, or set %s and %s", EnvAccessKey, EnvSecretKey)
	}
	seen := map[string]bool{}
	for i, k := range a.Keys {
		key := fmt.Sprintf("auth.keys[%d]", i)
		if k.AccessKey == "" || k.SecretKey == "" {
			bad(key, "access_key and secret_key must both be set")
		}
		if seen[k.AccessKey] {
			bad(key+".access_key", "%q is listed twice", k.AccessKey)
		}
		seen[k.AccessKey] = true
		checkProjects(key+".projects", k.Projects, bad)
	}
	seenUser := map[string]bool{}
	for i, u := range a.Users {
		key := fmt.Sprintf("auth.users[%d]", i)
		if u.Name == "" || u.Password == "" {
			bad(key, "name and password must both be set")
		}
		if seenUser[u.Domain+"\x00"+u.Name] {
			bad(key+".name", "%q is listed twice", u.Name)
		}
		seenUser[u.Domain+"\x00"+u.Name] = true
		checkProjects(key+".projects", u.Projects, bad)
	}
	if a.TokenTTL < time.Minute || a.TokenTTL > 7*24*time.Hour {
		bad("auth.token_ttl", "%s is out of range; use 1m to 168h (IAM issues 24h tokens)", a.TokenTTL)
	}
	if a.MaxClockSkew < time.Second || a.MaxClockSkew > time.Hour {
		bad("auth.max_clock_skew", "%s is out of range; use 1s to 1h (APIG allows 15m)", a.MaxClockSkew)
	}
	q := c.Quotas
	if q.CommonPartitions < 1 || q.CommonPartitions > 100000 {
		bad("quotas.common_partitions", "%d is out of range; use 1 to 100000", q.CommonPartitions)
	}
	if q.AdvancedPartitions < 0 || q.AdvancedPartitions > 100000 {
		bad("quotas.advanced_partitions", "%d is out of range; use 0 to 100000", q.AdvancedPartitions)
	}
	if q.Apps < 0 || q.Apps > 100000 {
		bad("quotas.apps", "%d is out of range; use 0 to 100000", q.Apps)
	}
	l := c.Limits
	if l.MaxRequestBytes < 64<<10 || l.MaxRequestBytes > 256<<20 {
		bad("limits.max_request_bytes", "%d is out of range; use 65536 to 268435456 (AK/SK bodies are at most 12 MB)", l.MaxRequestBytes)
	}
	if l.MaxRecordsPerRequest < 1 || l.MaxRecordsPerRequest > 1000000 {
		bad("limits.max_records_per_request", "%d is out of range; use 1 to 1000000", l.MaxRecordsPerRequest)
	}
	if l.MaxRecordBytes < 1 || l.MaxRecordBytes > 1<<20 {
		bad("limits.max_record_bytes", "%d is out of range; use 1 to 1048576 (DIS records are at most 1 MiB)", l.MaxRecordBytes)
	}
	if l.MaxFetchBytes < 1024 || l.MaxFetchBytes > 64<<20 {
		bad("limits.max_fetch_bytes", "%d is out of range; use 1024 to 67108864", l.MaxFetchBytes)
	}
	f := c.FlowControl
	if f.Enabled {
		for _, r := range []struct {
			key string
			rl  RateLimit
		}{{"flow_control.common", f.Common}, {"flow_control.advanced", f.Advanced}} {
			if r.rl.BytesPerSecond < 1024 {
				bad(r.key+".bytes_per_second", "%d is too small; use at least 1024 or set flow_control.enabled: false", r.rl.BytesPerSecond)
			}
			if r.rl.RecordsPerSecond < 1 {
				bad(r.key+".records_per_second", "%d is too small; use at least 1 or set flow_control.enabled: false", r.rl.RecordsPerSecond)
			}
		}
	}
	if f.RequestsPerSecond < 0 {
		bad("flow_control.requests_per_second", "%d is negative; use 0 for no limit", f.RequestsPerSecond)
	}
	if err := c.Faults.validate("faults."); err != nil {
		errs = append(errs, err)
	}
	if c.JanitorInterval < time.Second || c.JanitorInterval > time.Hour {
		bad("janitor_interval", "%s is out of range; use 1s to 1h", c.JanitorInterval)
	}
	if c.ScalingCooldown < 0 {
		bad("scaling_cooldown", "%s is negative; use 0 for no limit", c.ScalingCooldown)
	}
	return errors.Join(errs...)
}

func (f Faults) validate(prefix string) error {
	var errs []error
	if f.FailEveryNthRecord < 0 {
		errs = append(errs, fmt.Errorf("%sfail_every_nth_record: %d is negative; use 0 for off", prefix, f.FailEveryNthRecord))
	}
	if f.RejectEveryNthRequest < 0 {
		errs = append(errs, fmt.Errorf("%sreject_every_nth_request: %d is negative; use 0 for off", prefix, f.RejectEveryNthRequest))
	}
	if f.OutageStart < 0 || f.OutageDuration < 0 {
		errs = append(errs, fmt.Errorf("%soutage_start, %soutage_duration: must not be negative", prefix, prefix))
	}
	return errors.Join(errs...)
}

func checkProjects(key string, projects []string, bad func(string, string, ...any)) {
	if len(projects) == 0 {
		bad(key, "is empty; list the project ids this credential may use, or %q for all", AnyProject)
	}
	for _, p := range projects {
		if p != AnyProject && !projectIDRe.MatchString(p) {
			bad(key, "%q is not a project id (1-64 of A-Z a-z 0-9 _ -) or %q", p, AnyProject)
		}
	}
}

// LoadConfigFile reads a YAML file over FileDefaults with unknown keys
// rejected, resolves an unset auth.mode, then validates it.
func LoadConfigFile(path string) (Config, error) {
	c := FileDefaults()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read DIS server config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("parse DIS server config %s: %w", path, err)
	}
	c.ResolveAuthMode()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("DIS server config %s: %w", path, err)
	}
	return c, nil
}

func allowsProject(list []string, project string) bool {
	return slices.Contains(list, AnyProject) || slices.Contains(list, project)
}
