package dis

import (
	"bytes"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestPutRecordsRequestProtoRoundTrip(t *testing.T) {
	in := &PutRecordsRequest{StreamName: "s", StreamID: "id", Records: []PutRecordsRequestEntry{
		{Data: []byte{0, 1, 2}, PartitionKey: "k", Timestamp: 1700000000000},
		{Data: []byte("x"), PartitionID: "shardId-0000000001", ExplicitHashKey: "42"},
		{Data: []byte{}},
	}}
	out, err := UnmarshalPutRecordsRequestProto(MarshalPutRecordsRequestProto(in))
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
}

func TestRequiredFieldsAreAlwaysWritten(t *testing.T) {
	// failedRecordCount=0 must be on the wire: proto2 required (Java builds fail otherwise).
	b := MarshalPutRecordsResponseProto(&PutRecordsResponse{})
	if !bytes.Equal(b, []byte{0xa8, 0x01, 0x00}) { // field 21 varint 0
		t.Fatalf("empty PutRecordsResult encodes as %x", b)
	}
	g := MarshalGetRecordsResponseProto(&GetRecordsResponse{Records: []Record{{SequenceNumber: "0"}}})
	r, err := UnmarshalGetRecordsResponseProto(g)
	if err != nil || r.NextPartitionCursor != "" || len(r.Records) != 1 || r.Records[0].SequenceNumber != "0" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestResponseProtoRoundTrips(t *testing.T) {
	pr := &PutRecordsResponse{FailedRecordCount: 1, Records: []PutRecordsResultEntry{
		{PartitionID: "shardId-0000000000", SequenceNumber: "7"}, {ErrorCode: "DIS.4303", ErrorMessage: "Exceeded traffic control limit."},
	}}
	got, err := UnmarshalPutRecordsResponseProto(MarshalPutRecordsResponseProto(pr))
	if err != nil || !reflect.DeepEqual(pr, got) {
		t.Fatalf("%+v %v", got, err)
	}
	gr := &GetRecordsResponse{NextPartitionCursor: "c", Records: []Record{
		{PartitionKey: "k", SequenceNumber: "1", Data: []byte("d"), Timestamp: 5, TimestampType: TimestampTypeCreateTime},
	}}
	got2, err := UnmarshalGetRecordsResponseProto(MarshalGetRecordsResponseProto(gr))
	if err != nil || !reflect.DeepEqual(gr, got2) {
		t.Fatalf("%+v %v", got2, err)
	}
}

func TestMissingRequiredFieldsAreErrors(t *testing.T) {
	if _, err := UnmarshalPutRecordsResponseProto(nil); err == nil {
		t.Error("PutRecordsResult without failedRecordCount decoded")
	}
	if _, err := UnmarshalGetRecordsResponseProto(nil); err == nil {
		t.Error("GetRecordsResult without nextShardIterator decoded")
	}
	var rec []byte
	rec = protowire.AppendTag(rec, 19, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("d"))
	var b []byte
	b = protowire.AppendTag(b, 14, protowire.BytesType)
	b = protowire.AppendString(b, "c")
	b = protowire.AppendTag(b, 16, protowire.BytesType)
	b = protowire.AppendBytes(b, rec)
	if _, err := UnmarshalGetRecordsResponseProto(b); err == nil {
		t.Error("Record without sequenceNumber decoded")
	}
}

func TestUnknownFieldsAreSkippedAndBadWireTypesRejected(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "s")
	r, err := UnmarshalPutRecordsRequestProto(b)
	if err != nil || r.StreamName != "s" {
		t.Fatalf("%+v %v", r, err)
	}
	bad := protowire.AppendTag(nil, 1, protowire.VarintType)
	bad = protowire.AppendVarint(bad, 1)
	if _, err := UnmarshalPutRecordsRequestProto(bad); err == nil {
		t.Fatal("streamName as a varint decoded")
	}
}

func FuzzUnmarshalPutRecordsRequestProto(f *testing.F) {
	f.Add(MarshalPutRecordsRequestProto(&PutRecordsRequest{StreamName: "s", Records: []PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: "k", Timestamp: 3}}}))
	f.Add([]byte{0x12, 0x05, 0x1a, 0x03, 'a', 'b'})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalPutRecordsRequestProto(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		r2, err := UnmarshalPutRecordsRequestProto(MarshalPutRecordsRequestProto(r))
		if err != nil || len(r2.Records) != len(r.Records) || r2.StreamName != r.StreamName {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzUnmarshalResponsesProto(f *testing.F) {
	f.Add(MarshalGetRecordsResponseProto(&GetRecordsResponse{NextPartitionCursor: "c", Records: []Record{{SequenceNumber: "1", Data: []byte("x")}}}))
	f.Add(MarshalPutRecordsResponseProto(&PutRecordsResponse{FailedRecordCount: 1, Records: []PutRecordsResultEntry{{ErrorCode: "DIS.4303"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = UnmarshalGetRecordsResponseProto(b)
		_, _ = UnmarshalPutRecordsResponseProto(b)
	})
}
