package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/edgegw/edgegw/internal/jsontok"
)

// A partition key may come from a field of a JSON payload. Decoding the whole
// payload into maps would allocate per field on the publish hot path, so the
// field is found by scanning the bytes: json.Valid first (it allocates nothing
// and rejects anything malformed), then a scanner that may assume valid JSON
// and skips every value it does not need.

func jsonValid(b []byte) bool { return json.Valid(b) }

// jsonField returns the value at path in the valid JSON document data, as the
// key text: a string's contents, a number's literal text, or true/false.
// A repeated object key resolves to its last occurrence, as encoding/json
// (and so the schema validator) does.
func jsonField(data []byte, path []string) (string, error) {
	i := jsontok.SkipSpace(data, 0)
	for depth, seg := range path {
		var found bool
		var err error
		switch data[i] {
		case '{':
			i, found, err = findMember(data, i, seg)
		case '[':
			i, found, err = findElement(data, i, seg)
		default:
			return "", fmt.Errorf("%s is %s, not an object", describePath(path[:depth]), kindOf(data[i]))
		}
		if err != nil {
			return "", err
		}
		if !found {
			return "", fmt.Errorf("field %s is missing", describePath(path[:depth+1]))
		}
	}
	end := jsontok.SkipValue(data, i)
	raw := data[i:end]
	switch raw[0] {
	case '"':
		return unquote(raw)
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	default:
		return "", fmt.Errorf("field %s is %s; a key needs a string, number or boolean", describePath(path), kindOf(raw[0]))
	}
}

func describePath(p []string) string {
	if len(p) == 0 {
		return "the payload"
	}
	s := p[0]
	for _, seg := range p[1:] {
		s += "." + seg
	}
	return s
}

func kindOf(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// findMember scans the object starting at data[i] for key and returns the
// offset of its value (the last one if the key repeats).
func findMember(data []byte, i int, key string) (int, bool, error) {
	i = jsontok.SkipSpace(data, i+1) // past '{'
	at, found := 0, false
	for data[i] != '}' {
		kend := jsontok.SkipString(data, i)
		match, err := keyEquals(data[i:kend], key)
		if err != nil {
			return 0, false, err
		}
		i = jsontok.SkipSpace(data, kend)
		i = jsontok.SkipSpace(data, i+1) // past ':'
		if match {
			at, found = i, true
		}
		i = jsontok.SkipSpace(data, jsontok.SkipValue(data, i))
		if data[i] == ',' {
			i = jsontok.SkipSpace(data, i+1)
		}
	}
	return at, found, nil
}

// findElement returns the offset of element seg (a decimal index) of the array
// at data[i].
func findElement(data []byte, i int, seg string) (int, bool, error) {
	n, err := strconv.Atoi(seg)
	if err != nil || seg[0] < '0' || seg[0] > '9' {
		return 0, false, fmt.Errorf("%q indexes an array; use a number from 0", seg)
	}
	i = jsontok.SkipSpace(data, i+1) // past '['
	for k := 0; data[i] != ']'; k++ {
		if k == n {
			return i, true, nil
		}
		i = jsontok.SkipSpace(data, jsontok.SkipValue(data, i))
		if data[i] == ',' {
			i = jsontok.SkipSpace(data, i+1)
		}
	}
	return 0, false, nil
}

func keyEquals(raw []byte, key string) (bool, error) {
	if inner := raw[1 : len(raw)-1]; plain(inner) {
		return string(inner) == key, nil // compiler-recognised: no allocation
	}
	s, err := unquote(raw)
	return s == key, err
}

// plain reports whether a string token's contents need no decoding: no
// escapes and valid UTF-8 (encoding/json replaces invalid bytes with U+FFFD,
// and the key must read the same as the schema validator's decode).
func plain(inner []byte) bool {
	ascii := true
	for _, c := range inner {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(inner)
}

func unquote(raw []byte) (string, error) {
	if inner := raw[1 : len(raw)-1]; plain(inner) {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("invalid JSON string")
	}
	return s, nil
}
