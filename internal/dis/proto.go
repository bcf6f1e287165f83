package dis

// Protobuf form of PutRecords and GetRecords (COMPAT-NOTES part b). The schema
// is proto2 with required fields and field numbers unique across messages; it
// is hand-encoded with protowire so that required fields are always written
// (a proto3-style encoder drops failedRecordCount=0 and the Java SDK then
// rejects every successful reply) and no generated code is needed.

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// ContentTypeProtobuf is the Content-Type of protobuf requests. Clients send it
// with a charset parameter; match with IsProtobufContentType.
const ContentTypeProtobuf = "application/x-protobuf"

// Field numbers of the DIS protobuf schema.
const (
	pbPutReqStreamName    = 1
	pbPutReqRecords       = 2
	pbEntryData           = 3
	pbEntryExplicitHash   = 4
	pbEntryPartitionKey   = 5
	pbEntryPartitionID    = 6
	pbEntryExtendedInfo   = 7
	pbGetResNextIterator  = 14
	pbGetResRecords       = 16
	pbRecordPartitionKey  = 17
	pbRecordSequence      = 18
	pbRecordData          = 19
	pbPutResFailedCount   = 21
	pbPutResRecords       = 22
	pbResShardID          = 23
	pbResSequenceNumber   = 24
	pbResErrorCode        = 25
	pbResErrorMessage     = 26
	pbRecordTimestamp     = 27
	pbRecordTimestampType = 28
	pbEntryTimestamp      = 29
	pbPutReqStreamID      = 30
)

// ErrProtobuf wraps every protobuf decoding failure.
var ErrProtobuf = errors.New("invalid protobuf body")

