package downlink

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/jsontok"
	"github.com/edgegw/edgegw/internal/tmpl"
)

// Route says where the records of a stream go. Routes of one stream are
// tried in order; the first whose filters accept a record delivers it, and a
// record no route accepts is skipped (counted as filtered).
type Route struct {
	Stream string
	// Topic is the MQTT topic template (see parseTopic): literal text with
	// {partition_key}, {key_suffix}, {payload.FIELD}, {stream} and
	// {partition}.
	Topic  string
	QoS    byte
	Retain bool
	// Transform is "raw" (the record's data is the payload) or "unwrap" (the
	// payload is the field UnwrapField of the record's JSON object).
	Transform   string
	UnwrapField string
	// Partitions limits the route to these partitions ("0" or
	// "shardId-0000000000"); empty means all. The stream's readers cover the
	// union of its routes' partitions.
	Partitions []string
	// KeyPrefix accepts only records whose partition key starts with it.
	KeyPrefix string
	// MatchField and MatchValue accept only records whose JSON payload has
	// MatchValue at MatchField (a dotted path).
	MatchField string
	MatchValue string
}

// Transforms.
const (
	TransformRaw    = "raw"
	TransformUnwrap = "unwrap"
)

// route is a compiled Route.
type route struct {
	Route
	topic  *topicTemplate
	parts  map[int]bool // nil: every partition
	match  []string
	unwrap []string
}

