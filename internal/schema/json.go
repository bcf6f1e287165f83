package schema

import "github.com/hamba/avro/v2"

// JSON payloads are plain JSON as devices write it, read against the Avro
// schema (not the Avro JSON encoding):
//
//   - int and long take integer literals only ("2.0" and "1e3" are refused)
//     within their ranges; float and double take any number within range.
//   - A union takes the bare value, resolved by trying, in schema order, the
//     branches that accept its JSON kind; the {"type": value} wrapper of the
//     Avro JSON encoding is not used.
//   - bytes and fixed take a string whose characters are all U+0000..U+00FF,
//     one per byte (the Avro JSON convention); a fixed needs exactly its size.
//   - decimal (bytes or fixed) takes a number or a string of plain digits,
//     checked against precision and scale.
//   - Logical types are checked on their Avro representation: date and
//     timestamps are integers (days, ms, µs since the epoch), time-millis and
//     time-micros lie within one day, uuid is the 8-4-4-4-12 hex form.
//   - A missing field is accepted only if the schema gives it a default; a
//     key the record does not define is refused unless allow_unknown_fields.

type kind uint8

const (
	kNull kind = 1 << iota
	kBool
	kNumber
	kString
	kObject
	kArray
)

// accepts is the set of JSON kinds a schema can take, for union resolution.
func accepts(s avro.Schema) kind {
	s = resolve(s)
	switch s.Type() {
	case avro.Null:
		return kNull
	case avro.Boolean:
		return kBool
	case avro.Int, avro.Long, avro.Float, avro.Double:
		return kNumber
	case avro.String, avro.Enum:
		return kString
	case avro.Bytes, avro.Fixed:
		if decimalOf(s) != nil {
			return kString | kNumber
		}
		return kString
	case avro.Array:
		return kArray
	case avro.Map, avro.Record:
		return kObject
	}
	return 0
}
