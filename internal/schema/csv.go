package schema

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/hamba/avro/v2"
)

// CSV payloads: one or more rows (RFC 4180 quoting, the stream's delimiter);
// column i is field i of the record schema. Cells are read as:
//
//   - int/long: a decimal integer in range; float/double: a finite number.
//   - boolean: what strconv.ParseBool takes (true/false, 1/0, t/f, any case).
//   - string and bytes: the cell text as is (no base64 or hex: a CSV stream is
//     text, and DIS passes the cell on unchanged); fixed: exactly size bytes.
//   - enum: one of the symbols; decimal: plain digits within precision/scale;
//     logical types on their Avro representation (integers for dates and
//     timestamps), as for JSON.
//   - An empty cell is null for a nullable field, the default for a field
//     with one, the empty string for a string, and an error otherwise.
//   - A row may leave out trailing columns whose fields have a default or are
//     nullable; extra columns need allow_unknown_fields.
//
// Records, arrays and maps cannot be cells: such a schema fails to compile.

type cellCheck func(s string) *fieldErr

type csvField struct {
	name       string
	check      cellCheck
	hasDefault bool
	optional   bool // may be left out at the end of a row
}

type csvSchema struct {
	fields       []csvField // nil: no schema, rows are only parsed
	header       string
	allowUnknown bool
}

func (c *compiler) csv(s avro.Schema, header string) (*csvSchema, error) {
	cs := &csvSchema{header: header, allowUnknown: c.allowUnknown}
	if s == nil {
		return cs, nil
	}
	rec, ok := resolve(s).(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("a CSV stream's schema must be a record (one field per column), got %s", typeName(s))
	}
	for _, f := range rec.Fields() {
		check, err := c.cell(f.Type())
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name(), err)
		}
		cs.fields = append(cs.fields, csvField{
			name:       f.Name(),
			check:      check,
			hasDefault: f.HasDefault(),
			optional:   f.HasDefault() || nullable(f.Type()),
		})
	}
	if len(cs.fields) == 0 {
		return nil, fmt.Errorf("record %s has no fields, so no CSV column can be checked", rec.FullName())
	}
	return cs, nil
}

func emptyCell(s avro.Schema) *fieldErr {
	return fail(CodeType, "empty cell, want %s (a default in the schema makes it optional)", typeName(s))
}

func (c *compiler) cell(s avro.Schema) (cellCheck, error) {
	s = resolve(s)
	switch s.Type() {
	case avro.Null:
		return func(v string) *fieldErr {
			if v != "" {
				return fail(CodeType, "want an empty cell for null, got %q", clip(v))
			}
			return nil
		}, nil
	case avro.Boolean:
		return func(v string) *fieldErr {
			if v == "" {
				return emptyCell(s)
			}
			if _, err := strconv.ParseBool(v); err != nil {
				return fail(CodeType, "want boolean, got %q", clip(v))
			}
			return nil
		}, nil
	case avro.Int, avro.Long:
		check := intCheck(s)
		return func(v string) *fieldErr {
			if v == "" {
				return emptyCell(s)
			}
			i, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				if errors.Is(err, strconv.ErrRange) {
					return fail(CodeRange, "value %s out of range for %s", clip(v), typeName(s))
				}
				return fail(CodeType, "want %s, got %q", typeName(s), clip(v))
			}
			return check(i)
		}, nil
	case avro.Float, avro.Double:
		bits := 64
		if s.Type() == avro.Float {
			bits = 32
		}
		return func(v string) *fieldErr {
			if v == "" {
				return emptyCell(s)
			}
			f, err := strconv.ParseFloat(v, bits)
			switch {
			case errors.Is(err, strconv.ErrRange):
				return fail(CodeRange, "value %s out of range for %s", clip(v), typeName(s))
			case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
				// NaN and Inf have no JSON form, so consumers of the stream
				// could not carry them on.
				return fail(CodeType, "want a finite %s, got %q", typeName(s), clip(v))
			}
			return nil
		}, nil
	case avro.String:
		if logicalType(s) == avro.UUID {
			return checkUUID, nil
		}
		return func(string) *fieldErr { return nil }, nil
	case avro.Bytes, avro.Fixed:
		if d := decimalOf(s); d != nil {
			return func(v string) *fieldErr {
				if v == "" {
					return emptyCell(s)
				}
				return checkDecimal(v, d)
			}, nil
		}
		if f, ok := s.(*avro.FixedSchema); ok {
			size := f.Size()
			return func(v string) *fieldErr {
				if len(v) != size {
					return fail(CodeFormat, "%d bytes, %s holds exactly %d", len(v), typeName(s), size)
				}
				return nil
			}, nil
		}
		return func(string) *fieldErr { return nil }, nil
	case avro.Enum:
		check := enumCheck(s.(*avro.EnumSchema))
		return func(v string) *fieldErr { return check(v) }, nil
	case avro.Union:
		return c.cellUnion(s.(*avro.UnionSchema))
	}
	return nil, fmt.Errorf("type %s cannot be a CSV cell", typeName(s))
}

