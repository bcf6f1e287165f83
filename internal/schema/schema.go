// Package schema checks payloads against a DIS stream's data_type and
// data_schema before they are buffered: JSON records and CSV rows against
// the Avro record schema that describes them, optionally Avro binary by
// decoding, BLOB as is.
//
// Compile turns one stream's settings (a Spec) into a Validator: the Avro
// schema is parsed once, with its own hamba/avro SchemaCache so named types
// of different streams never collide, and walked once into a tree of checker
// closures (one per field and type). Validating a payload runs that tree; no
// schema work happens per message.
//
// A Registry keeps one Validator per stream: from config, or built from the
// stream's details fetched from DIS and refreshed in the background.
//
// Concurrency: a Validator is immutable and safe for concurrent use.
// Registry.Validate is called from the broker's publish hook on each client's
// goroutine; it reads the current validators through an atomic pointer, takes
// no lock and never waits for the network. Only the goroutine running
// Registry.Run fetches and compiles, and it replaces the validator map whole.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hamba/avro/v2"

	"github.com/edgegw/edgegw/internal/dis"
)

// Code classifies a validation failure. It has few values, so it can label a
// metric ("rejections per stream and code"), unlike the free-text reason.
type Code string

const (
	CodeSyntax  Code = "syntax"        // not JSON / CSV / Avro at all, or trailing data
	CodeType    Code = "type"          // a value of the wrong JSON kind or Avro type
	CodeRange   Code = "range"         // a number outside its type's range
	CodeMissing Code = "missing_field" // a field without default is absent
	CodeUnknown Code = "unknown_field" // a field the schema does not define
	CodeEnum    Code = "enum"          // a symbol the enum does not list
	CodeUnion   Code = "union"         // no union branch takes the value
	CodeFormat  Code = "format"        // uuid, fixed size, decimal precision, time of day
	CodeColumns Code = "columns"       // a CSV row with the wrong number of columns
	CodeHeader  Code = "header"        // a CSV header that does not name the fields
)

// allCodes lists every Code, in the order of the Registry's counters; a new
// Code goes here too (TestEveryCodeIsCounted checks the fixtures' codes).
var allCodes = [...]Code{CodeSyntax, CodeType, CodeRange, CodeMissing, CodeUnknown, CodeEnum, CodeUnion, CodeFormat, CodeColumns, CodeHeader}

// ValidationError says why a payload does not fit its stream's schema. The
// broker puts Detail() in the MQTT 5 PUBACK reason string and the dead-letter
// message, and counts rejections by Stream and Code.
type ValidationError struct {
	Stream string // set by Registry.Validate; empty from Validator.Validate
	// Path locates the failing value: "$.device.temp" and "$.readings[2]" for
	// JSON and Avro records ("$" is the whole record), "row 1 column 3 (temp)"
	// for CSV (rows and columns count from 1, a header row included).
	Path   string
	Code   Code
	Reason string
}

// Detail is the path and reason, without the stream name.
func (e *ValidationError) Detail() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

func (e *ValidationError) Error() string {
	if e.Stream == "" {
		return e.Detail()
	}
	return "stream " + e.Stream + ": " + e.Detail()
}

// Data types, as DIS names them (§5.1.1 data_type).
const (
	BLOB = dis.DataTypeBLOB
	JSON = dis.DataTypeJSON
	CSV  = dis.DataTypeCSV
)

// CSV header handling.
const (
	HeaderNone  = "none"  // every row is data
	HeaderSkip  = "skip"  // the first row of each payload is ignored
	HeaderCheck = "check" // the first row must name the schema's fields in order
)

