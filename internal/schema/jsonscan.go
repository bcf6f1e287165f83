package schema

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/edgegw/edgegw/internal/jsontok"
	"github.com/hamba/avro/v2"
)

// The JSON checker runs on the payload bytes, not on a decoded map: decoding
// into map[string]any cost ~8 µs and 60 allocations for the 10-field
// fixture, nearly all of the validation. json.Valid (no allocation) first
// rejects malformed input, so the scanner may assume well-formed JSON and
// only skips and compares. It keeps encoding/json's meaning exactly: a
// repeated object key counts once, with its last value; strings compare after
// unescaping, invalid UTF-8 reading as U+FFFD. jsonRef in the tests is the
// decoded-map checker it is cross-checked against.

type jscan struct {
	b []byte
	i int
}

type scanCheck func(j *jscan) *fieldErr

func (c *compiler) scanRoot(s avro.Schema) func(payload []byte) *ValidationError {
	check := c.scan(s)
	return func(payload []byte) *ValidationError {
		if !json.Valid(payload) {
			if _, err := decodeJSON(payload); err != nil {
				return err // its text says where and why
			}
			return &ValidationError{Code: CodeSyntax, Reason: "payload is not JSON"}
		}
		j := &jscan{b: payload, i: jsontok.SkipSpace(payload, 0)}
		if err := check(j); err != nil {
			return err.validationError()
		}
		return nil
	}
}

func kindAt(c byte) kind {
	switch c {
	case 'n':
		return kNull
	case 't', 'f':
		return kBool
	case '"':
		return kString
	case '{':
		return kObject
	case '[':
		return kArray
	}
	return kNumber
}

// token returns the value at j.i and moves past it.
func (j *jscan) token() []byte {
	start := j.i
	j.i = jsontok.SkipValue(j.b, j.i)
	return j.b[start:j.i]
}

