package disserver

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/edgegw/edgegw/internal/dis"
)

// reserveBody takes room for the request's body in the in-flight budget,
// waiting while other requests hold it. Requests without a body take none.
func (s *Server) reserveBody(r *http.Request) (release func(), err error) {
	n := r.ContentLength
	if n < 0 || n > s.cfg.Limits.MaxRequestBytes {
		n = s.cfg.Limits.MaxRequestBytes // unknown length: the most it may be
	}
	if n == 0 {
		return func() {}, nil
	}
	if err := s.bodyBudget.Acquire(r.Context(), n); err != nil {
		return nil, fmt.Errorf("wait for request memory: %w", err)
	}
	return func() { s.bodyBudget.Release(n) }, nil
}

// readBody reads the raw request body (as sent, compressed or not), bounded
// by limits.max_request_bytes: more gets HTTP 413 (COMPAT-NOTES fact 12).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max := s.cfg.Limits.MaxRequestBytes
	if r.ContentLength > max {
		return nil, tooLarge(max)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(max)
		}
		return nil, dis.NewError(dis.CodeInvalidRequest, "Invalid request. Reading the body failed: %v", err)
	}
	return b, nil
}

func tooLarge(max int64) *dis.Error {
	return &dis.Error{Status: http.StatusRequestEntityTooLarge, Code: dis.CodeInvalidRequest,
		Message: fmt.Sprintf("Invalid request. The body is larger than %d bytes.", max)}
}

// decodeContent undoes request-body compression (COMPAT-NOTES fact 7): lz4
// and snappy raw blocks and zstd frames from the Java SDK, and gzip. Replies
// are never compressed: the SDK does not decompress them.
func (s *Server) decodeContent(r *http.Request, raw []byte) ([]byte, error) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc == "" || enc == "identity" || len(raw) == 0 {
		return raw, nil
	}
	max := s.cfg.Limits.MaxRequestBytes
	bad := func(format string, args ...any) error {
		return dis.NewError(dis.CodeInvalidRequest, "Invalid request. Content-Encoding %s: "+format, append([]any{enc}, args...)...)
	}
	switch enc {
	case "lz4":
		// A raw LZ4 block carries no length; the SDK sends it in a header.
		n, err := strconv.ParseInt(r.Header.Get("X-Dis-Lz4-Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return nil, bad("x-dis-lz4-content-length must give the uncompressed length")
		}
		if n > max {
			return nil, tooLarge(max)
		}
		out := make([]byte, n)
		got, err := lz4.UncompressBlock(raw, out)
		if err != nil || int64(got) != n {
			return nil, bad("corrupt block or wrong x-dis-lz4-content-length")
		}
		return out, nil
	case "snappy":
		n, err := snappy.DecodedLen(raw)
		if err != nil {
			return nil, bad("corrupt block: %v", err)
		}
		if int64(n) > max {
			return nil, tooLarge(max)
		}
		out, err := snappy.Decode(nil, raw)
		if err != nil {
			return nil, bad("corrupt block: %v", err)
		}
		return out, nil
	case "zstd":
		d, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderMaxMemory(uint64(max)), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, bad("%v", err)
		}
		defer d.Close()
		return readAllLimited(d, max, bad)
	case "gzip":
		z, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, bad("%v", err)
		}
		return readAllLimited(z, max, bad)
	default:
		return nil, dis.NewError(dis.CodeInvalidRequest, "Invalid request. Content-Encoding %q is not supported; use lz4, snappy, zstd or gzip", enc)
	}
}

func readAllLimited(rd io.Reader, max int64, bad func(string, ...any) error) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(rd, max+1))
	if err != nil {
		return nil, bad("corrupt stream: %v", err)
	}
	if int64(len(out)) > max {
		return nil, tooLarge(max)
	}
	return out, nil
}

// decodeJSON decodes a request body into v. Malformed JSON, wrong types and
// unknown fields become DIS.4300 naming the field. The fields official
// clients send beyond the reference are declared in the request types
// (requests.go), so only fields no known client sends are refused.
func decodeJSON(body []byte, v any) error { return decodeJSONBody(body, v, true) }

// decodeIAMJSON decodes an IAM request (POST /v3/auth/tokens). IAM is not
// the DIS API: its token body has many optional members (user and domain
// ids, scope.domain, MFA, ...) that clients may send and this server does
// not use, so unknown fields are ignored there.
func decodeIAMJSON(body []byte, v any) error { return decodeJSONBody(body, v, false) }