func compileRoute(r Route) (*route, error) {
	c := &route{Route: r}
	var errs []error
	var err error
	if c.topic, err = parseTopic(r.Topic); err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
	}
	if r.QoS > 2 {
		errs = append(errs, fmt.Errorf("qos: %d is not 0, 1 or 2", r.QoS))
	}
	switch r.Transform {
	case TransformRaw, "":
	case TransformUnwrap:
		if c.unwrap, err = parseFieldPath(r.UnwrapField); err != nil {
			errs = append(errs, fmt.Errorf("unwrap_field: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("transform: %q is not raw or unwrap", r.Transform))
	}
	if len(r.Partitions) > 0 {
		c.parts = map[int]bool{}
		for _, p := range r.Partitions {
			n, err := dis.ParsePartitionID(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("partitions: %w", err))
				continue
			}
			c.parts[n] = true
		}
	}
	if r.MatchField != "" {
		if c.match, err = parseFieldPath(r.MatchField); err != nil {
			errs = append(errs, fmt.Errorf("match_field: %w", err))
		}
	}
	return c, errors.Join(errs...)
}

// record is one record on its way to MQTT, with what the templates read.
type record struct {
	stream    string
	partition int
	key       string
	data      []byte
	json      int8 // 0 unknown, 1 valid JSON, -1 not JSON
}

func (r *record) isJSON() bool {
	if r.json == 0 {
		r.json = -1
		if jsonValid(r.data) {
			r.json = 1
		}
	}
	return r.json > 0
}

// accepts reports whether the route's filters let rec through.
func (c *route) accepts(rec *record) bool {
	if c.parts != nil && !c.parts[rec.partition] {
		return false
	}
	if !strings.HasPrefix(rec.key, c.KeyPrefix) {
		return false
	}
	if c.match != nil {
		if !rec.isJSON() {
			return false
		}
		raw, err := jsonLookup(rec.data, c.match)
		if err != nil {
			return false
		}
		v, err := jsontok.Text(raw)
		return err == nil && v == c.MatchValue
	}
	return true
}

// payload applies the route's transform.
func (c *route) payload(rec *record) ([]byte, error) {
	if c.unwrap == nil {
		return rec.data, nil
	}
	field := strings.Join(c.unwrap, ".")
	if !rec.isJSON() {
		return nil, fmt.Errorf("unwrap %s: the record is not JSON", field)
	}
	raw, err := jsonLookup(rec.data, c.unwrap)
	if err != nil {
		return nil, fmt.Errorf("unwrap %s: %w", field, err)
	}
	if raw[0] != '"' {
		return raw, nil // an object, array, number, boolean or null: its JSON text
	}
	s, err := jsontok.Unquote(raw)
	if err != nil {
		return nil, fmt.Errorf("unwrap %s: %w", field, err)
	}
	// The uplink's envelope marks a non-JSON payload with a sibling
	// "<field>_encoding": "base64" (router/envelope.go).
	encPath := append(append([]string(nil), c.unwrap[:len(c.unwrap)-1]...), c.unwrap[len(c.unwrap)-1]+"_encoding")
	if encRaw, err := jsonLookup(rec.data, encPath); err == nil {
		enc, _ := jsontok.Text(encRaw)
		if enc != "base64" {
			return nil, fmt.Errorf("unwrap %s: %s is %q; only base64 is understood", field, strings.Join(encPath, "."), enc)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("unwrap %s: not standard base64 although %s says so", field, strings.Join(encPath, "."))
		}
		return b, nil
	}
	return []byte(s), nil
}

// Topic templates.
//
// A template is literal topic text with placeholders in braces:
//
//	{partition_key}  the record's partition key
//	{key_suffix}     the partition key without the route's key_prefix
//	{payload.a.b}    the field a.b of a JSON record (a number segment
//	                 indexes an array); a string's contents, or a number's
//	                 or boolean's literal text
//	{stream}         the stream name
//	{partition}      the partition index (0, 1, ...)
//
// "{{" and "}}" are literal braces. A template without placeholders is a
// fixed topic. A placeholder's value is one topic level: it must be
// non-empty and must not contain '/', '+', '#' or NUL, so a record can
// never address a topic outside the template's shape.

type partKind uint8

const (
	partLiteral partKind = iota
	partKey
	partKeySuffix
	partPayload
	partStream
	partPartition
)

type topicPart struct {
	kind partKind
	lit  string
	path []string
}

type topicTemplate struct {
	src   string
	parts []topicPart
}

// maxTopicBytes is MQTT's limit on a topic name (a UTF-8 string with a
// 2-byte length, §1.5.4).
const maxTopicBytes = 65535

// CheckTopic reports whether s is a valid topic template.
func CheckTopic(s string) error {
	_, err := parseTopic(s)
	return err
}

// CheckFieldPath reports whether s is a valid dotted JSON field path.
func CheckFieldPath(s string) error {
	_, err := parseFieldPath(s)
	return err
}

func parseTopic(s string) (*topicTemplate, error) {
	t := &topicTemplate{src: s}
	err := tmpl.Split(s, func(lit string) error {
		if i := strings.IndexAny(lit, "+#\x00"); i >= 0 {
			return fmt.Errorf("%q is a wildcard or NUL; a topic to publish to has none", lit[i])
		}
		t.parts = append(t.parts, topicPart{kind: partLiteral, lit: lit})
		return nil
	}, func(name string) error {
		p, err := parsePlaceholder(name)
		if err != nil {
			return err
		}
		t.parts = append(t.parts, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	if len(t.parts) == 0 {
		return nil, errors.New("empty topic")
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%q is not valid UTF-8", s)
	}
	return t, nil
}

const placeholderHelp = "use {partition_key}, {key_suffix}, {payload.FIELD}, {stream} or {partition}"

func parsePlaceholder(name string) (topicPart, error) {
	switch name {
	case "partition_key":
		return topicPart{kind: partKey}, nil
	case "key_suffix":
		return topicPart{kind: partKeySuffix}, nil
	case "stream":
		return topicPart{kind: partStream}, nil
	case "partition":
		return topicPart{kind: partPartition}, nil
	case "payload":
		return topicPart{}, errors.New("{payload} needs a field, as in {payload.device_id}")
	}
	if rest, ok := strings.CutPrefix(name, "payload."); ok {
		path, err := parseFieldPath(rest)
		if err != nil {
			return topicPart{}, fmt.Errorf("{%s}: %w", name, err)
		}
		return topicPart{kind: partPayload, path: path}, nil
	}
	return topicPart{}, fmt.Errorf("unknown placeholder {%s}; %s", name, placeholderHelp)
}

func parseFieldPath(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty field path; write it as device.id")
	}
	path := strings.Split(s, ".")
	for _, seg := range path {
		if seg == "" {
			return nil, fmt.Errorf("%q has an empty segment; write the path as device.id", s)
		}
	}
	return path, nil
}

// render fills the template from rec and checks the result is a topic a
// server may publish to. Errors say which placeholder failed and why.
func (t *topicTemplate) render(rec *record, keyPrefix string) (string, error) {
	var b strings.Builder
	for i, p := range t.parts {
		if p.kind == partLiteral {
			b.WriteString(p.lit)
			continue
		}
		v, err := t.value(p, rec, keyPrefix)
		if err != nil {
			return "", err
		}
		if v == "" {
			return "", fmt.Errorf("%s is empty; a topic level needs a value", describe(p))
		}
		if strings.ContainsAny(v, "/+#\x00") {
			return "", fmt.Errorf("%s is %q; a placeholder fills one topic level and may not contain '/', '+', '#' or NUL", describe(p), v)
		}
		if i == 0 && v[0] == '$' {
			return "", fmt.Errorf("%s is %q; a topic may not start with '$' from a record", describe(p), v)
		}
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("%s is not valid UTF-8", describe(p))
		}
		b.WriteString(v)
		if b.Len() > maxTopicBytes {
			return "", fmt.Errorf("topic %s renders longer than %d bytes", t.src, maxTopicBytes)
		}
	}
	return b.String(), nil
}

func describe(p topicPart) string {
	switch p.kind {
	case partKey:
		return "{partition_key}"
	case partKeySuffix:
		return "{key_suffix}"
	case partStream:
		return "{stream}"
	case partPartition:
		return "{partition}"
	default:
		return "{payload." + strings.Join(p.path, ".") + "}"
	}
}

func (t *topicTemplate) value(p topicPart, rec *record, keyPrefix string) (string, error) {
	switch p.kind {
	case partKey:
		return rec.key, nil
	case partKeySuffix:
		return strings.TrimPrefix(rec.key, keyPrefix), nil
	case partStream:
		return rec.stream, nil
	case partPartition:
		return strconv.Itoa(rec.partition), nil
	default:
		if !rec.isJSON() {
			return "", fmt.Errorf("%s: the record is not JSON", describe(p))
		}
		raw, err := jsonLookup(rec.data, p.path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", describe(p), err)
		}
		v, err := jsontok.Text(raw)
		if err != nil {
			return "", fmt.Errorf("%s: %w", describe(p), err)
		}
		return v, nil
	}
}