// Spec is everything a Validator is compiled from. Two equal Specs compile to
// validators that behave the same, so a Spec is also the cache key.
type Spec struct {
	DataType string // BLOB, JSON or CSV; "" means BLOB (the DIS default)
	// Schema is the Avro schema (JSON text) describing one record. Empty
	// means JSON payloads are only checked to be JSON and CSV payloads to be
	// CSV.
	Schema string
	// Delimiter separates CSV columns; "" means "," (the DIS default). One
	// character.
	Delimiter string
	// AllowUnknownFields accepts JSON object keys the record does not define
	// and CSV rows with more columns than it has fields.
	AllowUnknownFields bool
	CSVHeader          string // HeaderNone (""), HeaderSkip or HeaderCheck
	// AvroBinary says payloads are the Avro binary encoding of one record of
	// Schema; they are decoded to check them. Only for BLOB streams.
	AvroBinary bool
}

type mode uint8

const (
	modeBLOB mode = iota
	modeJSONSyntax
	modeJSON
	modeCSV
	modeAvro
)

// Validator checks payloads against one compiled Spec. It is immutable.
type Validator struct {
	spec  Spec
	mode  mode
	json  func(payload []byte) *ValidationError
	csv   *csvSchema // modeCSV; its fields are nil without a schema
	avro  binCheck
	comma rune
}

// Spec returns what v was compiled from.
func (v *Validator) Spec() Spec { return v.spec }

// normalized fills the defaults Compile applies, so equal behaviour means
// equal Specs.
func (s Spec) normalized() Spec {
	s.DataType = strings.ToUpper(strings.TrimSpace(s.DataType))
	if s.DataType == "" {
		s.DataType = BLOB
	}
	if s.CSVHeader == "" {
		s.CSVHeader = HeaderNone
	}
	if s.Delimiter == "," {
		s.Delimiter = ""
	}
	return s
}

// SpecError is a Compile error; Setting names the setting at fault, as the
// config key: data_type, data_schema, csv_delimiter, csv_header, avro_binary.
type SpecError struct {
	Setting string
	Err     error
}

func (e *SpecError) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

func specErr(setting, format string, args ...any) error {
	return &SpecError{Setting: setting, Err: fmt.Errorf(format, args...)}
}

// Compile checks s and builds its validator. Errors are *SpecError.
func Compile(s Spec) (*Validator, error) {
	s = s.normalized()
	v := &Validator{spec: s, comma: ','}
	switch s.DataType {
	case BLOB, JSON, CSV:
	default:
		return nil, specErr("data_type", "%q: want BLOB, JSON or CSV", s.DataType)
	}
	switch s.CSVHeader {
	case HeaderNone, HeaderSkip, HeaderCheck:
	default:
		return nil, specErr("csv_header", "%q: want none, skip or check", s.CSVHeader)
	}
	if s.Delimiter != "" {
		r, size := utf8.DecodeRuneInString(s.Delimiter)
		if size != len(s.Delimiter) || !validDelim(r) {
			return nil, specErr("csv_delimiter", "%q: want one character other than a quote, CR, LF or U+FFFD", s.Delimiter)
		}
		v.comma = r
	}
	var schema avro.Schema
	if strings.TrimSpace(s.Schema) != "" {
		var err error
		// A private cache per parse: the global one is last-write-wins for
		// named types, so two streams (or a reload) naming a record the same
		// would see each other's fields.
		schema, err = avro.ParseBytesWithCache([]byte(s.Schema), "", &avro.SchemaCache{})
		if err != nil {
			return nil, &SpecError{Setting: "data_schema", Err: err}
		}
	}
	c := &compiler{allowUnknown: s.AllowUnknownFields}
	switch {
	case s.AvroBinary:
		if s.DataType != BLOB {
			return nil, specErr("avro_binary", "payloads of a %s stream are text; Avro binary payloads belong in a BLOB stream", s.DataType)
		}
		if schema == nil {
			return nil, specErr("avro_binary", "needs a data_schema to decode with")
		}
		v.mode, v.avro = modeAvro, c.binary(schema)
	case s.DataType == BLOB:
		v.mode = modeBLOB
	case s.DataType == JSON && schema == nil:
		v.mode = modeJSONSyntax
	case s.DataType == JSON:
		v.mode, v.json = modeJSON, c.scanRoot(schema)
	case s.DataType == CSV:
		if s.CSVHeader == HeaderCheck && schema == nil {
			return nil, specErr("csv_header", "check needs a data_schema to check the header against")
		}
		cs, err := c.csv(schema, s.CSVHeader)
		if err != nil {
			return nil, &SpecError{Setting: "data_schema", Err: err}
		}
		v.mode, v.csv = modeCSV, cs
	}
	return v, nil
}

