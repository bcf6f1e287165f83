package schema

import (
	"errors"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

type vcase struct {
	name    string
	payload string
	code    Code   // "" means the payload must pass
	detail  string // exact Detail() when code is set
}

func runCases(t *testing.T, spec Spec, cases []vcase) {
	t.Helper()
	v, err := Compile(spec)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate([]byte(tc.payload))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			if ve.Code != tc.code || ve.Detail() != tc.detail {
				t.Fatalf("got  %s %q\nwant %s %q", ve.Code, ve.Detail(), tc.code, tc.detail)
			}
		})
	}
}

func TestJSONPrimitives(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[
		{"name":"i","type":"int","default":0},
		{"name":"l","type":"long","default":0},
		{"name":"f","type":"float","default":0},
		{"name":"d","type":"double","default":0},
		{"name":"b","type":"boolean","default":false},
		{"name":"s","type":"string","default":""},
		{"name":"n","type":"null","default":null},
		{"name":"by","type":"bytes","default":""}
	]}`
	runCases(t, Spec{DataType: JSON, Schema: schema}, []vcase{
		{"every field may be omitted when it has a default", `{}`, "", ""},
		{"int takes the int32 extremes", `{"i":2147483647}`, "", ""},
		{"int takes the negative extreme", `{"i":-2147483648}`, "", ""},
		{"int refuses a value above int32", `{"i":3000000000}`, CodeRange, "$.i: value 3000000000 out of range for int"},
		{"int refuses a value below int32", `{"i":-2147483649}`, CodeRange, "$.i: value -2147483649 out of range for int"},
		{"int refuses a fraction", `{"i":2.5}`, CodeType, "$.i: value 2.5 is not an integer, want int"},
		{"int refuses an exponent", `{"i":1e3}`, CodeType, "$.i: value 1e3 is not an integer, want int"},
		{"int refuses a string", `{"i":"5"}`, CodeType, `$.i: want int, got string "5"`},
		{"long takes the int64 extreme", `{"l":9223372036854775807}`, "", ""},
		{"long refuses a value above int64", `{"l":9223372036854775808}`, CodeRange, "$.l: value 9223372036854775808 out of range for long"},
		{"float takes a fraction and an exponent", `{"f":1.5e3}`, "", ""},
		{"float refuses a value beyond float32", `{"f":1e39}`, CodeRange, "$.f: value 1e39 out of range for float"},
		{"double takes a value beyond float32", `{"d":1e39}`, "", ""},
		{"double refuses a value beyond float64", `{"d":1e309}`, CodeRange, "$.d: value 1e309 out of range for double"},
		{"double takes an integer literal", `{"d":3}`, "", ""},
		{"boolean refuses a number", `{"b":1}`, CodeType, "$.b: want boolean, got number 1"},
		{"string refuses null", `{"s":null}`, CodeType, "$.s: want string, got null"},
		{"null takes only null", `{"n":0}`, CodeType, "$.n: want null, got number 0"},
		{"bytes takes Latin-1 characters", `{"by":"\u00ff\u0000abc"}`, "", ""},
		{"bytes refuses characters above U+00FF", `{"by":"\u0100"}`, CodeFormat, "$.by: string for bytes has a character above U+00FF; each character stands for one byte"},
		{"a long string is clipped in the reason", `{"i":"` + strings.Repeat("x", 100) + `"}`, CodeType, `$.i: want int, got string "` + strings.Repeat("x", 40) + `…"`},
	})
}

func TestJSONRecords(t *testing.T) {
	schema := `{"type":"record","name":"Msg","namespace":"acme","fields":[
		{"name":"device","type":{"type":"record","name":"Device","fields":[
			{"name":"id","type":"string"},
			{"name":"temp","type":"int"}
		]}},
		{"name":"note","type":["null","string"]},
		{"name":"opt","type":["null","string"],"default":null},
		{"name":"count","type":"long","default":7}
	]}`
	runCases(t, Spec{DataType: JSON, Schema: schema}, []vcase{
		{"a complete record passes", `{"device":{"id":"d1","temp":20},"note":null,"opt":"x","count":1}`, "", ""},
		{"fields with defaults may be missing", `{"device":{"id":"d1","temp":20},"note":"n"}`, "", ""},
		{"a nested field is named by its path", `{"device":{"id":"d1","temp":3000000000},"note":null}`, CodeRange, "$.device.temp: value 3000000000 out of range for int"},
		{"a missing field without default is refused", `{"device":{"id":"d1"},"note":null}`, CodeMissing, "$.device.temp: missing required field"},
		{"a nullable field without default must still be present", `{"device":{"id":"d1","temp":1}}`, CodeMissing, `$.note: missing required field (it is nullable but has no default; "default": null in the schema makes it optional)`},
		{"an unknown field is refused", `{"device":{"id":"d1","temp":1,"hum":3},"note":null}`, CodeUnknown, "$.device.hum: unknown field: record acme.Device does not define it (allow_unknown_fields accepts extra fields)"},
		{"an unknown key that is not an identifier is quoted", `{"device":{"id":"d1","temp":1},"note":null,"a b":1}`, CodeUnknown, `$["a b"]: unknown field: record acme.Msg does not define it (allow_unknown_fields accepts extra fields)`},
		{"the first unknown key in sorted order is reported", `{"device":{"id":"d1","temp":1},"note":null,"zz":1,"aa":2}`, CodeUnknown, "$.aa: unknown field: record acme.Msg does not define it (allow_unknown_fields accepts extra fields)"},
		{"a record must be an object", `[1]`, CodeType, "$: want record acme.Msg (a JSON object), got an array"},
		{"a nested record must be an object", `{"device":"d1","note":null}`, CodeType, `$.device: want record acme.Device (a JSON object), got string "d1"`},
		{"an empty payload is refused", ``, CodeSyntax, "payload is empty, want a JSON record"},
		{"a payload that is not JSON is refused", `{"device":`, CodeSyntax, "payload is not JSON: unexpected EOF"},
		{"data after the record is refused", `{"device":{"id":"d1","temp":1},"note":null} {}`, CodeSyntax, "data after the JSON record; send one record per message"},
		{"whitespace after the record is fine", "{\"device\":{\"id\":\"d1\",\"temp\":1},\"note\":null}\n", "", ""},
	})
	t.Run("allow_unknown_fields accepts extra keys at every level", func(t *testing.T) {
		runCases(t, Spec{DataType: JSON, Schema: schema, AllowUnknownFields: true}, []vcase{
			{"extra keys pass", `{"device":{"id":"d1","temp":1,"hum":3},"note":null,"x":[1]}`, "", ""},
			{"known fields are still checked", `{"device":{"id":"d1","temp":1.5},"note":null,"x":1}`, CodeType, "$.device.temp: value 1.5 is not an integer, want int"},
		})
	})
}

func TestJSONCollectionsEnumsUnions(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[
		{"name":"a","type":{"type":"array","items":"int"},"default":[]},
		{"name":"m","type":{"type":"map","values":"long"},"default":{}},
		{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]},"default":"RED"},
		{"name":"u","type":["null","int","string"],"default":null},
		{"name":"nu","type":["null","int"],"default":null},
		{"name":"ur","type":["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]},{"type":"map","values":"string"}],"default":null},
		{"name":"nested","type":{"type":"array","items":{"type":"array","items":"P"}},"default":[]}
	]}`
	runCases(t, Spec{DataType: JSON, Schema: schema}, []vcase{
		{"array items are checked", `{"a":[1,2,3]}`, "", ""},
		{"a bad array item is named by index", `{"a":[1,"x"]}`, CodeType, `$.a[1]: want int, got string "x"`},
		{"an array must be an array", `{"a":{}}`, CodeType, "$.a: want array, got an object"},
		{"map values are checked", `{"m":{"k":1}}`, "", ""},
		{"a bad map value is named by key", `{"m":{"ok":1,"bad":"x"}}`, CodeType, `$.m.bad: want long, got string "x"`},
		{"a map key that is not an identifier is quoted", `{"m":{"a.b":"x"}}`, CodeType, `$.m["a.b"]: want long, got string "x"`},
		{"the first bad map key in sorted order is reported", `{"m":{"z":"x","b":"y"}}`, CodeType, `$.m.b: want long, got string "y"`},
		{"an enum takes its symbols", `{"e":"GREEN"}`, "", ""},
		{"an enum refuses other symbols", `{"e":"BLUE"}`, CodeEnum, `$.e: "BLUE" is not a symbol of Color (RED, GREEN)`},
		{"a union takes null", `{"u":null}`, "", ""},
		{"a union takes a later branch", `{"u":"s"}`, "", ""},
		{"a union refuses a kind no branch takes", `{"u":true}`, CodeUnion, "$.u: want one of [null, int, string], got boolean true"},
		{"a nullable union explains its one candidate", `{"nu":3000000000}`, CodeRange, "$.nu: value 3000000000 out of range for int"},
		{"a union resolves an object to the record branch", `{"ur":{"x":1}}`, "", ""},
		{"a union resolves an object to the map branch when the record refuses it", `{"ur":{"y":"s"}}`, "", ""},
		{"a union refuses an object both branches refuse", `{"ur":{"x":1.5}}`, CodeUnion, `$.ur: no branch of [null, P, map] accepts an object`},
		{"a named type is reused by reference", `{"nested":[[{"x":1}],[{"x":2},{"x":"no"}]]}`, CodeType, `$.nested[1][1].x: want int, got string "no"`},
	})
}

