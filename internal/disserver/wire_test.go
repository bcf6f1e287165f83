package disserver

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/edgegw/edgegw/internal/dis"
)

func TestFlowControl(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.FlowControl.Enabled = true
		c.FlowControl.Common = RateLimit{BytesPerSecond: 1 << 20, RecordsPerSecond: 5}
	})
	e.createStream("s", 2)
	six := func(pid string) []putEntry {
		var es []putEntry
		for range 6 {
			es = append(es, putEntry{Data: b64("x"), PartitionID: pid})
		}
		return es
	}
	t.Run("records beyond the partition rate fail with DIS.4303 inside HTTP 200", func(t *testing.T) {
		p := e.put("s", six("0")...)
		if p.FailedRecordCount != 1 || p.Records[5].ErrorCode != "DIS.4303" || !strings.Contains(p.Records[5].ErrorMessage, "Exceeded traffic control limit") {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("another partition has its own budget", func(t *testing.T) {
		if p := e.put("s", six("1")[:5]...); p.FailedRecordCount != 0 {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("once a partition throttles, later records of it in the request fail too", func(t *testing.T) {
		e.clock.Advance(200 * time.Millisecond) // one record's worth of tokens
		p := e.put("s", putEntry{Data: b64("a"), PartitionID: "0"}, putEntry{Data: b64("b"), PartitionID: "0"}, putEntry{Data: b64("c"), PartitionID: "0"})
		if p.Records[0].Failed() || !p.Records[1].Failed() || !p.Records[2].Failed() {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("the budget refills with time", func(t *testing.T) {
		e.clock.Advance(time.Second)
		if p := e.put("s", six("0")[:5]...); p.FailedRecordCount != 0 {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("a 1 MiB record passes a 1 MB/s limit", func(t *testing.T) {
		e.clock.Advance(2 * time.Second)
		big := b64(strings.Repeat("z", 1<<20))
		if p := e.put("s", putEntry{Data: big, PartitionID: "1"}); p.FailedRecordCount != 0 {
			t.Fatalf("%+v", p.Records[0])
		}
	})
}

func TestRequestRateLimit(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.FlowControl.RequestsPerSecond = 2 })
	e.createStream("s", 1)
	e.put("s", putEntry{Data: b64("a")})
	e.put("s", putEntry{Data: b64("b")})
	r := e.do("POST", recordsPath, putBody("s", putEntry{Data: b64("c")}))
	if r.status != 429 || r.errCode(t) != "DIS.4303" || r.header.Get("Retry-After") == "" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.clock.Advance(500 * time.Millisecond)
	e.put("s", putEntry{Data: b64("d")})
}

func TestFaultInjection(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Faults = Faults{FailEveryNthRecord: 3, RejectEveryNthRequest: 4} })
	e.createStream("s", 1)
	t.Run("every 3rd record fails with DIS.4303, counted across requests", func(t *testing.T) {
		var codes []string
		for range 3 { // requests 1-3
			p := e.put("s", putEntry{Data: b64("a")}, putEntry{Data: b64("b")})
			for _, r := range p.Records {
				codes = append(codes, r.ErrorCode)
			}
		}
		// Counted record 3 fails and takes the next record (same partition,
		// same request, not counted) with it; the third request holds counted 4 and 5.
		if strings.Join(codes, ",") != ",,DIS.4303,DIS.4303,," {
			t.Fatalf("codes %q", codes)
		}
	})
	t.Run("every 4th request is 429", func(t *testing.T) {
		r := e.do("POST", recordsPath, putBody("s", putEntry{Data: b64("a")}))
		if r.status != 429 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("later records of a failed record's partition fail too, uncounted", func(t *testing.T) {
		p := e.put("s", putEntry{Data: b64("a")}, putEntry{Data: b64("b")}, putEntry{Data: b64("c")}) // counted 6 fails
		for _, r := range p.Records {
			if r.ErrorCode != "DIS.4303" {
				t.Fatalf("%+v", p.Records)
			}
		}
		p = e.put("s", putEntry{Data: b64("a")}, putEntry{Data: b64("b")}, putEntry{Data: b64("c")}) // counted 7, 8, 9
		if p.Records[0].Failed() || p.Records[1].Failed() || p.Records[2].ErrorCode != "DIS.4303" {
			t.Fatalf("%+v", p.Records)
		}
	})
	t.Run("sequence numbers stay dense across injected failures", func(t *testing.T) {
		recs := e.readAll("s", "0")
		for i, r := range recs {
			if r.SequenceNumber != strconv.Itoa(i) {
				t.Fatalf("record %d has sequence %s", i, r.SequenceNumber)
			}
		}
		if len(recs) != 6 {
			t.Fatalf("%d records stored, want 6", len(recs))
		}
	})
	t.Run("SetFaults switches faults off and resets the counters", func(t *testing.T) {
		if err := e.s.SetFaults(Faults{}); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if p := e.put("s", putEntry{Data: b64("a")}, putEntry{Data: b64("b")}, putEntry{Data: b64("c")}); p.FailedRecordCount != 0 {
				t.Fatalf("%+v", p)
			}
		}
		if err := e.s.SetFaults(Faults{FailEveryNthRecord: -1}); err == nil {
			t.Fatal("negative setting accepted")
		}
	})
	t.Run("an outage window answers 503 on the data plane and closes by itself", func(t *testing.T) {
		if err := e.s.SetFaults(Faults{OutageStart: time.Minute, OutageDuration: time.Minute}); err != nil {
			t.Fatal(err)
		}
		e.put("s", putEntry{Data: b64("before")})
		e.clock.Advance(time.Minute)
		if r := e.do("POST", recordsPath, putBody("s", putEntry{Data: b64("a")})); r.status != 503 || r.errCode(t) != "DIS.5000" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := e.cursorReply("s", "0", dis.CursorLatest); r.status != 503 {
			t.Fatalf("cursors during the outage: %d", r.status)
		}
		if r := e.do("GET", checkpointsPath+"?app_name=a&stream_name=s&partition_id=0&checkpoint_type=LAST_READ", nil); r.status != 503 {
			t.Fatalf("checkpoints during the outage: %d", r.status)
		}
		e.mustStatus(200, e.do("GET", streamsPath, nil)) // management stays up for fixtures
		e.clock.Advance(time.Minute)
		e.put("s", putEntry{Data: b64("after")})
		if e.s.Faults().OutageDuration != time.Minute {
			t.Fatal("Faults() does not report the settings")
		}
	})
}

func TestCompressedBodies(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	body, _ := json.Marshal(putBody("s", putEntry{Data: b64(strings.Repeat("compress me ", 50))}))
	lz := make([]byte, lz4.CompressBlockBound(len(body)))
	n, err := lz4.CompressBlock(body, lz, nil)
	if err != nil {
		t.Fatal(err)
	}
	zenc, _ := zstd.NewWriter(nil)
	zs := zenc.EncodeAll(body, nil)
	cases := []struct {
		name string
		data []byte
		hdr  []string
		want int
	}{
		{"lz4 raw block with its length header", lz[:n], []string{"Content-Encoding", "lz4", "X-Dis-Lz4-Content-Length", strconv.Itoa(len(body))}, 200},
		{"snappy raw block", snappy.Encode(nil, body), []string{"Content-Encoding", "snappy"}, 200},
		{"zstd frame", zs, []string{"Content-Encoding", "zstd", "X-Dis-Zstd-Content-Length", strconv.Itoa(len(body))}, 200},
		{"lz4 without its length header", lz[:n], []string{"Content-Encoding", "lz4"}, 400},
		{"lz4 with a wrong length", lz[:n], []string{"Content-Encoding", "lz4", "X-Dis-Lz4-Content-Length", "7"}, 400},
		{"corrupt snappy", []byte("not snappy"), []string{"Content-Encoding", "snappy"}, 400},
		{"unknown encoding", body, []string{"Content-Encoding", "br"}, 400},
		{"lz4 claiming more than the body limit", lz[:n], []string{"Content-Encoding", "lz4", "X-Dis-Lz4-Content-Length", "999999999"}, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", recordsPath, tc.data, tc.hdr...)
			if r.status != tc.want {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if r.header.Get("Content-Encoding") != "" {
				t.Fatal("reply compressed")
			}
		})
	}
	if recs := e.readAll("s", "0"); len(recs) != 3 {
		t.Fatalf("%d records stored, want 3", len(recs))
	}
}

func TestProtobufRecords(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 2)
	ct := "application/x-protobuf; charset=utf-8"
	req := &dis.PutRecordsRequest{StreamName: "s", StreamID: "", Records: []dis.PutRecordsRequestEntry{
		{Data: []byte{0, 1, 2, 255}, PartitionKey: "k1", Timestamp: 1234},
		{Data: []byte("second"), PartitionID: "shardId-0000000001"},
		{Data: []byte("bad"), PartitionID: "9"},
	}}
	r := e.mustStatus(200, e.do("POST", recordsPath, dis.MarshalPutRecordsRequestProto(req), "Content-Type", ct))
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/x-protobuf") {
		t.Fatalf("reply Content-Type %q", r.header.Get("Content-Type"))
	}
	p, err := dis.UnmarshalPutRecordsResponseProto(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if p.FailedRecordCount != 1 || p.Records[0].SequenceNumber != "0" || p.Records[1].PartitionID != "shardId-0000000001" || p.Records[2].ErrorCode != "DIS.4302" {
		t.Fatalf("%+v", p)
	}
	part := strings.TrimPrefix(p.Records[0].PartitionID, "shardId-000000000")
	cur := e.cursor("s", part, dis.CursorTrimHorizon)
	g := e.mustStatus(200, e.do("GET", recordsPath+"?partition-cursor="+cur, nil, "Content-Type", "application/x-protobuf;charset=utf-8"))
	gr, err := dis.UnmarshalGetRecordsResponseProto(g.body)
	if err != nil {
		t.Fatal(err)
	}
	if len(gr.Records) != 1 || !bytes.Equal(gr.Records[0].Data, []byte{0, 1, 2, 255}) || gr.Records[0].PartitionKey != "k1" || gr.Records[0].Timestamp != 1234 || gr.NextPartitionCursor == "" {
		t.Fatalf("%+v", gr)
	}
	t.Run("an empty successful put still carries failedRecordCount", func(t *testing.T) {
		one := &dis.PutRecordsRequest{StreamName: "s", Records: []dis.PutRecordsRequestEntry{{Data: []byte("x")}}}
		r := e.mustStatus(200, e.do("POST", recordsPath, dis.MarshalPutRecordsRequestProto(one), "Content-Type", ct))
		if p, err := dis.UnmarshalPutRecordsResponseProto(r.body); err != nil || p.FailedRecordCount != 0 {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("errors stay JSON", func(t *testing.T) {
		r := e.do("POST", recordsPath, []byte{0xff, 0xff}, "Content-Type", ct)
		if r.status != 400 || r.errCode(t) != "DIS.4300" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestBodyLimit(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Limits.MaxRequestBytes = 64 << 10 })
	e.createStream("s", 1)
	big := putBody("s", putEntry{Data: b64(strings.Repeat("x", 64<<10))})
	if r := e.do("POST", recordsPath, big); r.status != 413 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// Replies are encoded with jsoniter for speed; they must be byte-identical to
// encoding/json's, which the strict SDK decoders were checked against.
func TestRepliesEncodeLikeEncodingJSON(t *testing.T) {
	vals := []any{
		dis.GetRecordsResponse{Records: []dis.Record{{PartitionKey: "<k&>", SequenceNumber: "1", Data: []byte{0, 255, 1}, Timestamp: 5, TimestampType: "CreateTime"}}, NextPartitionCursor: "c"},
		dis.GetRecordsResponse{Records: []dis.Record{}},
		dis.DescribeStreamResponse{Partitions: []dis.PartitionResult{{PartitionID: "x"}}, CSVProperties: &dis.CSVProperties{Delimiter: ","}},
		dis.ListStreamsResponse{},
		dis.PutRecordsResponse{Records: []dis.PutRecordsResultEntry{{ErrorCode: "DIS.4303", ErrorMessage: "a \u2028 b \"q\""}}},
		dis.ConsumerStateResponse{PartitionConsumingState: []dis.PartitionConsumingState{{SequenceNumber: "-1"}}},
		dis.QuotasResponse{},
		dis.ListTagsResponse{Tags: []dis.TagValues{{Key: "温度", Values: []string{"v"}}}},
	}
	for _, v := range vals {
		a, err1 := json.Marshal(v)
		b, err2 := fastJSON.Marshal(v)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("encoding/json and jsoniter differ:\n%s\n%s", a, b)
		}
	}
}
