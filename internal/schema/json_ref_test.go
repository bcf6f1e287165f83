package schema

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"

	"github.com/hamba/avro/v2"
)

// jsonRef is the straightforward JSON checker: decode with UseNumber into
// maps and walk them. The production checker (jsonscan.go) scans the bytes
// instead; this one is the reference it is cross-checked against
// (FuzzScanMatchesDecode), with identical semantics and messages.

type jsonCheck func(v any) *fieldErr

type refCompiler struct {
	allowUnknown bool
	named        map[string]*jsonCheck
}

// jsonRef compiles s into the reference checker of a whole payload.
func jsonRef(s avro.Schema, allowUnknown bool) func(payload []byte) *ValidationError {
	check := (&refCompiler{allowUnknown: allowUnknown}).json(s)
	return func(payload []byte) *ValidationError {
		val, err := decodeJSON(payload)
		if err != nil {
			return err
		}
		if fe := check(val); fe != nil {
			return fe.validationError()
		}
		return nil
	}
}

func kindOf(v any) kind {
	switch v.(type) {
	case nil:
		return kNull
	case bool:
		return kBool
	case json.Number:
		return kNumber
	case string:
		return kString
	case map[string]any:
		return kObject
	case []any:
		return kArray
	}
	return 0
}

// describe names a JSON value in a reason, quoting a short prefix of it.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case json.Number:
		return "number " + clip(string(x))
	case string:
		return "string " + strconv.Quote(clip(x))
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return "an unknown value"
}

func wrongType(s avro.Schema, v any) *fieldErr {
	return fail(CodeType, "want %s, got %s", typeName(s), describe(v))
}

func (c *refCompiler) json(s avro.Schema) jsonCheck {
	s = resolve(s)
	switch s.Type() {
	case avro.Null:
		return func(v any) *fieldErr {
			if v != nil {
				return wrongType(s, v)
			}
			return nil
		}
	case avro.Boolean:
		return func(v any) *fieldErr {
			if _, ok := v.(bool); !ok {
				return wrongType(s, v)
			}
			return nil
		}
	case avro.Int, avro.Long:
		check := intCheck(s)
		return func(v any) *fieldErr {
			n, ok := v.(json.Number)
			if !ok {
				return wrongType(s, v)
			}
			i, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				if errors.Is(err, strconv.ErrRange) {
					return fail(CodeRange, "value %s out of range for %s", clip(string(n)), typeName(s))
				}
				return fail(CodeType, "value %s is not an integer, want %s", clip(string(n)), typeName(s))
			}
			return check(i)
		}
	case avro.Float, avro.Double:
		bits := 64
		if s.Type() == avro.Float {
			bits = 32
		}
		return func(v any) *fieldErr {
			n, ok := v.(json.Number)
			if !ok {
				return wrongType(s, v)
			}
			if _, err := strconv.ParseFloat(string(n), bits); err != nil {
				return fail(CodeRange, "value %s out of range for %s", clip(string(n)), typeName(s))
			}
			return nil
		}
	case avro.String:
		isUUID := logicalType(s) == avro.UUID
		return func(v any) *fieldErr {
			str, ok := v.(string)
			if !ok {
				return wrongType(s, v)
			}
			if isUUID {
				return checkUUID(str)
			}
			return nil
		}
	case avro.Bytes, avro.Fixed:
		return c.jsonBytes(s)
	case avro.Enum:
		check := enumCheck(s.(*avro.EnumSchema))
		return func(v any) *fieldErr {
			str, ok := v.(string)
			if !ok {
				return wrongType(s, v)
			}
			return check(str)
		}
	case avro.Array:
		items := c.json(s.(*avro.ArraySchema).Items())
		return func(v any) *fieldErr {
			arr, ok := v.([]any)
			if !ok {
				return wrongType(s, v)
			}
			for i, item := range arr {
				if err := items(item); err != nil {
					return err.in(indexSeg(i))
				}
			}
			return nil
		}
	case avro.Map:
		values := c.json(s.(*avro.MapSchema).Values())
		return func(v any) *fieldErr {
			obj, ok := v.(map[string]any)
			if !ok {
				return wrongType(s, v)
			}
			for _, val := range obj {
				if values(val) != nil {
					// Report the first bad key in sorted order, so the same
					// payload always gets the same message.
					for _, k := range slices.Sorted(maps.Keys(obj)) {
						if err := values(obj[k]); err != nil {
							return err.in(keySeg(k))
						}
					}
				}
			}
			return nil
		}
	case avro.Union:
		return c.jsonUnion(s.(*avro.UnionSchema))
	case avro.Record:
		return c.jsonNamedRecord(s.(*avro.RecordSchema))
	}
	err := unsupported(s)
	return func(any) *fieldErr { return fail(CodeType, "%v", err) }
}

