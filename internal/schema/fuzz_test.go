package schema_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/edgegw/edgegw/internal/schema"
	"github.com/edgegw/edgegw/internal/schema/schematest"
)

// goldenSet returns a fixture set's validator and adds its payloads as seeds.
func goldenSet(f *testing.F, name string) *schema.Validator {
	sets, err := schematest.Load(schematest.Dir())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range sets {
		if s.Name != name {
			continue
		}
		for _, p := range append(s.Good, s.Bad...) {
			f.Add(p.Data)
		}
		v, err := schema.Compile(schema.Spec{
			DataType: s.Stream.DataType, Schema: s.Stream.DataSchema, Delimiter: s.Stream.CSVDelimiter,
			CSVHeader: s.Stream.CSVHeader, AllowUnknownFields: s.Stream.AllowUnknownFields, AvroBinary: s.Stream.AvroBinary,
		})
		if err != nil {
			f.Fatal(err)
		}
		return v
	}
	f.Fatalf("no fixture set %s", name)
	return nil
}

// checkResult is the invariant for every payload: nil or a *ValidationError
// with a code and a reason.
func checkResult(t *testing.T, err error) {
	if err == nil {
		return
	}
	var ve *schema.ValidationError
	if !errors.As(err, &ve) || ve.Code == "" || ve.Reason == "" {
		t.Fatalf("want nil or a complete *ValidationError, got %#v", err)
	}
}

func FuzzValidateJSON(f *testing.F) {
	v := goldenSet(f, "telemetry-json")
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := v.Validate(payload)
		checkResult(t, err)
		if err == nil && !json.Valid(payload) {
			t.Fatalf("accepted a payload that is not JSON: %q", payload)
		}
	})
}

func FuzzValidateCSV(f *testing.F) {
	v := goldenSet(f, "readings-csv")
	semi := goldenSet(f, "readings-csv-semicolon-header")
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkResult(t, v.Validate(payload))
		checkResult(t, semi.Validate(payload))
	})
}

// FuzzValidateAvroBinary checks the walker against hamba/avro: whatever the
// walker accepts, hamba must decode.
func FuzzValidateAvroBinary(f *testing.F) {
	v := goldenSet(f, "events-avro")
	sch := avro.MustParse(v.Spec().Schema)
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := v.Validate(payload)
		checkResult(t, err)
		if err == nil {
			var out map[string]any
			if err := avro.Unmarshal(sch, payload, &out); err != nil {
				t.Fatalf("walker accepted what hamba cannot decode: %v", err)
			}
		}
	})
}

// FuzzCompile feeds arbitrary schema text (as DIS might return it) and a
// payload through every data type: compiling and validating never panic.
func FuzzCompile(f *testing.F) {
	f.Add(`{"type":"record","name":"N","fields":[{"name":"v","type":"int"},{"name":"n","type":["null","N"]}]}`, []byte(`{"v":1,"n":{"v":2,"n":null}}`))
	f.Add(`{"type":"array","items":{"type":"map","values":["null","double",{"type":"enum","name":"E","symbols":["A"]}]}}`, []byte(`[{"a":1.5,"b":"A"}]`))
	f.Add(`{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"fixed","name":"F","size":2,"logicalType":"decimal","precision":4}}]}`, []byte(`{"f":12}`))
	f.Add(`"string"`, []byte("\x02a"))
	// The fixture schemas with their payloads, so mutations start from real schemas.
	sets, err := schematest.Load(schematest.Dir())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range sets {
		for _, p := range append(s.Good, s.Bad...) {
			f.Add(s.Stream.DataSchema, p.Data)
		}
	}
	f.Fuzz(func(t *testing.T, schemaText string, payload []byte) {
		for _, spec := range []schema.Spec{
			{DataType: schema.JSON, Schema: schemaText},
			{DataType: schema.CSV, Schema: schemaText},
			{DataType: schema.BLOB, Schema: schemaText, AvroBinary: true},
		} {
			v, err := schema.Compile(spec)
			if err != nil {
				continue
			}
			checkResult(t, v.Validate(payload))
		}
	})
}
