package router

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/edgegw/edgegw/internal/jsontok"
)

// A partition key may come from a field of a JSON payload. Decoding the whole
// payload into maps would allocate per field on the publish hot path, so the
// field is found by scanning the bytes (jsontok.Lookup): json.Valid first (it
// allocates nothing and rejects anything malformed), then a scanner that may
// assume valid JSON and skips every value it does not need.

func jsonValid(b []byte) bool { return json.Valid(b) }

// jsonField returns the value at path in the valid JSON document data, as the
// key text: a string's contents, a number's literal text, or true/false.
func jsonField(data []byte, path []string) (string, error) {
	raw, err := jsontok.Lookup(data, path, "the payload")
	if err != nil {
		return "", err
	}
	s, err := jsontok.Text(raw)
	if err != nil {
		return "", fmt.Errorf("field %s %w (a partition key)", strings.Join(path, "."), err)
	}
	return s, nil
}