func (c *compiler) cellUnion(u *avro.UnionSchema) (cellCheck, error) {
	var checks []cellCheck
	hasNull := false
	for _, b := range u.Types() {
		if b.Type() == avro.Null {
			hasNull = true
			continue
		}
		check, err := c.cell(b)
		if err != nil {
			return nil, err
		}
		checks = append(checks, check)
	}
	name := typeName(u)
	return func(v string) *fieldErr {
		if v == "" && hasNull {
			return nil
		}
		var last *fieldErr
		for _, check := range checks {
			if last = check(v); last == nil {
				return nil
			}
		}
		if len(checks) == 1 {
			return last
		}
		return fail(CodeUnion, "no branch of %s accepts %q", name, clip(v))
	}, nil
}

// csvBuf lets encoding/csv reuse a 4 KiB read buffer instead of allocating
// one per payload.
type csvBuf struct {
	src bytes.Reader
	buf *bufio.Reader
}

var csvBufs = sync.Pool{New: func() any {
	b := &csvBuf{}
	b.buf = bufio.NewReader(&b.src)
	return b
}}

func (v *Validator) validateCSV(payload []byte) *ValidationError {
	b := csvBufs.Get().(*csvBuf)
	b.src.Reset(payload)
	b.buf.Reset(&b.src)
	defer func() {
		b.src.Reset(nil) // do not keep the payload alive in the pool
		csvBufs.Put(b)
	}()
	r := csv.NewReader(b.buf) // reuses b.buf: it is already a large enough *bufio.Reader
	r.Comma = v.comma
	r.FieldsPerRecord = -1 // column counts are checked here, with a better message
	r.ReuseRecord = true
	cs := v.csv
	rows, data := 0, 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		rows++
		if err != nil {
			reason := err.Error()
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				reason = fmt.Sprintf("%v (line %d, column %d)", pe.Err, pe.Line, pe.Column)
			}
			return &ValidationError{Path: fmt.Sprintf("row %d", rows), Code: CodeSyntax, Reason: "not CSV: " + reason}
		}
		if rows == 1 && cs.header != HeaderNone {
			if cs.header == HeaderCheck {
				if err := cs.checkHeader(rec); err != nil {
					return err
				}
			}
			continue
		}
		data++
		if err := cs.checkRow(rec, rows); err != nil {
			return err
		}
	}
	if data == 0 {
		return &ValidationError{Code: CodeSyntax, Reason: "payload has no CSV data rows"}
	}
	return nil
}

func (cs *csvSchema) checkColumns(rec []string, row int, code Code) *ValidationError {
	n := len(cs.fields)
	if len(rec) > n && !cs.allowUnknown {
		return &ValidationError{Path: fmt.Sprintf("row %d", row), Code: code,
			Reason: fmt.Sprintf("%d columns, the schema has %d fields (allow_unknown_fields accepts extra columns)", len(rec), n)}
	}
	for i := len(rec); i < n; i++ {
		if !cs.fields[i].optional {
			return &ValidationError{Path: fmt.Sprintf("row %d", row), Code: code,
				Reason: fmt.Sprintf("%d columns, the schema has %d fields and %s (column %d) has no default", len(rec), n, cs.fields[i].name, i+1)}
		}
	}
	return nil
}

func (cs *csvSchema) checkRow(rec []string, row int) *ValidationError {
	if cs.fields == nil {
		return nil
	}
	if err := cs.checkColumns(rec, row, CodeColumns); err != nil {
		return err
	}
	for i := 0; i < len(rec) && i < len(cs.fields); i++ {
		f := &cs.fields[i]
		if rec[i] == "" && f.hasDefault {
			continue
		}
		if err := f.check(rec[i]); err != nil {
			return &ValidationError{Path: fmt.Sprintf("row %d column %d (%s)", row, i+1, f.name), Code: err.code, Reason: err.reason}
		}
	}
	return nil
}

func (cs *csvSchema) checkHeader(rec []string) *ValidationError {
	if err := cs.checkColumns(rec, 1, CodeHeader); err != nil {
		return err
	}
	for i := 0; i < len(rec) && i < len(cs.fields); i++ {
		if rec[i] != cs.fields[i].name {
			return &ValidationError{Path: fmt.Sprintf("row 1 column %d (%s)", i+1, cs.fields[i].name), Code: CodeHeader,
				Reason: fmt.Sprintf("header %q, want the field name %q", clip(rec[i]), cs.fields[i].name)}
		}
	}
	return nil
}
