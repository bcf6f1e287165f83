package disserver

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

const recordsPath = "/v2/" + testProject + "/records"

func putBody(stream string, entries ...putEntry) map[string]any {
	return map[string]any{"stream_name": stream, "records": entries}
}

func decodePut(t *testing.T, r reply) dis.PutRecordsResponse {
	t.Helper()
	var p dis.PutRecordsResponse
	r.decode(t, &p)
	return p
}

func TestPutRecords(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Limits.MaxRecordsPerRequest = 10; c.Limits.MaxRecordBytes = 1024 })
	e.createStream("s", 2)
	e.mustStatus(200, e.do("PUT", streamsPath+"/s", map[string]any{"stream_name": "s", "target_partition_count": 1})) // partition 1 DELETED
	entries := func(t *testing.T, r reply, want ...string) {
		t.Helper()
		p := decodePut(t, r)
		var got []string
		failed := 0
		for _, e := range p.Records {
			if e.Failed() {
				failed++
				got = append(got, e.ErrorCode)
			} else {
				got = append(got, e.PartitionID+"/"+e.SequenceNumber)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") || p.FailedRecordCount != failed {
			t.Fatalf("entries %v (failed_record_count %d), want %v", got, p.FailedRecordCount, want)
		}
	}
	runCases(t, e, []apiCase{
		{name: "results in request order with string sequence numbers", method: "POST", path: recordsPath,
			body:   putBody("s", putEntry{Data: b64("a")}, putEntry{Data: b64("b"), PartitionKey: "k"}, putEntry{Data: b64("c"), PartitionID: "shardId-0000000000"}),
			status: 200, check: func(t *testing.T, r reply) {
				entries(t, r, "shardId-0000000000/0", "shardId-0000000000/1", "shardId-0000000000/2")
			}},
		{name: "trailing slash as the Java and Python SDKs send", method: "POST", path: recordsPath + "/",
			body: putBody("s", putEntry{Data: b64("d")}), status: 200,
			check: func(t *testing.T, r reply) { entries(t, r, "shardId-0000000000/3") }},
		{name: "empty optional strings mean absent (go-dis, Python)", method: "POST", path: recordsPath,
			body:   `{"stream_name":"s","stream_id":"","records":[{"data":"` + b64("e") + `","partition_id":"","explicit_hash_key":"","partition_key":""}]}`,
			status: 200, check: func(t *testing.T, r reply) { entries(t, r, "shardId-0000000000/4") }},
		{name: "per-record errors inside HTTP 200: bad id, unknown, DELETED, too large, bad hash key", method: "POST", path: recordsPath,
			body: putBody("s",
				putEntry{Data: b64("f"), PartitionID: "shard-1"},
				putEntry{Data: b64("g"), PartitionID: "7"},
				putEntry{Data: b64("h"), PartitionID: "1"},
				putEntry{Data: b64(strings.Repeat("x", 1025))},
				putEntry{Data: b64("i"), ExplicitHashKey: "-5"},
				putEntry{Data: b64("j")}),
			status: 200, check: func(t *testing.T, r reply) {
				entries(t, r, "DIS.4201", "DIS.4302", "DIS.4302", "DIS.4300", "DIS.4300", "shardId-0000000000/5")
			}},
		{name: "unknown stream is DIS.4301", method: "POST", path: recordsPath, body: putBody("nope", putEntry{Data: b64("a")}), status: 400, code: "DIS.4301"},
		{name: "stream_id is used when stream_name finds nothing", method: "POST", path: recordsPath,
			body:   map[string]any{"stream_name": "renamed", "stream_id": streamID(t, e, "s"), "records": []putEntry{{Data: b64("k")}}},
			status: 200, check: func(t *testing.T, r reply) { entries(t, r, "shardId-0000000000/6") }},
		{name: "missing stream_name", method: "POST", path: recordsPath, body: map[string]any{"records": []putEntry{{Data: b64("a")}}}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "missing records", method: "POST", path: recordsPath, body: map[string]any{"stream_name": "s"}, status: 400, code: "DIS.4300", msg: "records"},
		{name: "no records", method: "POST", path: recordsPath, body: putBody("s"), status: 400, code: "DIS.4300", msg: "records"},
		{name: "missing data names the record", method: "POST", path: recordsPath, body: `{"stream_name":"s","records":[{"data":"YQ=="},{"partition_key":"k"}]}`, status: 400, code: "DIS.4300", msg: "records[1].data"},
		{name: "bad base64 names the record", method: "POST", path: recordsPath, body: `{"stream_name":"s","records":[{"data":"!!!"}]}`, status: 400, code: "DIS.4300", msg: "records[0].data"},
		{name: "data of the wrong JSON type names the field", method: "POST", path: recordsPath, body: `{"stream_name":"s","records":[{"data":17}]}`, status: 400, code: "DIS.4300", msg: "records.data"},
		{name: "too many records is 413", method: "POST", path: recordsPath, body: putBody("s", make([]putEntry, 11)...), status: 413},
		{name: "empty body is DIS.4202", method: "POST", path: recordsPath, body: "", status: 400, code: "DIS.4202"},
	})
	t.Run("every stored record is readable in order", func(t *testing.T) {
		recs := e.readAll("s", "0")
		var data []string
		for _, r := range recs {
			data = append(data, string(r.Data))
		}
		if strings.Join(data, "") != "abcdejk" {
			t.Fatalf("partition 0 holds %q", data)
		}
		if recs[1].PartitionKey != "k" || recs[0].PartitionKey != "" {
			t.Errorf("partition keys %q %q: returned only when written", recs[0].PartitionKey, recs[1].PartitionKey)
		}
		if recs[0].TimestampType != "CreateTime" || recs[0].Timestamp != e.clock.Now().UnixMilli() {
			t.Errorf("timestamp %d %s", recs[0].Timestamp, recs[0].TimestampType)
		}
	})
}