// MarshalPutRecordsRequestProto encodes a PutRecords request.
func MarshalPutRecordsRequestProto(r *PutRecordsRequest) []byte {
	var b []byte
	b = appendString(b, pbPutReqStreamName, r.StreamName)
	for i := range r.Records {
		e := &r.Records[i]
		var m []byte
		m = protowire.AppendTag(m, pbEntryData, protowire.BytesType)
		m = protowire.AppendBytes(m, e.Data)
		m = appendOptString(m, pbEntryExplicitHash, e.ExplicitHashKey)
		m = appendOptString(m, pbEntryPartitionKey, e.PartitionKey)
		m = appendOptString(m, pbEntryPartitionID, e.PartitionID)
		if e.Timestamp != 0 {
			m = protowire.AppendTag(m, pbEntryTimestamp, protowire.VarintType)
			m = protowire.AppendVarint(m, uint64(e.Timestamp))
		}
		b = protowire.AppendTag(b, pbPutReqRecords, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	b = appendOptString(b, pbPutReqStreamID, r.StreamID)
	return b
}

// UnmarshalPutRecordsRequestProto decodes a PutRecords request. Empty strings
// stay empty (they mean absent, COMPAT-NOTES part b point 3). extendedInfo
// (small-file upload) is skipped.
func UnmarshalPutRecordsRequestProto(b []byte) (*PutRecordsRequest, error) {
	r := &PutRecordsRequest{}
	err := walk(b, "PutRecordsRequest", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case pbPutReqStreamName:
			return str(typ, v, &r.StreamName, "streamName")
		case pbPutReqStreamID:
			return str(typ, v, &r.StreamID, "streamId")
		case pbPutReqRecords:
			if typ != protowire.BytesType {
				return wrongType("records")
			}
			var e PutRecordsRequestEntry
			err := walk(v, "PutRecordsRequestEntry", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case pbEntryData:
					if typ != protowire.BytesType {
						return wrongType("records.data")
					}
					e.Data = append([]byte{}, v...)
				case pbEntryExplicitHash:
					return str(typ, v, &e.ExplicitHashKey, "records.explicitHashKey")
				case pbEntryPartitionKey:
					return str(typ, v, &e.PartitionKey, "records.partitionKey")
				case pbEntryPartitionID:
					return str(typ, v, &e.PartitionID, "records.partitionId")
				case pbEntryTimestamp:
					if typ != protowire.VarintType {
						return wrongType("records.timestamp")
					}
					e.Timestamp = int64(x)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if e.Data == nil {
				e.Data = []byte{}
			}
			r.Records = append(r.Records, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// MarshalPutRecordsResponseProto encodes a PutRecords reply; failedRecordCount
// (required) is always written.
func MarshalPutRecordsResponseProto(r *PutRecordsResponse) []byte {
	var b []byte
	b = protowire.AppendTag(b, pbPutResFailedCount, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(int32(r.FailedRecordCount))))
	for _, e := range r.Records {
		var m []byte
		m = appendOptString(m, pbResShardID, e.PartitionID)
		m = appendOptString(m, pbResSequenceNumber, e.SequenceNumber)
		m = appendOptString(m, pbResErrorCode, e.ErrorCode)
		m = appendOptString(m, pbResErrorMessage, e.ErrorMessage)
		b = protowire.AppendTag(b, pbPutResRecords, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// UnmarshalPutRecordsResponseProto decodes a PutRecords reply and, like the
// Java SDK's builder, fails when the required failedRecordCount is absent.
func UnmarshalPutRecordsResponseProto(b []byte) (*PutRecordsResponse, error) {
	r := &PutRecordsResponse{}
	var haveCount bool
	err := walk(b, "PutRecordsResult", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case pbPutResFailedCount:
			if typ != protowire.VarintType {
				return wrongType("failedRecordCount")
			}
			haveCount, r.FailedRecordCount = true, int(int32(x))
		case pbPutResRecords:
			if typ != protowire.BytesType {
				return wrongType("records")
			}
			var e PutRecordsResultEntry
			err := walk(v, "PutRecordsResultEntry", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch num {
				case pbResShardID:
					return str(typ, v, &e.PartitionID, "records.shardId")
				case pbResSequenceNumber:
					return str(typ, v, &e.SequenceNumber, "records.sequenceNumber")
				case pbResErrorCode:
					return str(typ, v, &e.ErrorCode, "records.errorCode")
				case pbResErrorMessage:
					return str(typ, v, &e.ErrorMessage, "records.errorMessage")
				}
				return nil
			})
			if err != nil {
				return err
			}
			r.Records = append(r.Records, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveCount {
		return nil, fmt.Errorf("%w: PutRecordsResult: required field failedRecordCount missing", ErrProtobuf)
	}
	return r, nil
}

// MarshalGetRecordsResponseProto encodes a GetRecords reply; nextShardIterator
// and every record's sequenceNumber (required) are always written.
func MarshalGetRecordsResponseProto(r *GetRecordsResponse) []byte {
	var b []byte
	b = appendString(b, pbGetResNextIterator, r.NextPartitionCursor)
	for _, rec := range r.Records {
		var m []byte
		m = appendOptString(m, pbRecordPartitionKey, rec.PartitionKey)
		m = appendString(m, pbRecordSequence, rec.SequenceNumber)
		m = protowire.AppendTag(m, pbRecordData, protowire.BytesType)
		m = protowire.AppendBytes(m, rec.Data)
		m = protowire.AppendTag(m, pbRecordTimestamp, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(rec.Timestamp))
		m = appendOptString(m, pbRecordTimestampType, rec.TimestampType)
		b = protowire.AppendTag(b, pbGetResRecords, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// UnmarshalGetRecordsResponseProto decodes a GetRecords reply, failing on a
// missing required field as the Java SDK does.
func UnmarshalGetRecordsResponseProto(b []byte) (*GetRecordsResponse, error) {
	r := &GetRecordsResponse{Records: []Record{}}
	var haveNext bool
	err := walk(b, "GetRecordsResult", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case pbGetResNextIterator:
			haveNext = true
			return str(typ, v, &r.NextPartitionCursor, "nextShardIterator")
		case pbGetResRecords:
			if typ != protowire.BytesType {
				return wrongType("records")
			}
			var rec Record
			var haveSeq bool
			err := walk(v, "Record", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case pbRecordPartitionKey:
					return str(typ, v, &rec.PartitionKey, "records.partitionKey")
				case pbRecordSequence:
					haveSeq = true
					return str(typ, v, &rec.SequenceNumber, "records.sequenceNumber")
				case pbRecordData:
					if typ != protowire.BytesType {
						return wrongType("records.data")
					}
					rec.Data = append([]byte{}, v...)
				case pbRecordTimestamp:
					if typ != protowire.VarintType {
						return wrongType("records.timestamp")
					}
					rec.Timestamp = int64(x)
				case pbRecordTimestampType:
					return str(typ, v, &rec.TimestampType, "records.timestampType")
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !haveSeq {
				return fmt.Errorf("%w: Record: required field sequenceNumber missing", ErrProtobuf)
			}
			r.Records = append(r.Records, rec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveNext {
		return nil, fmt.Errorf("%w: GetRecordsResult: required field nextShardIterator missing", ErrProtobuf)
	}
	return r, nil
}

// walk calls fn for every field of one message. v holds the payload of
// length-delimited fields, x the value of varint and fixed fields. Groups are
// rejected: the schema has none.
func walk(b []byte, msg string, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %s: %v", ErrProtobuf, msg, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("%w: %s: field %d has unsupported wire type %d", ErrProtobuf, msg, num, typ)
		}
		if n < 0 {
			return fmt.Errorf("%w: %s: field %d: %v", ErrProtobuf, msg, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func str(typ protowire.Type, v []byte, dst *string, field string) error {
	if typ != protowire.BytesType {
		return wrongType(field)
	}
	*dst = string(v)
	return nil
}

func wrongType(field string) error {
	return fmt.Errorf("%w: field %s has the wrong wire type", ErrProtobuf, field)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendOptString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, num, s)
}

// IsProtobufContentType reports whether a Content-Type header selects the
// protobuf form ("application/x-protobuf", with or without a charset).
func IsProtobufContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), ContentTypeProtobuf)
}
