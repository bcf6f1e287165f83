package jsontok

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		doc, path, want, err string
	}{
		{`{"a":{"b":[10, {"c":"x"}]}}`, "a.b.1.c", `"x"`, ""},
		{`{"a":1,"a":2}`, "a", `2`, ""}, // the last of a repeated key, as encoding/json
		{` { "k\u0065y" : true } `, "key", `true`, ""},
		{`{"a":[1,2]}`, "a", `[1,2]`, ""},
		{`{"a":[1,2]}`, "a.2", "", "field a.2 is missing"},
		{`{"a":[1,2]}`, "a.x", "", `"x" indexes an array`},
		{`{"a":[1,2]}`, "a.-1", "", `"-1" indexes an array`},
		{`{"a":3}`, "a.b", "", "a is a number, not an object"},
		{`"s"`, "a", "", "the doc is a string, not an object"},
		{`{}`, "a", "", "field a is missing"},
	} {
		raw, err := Lookup([]byte(tc.doc), strings.Split(tc.path, "."), "the doc")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Lookup(%s, %s): %q, %v; want error %q", tc.doc, tc.path, raw, err, tc.err)
			}
			continue
		}
		if err != nil || string(raw) != tc.want {
			t.Errorf("Lookup(%s, %s) = %q, %v; want %q", tc.doc, tc.path, raw, err, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	for raw, want := range map[string]string{`"a\nb"`: "a\nb", `-1.5e3`: "-1.5e3", `false`: "false", "\"\xff\"": "\uFFFD"} {
		if got, err := Text([]byte(raw)); err != nil || got != want {
			t.Errorf("Text(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{`null`, `{}`, `[1]`} {
		if _, err := Text([]byte(raw)); err == nil {
			t.Errorf("Text(%s): no error", raw)
		}
	}
}