func streamID(t *testing.T, e *env, name string) string {
	t.Helper()
	var d dis.DescribeStreamResponse
	e.mustStatus(200, e.do("GET", streamsPath+"/"+name, nil)).decode(t, &d)
	return d.StreamID
}

func TestPartitionRouting(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 3)
	avg := int64(math.MaxInt64) / 3
	cases := []struct {
		name  string
		entry putEntry
		want  string
	}{
		{"hash 0 is partition 0", putEntry{ExplicitHashKey: "0"}, "shardId-0000000000"},
		{"hash avg is still partition 0 (ranges are (i·avg, (i+1)·avg])", putEntry{ExplicitHashKey: strconv.FormatInt(avg, 10)}, "shardId-0000000000"},
		{"hash avg+1 is partition 1", putEntry{ExplicitHashKey: strconv.FormatInt(avg+1, 10)}, "shardId-0000000001"},
		{"MaxInt64 is the last partition", putEntry{ExplicitHashKey: strconv.FormatInt(math.MaxInt64, 10)}, "shardId-0000000002"},
		{"partition_id beats explicit_hash_key", putEntry{PartitionID: "2", ExplicitHashKey: "0"}, "shardId-0000000002"},
		{"explicit_hash_key beats partition_key", putEntry{ExplicitHashKey: "0", PartitionKey: "zzz"}, "shardId-0000000000"},
	}
	// A partition key routes by MD5 → 63 bits → range, like the SDKs.
	for _, key := range []string{"device-1", "device-2", "a", "温度"} {
		h := HashPartitionKey(key)
		cases = append(cases, struct {
			name  string
			entry putEntry
			want  string
		}{"partition_key " + key, putEntry{PartitionKey: key}, dis.ShardID(partitionForHash(h, 3))})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.entry.Data = b64("x")
			got := e.put("s", tc.entry).Records[0]
			if got.PartitionID != tc.want {
				t.Fatalf("routed to %s (%s), want %s", got.PartitionID, got.ErrorCode, tc.want)
			}
		})
	}
	t.Run("MD5 hash matches the Java SDK formula", func(t *testing.T) {
		// md5("a") = 0cc175b9c0f1b6a8…; first 8 bytes big-endian & MaxInt64.
		if got, want := HashPartitionKey("a"), int64(0x0cc175b9c0f1b6a8); got != want {
			t.Fatalf("HashPartitionKey(a) = %d, want %d", got, want)
		}
	})
}

