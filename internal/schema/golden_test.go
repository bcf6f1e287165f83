package schema_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/edgegw/edgegw/internal/schema"
	"github.com/edgegw/edgegw/internal/schema/schematest"
)

var update = flag.Bool("update", false, "rewrite the generated Avro binary fixtures")

// TestGolden checks every fixture set: good payloads pass, bad payloads fail
// with exactly the code and detail their .want files state.
func TestGolden(t *testing.T) {
	if *update {
		writeAvroFixtures(t)
	}
	sets, err := schematest.Load(schematest.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range sets {
		t.Run(set.Name, func(t *testing.T) {
			// Through the Registry, as the broker uses it, with the set's
			// stream.yaml as the config entry.
			r, err := schema.NewRegistry(schema.Config{Streams: []schema.StreamConfig{set.Stream}}, nil, nil)
			if err != nil {
				t.Fatalf("stream.yaml: %v", err)
			}
			for _, p := range set.Good {
				t.Run("good/"+p.Name, func(t *testing.T) {
					if err := r.Validate(set.Stream.Name, p.Data); err != nil {
						t.Fatalf("want valid, got %v", err)
					}
				})
			}
			for _, p := range set.Bad {
				t.Run("bad/"+p.Name, func(t *testing.T) {
					err := r.Validate(set.Stream.Name, p.Data)
					var ve *schema.ValidationError
					if !errors.As(err, &ve) {
						t.Fatalf("want a ValidationError, got %v", err)
					}
					if ve.Code != p.Code || ve.Detail() != p.Detail || ve.Stream != set.Stream.Name {
						t.Fatalf("got  %s %q (stream %q)\nwant %s %q", ve.Code, ve.Detail(), ve.Stream, p.Code, p.Detail)
					}
				})
			}
		})
	}
}

// eventValue is the good Event record; the bad fixtures are it written with
// a newer writer schema, cut short or extended.
func eventValue() map[string]any {
	return map[string]any{
		"device_id": "d1",
		"ts":        int64(1700000000000),
		"kind":      "ALARM",
		"severity":  map[string]any{"int": 3},
		"values":    []float64{21.5, -3},
		"attrs":     map[string]any{"site": "berlin"},
		"mac":       [6]byte{0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e},
	}
}

func avroFixtures(t *testing.T) map[string][]byte {
	dir := filepath.Join(schematest.Dir(), "events-avro")
	text, err := os.ReadFile(filepath.Join(dir, "schema.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	parse := func(s []byte) avro.Schema {
		sch, err := avro.ParseBytesWithCache(s, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		return sch
	}
	marshal := func(sch avro.Schema, v map[string]any) []byte {
		b, err := avro.Marshal(sch, v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	current := parse(text)
	good := marshal(current, eventValue())
	nulls := eventValue()
	nulls["severity"], nulls["values"], nulls["attrs"], nulls["kind"] = nil, []float64{}, map[string]any{}, "BOOT"

	newerEnum := parse(bytes.Replace(text, []byte(`"HEARTBEAT"]`), []byte(`"HEARTBEAT", "UPDATE", "REBOOT"]`), 1))
	withReboot := eventValue()
	withReboot["kind"] = "REBOOT"
	newerUnion := parse(bytes.Replace(text, []byte(`["null", "int"]`), []byte(`["null", "int", "string"]`), 1))
	withText := eventValue()
	withText["severity"] = map[string]any{"string": "high"}

	return map[string][]byte{
		"good/event.avro":                        good,
		"good/event-nulls.avro":                  marshal(current, nulls),
		"bad/truncated.avro":                     good[:len(good)-1],
		"bad/trailing-byte.avro":                 append(append([]byte(nil), good...), 0),
		"bad/enum-index-from-newer-schema.avro":  marshal(newerEnum, withReboot),
		"bad/union-index-from-newer-schema.avro": marshal(newerUnion, withText),
		"bad/json-sent-to-avro-stream.avro":      []byte(`{"device_id":"d1"}`),
	}
}

func writeAvroFixtures(t *testing.T) {
	dir := filepath.Join(schematest.Dir(), "events-avro")
	for name, b := range avroFixtures(t) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAvroFixturesAreCurrent proves the committed .avro files are what
// hamba/avro writes for the values above, so they are real Avro.
func TestAvroFixturesAreCurrent(t *testing.T) {
	dir := filepath.Join(schematest.Dir(), "events-avro")
	for name, want := range avroFixtures(t) {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%v (run go test -run TestGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale; run go test ./internal/schema -run TestGolden -update", name)
		}
	}
}
