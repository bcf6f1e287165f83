package router

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/edgegw/edgegw/internal/dis"
)

// Route is one routing rule. Routes are tried in config order and the first
// whose topic filter matches a publish decides its stream and partition.
type Route struct {
	// Topic is an MQTT topic filter; "+" matches one level, a trailing "#"
	// matches any number of levels including none.
	Topic string `yaml:"topic"`
	// Stream is the DIS stream the message is written to.
	Stream string `yaml:"stream"`
	// PartitionKey is a key template, for example "{topic.2}" or
	// "site-{payload.site.id}". Records with the same key keep their order.
	PartitionKey string `yaml:"partition_key"`
	// PartitionID pins every record of the route to one partition ("0" or
	// "shardId-0000000000"). Exclusive with PartitionKey. With neither, DIS
	// spreads records over the partitions.
	PartitionID string `yaml:"partition_id"`
	// Envelope wraps the payload in a JSON object with the publish metadata
	// (see envelope.go for the format).
	Envelope bool `yaml:"envelope"`
}

// Unmatched says what happens to a publish no route matches. With Stream
// empty (the default) the message is dropped and counted; otherwise it goes
// to Stream with the given partitioning and envelope, like a last route "#"
// that also catches topics beginning with "$".
type Unmatched struct {
	Stream       string `yaml:"stream"`
	PartitionKey string `yaml:"partition_key"`
	PartitionID  string `yaml:"partition_id"`
	Envelope     bool   `yaml:"envelope"`
}

// Config is the routing table as written in the configuration file.
type Config struct {
	Routes    []Route   `yaml:"routes"`
	Unmatched Unmatched `yaml:"unmatched"`
}

// ConfigError is one problem in a Config. Key is the YAML key path relative to
// the router section ("routes[2].partition_key"), so the config loader can
// prefix its own section name.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Msg }

// maxStreamName is the DIS limit on stream names (§5.1.1: 1 to 64 characters).
const maxStreamName = 64

// Validate reports every problem in c at once (errors.Join of *ConfigError),
// each naming the key and what is allowed.
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

// validStreamName applies the DIS stream name rule (§5.1.1): 1 to 64
// letters, digits, underscores and hyphens.
func validStreamName(s string) bool {
	if s == "" || len(s) > maxStreamName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// maxTopicLen is the MQTT limit on a UTF-8 string (MQTT-1.5.3: two-byte length).
const maxTopicLen = 65535

// validateFilter checks an MQTT topic filter (MQTT 5 §4.7.1): not empty,
// "#" only as the whole last level, "+" only as a whole level, no NUL.
func validateFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter; use \"#\" to match every topic")
	}
	if len(f) > maxTopicLen {
		return fmt.Errorf("topic filter is %d bytes, the MQTT limit is %d", len(f), maxTopicLen)
	}
	if !utf8.ValidString(f) {
		return errors.New("topic filter is not valid UTF-8")
	}
	start := 0
	for i := 0; i <= len(f); i++ {
		if i < len(f) && f[i] == 0 {
			return errors.New("topic filter contains a NUL character")
		}
		if i < len(f) && f[i] != '/' {
			continue
		}
		level := f[start:i]
		for j := 0; j < len(level); j++ {
			switch level[j] {
			case '+':
				if len(level) != 1 {
					return fmt.Errorf("level %q: \"+\" must be a whole level, as in a/+/c", level)
				}
			case '#':
				if len(level) != 1 || i != len(f) {
					return fmt.Errorf("level %q: \"#\" must be the whole last level, as in a/b/#", level)
				}
			}
		}
		start = i + 1
	}
	return nil
}

// filterLevels returns the number of levels of a filter and whether it ends
// in "#" (then topics may have more levels, or one fewer).
func filterLevels(f string) (n int, multi bool) {
	n = 1
	for i := 0; i < len(f); i++ {
		if f[i] == '/' {
			n++
		}
	}
	return n, f == "#" || len(f) >= 2 && f[len(f)-2:] == "/#"
}

// compileRoute checks one route's stream, key and partition and builds its
// runtime form. key is the YAML path of the route ("routes[3]" or "unmatched").
// levels is the topic filter's level count, or 0 when any count is possible.
func compileRoute(key string, r Route, levels int, errs *[]error) compiledRoute {
	bad := func(field, format string, args ...any) {
		*errs = append(*errs, &ConfigError{Key: key + "." + field, Msg: fmt.Sprintf(format, args...)})
	}
	cr := compiledRoute{stream: r.Stream, envelope: r.Envelope}
	if !validStreamName(r.Stream) {
		if r.Stream == "" {
			bad("stream", "missing; name the DIS stream the messages go to")
		} else {
			bad("stream", "%q is not a DIS stream name: use 1 to %d letters, digits, _ or -", r.Stream, maxStreamName)
		}
	}
	if r.PartitionKey != "" && r.PartitionID != "" {
		bad("partition_id", "set either partition_key or partition_id, not both")
	}
	if r.PartitionKey != "" {
		t, err := parseTemplate(r.PartitionKey)
		switch {
		case err != nil:
			bad("partition_key", "%v", err)
		case levels > 0 && t.maxLevel > levels:
			bad("partition_key", "{topic.%d} can never be filled: the topic filter %q has %d levels", t.maxLevel, r.Topic, levels)
		default:
			cr.key = t
		}
	}
	if r.PartitionID != "" {
		n, err := dis.ParsePartitionID(r.PartitionID)
		if err != nil {
			bad("partition_id", "%v", err)
		} else {
			// The short form is what DIS documents first (§5.4.1) and what
			// both DIS and the built-in server accept.
			cr.partitionID = strconv.Itoa(n)
		}
	}
	return cr
}