func TestGetCursor(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 2)
	for i := range 5 {
		e.put("s", putEntry{Data: b64(fmt.Sprint(i)), PartitionID: "0"})
	}
	at := func(want string) func(*testing.T, reply) {
		return func(t *testing.T, r reply) {
			t.Helper()
			var c dis.GetCursorResponse
			r.decode(t, &c)
			cur, err := dis.DecodeCursor(c.PartitionCursor)
			if err != nil {
				t.Fatal(err)
			}
			if cur.StartingSequenceNumber != want || cur.CursorType != dis.CursorAtSequenceNumber || cur.StreamName != "s" {
				t.Fatalf("cursor %+v, want position %s", cur, want)
			}
			if strings.ContainsAny(c.PartitionCursor, "+/=") || len(c.PartitionCursor) > 512 {
				t.Fatalf("cursor %q must be unpadded base64url of at most 512 characters", c.PartitionCursor)
			}
		}
	}
	p := "/v2/" + testProject + "/cursors?stream-name=s&partition-id="
	runCases(t, e, []apiCase{
		{name: "TRIM_HORIZON is the first record", method: "GET", path: p + "0&cursor-type=TRIM_HORIZON", status: 200, check: at("0")},
		{name: "LATEST is next to write", method: "GET", path: p + "0&cursor-type=LATEST", status: 200, check: at("5")},
		{name: "AT_SEQUENCE_NUMBER is the default type", method: "GET", path: p + "0&starting-sequence-number=3", status: 200, check: at("3")},
		{name: "AFTER_SEQUENCE_NUMBER is the next one", method: "GET", path: p + "shardId-0000000000&cursor-type=AFTER_SEQUENCE_NUMBER&starting-sequence-number=3", status: 200, check: at("4")},
		{name: "AT next_to_write is valid (Kafka adapter commits last+1)", method: "GET", path: p + "0&cursor-type=AT_SEQUENCE_NUMBER&starting-sequence-number=5", status: 200, check: at("5")},
		{name: "AFTER the last record is valid", method: "GET", path: p + "0&cursor-type=AFTER_SEQUENCE_NUMBER&starting-sequence-number=4", status: 200, check: at("5")},
		{name: "AT 0 of an empty partition is valid", method: "GET", path: p + "1&cursor-type=AT_SEQUENCE_NUMBER&starting-sequence-number=0", status: 200, check: at("0")},
		{name: "trailing slash", method: "GET", path: "/v2/" + testProject + "/cursors/?stream-name=s&partition-id=0&cursor-type=LATEST", status: 200, check: at("5")},
		{name: "AT beyond next is DIS.4224 with the text clients search", method: "GET", path: p + "0&starting-sequence-number=6", status: 400, code: "DIS.4224", msg: "Sequence_number out of range"},
		{name: "AFTER next is DIS.4224", method: "GET", path: p + "0&cursor-type=AFTER_SEQUENCE_NUMBER&starting-sequence-number=5", status: 400, code: "DIS.4224"},
		{name: "AFTER on an empty partition is DIS.4224", method: "GET", path: p + "1&cursor-type=AFTER_SEQUENCE_NUMBER&starting-sequence-number=0", status: 400, code: "DIS.4224"},
		{name: "malformed sequence number is DIS.4216", method: "GET", path: p + "0&starting-sequence-number=abc", status: 400, code: "DIS.4216"},
		{name: "negative sequence number is DIS.4216", method: "GET", path: p + "0&starting-sequence-number=-1", status: 400, code: "DIS.4216"},
		{name: "missing sequence number is DIS.4216", method: "GET", path: p + "0&cursor-type=AT_SEQUENCE_NUMBER", status: 400, code: "DIS.4216"},
		{name: "unknown cursor type is DIS.4215", method: "GET", path: p + "0&cursor-type=OLDEST", status: 400, code: "DIS.4215"},
		{name: "unknown stream is DIS.4301", method: "GET", path: "/v2/" + testProject + "/cursors?stream-name=x&partition-id=0&cursor-type=LATEST", status: 400, code: "DIS.4301"},
		{name: "unknown partition is DIS.4302", method: "GET", path: p + "9&cursor-type=LATEST", status: 400, code: "DIS.4302"},
		{name: "malformed partition is DIS.4201", method: "GET", path: p + "zero&cursor-type=LATEST", status: 400, code: "DIS.4201"},
		{name: "missing partition is DIS.4201", method: "GET", path: "/v2/" + testProject + "/cursors?stream-name=s&cursor-type=LATEST", status: 400, code: "DIS.4201"},
		{name: "missing stream-name is DIS.4200", method: "GET", path: "/v2/" + testProject + "/cursors?partition-id=0", status: 400, code: "DIS.4200"},
		{name: "AT_TIMESTAMP without timestamp is DIS.4300", method: "GET", path: p + "0&cursor-type=AT_TIMESTAMP", status: 400, code: "DIS.4300", msg: "timestamp"},
	})
	t.Run("AT_TIMESTAMP below retention names the timestamp to retry with", func(t *testing.T) {
		old := e.clock.Now().Add(-25 * time.Hour).UnixMilli()
		r := e.cursorReply("s", "0", dis.CursorAtTimestamp, "timestamp", strconv.FormatInt(old, 10))
		if r.status != 400 || r.errCode(t) != "DIS.4300" || !strings.Contains(r.errMsg(t), "timestamp is expired, timestamp should be larger than ") {
			t.Fatalf("status %d body %s", r.status, r.body)
		}
		var n int64
		msg := r.errMsg(t)
		fmt.Sscan(msg[strings.LastIndex(msg, " ")+1:strings.LastIndex(msg, "]")], &n)
		if n <= old {
			t.Fatalf("suggested timestamp %d is not above %d", n, old)
		}
		// The retry with the suggested number succeeds.
		e.cursor("s", "0", dis.CursorAtTimestamp, "timestamp", strconv.FormatInt(n, 10))
	})
}