// describeAt names the value at offset i as describe names a decoded one.
func describeAt(b []byte, i int) string {
	tok := b[i:jsontok.SkipValue(b, i)]
	switch tok[0] {
	case 'n':
		return "null"
	case 't':
		return "boolean true"
	case 'f':
		return "boolean false"
	case '"':
		return "string " + strconv.Quote(clip(unquote(tok)))
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "number " + clip(string(tok))
}

func wrongTypeAt(s avro.Schema, j *jscan) *fieldErr {
	return fail(CodeType, "want %s, got %s", typeName(s), describeAt(j.b, j.i))
}

// unquote decodes a valid JSON string token.
func unquote(tok []byte) string {
	s, _ := jsontok.Unquote(tok) // cannot fail: the payload passed json.Valid
	return s
}

func (c *compiler) scan(s avro.Schema) scanCheck {
	s = resolve(s)
	switch s.Type() {
	case avro.Null:
		return func(j *jscan) *fieldErr {
			if j.b[j.i] != 'n' {
				return wrongTypeAt(s, j)
			}
			j.i += len("null")
			return nil
		}
	case avro.Boolean:
		return func(j *jscan) *fieldErr {
			if kindAt(j.b[j.i]) != kBool {
				return wrongTypeAt(s, j)
			}
			j.token()
			return nil
		}
	case avro.Int, avro.Long:
		check := intCheck(s)
		return func(j *jscan) *fieldErr {
			if kindAt(j.b[j.i]) != kNumber {
				return wrongTypeAt(s, j)
			}
			tok := j.token()
			i, err := strconv.ParseInt(string(tok), 10, 64)
			if err != nil {
				if errors.Is(err, strconv.ErrRange) {
					return fail(CodeRange, "value %s out of range for %s", clip(string(tok)), typeName(s))
				}
				return fail(CodeType, "value %s is not an integer, want %s", clip(string(tok)), typeName(s))
			}
			return check(i)
		}
	case avro.Float, avro.Double:
		bits := 64
		if s.Type() == avro.Float {
			bits = 32
		}
		return func(j *jscan) *fieldErr {
			if kindAt(j.b[j.i]) != kNumber {
				return wrongTypeAt(s, j)
			}
			tok := j.token()
			if _, err := strconv.ParseFloat(string(tok), bits); err != nil {
				return fail(CodeRange, "value %s out of range for %s", clip(string(tok)), typeName(s))
			}
			return nil
		}
	case avro.String:
		isUUID := logicalType(s) == avro.UUID
		return func(j *jscan) *fieldErr {
			if j.b[j.i] != '"' {
				return wrongTypeAt(s, j)
			}
			tok := j.token()
			if isUUID {
				return checkUUID(unquote(tok))
			}
			return nil
		}
	case avro.Bytes, avro.Fixed:
		return c.scanBytes(s)
	case avro.Enum:
		e := s.(*avro.EnumSchema)
		check := enumCheck(e)
		set := make(map[string]struct{}, len(e.Symbols()))
		for _, sym := range e.Symbols() {
			set[sym] = struct{}{}
		}
		return func(j *jscan) *fieldErr {
			if j.b[j.i] != '"' {
				return wrongTypeAt(s, j)
			}
			tok := j.token()
			if inner := tok[1 : len(tok)-1]; jsontok.Plain(inner) {
				if _, ok := set[string(inner)]; ok { // no allocation
					return nil
				}
			}
			return check(unquote(tok))
		}
	case avro.Array:
		items := c.scan(s.(*avro.ArraySchema).Items())
		return func(j *jscan) *fieldErr {
			if j.b[j.i] != '[' {
				return wrongTypeAt(s, j)
			}
			j.i = jsontok.SkipSpace(j.b, j.i+1)
			for n := 0; j.b[j.i] != ']'; n++ {
				if err := items(j); err != nil {
					return err.in(indexSeg(n))
				}
				j.i = jsontok.SkipSpace(j.b, j.i)
				if j.b[j.i] == ',' {
					j.i = jsontok.SkipSpace(j.b, j.i+1)
				}
			}
			j.i++
			return nil
		}
	case avro.Map:
		return c.scanMap(s.(*avro.MapSchema))
	case avro.Union:
		return c.scanUnion(s.(*avro.UnionSchema))
	case avro.Record:
		return c.scanNamedRecord(s.(*avro.RecordSchema))
	}
	err := unsupported(s)
	return func(*jscan) *fieldErr { return fail(CodeType, "%v", err) }
}

func (c *compiler) scanBytes(s avro.Schema) scanCheck {
	if d := decimalOf(s); d != nil {
		return func(j *jscan) *fieldErr {
			switch kindAt(j.b[j.i]) {
			case kNumber:
				return checkDecimal(string(j.token()), d)
			case kString:
				return checkDecimal(unquote(j.token()), d)
			}
			return wrongTypeAt(s, j)
		}
	}
	size := -1
	if f, ok := s.(*avro.FixedSchema); ok {
		size = f.Size()
	}
	return func(j *jscan) *fieldErr {
		if j.b[j.i] != '"' {
			return wrongTypeAt(s, j)
		}
		tok := j.token()
		var n int
		var ok bool
		if inner := tok[1 : len(tok)-1]; jsontok.Plain(inner) {
			n, ok = latin1Bytes(inner)
		} else {
			n, ok = latin1(unquote(tok))
		}
		if !ok {
			return fail(CodeFormat, "string for %s has a character above U+00FF; each character stands for one byte", typeName(s))
		}
		if size >= 0 && n != size {
			return fail(CodeFormat, "%d bytes, %s holds exactly %d", n, typeName(s), size)
		}
		return nil
	}
}

// latin1Bytes is latin1 for valid UTF-8 bytes, without converting them.
func latin1Bytes(b []byte) (int, bool) {
	n := 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r > 0xFF {
			return 0, false
		}
		b = b[size:]
		n++
	}
	return n, true
}

// members calls fn for each member of the object at j.i, with the key token
// and the value's offset, and leaves j.i past the object.
func (j *jscan) members(fn func(key []byte, at int)) {
	j.i = jsontok.SkipSpace(j.b, j.i+1)
	for j.b[j.i] != '}' {
		kend := jsontok.SkipString(j.b, j.i)
		key := j.b[j.i:kend]
		j.i = jsontok.SkipSpace(j.b, kend)
		j.i = jsontok.SkipSpace(j.b, j.i+1) // past ':'
		fn(key, j.i)
		j.i = jsontok.SkipSpace(j.b, jsontok.SkipValue(j.b, j.i))
		if j.b[j.i] == ',' {
			j.i = jsontok.SkipSpace(j.b, j.i+1)
		}
	}
	j.i++
}

func (c *compiler) scanMap(m *avro.MapSchema) scanCheck {
	values := c.scan(m.Values())
	return func(j *jscan) *fieldErr {
		if j.b[j.i] != '{' {
			return wrongTypeAt(m, j)
		}
		start := j.i
		failed := false
		sub := &jscan{b: j.b} // one per map: j itself walks the members
		j.members(func(_ []byte, at int) {
			if failed {
				return
			}
			sub.i = at
			failed = values(sub) != nil
		})
		if !failed {
			return nil
		}
		// Rare path: decide as the decoded map would (the last value of a
		// repeated key counts) and report the first bad key in sorted order.
		last := map[string]int{}
		end := j.i
		j.i = start
		j.members(func(key []byte, at int) { last[unquote(key)] = at })
		j.i = end
		for _, k := range slices.Sorted(maps.Keys(last)) {
			sub.i = last[k]
			if err := values(sub); err != nil {
				return err.in(keySeg(k))
			}
		}
		return nil
	}
}

