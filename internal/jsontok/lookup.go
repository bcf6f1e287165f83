package jsontok

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Lookup returns the raw JSON value at path in data, which must be a valid
// JSON document (check it once with json.Valid: it allocates nothing). Each
// path segment is an object key, or a decimal index into an array. A
// repeated object key resolves to its last occurrence, as encoding/json
// (and so the schema validator) does. root names the document in errors,
// e.g. "the payload".
func Lookup(data []byte, path []string, root string) ([]byte, error) {
	i := SkipSpace(data, 0)
	for depth, seg := range path {
		var found bool
		var err error
		switch data[i] {
		case '{':
			i, found, err = findMember(data, i, seg)
		case '[':
			i, found, err = findElement(data, i, seg)
		default:
			return nil, fmt.Errorf("%s is %s, not an object", describePath(path[:depth], root), Kind(data[i]))
		}
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("field %s is missing", describePath(path[:depth+1], root))
		}
	}
	return data[i:SkipValue(data, i)], nil
}

// Text renders a scalar value found by Lookup as text: a string's contents,
// a number's or a boolean's literal. Objects, arrays and null are errors.
func Text(raw []byte) (string, error) {
	switch raw[0] {
	case '"':
		return Unquote(raw)
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	default:
		return "", fmt.Errorf("is %s; want a string, number or boolean", Kind(raw[0]))
	}
}

// Kind names the JSON value that starts with byte c, for error messages.
func Kind(c byte) string {
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

// Unquote decodes a JSON string token exactly as encoding/json does
// (escapes, and invalid UTF-8 read as U+FFFD), without allocating beyond the
// result when the token needs no decoding.
func Unquote(raw []byte) (string, error) {
	if inner := raw[1 : len(raw)-1]; Plain(inner) {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errors.New("invalid JSON string")
	}
	return s, nil
}

func describePath(p []string, root string) string {
	if len(p) == 0 {
		return root
	}
	return strings.Join(p, ".")
}

// findMember scans the object starting at data[i] for key and returns the
// offset of its value (the last one if the key repeats).
func findMember(data []byte, i int, key string) (int, bool, error) {
	i = SkipSpace(data, i+1) // past '{'
	at, found := 0, false
	for data[i] != '}' {
		kend := SkipString(data, i)
		match, err := keyEquals(data[i:kend], key)
		if err != nil {
			return 0, false, err
		}
		i = SkipSpace(data, kend)
		i = SkipSpace(data, i+1) // past ':'
		if match {
			at, found = i, true
		}
		i = SkipSpace(data, SkipValue(data, i))
		if data[i] == ',' {
			i = SkipSpace(data, i+1)
		}
	}
	return at, found, nil
}

// findElement returns the offset of element seg (a decimal index) of the
// array at data[i].
func findElement(data []byte, i int, seg string) (int, bool, error) {
	n, err := strconv.Atoi(seg)
	if err != nil || seg[0] < '0' || seg[0] > '9' {
		return 0, false, fmt.Errorf("%q indexes an array; use a number from 0", seg)
	}
	i = SkipSpace(data, i+1) // past '['
	for k := 0; data[i] != ']'; k++ {
		if k == n {
			return i, true, nil
		}
		i = SkipSpace(data, SkipValue(data, i))
		if data[i] == ',' {
			i = SkipSpace(data, i+1)
		}
	}
	return 0, false, nil
}

func keyEquals(raw []byte, key string) (bool, error) {
	if inner := raw[1 : len(raw)-1]; Plain(inner) {
		return string(inner) == key, nil // compiler-recognised: no allocation
	}
	s, err := Unquote(raw)
	return s == key, err
}

// Plain reports whether a string token's contents (without the quotes) read
// as they are: no escapes and valid UTF-8, so no decoding is needed.
func Plain(inner []byte) bool {
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