func TestJSONLogicalTypes(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[
		{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
		{"name":"day","type":{"type":"int","logicalType":"date"},"default":0},
		{"name":"tm","type":{"type":"int","logicalType":"time-millis"},"default":0},
		{"name":"tu","type":{"type":"long","logicalType":"time-micros"},"default":0},
		{"name":"id","type":{"type":"string","logicalType":"uuid"},"default":"00000000-0000-0000-0000-000000000000"},
		{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2},"default":""},
		{"name":"fx","type":{"type":"fixed","name":"F4","size":4},"default":"abcd"},
		{"name":"fd","type":{"type":"fixed","name":"F8","size":8,"logicalType":"decimal","precision":10,"scale":0},"default":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}
	]}`
	runCases(t, Spec{DataType: JSON, Schema: schema}, []vcase{
		{"timestamp-millis takes epoch milliseconds", `{"ts":1700000000000}`, "", ""},
		{"timestamp-millis refuses an RFC 3339 string", `{"ts":"2024-01-01T00:00:00Z"}`, CodeType, `$.ts: want long (timestamp-millis), got string "2024-01-01T00:00:00Z"`},
		{"date takes days since the epoch", `{"day":19000}`, "", ""},
		{"time-millis takes a time of day", `{"tm":86399999}`, "", ""},
		{"time-millis refuses a full day", `{"tm":86400000}`, CodeFormat, "$.tm: value 86400000 is not a time of day for int (time-millis) (0 to 86399999)"},
		{"time-micros refuses a negative time", `{"tu":-1}`, CodeFormat, "$.tu: value -1 is not a time of day for long (time-micros) (0 to 86399999999)"},
		{"uuid takes the 8-4-4-4-12 form", `{"id":"123e4567-e89b-12d3-a456-426614174000"}`, "", ""},
		{"uuid refuses other text", `{"id":"123e4567e89b12d3a456426614174000"}`, CodeFormat, `$.id: "123e4567e89b12d3a456426614174000" is not a UUID (want 8-4-4-4-12 hex digits)`},
		{"decimal takes a number within precision and scale", `{"dec":123.45}`, "", ""},
		{"decimal takes a digit string", `{"dec":"-0.50"}`, "", ""},
		{"decimal ignores trailing zeros of the fraction", `{"dec":1.2300}`, "", ""},
		{"decimal refuses too many fraction digits", `{"dec":1.234}`, CodeFormat, "$.dec: 1.234 has 3 digits after the point, decimal(5,2) allows 2"},
		{"decimal refuses too many integer digits", `{"dec":1234.5}`, CodeRange, "$.dec: 1234.5 has 4 digits before the point, decimal(5,2) allows 3"},
		{"decimal refuses an exponent", `{"dec":1e2}`, CodeType, `$.dec: "1e2" is not a decimal number (want digits with an optional point, no exponent)`},
		{"fixed takes exactly its size", `{"fx":"wxyz"}`, "", ""},
		{"fixed refuses another size", `{"fx":"abc"}`, CodeFormat, "$.fx: 3 bytes, F4 holds exactly 4"},
		{"fixed decimal takes a number", `{"fd":1234567890}`, "", ""},
	})
}

func TestRecursiveSchema(t *testing.T) {
	schema := `{"type":"record","name":"Node","fields":[
		{"name":"v","type":"int"},
		{"name":"next","type":["null","Node"],"default":null}
	]}`
	runCases(t, Spec{DataType: JSON, Schema: schema}, []vcase{
		{"a recursive record nests", `{"v":1,"next":{"v":2,"next":{"v":3}}}`, "", ""},
		{"a recursive record reports the deep path", `{"v":1,"next":{"v":2,"next":{"v":"x"}}}`, CodeType, `$.next.next.v: want int, got string "x"`},
	})
}

func TestSchemasDoNotShareNamedTypes(t *testing.T) {
	// Two streams define a record with the same full name and different
	// fields; each must keep its own (hamba's global cache would not).
	a, err := Compile(Spec{DataType: JSON, Schema: `{"type":"record","name":"x.Z","fields":[{"name":"a","type":"int"}]}`})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(Spec{DataType: JSON, Schema: `{"type":"record","name":"x.Z","fields":[{"name":"b","type":"string"}]}`})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate([]byte(`{"a":1}`)); err != nil {
		t.Fatalf("schema a: %v", err)
	}
	if err := b.Validate([]byte(`{"b":"s"}`)); err != nil {
		t.Fatalf("schema b: %v", err)
	}
	if a.Validate([]byte(`{"b":"s"}`)) == nil {
		t.Fatal("schema a took schema b's record")
	}
}

func TestJSONWithoutSchema(t *testing.T) {
	runCases(t, Spec{DataType: JSON}, []vcase{
		{"any JSON passes", `[1,{"a":null}]`, "", ""},
		{"text that is not JSON is refused", `temp=1`, CodeSyntax, "payload is not JSON: invalid character 'e' in literal true (expecting 'r') (at byte 2)"},
		{"an empty payload is refused", ``, CodeSyntax, "payload is empty, want a JSON record"},
	})
}

func TestBLOB(t *testing.T) {
	for _, spec := range []Spec{{}, {DataType: BLOB}, {DataType: "blob", Schema: `"int"`}} {
		runCases(t, spec, []vcase{
			{"a BLOB stream takes any bytes", "\x00\xff not json", "", ""},
			{"a BLOB stream takes an empty payload", "", "", ""},
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		setting string
		want    string
	}{
		{"unknown data type", Spec{DataType: "XML"}, "data_type", `"XML": want BLOB, JSON or CSV`},
		{"an invalid Avro schema", Spec{DataType: JSON, Schema: `{"type":"record"}`}, "data_schema", "avro:"},
		{"a default that does not fit its type", Spec{DataType: JSON, Schema: `{"type":"record","name":"R","fields":[{"name":"a","type":"long","default":"oops"}]}`}, "data_schema", "default"},
		{"a CSV schema must be a record", Spec{DataType: CSV, Schema: `"int"`}, "data_schema", "must be a record"},
		{"a CSV column cannot be an array", Spec{DataType: CSV, Schema: `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"int"}}]}`}, "data_schema", "field a: type array cannot be a CSV cell"},
		{"a delimiter is one character", Spec{DataType: CSV, Delimiter: ";;"}, "csv_delimiter", "one character"},
		{"a quote cannot be the delimiter", Spec{DataType: CSV, Delimiter: `"`}, "csv_delimiter", "one character"},
		{"unknown header mode", Spec{DataType: CSV, CSVHeader: "first"}, "csv_header", "want none, skip or check"},
		{"checking a header needs a schema", Spec{DataType: CSV, CSVHeader: HeaderCheck}, "csv_header", "needs a data_schema"},
		{"avro binary needs a schema", Spec{AvroBinary: true}, "avro_binary", "needs a data_schema"},
		{"avro binary belongs in a BLOB stream", Spec{DataType: JSON, AvroBinary: true, Schema: `"int"`}, "avro_binary", "BLOB stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.spec)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("want *SpecError, got %v", err)
			}
			if se.Setting != tc.setting || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %s: %v, want %s containing %q", se.Setting, err, tc.setting, tc.want)
			}
		})
	}
}

