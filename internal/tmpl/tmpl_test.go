package tmpl

import (
	"errors"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"devices/{partition_key}/cmd", "L(devices/) P(partition_key) L(/cmd)", ""},
		{"{a}{b}", "P(a) P(b)", ""},
		{"x{{y}}z", "L(x{y}z)", ""},
		{"{{{a}}}", "L({) P(a) L(})", ""},
		{"", "", ""},
		{"a}b", "", `unmatched "}" at byte 1`},
		{"a{b", "", `"{" at byte 1 is never closed`},
		{"{bad}", "", "no such placeholder"},
	} {
		var got []string
		err := Split(tc.in,
			func(l string) error { got = append(got, "L("+l+")"); return nil },
			func(n string) error {
				if n == "bad" {
					return errors.New("no such placeholder")
				}
				got = append(got, "P("+n+")")
				return nil
			})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Split(%q): %v, want error %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("Split(%q) = %q, %v; want %q", tc.in, strings.Join(got, " "), err, tc.want)
		}
	}
}