func decodeJSONBody(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return dis.NewError(dis.CodeEmptyRequest, "Empty request.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if key, ok := strings.CutPrefix(err.Error(), unknownFieldPrefix); ok {
			field := unknownFieldPath(body, reflect.TypeOf(v))
			if field == "" {
				field, _ = strconv.Unquote(key)
			}
			return dis.NewError(dis.CodeBadRequestBody, "Request error. Unknown field %q in the body; remove it.", field)
		}
		return jsonError(err)
	}
	if dec.More() {
		return dis.NewError(dis.CodeBadRequestBody, "Request error. The body holds more than one JSON value.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return dis.NewError(dis.CodeBadRequestBody, "Request error. Unexpected data after the JSON body.")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return dis.NewError(dis.CodeBadRequestBody, "Request error. Field %s: JSON %s cannot be %s.", field, te.Value, jsonTypeName(te.Type.Kind().String()))
	case errors.As(err, &se):
		return dis.NewError(dis.CodeBadRequestBody, "Request error. Malformed JSON at byte %d: %v.", se.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return dis.NewError(dis.CodeBadRequestBody, "Request error. The JSON body is truncated.")
	default:
		return dis.NewError(dis.CodeBadRequestBody, "Request error. %v.", err)
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int32", "int64", "uint", "uint32", "uint64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "ptr":
		return "this type"
	}
	return "a " + kind
}

// bodyError is DIS.4300 naming the field.
func bodyError(field, format string, args ...any) *dis.Error {
	return dis.NewError(dis.CodeBadRequestBody, "Request error. Field %s: %s", field, fmt.Sprintf(format, args...))
}

// unknownFieldPrefix starts encoding/json's error for a key the target type
// does not declare (the error carries the key, not its path).
const unknownFieldPrefix = "json: unknown field "

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// unknownFieldPath finds the first key in body, in document order, that t
// does not declare, and returns its path (e.g. records[2].foo), matching
// keys like encoding/json does (exact, then case-insensitive). It returns
// "" if it finds none, e.g. for input encoding/json rejected first.
func unknownFieldPath(body []byte, t reflect.Type) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	path, _ := walkUnknown(dec, t, "")
	return path
}

// walkUnknown reads one JSON value from dec, checking object keys against t.
// It returns the path of the first unknown key, or "" and whether the value
// was read completely.
func walkUnknown(dec *json.Decoder, t reflect.Type, path string) (string, bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	delim, isDelim := tok.(json.Delim)
	if !isDelim {
		return "", true // a scalar: nothing to check
	}
	if t == nil || t == rawMessageType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return "", skipRest(dec, delim)
	}
	switch {
	case delim == '{' && t.Kind() == reflect.Struct:
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return "", false
			}
			key, _ := k.(string)
			ft, ok := jsonField(t, key)
			if !ok {
				return joinPath(path, key), true
			}
			if p, ok := walkUnknown(dec, ft, joinPath(path, key)); p != "" || !ok {
				return p, ok
			}
		}
	case delim == '{' && t.Kind() == reflect.Map:
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return "", false
			}
			key, _ := k.(string)
			if p, ok := walkUnknown(dec, t.Elem(), joinPath(path, key)); p != "" || !ok {
				return p, ok
			}
		}
	case delim == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i := 0; dec.More(); i++ {
			if p, ok := walkUnknown(dec, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" || !ok {
				return p, ok
			}
		}
	default:
		return "", skipRest(dec, delim) // a type mismatch: encoding/json reports it
	}
	_, err = dec.Token() // the closing delimiter
	return "", err == nil
}

// skipRest reads the rest of a value whose opening delimiter was read.
func skipRest(dec *json.Decoder, open json.Delim) bool {
	if open != '{' && open != '[' {
		return true
	}
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonField returns the type of the field of struct t that encoding/json
// decodes key into, looking into embedded structs.
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	var fold reflect.Type
	found := false
	var visit func(t reflect.Type) bool
	visit = func(t reflect.Type) bool {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					if visit(ft) {
						return true
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if name == key {
				fold, found = f.Type, true
				return true
			}
			if !found && strings.EqualFold(name, key) {
				fold, found = f.Type, true
			}
		}
		return false
	}
	visit(t)
	return fold, found
}
