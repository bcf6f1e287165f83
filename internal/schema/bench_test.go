package schema_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/schema"
	"github.com/edgegw/edgegw/internal/schema/schematest"
)

func benchFixture(b *testing.B, set, payload string) (*schema.Registry, string, []byte) {
	b.Helper()
	sets, err := schematest.Load(schematest.Dir())
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range sets {
		if s.Name != set {
			continue
		}
		r, err := schema.NewRegistry(schema.Config{Streams: []schema.StreamConfig{s.Stream}}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(s.Dir, payload))
		if err != nil {
			b.Fatal(err)
		}
		return r, s.Stream.Name, data
	}
	b.Fatalf("no set %s", set)
	return nil, "", nil
}

// BenchmarkValidate is the validation cost per message on the publish path
// (Registry.Validate, as the broker calls it) for the 10-field records of
// the golden fixtures.
func BenchmarkValidate(b *testing.B) {
	for _, tc := range []struct{ name, set, payload string }{
		{"json-10-fields", "telemetry-json", "good/full.json"},
		{"json-10-fields-invalid", "telemetry-json", "bad/int-out-of-range.json"},
		{"csv-10-fields", "readings-csv", "good/one-row.csv"},
		{"csv-10-fields-3-rows", "readings-csv", "good/many-rows.csv"},
		{"avro-binary-7-fields", "events-avro", "good/event.avro"},
		{"blob", "blob", "good/text.txt"},
	} {
		r, stream, data := benchFixture(b, tc.set, tc.payload)
		wantErr := strings.HasPrefix(tc.payload, "bad/")
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := r.Validate(stream, data); (err != nil) != wantErr {
					b.Fatal(err)
				}
			}
		})
	}
	// What decoding into maps alone costs: the approach the byte scanner
	// replaced, for comparison in the same run.
	_, _, data := benchFixture(b, "telemetry-json", "good/full.json")
	b.Run("json-10-fields-decode-to-maps-baseline", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
