package router

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw/internal/tmpl"
)

// Partition key templates.
//
// A template is literal text with placeholders in braces:
//
//	{topic.N}          the N-th level of the topic, counted from 1
//	{client_id}        the MQTT client identifier
//	{username}         the username the client connected with ("" if none)
//	{payload.a.b}      the field a.b of a JSON payload (a number segment
//	                   indexes an array: {payload.readings.0.id})
//
// "{{" and "}}" stand for literal braces. A template is parsed once when the
// routing table is built; rendering reads the message and never panics.

type partKind uint8

const (
	partLiteral partKind = iota
	partTopic
	partClientID
	partUsername
	partPayload
)

type part struct {
	kind  partKind
	lit   string   // partLiteral
	level int      // partTopic: 1-based level
	path  []string // partPayload: field names
}

type template struct {
	src      string
	parts    []part
	maxLevel int  // highest {topic.N}, 0 if none
	payload  bool // some part reads the payload
}

// maxKeyLen bounds a rendered partition key. DIS does not document a limit,
// but it hashes the key (MD5) to pick a partition, so a longer key adds
// nothing; 256 bytes is the bound Kinesis-compatible services enforce and
// keeps a hostile payload field from becoming a megabyte key.
const maxKeyLen = 256

// maxLevelRef bounds N in {topic.N}; MQTT topics of more than a few dozen
// levels do not occur, and a bound keeps the number parse simple.
const maxLevelRef = 1024

func parseTemplate(s string) (*template, error) {
	t := &template{src: s}
	err := tmpl.Split(s, func(lit string) error {
		t.parts = append(t.parts, part{kind: partLiteral, lit: lit})
		return nil
	}, func(name string) error {
		p, err := parsePlaceholder(name)
		if err != nil {
			return err
		}
		t.parts = append(t.parts, p)
		switch p.kind {
		case partTopic:
			t.maxLevel = max(t.maxLevel, p.level)
		case partPayload:
			t.payload = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", s, err)
	}
	if len(t.parts) == 0 {
		return nil, errors.New("empty template")
	}
	if len(t.parts) == 1 && t.parts[0].kind == partLiteral {
		// A constant key is legal but sends everything to one partition;
		// partition_id says that more plainly.
		return nil, fmt.Errorf("template %q has no placeholder, so every record gets the same key; use partition_id to pin a partition, or add {topic.N}, {client_id}, {username} or {payload.FIELD}", s)
	}
	return t, nil
}

const placeholderHelp = "use {topic.N}, {client_id}, {username} or {payload.FIELD}"

func parsePlaceholder(name string) (part, error) {
	switch {
	case name == "client_id":
		return part{kind: partClientID}, nil
	case name == "username":
		return part{kind: partUsername}, nil
	case strings.HasPrefix(name, "topic."):
		n, err := strconv.Atoi(name[len("topic."):])
		if err != nil || n < 1 || n > maxLevelRef || name[len("topic."):] != strconv.Itoa(n) {
			return part{}, fmt.Errorf("{%s}: the topic level must be a number from 1 to %d, as in {topic.2}", name, maxLevelRef)
		}
		return part{kind: partTopic, level: n}, nil
	case strings.HasPrefix(name, "payload."):
		path := strings.Split(name[len("payload."):], ".")
		for _, seg := range path {
			if seg == "" {
				return part{}, fmt.Errorf("{%s}: empty field name; write the path as {payload.device.id}", name)
			}
		}
		return part{kind: partPayload, path: path}, nil
	case name == "payload":
		return part{}, fmt.Errorf("{payload} needs a field, as in {payload.device.id}")
	default:
		return part{}, fmt.Errorf("unknown placeholder {%s}; %s", name, placeholderHelp)
	}
}

// topicLevel returns the 1-based level n of topic.
func topicLevel(topic string, n int) (string, bool) {
	start := 0
	for level := 1; ; level++ {
		end := strings.IndexByte(topic[start:], '/')
		if end < 0 {
			if level == n {
				return topic[start:], true
			}
			return "", false
		}
		if level == n {
			return topic[start : start+end], true
		}
		start += end + 1
	}
}

// payloadInfo caches, per message, whether the payload is JSON, so a
// template and the envelope share one check.
type payloadInfo struct {
	data    []byte
	checked bool
	isJSON  bool
}

func (p *payloadInfo) json() bool {
	if !p.checked {
		p.isJSON = jsonValid(p.data)
		p.checked = true
	}
	return p.isJSON
}

// render fills the template from m. Errors say which placeholder failed and
// why, for the dead-letter reason.
func (t *template) render(m *Message, pi *payloadInfo) (string, error) {
	if len(t.parts) == 1 {
		// One placeholder and nothing else: return the value without
		// building a new string (topic levels and ids are substrings).
		s, err := t.value(&t.parts[0], m, pi)
		if err != nil {
			return "", fmt.Errorf("partition key %w", err) // the placeholder is the template
		}
		return checkKey(s)
	}
	var b strings.Builder
	for i := range t.parts {
		s, err := t.value(&t.parts[i], m, pi)
		if err != nil {
			return "", fmt.Errorf("partition key %s: %w", t.src, err)
		}
		if b.Len()+len(s) > maxKeyLen {
			return "", fmt.Errorf("partition key %s is longer than %d bytes", t.src, maxKeyLen)
		}
		b.WriteString(s)
	}
	return checkKey(b.String())
}

func checkKey(s string) (string, error) {
	if s == "" {
		return "", errors.New("partition key rendered empty")
	}
	if len(s) > maxKeyLen {
		return "", fmt.Errorf("partition key is %d bytes, longer than %d", len(s), maxKeyLen)
	}
	return s, nil
}

func (t *template) value(p *part, m *Message, pi *payloadInfo) (string, error) {
	switch p.kind {
	case partLiteral:
		return p.lit, nil
	case partClientID:
		return m.ClientID, nil
	case partUsername:
		return m.Username, nil
	case partTopic:
		s, ok := topicLevel(m.Topic, p.level)
		if !ok {
			return "", fmt.Errorf("{topic.%d}: topic %q has fewer than %d levels", p.level, m.Topic, p.level)
		}
		return s, nil
	case partPayload:
		if !pi.json() {
			return "", fmt.Errorf("{payload.%s}: payload is not JSON", strings.Join(p.path, "."))
		}
		s, err := jsonField(pi.data, p.path)
		if err != nil {
			return "", fmt.Errorf("{payload.%s}: %w", strings.Join(p.path, "."), err)
		}
		return s, nil
	}
	return "", errors.New("unknown template part")
}
