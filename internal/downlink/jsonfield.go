package downlink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw/internal/jsontok"
)

// A record's JSON is checked once with json.Valid (no allocation, rejects
// anything malformed); fields are then found by scanning the bytes, which
// may assume valid JSON. A repeated key resolves to its last occurrence, as
// encoding/json does.

func jsonValid(b []byte) bool { return json.Valid(b) }

// jsonLookup returns the raw JSON value at path in the valid document data.
func jsonLookup(data []byte, path []string) ([]byte, error) {
	i := jsontok.SkipSpace(data, 0)
	for depth, seg := range path {
		var found bool
		switch data[i] {
		case '{':
			var err error
			if i, found, err = findMember(data, i, seg); err != nil {
				return nil, err
			}
		case '[':
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || seg[0] == '+' {
				return nil, fmt.Errorf("%s is an array; %q is not an index", describePath(path[:depth]), seg)
			}
			i, found = findElement(data, i, n)
		default:
			return nil, fmt.Errorf("%s is %s, not an object", describePath(path[:depth]), kindOf(data[i]))
		}
		if !found {
			return nil, fmt.Errorf("field %s is missing", describePath(path[:depth+1]))
		}
	}
	return data[i:jsontok.SkipValue(data, i)], nil
}

// jsonText renders a scalar as text: a string's contents, a number's or
// boolean's literal.
func jsonText(raw []byte) (string, error) {
	switch raw[0] {
	case '"':
		return unquote(raw)
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	default:
		return "", fmt.Errorf("is %s; want a string, number or boolean", kindOf(raw[0]))
	}
}

func describePath(p []string) string {
	if len(p) == 0 {
		return "the record"
	}
	return strings.Join(p, ".")
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

// findMember returns the offset of key's value in the object at data[i].
func findMember(data []byte, i int, key string) (int, bool, error) {
	i = jsontok.SkipSpace(data, i+1)
	at, found := 0, false
	for data[i] != '}' {
		kend := jsontok.SkipString(data, i)
		k, err := unquote(data[i:kend])
		if err != nil {
			return 0, false, err
		}
		i = jsontok.SkipSpace(data, kend)
		i = jsontok.SkipSpace(data, i+1) // past ':'
		if k == key {
			at, found = i, true
		}
		i = jsontok.SkipSpace(data, jsontok.SkipValue(data, i))
		if data[i] == ',' {
			i = jsontok.SkipSpace(data, i+1)
		}
	}
	return at, found, nil
}

// findElement returns the offset of element n of the array at data[i].
func findElement(data []byte, i, n int) (int, bool) {
	i = jsontok.SkipSpace(data, i+1)
	for k := 0; data[i] != ']'; k++ {
		if k == n {
			return i, true
		}
		i = jsontok.SkipSpace(data, jsontok.SkipValue(data, i))
		if data[i] == ',' {
			i = jsontok.SkipSpace(data, i+1)
		}
	}
	return 0, false
}

// unquote decodes a JSON string token.
func unquote(raw []byte) (string, error) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("invalid JSON string")
	}
	return s, nil
}
