package schema

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config says where stream schemas come from and how they apply.
//
// A stream whose entry sets data_type takes its schema from config and is
// never fetched: that is how a gateway validates from its first message even
// when DIS is unreachable. Any other stream takes data_type, data_schema and
// csv_properties.delimiter from DIS (describe stream), refreshed every
// refresh_interval; its entry, if any, still sets the options
// (allow_unknown_fields, csv_header, csv_delimiter, avro_binary).
type Config struct {
	// RefreshInterval is how often each DIS stream's schema is fetched again.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// FetchTimeout bounds one describe-stream call.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// NoSchema is what Validate does for a stream whose schema is not known
	// yet (before its first successful fetch): "accept" the payload
	// unvalidated and count it, or "reject" it with ErrNoSchema.
	NoSchema string `yaml:"no_schema"`
	// Streams holds per-stream settings.
	Streams []StreamConfig `yaml:"streams"`
}

// StreamConfig is one stream's schema settings.
type StreamConfig struct {
	Name string `yaml:"name"`
	// DataType, if set, makes config the source of this stream's schema:
	// BLOB, JSON or CSV.
	DataType string `yaml:"data_type"`
	// DataSchema is the Avro schema as text; DataSchemaFile names a file that
	// holds it (a relative path is taken from the working directory, so the
	// config loader should make it relative to the config file). At most one.
	DataSchema     string `yaml:"data_schema"`
	DataSchemaFile string `yaml:"data_schema_file"`
	// CSVDelimiter overrides the stream's csv_properties.delimiter.
	CSVDelimiter string `yaml:"csv_delimiter"`
	// CSVHeader is none (default), skip or check.
	CSVHeader          string `yaml:"csv_header"`
	AllowUnknownFields bool   `yaml:"allow_unknown_fields"`
	// AvroBinary: payloads are Avro binary records of the schema (BLOB streams).
	AvroBinary bool `yaml:"avro_binary"`
}

// No-schema policies.
const (
	NoSchemaAccept = "accept"
	NoSchemaReject = "reject"
)

// Defaults.
const (
	// DefaultRefreshInterval: a stream's schema changes by an operator's
	// update, rarely; five minutes bounds how long the gateway applies the
	// old one and costs one describe call per stream per five minutes.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultFetchTimeout: a describe call is one small GET; ten seconds
	// allows a slow uplink and still retries well within the interval.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultNoSchema is accept because offline is normal (DESIGN.md §6): a
	// gateway that starts while DIS is unreachable must keep taking data,
	// and refusing every publish until DIS answers would lose it at the
	// device. Streams that must never take unvalidated data get their schema
	// in config, or the operator sets reject.
	DefaultNoSchema = NoSchemaAccept
)

// minRefresh keeps a misconfigured interval from turning the refresher into
// a describe-stream flood against DIS's API rate limits.
const minRefresh = time.Second

// DefaultConfig returns the defaults; a zero field in a Config given to
// NewRegistry also takes its default.
func DefaultConfig() Config {
	return Config{RefreshInterval: DefaultRefreshInterval, FetchTimeout: DefaultFetchTimeout, NoSchema: DefaultNoSchema}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.RefreshInterval == 0 {
		c.RefreshInterval = d.RefreshInterval
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = d.FetchTimeout
	}
	if c.NoSchema == "" {
		c.NoSchema = d.NoSchema
	}
	return c
}

// ConfigError is one problem in a Config. Key is the YAML key path relative to
// the schema section ("streams[1].data_schema").
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Msg }

// Validate reports every problem at once (errors.Join of *ConfigError). It
// reads schema files and compiles every schema given in config, so a config
// check finds a bad schema before the gateway starts.
func (c Config) Validate() error {
	_, err := c.compileConfigured()
	return err
}