func TestGetRecords(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Limits.MaxFetchBytes = 4096 })
	e.createStream("s", 1)
	for i := range 10 {
		e.put("s", putEntry{Data: b64(strings.Repeat(strconv.Itoa(i), 100))})
	}
	start := e.cursor("s", "0", dis.CursorTrimHorizon)
	t.Run("limit caps the page and next cursor continues", func(t *testing.T) {
		g := e.getRecords(start, "limit", "3")
		if len(g.Records) != 3 || g.Records[0].SequenceNumber != "0" || g.Records[2].SequenceNumber != "2" {
			t.Fatalf("got %d records", len(g.Records))
		}
		g = e.getRecords(g.NextPartitionCursor, "limit", "3")
		if g.Records[0].SequenceNumber != "3" {
			t.Fatalf("next page starts at %s", g.Records[0].SequenceNumber)
		}
	})
	t.Run("max_fetch_bytes returns whole records only", func(t *testing.T) {
		g := e.getRecords(start, "max_fetch_bytes", "250")
		if len(g.Records) != 2 {
			t.Fatalf("got %d records for 250 bytes of 100-byte records", len(g.Records))
		}
	})
	t.Run("max_fetch_bytes below one record gives an empty page at the same position", func(t *testing.T) {
		g := e.getRecords(start, "max_fetch_bytes", "99")
		if len(g.Records) != 0 {
			t.Fatalf("got %d records", len(g.Records))
		}
		c, _ := dis.DecodeCursor(g.NextPartitionCursor)
		if c.StartingSequenceNumber != "0" {
			t.Fatalf("position moved to %s", c.StartingSequenceNumber)
		}
	})
	t.Run("the server cap applies above max_fetch_bytes", func(t *testing.T) {
		g := e.getRecords(start, "max_fetch_bytes", "1000000")
		if len(g.Records) != 10 { // 1000 bytes < 4096 cap
			t.Fatalf("got %d", len(g.Records))
		}
	})
	t.Run("end of data gives an empty page with a fresh cursor", func(t *testing.T) {
		latest := e.cursor("s", "0", dis.CursorLatest)
		e.clock.Advance(time.Second)
		g := e.getRecords(latest)
		if len(g.Records) != 0 || g.NextPartitionCursor == latest {
			t.Fatalf("records %d, cursor fresh: %v", len(g.Records), g.NextPartitionCursor != latest)
		}
		c, _ := dis.DecodeCursor(g.NextPartitionCursor)
		if c.GenerateTimestamp != e.clock.Now().UnixMilli() || c.StartingSequenceNumber != "10" {
			t.Fatalf("next cursor %+v", c)
		}
	})
	t.Run("a std-base64 cursor with '+' turned into ' ' is accepted", func(t *testing.T) {
		raw, _ := base64.RawURLEncoding.DecodeString(start)
		std := base64.StdEncoding.EncodeToString(raw)
		e.getRecords(strings.ReplaceAll(std, "+", " "))
	})
	runCases(t, e, []apiCase{
		{name: "missing cursor is DIS.4217", method: "GET", path: recordsPath, status: 400, code: "DIS.4217"},
		{name: "garbage cursor is DIS.4217", method: "GET", path: recordsPath + "?partition-cursor=xyz", status: 400, code: "DIS.4217"},
		{name: "limit above 10000 is refused", method: "GET", path: recordsPath + "?limit=10001&partition-cursor=" + start, status: 400, code: "DIS.4200"},
		{name: "max_fetch_bytes 0 is refused", method: "GET", path: recordsPath + "?max_fetch_bytes=0&partition-cursor=" + start, status: 400, code: "DIS.4200"},
		{name: "app_name is accepted and ignored", method: "GET", path: recordsPath + "?app_name=a&partition-cursor=" + start, status: 200},
		{name: "cursor of another stream name is DIS.4301", method: "GET", path: recordsPath + "?partition-cursor=" + url.QueryEscape(dis.EncodeCursor(dis.Cursor{StreamName: "x", PartitionID: "0", StartingSequenceNumber: "0", GenerateTimestamp: e.clock.Now().UnixMilli()})), status: 400, code: "DIS.4301"},
		{name: "cursor beyond the end is DIS.4217", method: "GET", path: recordsPath + "?partition-cursor=" + dis.EncodeCursor(dis.Cursor{StreamName: "s", PartitionID: "0", StartingSequenceNumber: "11", GenerateTimestamp: e.clock.Now().UnixMilli()}), status: 400, code: "DIS.4217"},
	})
	t.Run("cursors expire after 5 minutes with DIS.4225", func(t *testing.T) {
		c := e.cursor("s", "0", dis.CursorTrimHorizon)
		e.clock.Advance(5 * time.Minute)
		e.getRecords(c) // exactly 5 minutes: still valid
		e.clock.Advance(time.Millisecond)
		r := e.getRecordsReply(c)
		if r.status != 400 || r.errCode(t) != "DIS.4225" {
			t.Fatalf("status %d body %s", r.status, r.body)
		}
	})
	_ = http.StatusOK
}
