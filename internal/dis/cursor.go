package dis

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CursorTTLMillis is how long a partition cursor is valid after it was generated
// (§5.4.2 Table 5-95: "The validity period of a cursor is 5 minutes").
const CursorTTLMillis = 5 * 60 * 1000

// maxCursorChars is the documented maximum cursor length (§5.4.2: 1 to 512
// characters). Decoding refuses longer input before allocating.
const maxCursorChars = 512

// Cursor is the content of a partition cursor. DIS clients decode cursors
// (the Kafka adapter reads getIteratorParam.starting-sequence-number), so the
// server issues them as unpadded base64url of the JSON layout of the
// reference's GetCursor example (COMPAT-NOTES facts 26-27). Nothing depends
// on secrecy: the server re-checks everything a cursor names.
type Cursor struct {
	StreamName string
	// PartitionID is the partition index in decimal, as in the reference's example.
	PartitionID string
	// CursorType is the type the position was resolved from; the server
	// issues AT_SEQUENCE_NUMBER cursors with a resolved position.
	CursorType             string
	StartingSequenceNumber string
	// GenerateTimestamp is the epoch ms the cursor was issued at.
	GenerateTimestamp int64
}

type cursorParam struct {
	StreamName             string `json:"stream-name"`
	PartitionID            string `json:"partition-id"`
	CursorType             string `json:"cursor-type"`
	StartingSequenceNumber string `json:"starting-sequence-number"`
}

type cursorJSON struct {
	GetIteratorParam  cursorParam `json:"getIteratorParam"`
	GenerateTimestamp int64       `json:"generateTimestamp"`
}

// EncodeCursor returns the wire form of c: unpadded base64url of its JSON.
func EncodeCursor(c Cursor) string {
	b, _ := json.Marshal(cursorJSON{ // cannot fail: strings and an int
		GetIteratorParam: cursorParam{
			StreamName: c.StreamName, PartitionID: c.PartitionID,
			CursorType: c.CursorType, StartingSequenceNumber: c.StartingSequenceNumber,
		},
		GenerateTimestamp: c.GenerateTimestamp,
	})
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrMalformedCursor is returned by DecodeCursor for input that is not a cursor.
var ErrMalformedCursor = errors.New("malformed partition cursor")

// DecodeCursor parses a cursor. It accepts base64url and standard base64,
// padded or not, and maps ' ' back to '+' (the Java SDK does not
// percent-encode query strings, so a '+' may arrive as a space).
func DecodeCursor(s string) (Cursor, error) {
	var c Cursor
	if s == "" || len(s) > maxCursorChars {
		return c, fmt.Errorf("%w: length %d, want 1 to %d", ErrMalformedCursor, len(s), maxCursorChars)
	}
	s = strings.TrimRight(strings.ReplaceAll(s, " ", "+"), "=")
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, fmt.Errorf("%w: not base64", ErrMalformedCursor)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var j cursorJSON
	if err := dec.Decode(&j); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformedCursor, err)
	}
	p := j.GetIteratorParam
	if p.StreamName == "" || p.PartitionID == "" || p.StartingSequenceNumber == "" || j.GenerateTimestamp <= 0 {
		return c, fmt.Errorf("%w: missing stream-name, partition-id, starting-sequence-number or generateTimestamp", ErrMalformedCursor)
	}
	if _, err := strconv.ParseUint(p.StartingSequenceNumber, 10, 63); err != nil {
		return c, fmt.Errorf("%w: starting-sequence-number %q", ErrMalformedCursor, p.StartingSequenceNumber)
	}
	if _, err := ParsePartitionID(p.PartitionID); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformedCursor, err)
	}
	return Cursor{
		StreamName: p.StreamName, PartitionID: p.PartitionID, CursorType: p.CursorType,
		StartingSequenceNumber: p.StartingSequenceNumber, GenerateTimestamp: j.GenerateTimestamp,
	}, nil
}
