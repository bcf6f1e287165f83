package dis

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCursorRoundTripAndLayout(t *testing.T) {
	c := Cursor{StreamName: "jzc", PartitionID: "0", CursorType: CursorAtSequenceNumber, StartingSequenceNumber: "10", GenerateTimestamp: 1506159563405}
	s := EncodeCursor(c)
	if strings.ContainsAny(s, "+/=") {
		t.Fatalf("cursor %q is not unpadded base64url", s)
	}
	// The Kafka adapter decodes the layout of the reference's GetCursor example.
	raw, _ := base64.RawURLEncoding.DecodeString(s)
	var j map[string]any
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatal(err)
	}
	p := j["getIteratorParam"].(map[string]any)
	if p["starting-sequence-number"] != "10" || p["stream-name"] != "jzc" || p["partition-id"] != "0" || p["cursor-type"] != "AT_SEQUENCE_NUMBER" || j["generateTimestamp"] != 1506159563405.0 {
		t.Fatalf("layout %s", raw)
	}
	got, err := DecodeCursor(s)
	if err != nil || got != c {
		t.Fatalf("DecodeCursor = %+v, %v", got, err)
	}
}

func TestDecodeCursorAcceptsTheReferenceExample(t *testing.T) {
	// §5.4.3 example, standard padded base64.
	ex := "eyJnZXRJdGVyYXRvclBhcmFtIjp7InN0cmVhbS1uYW1lIjoianpjIiwicGFydGl0aW9uLWlkIjoiMCIsImN1cnNvci10eXBlIjoiQVRfU0VRVUVOQ0VfTlVNQkVSIiwic3RhcnRpbmctc2VxdWVuY2UtbnVtYmVyIjoiMTAifSwiZ2VuZXJhdGVUaW1lc3RhbXAiOjE1MDYxNTk1NjM0MDV9"
	c, err := DecodeCursor(ex)
	if err != nil || c.StreamName != "jzc" || c.StartingSequenceNumber != "10" || c.GenerateTimestamp != 1506159563405 {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, in := range map[string]string{
		"empty":             "",
		"too long":          strings.Repeat("A", 513),
		"not base64":        "!!!",
		"not JSON":          enc("hello"),
		"missing sequence":  enc(`{"getIteratorParam":{"stream-name":"s","partition-id":"0"},"generateTimestamp":1}`),
		"negative sequence": enc(`{"getIteratorParam":{"stream-name":"s","partition-id":"0","starting-sequence-number":"-1"},"generateTimestamp":1}`),
		"bad partition":     enc(`{"getIteratorParam":{"stream-name":"s","partition-id":"x","starting-sequence-number":"1"},"generateTimestamp":1}`),
		"no timestamp":      enc(`{"getIteratorParam":{"stream-name":"s","partition-id":"0","starting-sequence-number":"1"}}`),
		"unknown field":     enc(`{"getIteratorParam":{"stream-name":"s","partition-id":"0","starting-sequence-number":"1"},"generateTimestamp":1,"x":1}`),
	} {
		if _, err := DecodeCursor(in); !errors.Is(err, ErrMalformedCursor) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(Cursor{StreamName: "s", PartitionID: "1", CursorType: CursorAtSequenceNumber, StartingSequenceNumber: "5", GenerateTimestamp: 1}))
	f.Add("eyJ9")
	f.Add("a b+c/d==")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(s)
		if err != nil {
			return
		}
		// A cursor that decodes re-encodes to one that decodes to the same.
		c2, err := DecodeCursor(EncodeCursor(c))
		if err != nil || c2 != c {
			t.Fatalf("round trip %+v -> %+v (%v)", c, c2, err)
		}
	})
}