func (c *refCompiler) jsonBytes(s avro.Schema) jsonCheck {
	if d := decimalOf(s); d != nil {
		return func(v any) *fieldErr {
			switch x := v.(type) {
			case json.Number:
				return checkDecimal(string(x), d)
			case string:
				return checkDecimal(x, d)
			}
			return wrongType(s, v)
		}
	}
	size := -1
	if f, ok := s.(*avro.FixedSchema); ok {
		size = f.Size()
	}
	return func(v any) *fieldErr {
		str, ok := v.(string)
		if !ok {
			return wrongType(s, v)
		}
		n, ok := latin1(str)
		if !ok {
			return fail(CodeFormat, "string for %s has a character above U+00FF; each character stands for one byte", typeName(s))
		}
		if size >= 0 && n != size {
			return fail(CodeFormat, "%d bytes, %s holds exactly %d", n, typeName(s), size)
		}
		return nil
	}
}

func (c *refCompiler) jsonUnion(u *avro.UnionSchema) jsonCheck {
	type branch struct {
		kinds kind
		check jsonCheck
	}
	branches := make([]branch, len(u.Types()))
	for i, b := range u.Types() {
		branches[i] = branch{accepts(b), c.json(b)}
	}
	name := typeName(u)
	return func(v any) *fieldErr {
		k := kindOf(v)
		var last *fieldErr
		tried := 0
		for i := range branches {
			if branches[i].kinds&k == 0 {
				continue
			}
			tried++
			if last = branches[i].check(v); last == nil {
				return nil
			}
		}
		switch tried {
		case 0:
			return fail(CodeUnion, "want one of %s, got %s", name, describe(v))
		case 1:
			return last // the only candidate explains best, e.g. an int out of range
		}
		return fail(CodeUnion, "no branch of %s accepts %s", name, describe(v))
	}
}

func (c *refCompiler) jsonNamedRecord(r *avro.RecordSchema) jsonCheck {
	name := r.FullName()
	if p, ok := c.named[name]; ok {
		// Being compiled (a recursive reference) or already compiled.
		return func(v any) *fieldErr { return (*p)(v) }
	}
	if c.named == nil {
		c.named = make(map[string]*jsonCheck)
	}
	p := new(jsonCheck)
	c.named[name] = p
	*p = c.jsonRecord(r)
	return *p
}

func (c *refCompiler) jsonRecord(r *avro.RecordSchema) jsonCheck {
	type field struct {
		name     string
		seg      string
		check    jsonCheck
		optional bool
		nullable bool
	}
	fields := make([]field, len(r.Fields()))
	known := make(map[string]struct{}, len(fields))
	for i, f := range r.Fields() {
		fields[i] = field{f.Name(), fieldSeg(f.Name()), c.json(f.Type()), f.HasDefault(), nullable(f.Type())}
		known[f.Name()] = struct{}{}
	}
	allowUnknown := c.allowUnknown
	name := r.FullName()
	return func(v any) *fieldErr {
		obj, ok := v.(map[string]any)
		if !ok {
			return fail(CodeType, "want record %s (a JSON object), got %s", name, describe(v))
		}
		present := 0
		for i := range fields {
			f := &fields[i]
			fv, ok := obj[f.name]
			if !ok {
				if f.optional {
					continue
				}
				if f.nullable {
					return fail(CodeMissing, `missing required field (it is nullable but has no default; "default": null in the schema makes it optional)`).in(f.seg)
				}
				return fail(CodeMissing, "missing required field").in(f.seg)
			}
			present++
			if err := f.check(fv); err != nil {
				return err.in(f.seg)
			}
		}
		if present < len(obj) && !allowUnknown {
			return unknownField(obj, known, name)
		}
		return nil
	}
}

// unknownField reports the first (in sorted order, for a stable message) key
// of obj the record does not define.
func unknownField(obj map[string]any, known map[string]struct{}, record string) *fieldErr {
	var unknown []string
	for k := range obj {
		if _, ok := known[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	return fail(CodeUnknown, "unknown field: record %s does not define it (allow_unknown_fields accepts extra fields)", record).in(keySeg(unknown[0]))
}