// compileConfigured validates c and compiles the streams whose schema
// comes from config.
func (c Config) compileConfigured() (map[string]*Validator, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.RefreshInterval != 0 && c.RefreshInterval < minRefresh {
		bad("refresh_interval", "%s is too short; use at least %s (default %s)", c.RefreshInterval, minRefresh, DefaultRefreshInterval)
	}
	if c.FetchTimeout < 0 {
		bad("fetch_timeout", "%s is negative; use a positive duration (default %s)", c.FetchTimeout, DefaultFetchTimeout)
	}
	if d := c.withDefaults(); d.FetchTimeout > d.RefreshInterval {
		bad("fetch_timeout", "%s is longer than refresh_interval %s; a fetch must end before the next is due", d.FetchTimeout, d.RefreshInterval)
	}
	switch c.NoSchema {
	case "", NoSchemaAccept, NoSchemaReject:
	default:
		bad("no_schema", "%q: want accept (the default: take unvalidated data until the schema is known) or reject", c.NoSchema)
	}
	validators := map[string]*Validator{}
	seen := map[string]int{}
	for i, s := range c.Streams {
		key := fmt.Sprintf("streams[%d]", i)
		if s.Name == "" {
			bad(key+".name", "missing; name the DIS stream these settings are for")
		} else if j, dup := seen[s.Name]; dup {
			bad(key+".name", "stream %q is also configured in streams[%d]; merge the two", s.Name, j)
		}
		seen[s.Name] = i
		fromConfig := s.DataType != ""
		if s.DataSchema != "" && s.DataSchemaFile != "" {
			bad(key+".data_schema_file", "set data_schema or data_schema_file, not both")
		}
		if !fromConfig && (s.DataSchema != "" || s.DataSchemaFile != "") {
			bad(key+".data_type", "missing; a schema given in config needs its data_type (BLOB, JSON or CSV); leave all three out to take them from DIS")
		}
		if fromConfig {
			switch strings.ToUpper(s.DataType) {
			case BLOB, JSON, CSV:
			default:
				bad(key+".data_type", "%q: want BLOB, JSON or CSV", s.DataType)
				continue
			}
		}
		spec, err := s.spec(nil)
		if err != nil {
			bad(key+".data_schema_file", "%v", err)
			continue
		}
		if !fromConfig {
			// Options only: check them on their own, with any schema.
			spec = Spec{DataType: CSV, Delimiter: s.CSVDelimiter, CSVHeader: s.CSVHeader}
			if s.CSVHeader == HeaderCheck {
				spec.CSVHeader = HeaderNone // needs a schema, which DIS will supply
			}
		}
		v, err := Compile(spec)
		if err != nil {
			bad(key+"."+settingKey(err), "%v", errors.Unwrap(err))
			continue
		}
		if fromConfig {
			validators[s.Name] = v
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return validators, nil
}

// settingKey is the config key a Compile error concerns.
func settingKey(err error) string {
	var se *SpecError
	if errors.As(err, &se) {
		return se.Setting
	}
	return "data_schema"
}

// spec combines the stream's settings with what DIS reported (nil when the
// schema comes from config).
func (s StreamConfig) spec(fetched *StreamSchema) (Spec, error) {
	spec := Spec{
		DataType:           s.DataType,
		Schema:             s.DataSchema,
		Delimiter:          s.CSVDelimiter,
		AllowUnknownFields: s.AllowUnknownFields,
		CSVHeader:          s.CSVHeader,
		AvroBinary:         s.AvroBinary,
	}
	if s.DataSchemaFile != "" {
		b, err := os.ReadFile(s.DataSchemaFile)
		if err != nil {
			return Spec{}, fmt.Errorf("read schema: %w", err)
		}
		spec.Schema = string(b)
	}
	if fetched != nil {
		spec.DataType, spec.Schema = fetched.DataType, fetched.DataSchema
		if spec.Delimiter == "" {
			spec.Delimiter = fetched.Delimiter
		}
	}
	return spec.normalized(), nil
}
