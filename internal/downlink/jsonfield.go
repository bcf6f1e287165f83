package downlink

import (
	"encoding/json"

	"github.com/edgegw/edgegw/internal/jsontok"
)

// A record's JSON is checked once with json.Valid (no allocation, rejects
// anything malformed); fields are then found by scanning the bytes with
// jsontok.Lookup, which may assume valid JSON.

func jsonValid(b []byte) bool { return json.Valid(b) }

// jsonLookup returns the raw JSON value at path in the valid document data.
func jsonLookup(data []byte, path []string) ([]byte, error) {
	return jsontok.Lookup(data, path, "the record")
}
