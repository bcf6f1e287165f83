package disserver

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/dis"
)

// Fuzz targets for the parsers of outside input on the server side. The
// cursor, protobuf and signature parsers have their own in internal/dis.

func FuzzDecodePutRecordsJSON(f *testing.F) {
	f.Add([]byte(`{"stream_name":"s","records":[{"data":"YQ==","partition_key":"k"}]}`))
	f.Add([]byte(`{"stream_name":"s","stream_id":"","records":[{"data":"YQ","partition_id":"shardId-0000000001","explicit_hash_key":"5","timestamp":3}]}`))
	f.Add([]byte(`{"stream_name":1}`))
	f.Add([]byte(`{"records":[{}]}`))
	s := &Server{cfg: DefaultConfig()}
	s.cfg.Limits.MaxRecordsPerRequest = 100
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecoded(t, s, body, false)
	})
}

func FuzzDecodePutRecordsProto(f *testing.F) {
	f.Add(dis.MarshalPutRecordsRequestProto(&dis.PutRecordsRequest{StreamName: "s", Records: []dis.PutRecordsRequestEntry{
		{Data: []byte("x"), PartitionKey: "k", PartitionID: "1", ExplicitHashKey: "9", Timestamp: 4},
	}}))
	f.Add([]byte{0x0a, 0x01, 's', 0x12, 0x00})
	s := &Server{cfg: DefaultConfig()}
	s.cfg.Limits.MaxRecordsPerRequest = 100
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecoded(t, s, body, true)
	})
}

func checkDecoded(t *testing.T, s *Server, body []byte, proto bool) {
	name, id, recs, err := s.decodePutRecords(body, proto)
	if err != nil {
		var de *dis.Error
		if !asDISError(err, &de) || de.Status >= 500 {
			t.Fatalf("decode error is not a client error: %v", err)
		}
		return
	}
	if name == "" && id == "" || len(recs) == 0 || len(recs) > s.cfg.Limits.MaxRecordsPerRequest {
		t.Fatalf("accepted an invalid request: %q %q %d records", name, id, len(recs))
	}
	for i, r := range recs {
		if r.err == nil && (len(r.data) > s.cfg.Limits.MaxRecordBytes || r.partitionID < -1 || r.hashKey < -1 || r.timestamp < 0) {
			t.Fatalf("record %d accepted out of range: %+v", i, r)
		}
	}
}

// FuzzHandler sends arbitrary requests to a live server (no listener) and
// requires a JSON client error or success, never a 5xx or a crash.
func FuzzHandler(f *testing.F) {
	cfg, _ := testConfig(f)
	s, err := New(cfg, testLogger(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	h := s.Handler()
	send := func(method, target, ct, enc string, body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/", bytes.NewReader(body))
		r.URL.Path, r.URL.RawQuery, _ = strings.Cut(target, "?")
		r.Header.Set("Content-Type", ct)
		if enc != "" {
			r.Header.Set("Content-Encoding", enc)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	send("POST", "/v2/p/streams", "application/json", "", []byte(`{"stream_name":"s","partition_count":2}`))
	send("POST", "/v2/p/apps", "application/json", "", []byte(`{"app_name":"a"}`))
	send("POST", "/v2/p/records", "application/json", "", []byte(`{"stream_name":"s","records":[{"data":"YQ=="}]}`))
	cur := dis.EncodeCursor(dis.Cursor{StreamName: "s", PartitionID: "0", StartingSequenceNumber: "0", GenerateTimestamp: cfg.Clock().UnixMilli()})

	f.Add("POST", "/v2/p/records", "application/json", "", []byte(`{"stream_name":"s","records":[{"data":"YQ==","partition_key":"k"}]}`))
	f.Add("POST", "/v2/p/records/", "application/x-protobuf; charset=utf-8", "", dis.MarshalPutRecordsRequestProto(&dis.PutRecordsRequest{StreamName: "s", Records: []dis.PutRecordsRequestEntry{{Data: []byte("x")}}}))
	f.Add("GET", "/v2/p/records?partition-cursor="+cur+"&limit=2", "application/json", "", []byte(nil))
	f.Add("GET", "/v2/p/cursors?stream-name=s&partition-id=0&cursor-type=AT_TIMESTAMP&timestamp=5", "", "", []byte(nil))
	f.Add("GET", "/v2/p/streams/s?start_partitionId=shardId-0000000000&limit_partitions=1", "", "", []byte(nil))
	f.Add("PUT", "/v2/p/streams/s", "application/json", "", []byte(`{"stream_name":"s","target_partition_count":3}`))
	f.Add("PUT", "/v3/p/streams/s", "application/json", "", []byte(`{"stream_name":"s","data_duration":30}`))
	f.Add("POST", "/v2/p/checkpoints", "application/json", "", []byte(`{"app_name":"a","checkpoint_type":"LAST_READ","stream_name":"s","partition_id":"0","sequence_number":"1"}`))
	f.Add("GET", "/v2/p/apps/a/streams/s?checkpoint_type=LAST_READ", "", "", []byte(nil))
	f.Add("POST", "/v2/p/records", "application/json", "snappy", []byte("\x05\x10hello"))
	f.Add("POST", "/v3/auth/tokens", "application/json", "", []byte(`{"auth":{}}`))
	f.Add("DELETE", "/v2/p/checkpoints?app_name=a&stream_name=s&checkpoint_type=LAST_READ", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, method, target, ct, enc string, body []byte) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n#") {
			return // not a request line a client can send
		}
		switch method {
		case "GET", "POST", "PUT", "DELETE", "PATCH":
		default:
			return
		}
		if method == "DELETE" && strings.HasPrefix(target, "/v2/p/streams/s") {
			return // keep the fixture stream for later inputs
		}
		w := send(method, target, ct, enc, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s → %d %s", method, target, w.Code, w.Body.Bytes())
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s → %d with Content-Type %q", method, target, w.Code, w.Header().Get("Content-Type"))
		}
	})
	_ = http.MethodGet
}

func asDISError(err error, target **dis.Error) bool { return errors.As(err, target) }
