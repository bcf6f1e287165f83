package schema

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hamba/avro/v2"
)

// diffSchemas are the schemas the scanner is cross-checked on: the JSON
// fixture and the unit-test schemas that reach every type.
func diffSchemas(t testing.TB) []avro.Schema {
	texts := []string{
		`{"type":"record","name":"N","fields":[{"name":"n","type":["null","N"],"default":null},{"name":"v","type":"int","default":0}]}`,
		`{"type":"record","name":"R","fields":[
			{"name":"a","type":{"type":"array","items":"int"},"default":[]},
			{"name":"m","type":{"type":"map","values":"long"},"default":{}},
			{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]},"default":"RED"},
			{"name":"u","type":["null","int","string"],"default":null},
			{"name":"ur","type":["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]},{"type":"map","values":"string"}],"default":null},
			{"name":"b","type":"boolean","default":false},
			{"name":"f","type":"float","default":0},
			{"name":"id","type":{"type":"string","logicalType":"uuid"},"default":"00000000-0000-0000-0000-000000000000"},
			{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2},"default":""},
			{"name":"fx","type":{"type":"fixed","name":"F4","size":4},"default":"abcd"},
			{"name":"by","type":"bytes","default":""},
			{"name":"tm","type":{"type":"int","logicalType":"time-millis"},"default":0},
			{"name":"nn","type":"null","default":null}
		]}`,
	}
	fixture, err := os.ReadFile(filepath.Join("testdata", "golden", "telemetry-json", "schema.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	texts = append(texts, string(fixture))
	var out []avro.Schema
	for _, s := range texts {
		sch, err := avro.ParseWithCache(s, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sch)
	}
	return out
}

// FuzzScanMatchesDecode checks that the byte scanner and the decoded-map
// reference agree on every payload: both accept, or both refuse with the
// same code and detail.
func FuzzScanMatchesDecode(f *testing.F) {
	for _, p := range []string{
		`{"v":1,"n":{"v":2}}`, `{"n":{"n":{"v":"x"}}}`, `{"v":1,"v":"x"}`, `{"v":"x","v":1}`,
		`{"a":[1,"x"],"m":{"z":"x","b":1,"b":"y"},"e":"BLUE"}`, `{"u":true,"ur":{"x":1.5}}`, `{"ur":{"y":"s"}}`,
		`{"id":"123e4567-e89b-12d3-a456-426614174000","dec":"-1.50","fx":"\u00e9bcd","by":"\u0100"}`,
		`{"k\u0065y":1,"zz":2,"aa":3}`, `{"tm":86400000,"f":1e39}`, `{"e":"R\u0045D","nn":0}`,
		`{"device_id":"d1","ts":1700000000000,"seq":42,"temp":21.5,"status":"OK","tags":{"a":"b"},"location":{"lat":1,"lon":2}}`,
		`[1]`, `"\xff"`, `{"e":"\xff"}`, ``, `{} {}`, `{"a":`,
	} {
		f.Add([]byte(p))
	}
	schemas := diffSchemas(f)
	type pair struct{ scan, ref func([]byte) *ValidationError }
	var pairs []pair
	for _, s := range schemas {
		for _, allow := range []bool{false, true} {
			pairs = append(pairs, pair{(&compiler{allowUnknown: allow}).scanRoot(s), jsonRef(s, allow)})
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for i, p := range pairs {
			got, want := p.scan(payload), p.ref(payload)
			if (got == nil) != (want == nil) || got != nil && (got.Code != want.Code || got.Detail() != want.Detail()) {
				t.Fatalf("schema pair %d, payload %q:\nscan %v\nref  %v", i, payload, got, want)
			}
		}
	})
}
