package schema

import (
	"fmt"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

// Avro binary payloads (avro_binary: true) are checked by walking the bytes
// with the compiled schema, not with hamba/avro's generic decoder: that one
// trusts block counts (an array header claiming 2^62 items loops that many
// times) and builds maps and slices nobody reads. The walker allocates
// nothing on success and bounds its work by the payload size:
//
//   - every varint is at most 10 bytes; an int must fit 32 bits;
//   - a string, bytes or fixed must fit in what is left of the payload, and
//     strings must be UTF-8;
//   - a block of items that each take at least one byte cannot claim more
//     items than bytes remain; items that take no bytes (null) are capped;
//   - nesting is capped, and the record must end exactly at the payload end.
//
// Decimal bytes are not checked against precision (that would need big
// integer arithmetic per value); logical types are checked as for JSON.

type binCheck func(d *binReader) *fieldErr

type binReader struct {
	b          []byte
	pos        int
	depth      int
	emptyItems int
}

// maxDepth bounds record nesting: real telemetry nests a few levels; a
// recursive schema must not let a payload drive the stack without limit.
const maxDepth = 256

// maxEmptyItems caps array/map items that occupy no bytes (arrays of null),
// which the payload size does not bound; no sensible record has more.
const maxEmptyItems = 1 << 16

func (d *binReader) long() (int64, *fieldErr) {
	var u uint64
	for i := uint(0); ; i++ {
		if d.pos >= len(d.b) {
			return 0, fail(CodeSyntax, "unexpected end of data")
		}
		c := d.b[d.pos]
		d.pos++
		if i == 9 && c > 1 {
			return 0, fail(CodeSyntax, "varint longer than a long")
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			break
		}
	}
	return int64(u>>1) ^ -int64(u&1), nil
}

// take returns the next n bytes.
func (d *binReader) take(n int64) ([]byte, *fieldErr) {
	if n < 0 {
		return nil, fail(CodeSyntax, "negative length %d", n)
	}
	if n > int64(len(d.b)-d.pos) {
		return nil, fail(CodeSyntax, "length %d runs past the end of the data (%d bytes left)", n, len(d.b)-d.pos)
	}
	b := d.b[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (v *Validator) validateAvro(payload []byte) *ValidationError {
	d := &binReader{b: payload}
	if err := v.avro(d); err != nil {
		return err.validationError()
	}
	if d.pos != len(payload) {
		return &ValidationError{Path: "$", Code: CodeSyntax, Reason: fmt.Sprintf("%d bytes after the end of the record", len(payload)-d.pos)}
	}
	return nil
}

// minSize is a lower bound on the encoded size of a value of s.
func (c *compiler) minSize(s avro.Schema) int {
	s = resolve(s)
	switch s.Type() {
	case avro.Null:
		return 0
	case avro.Float:
		return 4
	case avro.Double:
		return 8
	case avro.Fixed:
		return s.(*avro.FixedSchema).Size()
	case avro.Record:
		r := s.(*avro.RecordSchema)
		if n, ok := c.minNamed[r.FullName()]; ok {
			return n // 0 while r is being measured: still a lower bound
		}
		if c.minNamed == nil {
			c.minNamed = make(map[string]int)
		}
		c.minNamed[r.FullName()] = 0
		n := 0
		for _, f := range r.Fields() {
			n += c.minSize(f.Type())
		}
		c.minNamed[r.FullName()] = n
		return n
	}
	return 1 // every other encoding starts with at least one byte
}

func (c *compiler) binary(s avro.Schema) binCheck {
	s = resolve(s)
	switch s.Type() {
	case avro.Null:
		return func(*binReader) *fieldErr { return nil }
	case avro.Boolean:
		return func(d *binReader) *fieldErr {
			b, err := d.take(1)
			if err != nil {
				return err
			}
			if b[0] > 1 {
				return fail(CodeType, "boolean byte is %d, want 0 or 1", b[0])
			}
			return nil
		}
	case avro.Int, avro.Long:
		check := intCheck(s)
		return func(d *binReader) *fieldErr {
			n, err := d.long()
			if err != nil {
				return err
			}
			return check(n)
		}
	case avro.Float, avro.Double:
		size := int64(c.minSize(s))
		return func(d *binReader) *fieldErr {
			_, err := d.take(size)
			return err
		}
	case avro.String:
		isUUID := logicalType(s) == avro.UUID
		return func(d *binReader) *fieldErr {
			n, err := d.long()
			if err != nil {
				return err
			}
			b, err := d.take(n)
			if err != nil {
				return err
			}
			if !utf8.Valid(b) {
				return fail(CodeType, "string is not UTF-8")
			}
			if isUUID {
				return checkUUID(string(b))
			}
			return nil
		}
	case avro.Bytes:
		return func(d *binReader) *fieldErr {
			n, err := d.long()
			if err != nil {
				return err
			}
			_, err = d.take(n)
			return err
		}
	case avro.Fixed:
		size := int64(s.(*avro.FixedSchema).Size())
		return func(d *binReader) *fieldErr {
			_, err := d.take(size)
			return err
		}
	case avro.Enum:
		e := s.(*avro.EnumSchema)
		count := int64(len(e.Symbols()))
		return func(d *binReader) *fieldErr {
			i, err := d.long()
			if err != nil {
				return err
			}
			if i < 0 || i >= count {
				return fail(CodeEnum, "symbol index %d, enum %s has %d symbols", i, e.FullName(), count)
			}
			return nil
		}
	case avro.Array:
		items := s.(*avro.ArraySchema).Items()
		check := c.binary(items)
		return c.blocks(c.minSize(items), func(d *binReader, i int) *fieldErr {
			if err := check(d); err != nil {
				return err.in(indexSeg(i))
			}
			return nil
		})
	case avro.Map:
		values := s.(*avro.MapSchema).Values()
		check := c.binary(values)
		return c.blocks(1+c.minSize(values), func(d *binReader, _ int) *fieldErr {
			n, err := d.long()
			if err != nil {
				return err
			}
			key, err := d.take(n)
			if err != nil {
				return err
			}
			if !utf8.Valid(key) {
				return fail(CodeType, "map key is not UTF-8")
			}
			if err := check(d); err != nil {
				return err.in(keySeg(string(key)))
			}
			return nil
		})
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		checks := make([]binCheck, len(types))
		for i, t := range types {
			checks[i] = c.binary(t)
		}
		name := typeName(s)
		return func(d *binReader) *fieldErr {
			i, err := d.long()
			if err != nil {
				return err
			}
			if i < 0 || i >= int64(len(checks)) {
				return fail(CodeUnion, "branch index %d, %s has %d branches", i, name, len(checks))
			}
			return checks[i](d)
		}
	case avro.Record:
		return c.binNamedRecord(s.(*avro.RecordSchema))
	}
	err := unsupported(s)
	return func(*binReader) *fieldErr { return fail(CodeType, "%v", err) }
}

// blocks reads Avro array/map blocks: a count (negative: followed by the
// block's byte size), items, until a zero count.
func (c *compiler) blocks(itemMin int, item func(d *binReader, i int) *fieldErr) binCheck {
	return func(d *binReader) *fieldErr {
		d.depth++
		defer func() { d.depth-- }()
		if d.depth > maxDepth {
			return fail(CodeFormat, "nested deeper than %d levels", maxDepth)
		}
		i := 0
		for {
			count, err := d.long()
			if err != nil {
				return err
			}
			if count == 0 {
				return nil
			}
			var end int
			if count < 0 {
				if count == -count { // MinInt64 has no positive counterpart
					return fail(CodeSyntax, "block count %d out of range", count)
				}
				count = -count
				size, err := d.long()
				if err != nil {
					return err
				}
				if size < 0 || size > int64(len(d.b)-d.pos) {
					return fail(CodeSyntax, "block size %d does not fit the %d bytes left", size, len(d.b)-d.pos)
				}
				end = d.pos + int(size)
			}
			if itemMin > 0 && count > int64((len(d.b)-d.pos)/itemMin) {
				return fail(CodeSyntax, "block of %d items cannot fit the %d bytes left", count, len(d.b)-d.pos)
			}
			if itemMin == 0 {
				if count > int64(maxEmptyItems-d.emptyItems) {
					return fail(CodeFormat, "more than %d items that take no bytes", maxEmptyItems)
				}
				d.emptyItems += int(count)
			}
			for range count {
				if err := item(d, i); err != nil {
					return err
				}
				i++
			}
			if end != 0 && d.pos != end {
				return fail(CodeSyntax, "block items end at byte %d, its size says %d", d.pos, end)
			}
		}
	}
}

func (c *compiler) binNamedRecord(r *avro.RecordSchema) binCheck {
	name := r.FullName()
	if p, ok := c.binNamed[name]; ok {
		return func(d *binReader) *fieldErr { return (*p)(d) }
	}
	if c.binNamed == nil {
		c.binNamed = make(map[string]*binCheck)
	}
	p := new(binCheck)
	c.binNamed[name] = p
	type field struct {
		seg   string
		check binCheck
	}
	fields := make([]field, len(r.Fields()))
	for i, f := range r.Fields() {
		fields[i] = field{fieldSeg(f.Name()), c.binary(f.Type())}
	}
	*p = func(d *binReader) *fieldErr {
		d.depth++
		defer func() { d.depth-- }()
		if d.depth > maxDepth {
			return fail(CodeFormat, "nested deeper than %d levels", maxDepth)
		}
		for i := range fields {
			if err := fields[i].check(d); err != nil {
				return err.in(fields[i].seg)
			}
		}
		return nil
	}
	return *p
}
