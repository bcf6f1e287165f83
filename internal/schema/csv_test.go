package schema

import "testing"

const csvSchema3 = `{"type":"record","name":"Row","fields":[
	{"name":"id","type":"string"},
	{"name":"temp","type":"int"},
	{"name":"level","type":{"type":"enum","name":"Level","symbols":["LOW","HIGH"]}},
	{"name":"ratio","type":["null","double"],"default":null},
	{"name":"ok","type":"boolean","default":true}
]}`

func TestCSVRows(t *testing.T) {
	runCases(t, Spec{DataType: CSV, Schema: csvSchema3}, []vcase{
		{"a full row passes", "d1,21,LOW,0.5,true", "", ""},
		{"several rows pass", "d1,21,LOW,0.5,true\nd2,22,HIGH,,false\r\n", "", ""},
		{"quoted cells may hold the delimiter", `"d,1",21,LOW,1e3,1`, "", ""},
		{"trailing columns with defaults may be left out", "d1,21,HIGH", "", ""},
		{"an empty cell of a nullable field is null", "d1,21,LOW,,true", "", ""},
		{"an empty cell of a field with a default is the default", "d1,21,LOW,0.5,", "", ""},
		{"an empty string cell is an empty string", ",21,LOW", "", ""},
		{"blank lines are skipped", "d1,21,LOW\n\nd2,22,LOW\n", "", ""},
		{"an int out of range names row, column and field", "d1,3000000000,LOW", CodeRange, "row 1 column 2 (temp): value 3000000000 out of range for int"},
		{"a later row is numbered", "d1,1,LOW\nd2,x,LOW", CodeType, `row 2 column 2 (temp): want int, got "x"`},
		{"an empty cell without default is refused", "d1,,LOW", CodeType, "row 1 column 2 (temp): empty cell, want int (a default in the schema makes it optional)"},
		{"an enum cell takes only its symbols", "d1,1,MID", CodeEnum, `row 1 column 3 (level): "MID" is not a symbol of Level (LOW, HIGH)`},
		{"a union cell explains its one candidate", "d1,1,LOW,abc", CodeType, `row 1 column 4 (ratio): want a finite double, got "abc"`},
		{"NaN is refused", "d1,1,LOW,NaN", CodeType, `row 1 column 4 (ratio): want a finite double, got "NaN"`},
		{"a boolean cell takes ParseBool forms", "d1,1,LOW,,F", "", ""},
		{"a boolean cell refuses other text", "d1,1,LOW,,yes", CodeType, `row 1 column 5 (ok): want boolean, got "yes"`},
		{"too few columns are refused", "d1,1", CodeColumns, "row 1: 2 columns, the schema has 5 fields and level (column 3) has no default"},
		{"too many columns are refused", "d1,1,LOW,1,true,extra", CodeColumns, "row 1: 6 columns, the schema has 5 fields (allow_unknown_fields accepts extra columns)"},
		{"a bare quote is not CSV", "d1,1\"x,LOW", CodeSyntax, `row 1: not CSV: bare " in non-quoted-field (line 1, column 5)`},
		{"an empty payload has no rows", "", CodeSyntax, "payload has no CSV data rows"},
	})
	t.Run("allow_unknown_fields accepts extra columns", func(t *testing.T) {
		runCases(t, Spec{DataType: CSV, Schema: csvSchema3, AllowUnknownFields: true}, []vcase{
			{"extra columns pass", "d1,1,LOW,1,true,extra,more", "", ""},
		})
	})
}