func TestAvroBinary(t *testing.T) {
	schemaText := `{"type":"record","name":"Ev","fields":[
		{"name":"id","type":"string"},
		{"name":"n","type":"int"},
		{"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}},
		{"name":"opt","type":["null","long"]},
		{"name":"vals","type":{"type":"array","items":"double"}},
		{"name":"attrs","type":{"type":"map","values":"string"}},
		{"name":"fx","type":{"type":"fixed","name":"F2","size":2}},
		{"name":"ok","type":"boolean"}
	]}`
	schema := avro.MustParse(schemaText)
	good, err := avro.Marshal(schema, map[string]any{
		"id": "dev-1", "n": 42, "kind": "B", "opt": map[string]any{"long": int64(7)},
		"vals": []float64{1.5, 2.5}, "attrs": map[string]any{"k": "v"}, "fx": [2]byte{1, 2}, "ok": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Byte offsets in good: 0 string length 5, 1-5 "dev-1", 6 n=42, 7 kind
	// index, 8 opt branch index, 9 long 7, 10 vals block count, ..., last ok.
	mutate := func(f func(b []byte) []byte) string {
		return string(f(append([]byte(nil), good...)))
	}
	runCases(t, Spec{Schema: schemaText, AvroBinary: true}, []vcase{
		{"a record hamba encodes passes", string(good), "", ""},
		{"a truncated record is refused", string(good[:len(good)-1]), CodeSyntax, "$.ok: length 1 runs past the end of the data (0 bytes left)"},
		{"trailing bytes are refused", string(append(append([]byte(nil), good...), 0)), CodeSyntax, "$: 1 bytes after the end of the record"},
		{"an enum index past the symbols is refused", mutate(func(b []byte) []byte { b[7] = 0x04; return b }), CodeEnum, "$.kind: symbol index 2, enum K has 2 symbols"},
		{"a union index past the branches is refused", mutate(func(b []byte) []byte { b[8] = 0x04; return b }), CodeUnion, "$.opt: branch index 2, [null, long] has 2 branches"},
		{"an int beyond 32 bits is refused", mutate(func(b []byte) []byte {
			return append(append(b[:6:6], 0x80, 0x80, 0x80, 0x80, 0x40), b[7:]...) // varint 2^34, zigzag 2^33
		}), CodeRange, "$.n: value 8589934592 out of range for int"},
		{"a string that is not UTF-8 is refused", mutate(func(b []byte) []byte { b[1] = 0xff; return b }), CodeType, "$.id: string is not UTF-8"},
		{"a boolean byte other than 0 or 1 is refused", mutate(func(b []byte) []byte { b[len(b)-1] = 2; return b }), CodeType, "$.ok: boolean byte is 2, want 0 or 1"},
		{"an array count larger than the payload is refused", mutate(func(b []byte) []byte { b[10] = 0x7e; return b }), CodeSyntax, "$.vals: block of 63 items cannot fit the 28 bytes left"},
	})
	t.Run("a huge block count of empty items is capped", func(t *testing.T) {
		v, err := Compile(Spec{AvroBinary: true, Schema: `{"type":"array","items":"null"}`})
		if err != nil {
			t.Fatal(err)
		}
		// count = 2^62 (zigzag varint), then no items: hamba's generic reader would loop.
		payload := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00}
		var ve *ValidationError
		if !errors.As(v.Validate(payload), &ve) || ve.Code != CodeFormat {
			t.Fatalf("want a format error, got %v", ve)
		}
	})
}

func TestDeepPathsAreShortened(t *testing.T) {
	schema := `{"type":"record","name":"N","fields":[{"name":"n","type":["null","N"],"default":null},{"name":"v","type":"int","default":0}]}`
	payload := strings.Repeat(`{"n":`, 20) + `{"v":"x"}` + strings.Repeat(`}`, 20)
	want := "$" + strings.Repeat(".n", 8) + "…" + strings.Repeat(".n", 7) + ".v: want int, got string \"x\"" // outer 8, inner 8 segments
	runCases(t, Spec{DataType: JSON, Schema: schema}, []vcase{
		{"a path deeper than 16 levels keeps its two ends", payload, CodeType, want},
		{"a path of 16 levels is shown whole", strings.Repeat(`{"n":`, 15) + `{"v":"x"}` + strings.Repeat(`}`, 15), CodeType, "$" + strings.Repeat(".n", 15) + ".v: want int, got string \"x\""},
	})
}
