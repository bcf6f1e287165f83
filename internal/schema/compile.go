package schema

import (
	"fmt"
	"math"
	"strings"

	"github.com/hamba/avro/v2"
)

// compiler walks one parsed Avro schema into checker closures. Named types
// are compiled once and shared; a recursive record refers to itself through
// an indirection filled in when its compilation finishes.
type compiler struct {
	allowUnknown bool
	scanNamed    map[string]*scanCheck
	binNamed     map[string]*binCheck
	minNamed     map[string]int
}

// resolve follows a reference to its named schema.
func resolve(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// typeName names a schema in messages: "int", "long (timestamp-millis)",
// "com.acme.Reading", "array", "[null, int]".
func typeName(s avro.Schema) string {
	s = resolve(s)
	switch t := s.(type) {
	case avro.NamedSchema:
		return t.FullName()
	case *avro.UnionSchema:
		names := make([]string, len(t.Types()))
		for i, b := range t.Types() {
			names[i] = typeName(b)
		}
		return "[" + strings.Join(names, ", ") + "]"
	}
	name := string(s.Type())
	if lt := logicalType(s); lt != "" {
		name += " (" + string(lt) + ")"
	}
	return name
}

func logicalType(s avro.Schema) avro.LogicalType {
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		return l.Logical().Type()
	}
	return ""
}

func decimalOf(s avro.Schema) *avro.DecimalLogicalSchema {
	if l, ok := s.(avro.LogicalTypeSchema); ok {
		if d, ok := l.Logical().(*avro.DecimalLogicalSchema); ok {
			return d
		}
	}
	return nil
}

// nullable reports whether a union has a null branch.
func nullable(s avro.Schema) bool {
	u, ok := resolve(s).(*avro.UnionSchema)
	if !ok {
		return false
	}
	for _, b := range u.Types() {
		if b.Type() == avro.Null {
			return true
		}
	}
	return false
}

// Integer checks shared by the JSON, CSV and Avro-binary walkers. The Avro
// types' own ranges come first; logical types add what a value may mean
// (a time of day lies within one day).

const (
	msPerDay = 24 * 60 * 60 * 1000
	usPerDay = msPerDay * 1000
)

func intCheck(s avro.Schema) func(n int64) *fieldErr {
	lt := logicalType(s)
	name := typeName(s)
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if s.Type() == avro.Int {
		lo, hi = math.MinInt32, math.MaxInt32
	}
	switch lt {
	case avro.TimeMillis:
		lo, hi = 0, msPerDay-1
	case avro.TimeMicros:
		lo, hi = 0, usPerDay-1
	}
	return func(n int64) *fieldErr {
		if n < lo || n > hi {
			if lt == avro.TimeMillis || lt == avro.TimeMicros {
				return fail(CodeFormat, "value %d is not a time of day for %s (0 to %d)", n, name, hi)
			}
			return fail(CodeRange, "value %d out of range for %s", n, name)
		}
		return nil
	}
}

// checkUUID accepts the textual form 8-4-4-4-12 hex digits (RFC 9562), the
// only form the Avro uuid logical type names.
func checkUUID(s string) *fieldErr {
	const dashes = "8-13-18-23"
	if len(s) != 36 {
		return fail(CodeFormat, "%q is not a UUID (want 8-4-4-4-12 hex digits)", clip(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return fail(CodeFormat, "%q is not a UUID (want dashes at %s)", clip(s), dashes)
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return fail(CodeFormat, "%q is not a UUID (want 8-4-4-4-12 hex digits)", clip(s))
		}
	}
	return nil
}

// checkDecimal checks a decimal written as plain digits ("-12.50") against
// precision and scale: at most scale digits after the point (trailing zeros
// aside) and at most precision-scale before it (leading zeros aside).
func checkDecimal(s string, d *avro.DecimalLogicalSchema) *fieldErr {
	t := strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(t, ".")
	if intPart == "" && frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return fail(CodeType, "%q is not a decimal number (want digits with an optional point, no exponent)", clip(s))
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > d.Scale() {
		return fail(CodeFormat, "%s has %d digits after the point, decimal(%d,%d) allows %d", clip(s), len(frac), d.Precision(), d.Scale(), d.Scale())
	}
	if len(intPart) > d.Precision()-d.Scale() {
		return fail(CodeRange, "%s has %d digits before the point, decimal(%d,%d) allows %d", clip(s), len(intPart), d.Precision(), d.Scale(), d.Precision()-d.Scale())
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// enumCheck looks a symbol up in a set built once.
func enumCheck(e *avro.EnumSchema) func(sym string) *fieldErr {
	set := make(map[string]struct{}, len(e.Symbols()))
	for _, s := range e.Symbols() {
		set[s] = struct{}{}
	}
	list := strings.Join(e.Symbols(), ", ")
	return func(sym string) *fieldErr {
		if _, ok := set[sym]; ok {
			return nil
		}
		return fail(CodeEnum, "%q is not a symbol of %s (%s)", clip(sym), e.FullName(), clip(list))
	}
}

// latin1 reports the byte length of an Avro-JSON bytes/fixed string: each
// character stands for one byte, so all must be U+0000..U+00FF.
func latin1(s string) (int, bool) {
	n := 0
	for _, r := range s {
		if r > 0xFF {
			return 0, false
		}
		n++
	}
	return n, true
}

func unsupported(s avro.Schema) error {
	return fmt.Errorf("unsupported Avro type %s", s.Type())
}