func TestCSVDelimiterAndHeader(t *testing.T) {
	runCases(t, Spec{DataType: CSV, Schema: csvSchema3, Delimiter: ";"}, []vcase{
		{"the stream's delimiter separates columns", "d1;21;LOW;0,5", CodeType, `row 1 column 4 (ratio): want a finite double, got "0,5"`},
		{"a comma is plain text with another delimiter", "d,1;21;LOW", "", ""},
	})
	runCases(t, Spec{DataType: CSV, Schema: csvSchema3, Delimiter: "\t", CSVHeader: HeaderSkip}, []vcase{
		{"a skipped header is not checked", "anything\there\nd1\t21\tLOW", "", ""},
		{"a header alone has no data rows", "id\ttemp\tlevel", CodeSyntax, "payload has no CSV data rows"},
		{"rows after the header count from 2", "h\nd1\tx\tLOW", CodeType, `row 2 column 2 (temp): want int, got "x"`},
	})
	runCases(t, Spec{DataType: CSV, Schema: csvSchema3, CSVHeader: HeaderCheck}, []vcase{
		{"a header naming the fields passes", "id,temp,level,ratio,ok\nd1,21,LOW,,", "", ""},
		{"a header may leave out optional trailing fields", "id,temp,level\nd1,21,LOW", "", ""},
		{"a header with a wrong name is refused", "id,temperature,level\nd1,21,LOW", CodeHeader, `row 1 column 2 (temp): header "temperature", want the field name "temp"`},
		{"a header missing required fields is refused", "id,temp\nd1,21", CodeHeader, "row 1: 2 columns, the schema has 5 fields and level (column 3) has no default"},
	})
}

func TestCSVWithoutSchema(t *testing.T) {
	runCases(t, Spec{DataType: CSV, Delimiter: "|"}, []vcase{
		{"any well-formed rows pass", "a|b\nc", "", ""},
		{"malformed quoting is refused", "\"a|b", CodeSyntax, `row 1: not CSV: extraneous or missing " in quoted-field (line 1, column 5)`},
	})
}

func TestCSVCellTypes(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[
		{"name":"l","type":"long"},
		{"name":"f","type":"float"},
		{"name":"id","type":{"type":"string","logicalType":"uuid"}},
		{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":1}},
		{"name":"fx","type":{"type":"fixed","name":"F3","size":3}},
		{"name":"by","type":"bytes"},
		{"name":"u","type":["int","string"]},
		{"name":"n","type":"null"},
		{"name":"tm","type":{"type":"int","logicalType":"time-millis"}}
	]}`
	const okID = "123e4567-e89b-12d3-a456-426614174000"
	runCases(t, Spec{DataType: CSV, Schema: schema}, []vcase{
		{"every cell type takes its form", "-9223372036854775808,1.5," + okID + ",-123.4,abc,\x01raw,7,,1000", "", ""},
		{"a union cell tries branches in order", "1,1," + okID + ",1,abc,,x,,0", "", ""},
		{"long refuses beyond int64", "9223372036854775808,1," + okID + ",1,abc,,1,,0", CodeRange, "row 1 column 1 (l): value 9223372036854775808 out of range for long"},
		{"float refuses beyond float32", "1,1e39," + okID + ",1,abc,,1,,0", CodeRange, "row 1 column 2 (f): value 1e39 out of range for float"},
		{"uuid cells are checked", "1,1,nope,1,abc,,1,,0", CodeFormat, `row 1 column 3 (id): "nope" is not a UUID (want 8-4-4-4-12 hex digits)`},
		{"decimal cells are checked", "1,1," + okID + ",1.25,abc,,1,,0", CodeFormat, "row 1 column 4 (dec): 1.25 has 2 digits after the point, decimal(4,1) allows 1"},
		{"fixed cells need their size in bytes", "1,1," + okID + ",1,abcd,,1,,0", CodeFormat, "row 1 column 5 (fx): 4 bytes, F3 holds exactly 3"},
		{"a null cell must be empty", "1,1," + okID + ",1,abc,,1,x,0", CodeType, `row 1 column 8 (n): want an empty cell for null, got "x"`},
		{"a union of int and string takes any text", "1,1," + okID + ",1,abc,,,,0", "", ""},
		{"time-millis cells are times of day", "1,1," + okID + ",1,abc,,1,,-5", CodeFormat, "row 1 column 9 (tm): value -5 is not a time of day for int (time-millis) (0 to 86399999)"},
	})
}