func validDelim(r rune) bool {
	return r != '"' && r != '\r' && r != '\n' && r != utf8.RuneError && utf8.ValidRune(r)
}

// Validate checks one payload. It returns nil or a *ValidationError.
func (v *Validator) Validate(payload []byte) error {
	var err *ValidationError
	switch v.mode {
	case modeBLOB:
		return nil
	case modeJSONSyntax:
		if !json.Valid(payload) {
			_, err = decodeJSON(payload) // for the error text
			if err == nil {
				err = &ValidationError{Code: CodeSyntax, Reason: "payload is not JSON"}
			}
		}
	case modeJSON:
		err = v.json(payload)
	case modeCSV:
		err = v.validateCSV(payload)
	case modeAvro:
		err = v.validateAvro(payload)
	}
	if err == nil {
		return nil // a nil *ValidationError must not become a non-nil error
	}
	return err
}

// decodeJSON decodes one JSON value. The checkers scan bytes instead
// (jsonscan.go); this gives their error for a malformed payload, and it is
// the reference checker's decoder in the tests.
func decodeJSON(payload []byte) (any, *ValidationError) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	// Numbers stay text, so int/long ranges are checked exactly instead of
	// after a lossy float64 conversion.
	dec.UseNumber()
	var val any
	if err := dec.Decode(&val); err != nil {
		if err == io.EOF {
			return nil, &ValidationError{Code: CodeSyntax, Reason: "payload is empty, want a JSON record"}
		}
		reason := "payload is not JSON: " + err.Error()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			reason += fmt.Sprintf(" (at byte %d)", se.Offset) // Offset counts the bytes read: the bad byte, 1-based
		}
		return nil, &ValidationError{Code: CodeSyntax, Reason: reason}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &ValidationError{Code: CodeSyntax, Reason: "data after the JSON record; send one record per message"}
	}
	return val, nil
}

// fieldErr is a failure deep in the checker tree. Path segments are added on
// the way out (innermost first), so a passing payload builds no path.
type fieldErr struct {
	segs   []string
	code   Code
	reason string
}

func fail(code Code, format string, args ...any) *fieldErr {
	return &fieldErr{code: code, reason: fmt.Sprintf(format, args...)}
}

func (e *fieldErr) in(seg string) *fieldErr {
	e.segs = append(e.segs, seg)
	return e
}

// maxPathSegs bounds the path shown in a reason: only a recursive schema
// nests deeper than a handful of levels, and the reason travels in a PUBACK
// and a log line. Longer paths keep their outer and inner ends.
const maxPathSegs = 16

func (e *fieldErr) validationError() *ValidationError {
	var b strings.Builder
	b.WriteByte('$')
	n := len(e.segs)
	for i := n - 1; i >= 0; i-- {
		if n > maxPathSegs && i == n-maxPathSegs/2-1 {
			b.WriteString("…")
			i = maxPathSegs/2 - 1
		}
		b.WriteString(e.segs[i])
	}
	return &ValidationError{Path: b.String(), Code: e.code, Reason: e.reason}
}

// fieldSeg is the path segment of a record field (Avro names are identifiers).
func fieldSeg(name string) string { return "." + name }

// keySeg is the path segment of a map key or an unknown object key, quoted
// when it is not an identifier.
func keySeg(k string) string {
	if isIdent(k) {
		return "." + k
	}
	return "[" + strconv.Quote(clip(k)) + "]"
}

func indexSeg(i int) string { return "[" + strconv.Itoa(i) + "]" }

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// maxShown bounds how much of a device's value is quoted back in a reason: a
// PUBACK reason string and a log line should not carry a whole payload.
const maxShown = 40

func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