func (c *compiler) scanUnion(u *avro.UnionSchema) scanCheck {
	type branch struct {
		kinds kind
		check scanCheck
	}
	branches := make([]branch, len(u.Types()))
	for i, b := range u.Types() {
		branches[i] = branch{accepts(b), c.scan(b)}
	}
	name := typeName(u)
	return func(j *jscan) *fieldErr {
		at := j.i
		k := kindAt(j.b[at])
		var last *fieldErr
		tried := 0
		for i := range branches {
			if branches[i].kinds&k == 0 {
				continue
			}
			tried++
			j.i = at
			if last = branches[i].check(j); last == nil {
				return nil
			}
		}
		j.i = at
		switch tried {
		case 0:
			return fail(CodeUnion, "want one of %s, got %s", name, describeAt(j.b, at))
		case 1:
			return last // the only candidate explains best, e.g. an int out of range
		}
		return fail(CodeUnion, "no branch of %s accepts %s", name, describeAt(j.b, at))
	}
}

func (c *compiler) scanNamedRecord(r *avro.RecordSchema) scanCheck {
	name := r.FullName()
	if p, ok := c.scanNamed[name]; ok {
		// Being compiled (a recursive reference) or already compiled.
		return func(j *jscan) *fieldErr { return (*p)(j) }
	}
	if c.scanNamed == nil {
		c.scanNamed = make(map[string]*scanCheck)
	}
	p := new(scanCheck)
	c.scanNamed[name] = p
	*p = c.scanRecord(r)
	return *p
}

// maxStackFields is how many fields a record may have before its per-call
// offset table moves from the stack to the heap; telemetry records are
// smaller.
const maxStackFields = 32

func (c *compiler) scanRecord(r *avro.RecordSchema) scanCheck {
	type field struct {
		seg      string
		check    scanCheck
		optional bool
		nullable bool
	}
	fields := make([]field, len(r.Fields()))
	index := make(map[string]int, len(fields))
	for i, f := range r.Fields() {
		fields[i] = field{fieldSeg(f.Name()), c.scan(f.Type()), f.HasDefault(), nullable(f.Type())}
		index[f.Name()] = i
	}
	allowUnknown := c.allowUnknown
	name := r.FullName()
	return func(j *jscan) *fieldErr {
		if j.b[j.i] != '{' {
			return fail(CodeType, "want record %s (a JSON object), got %s", name, describeAt(j.b, j.i))
		}
		var stack [maxStackFields]int
		var at []int
		if len(fields) <= maxStackFields {
			at = stack[:len(fields)]
		} else {
			at = make([]int, len(fields))
		}
		for i := range at {
			at[i] = -1
		}
		// First pass: where each field's (last) value is, and whether any
		// key is unknown.
		start := j.i
		unknown := false
		j.members(func(key []byte, pos int) {
			var i int
			var ok bool
			if inner := key[1 : len(key)-1]; jsontok.Plain(inner) {
				i, ok = index[string(inner)] // no allocation
			} else {
				i, ok = index[unquote(key)]
			}
			if ok {
				at[i] = pos
			} else {
				unknown = true
			}
		})
		end := j.i
		// Then the fields in schema order, as the decoded-map checker does.
		for i := range fields {
			f := &fields[i]
			if at[i] < 0 {
				if f.optional {
					continue
				}
				if f.nullable {
					return fail(CodeMissing, `missing required field (it is nullable but has no default; "default": null in the schema makes it optional)`).in(f.seg)
				}
				return fail(CodeMissing, "missing required field").in(f.seg)
			}
			j.i = at[i]
			if err := f.check(j); err != nil {
				return err.in(f.seg)
			}
		}
		j.i = end
		if unknown && !allowUnknown {
			var keys []string
			j.i = start
			j.members(func(key []byte, _ int) {
				if k := unquote(key); !hasKey(index, k) {
					keys = append(keys, k)
				}
			})
			j.i = end
			slices.Sort(keys)
			return fail(CodeUnknown, "unknown field: record %s does not define it (allow_unknown_fields accepts extra fields)", name).in(keySeg(keys[0]))
		}
		return nil
	}
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}
