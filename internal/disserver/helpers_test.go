package disserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

const testProject = "proj123"

// fakeClock is an injected clock: tests move time explicitly, never sleep.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one server on 127.0.0.1 with its data in a temp dir.
type env struct {
	t     testing.TB
	s     *Server
	base  string
	cfg   Config
	clock *fakeClock
	hc    *http.Client
	// sign, when set, authenticates every request made through do.
	sign func(*http.Request, []byte)
}

// testConfig returns a config for tests: fake clock, temp dir, flow control
// off (tests that need it turn it on).
func testConfig(t testing.TB) (Config, *fakeClock) {
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Clock = clock.Now
	cfg.FlowControl.Enabled = false
	return cfg, clock
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startEnv(t testing.TB, mutate func(*Config)) *env {
	t.Helper()
	cfg, clock := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	return startWith(t, cfg, clock)
}

func startWith(t testing.TB, cfg Config, clock *fakeClock) *env {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	e := &env{t: t, s: s, base: "http://" + ln.Addr().String(), cfg: cfg, clock: clock, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// restart shuts the server down and starts a new one on the same data.
func (e *env) restart() *env {
	e.t.Helper()
	if err := e.s.Shutdown(context.Background()); err != nil {
		e.t.Fatalf("Shutdown: %v", err)
	}
	return startWith(e.t, e.cfg, e.clock)
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errCode returns the error_code of an error body, checking that both key
// pairs are present and agree (COMPAT-NOTES fact 10).
func (r reply) errCode(t testing.TB) string {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if b["error_code"] != b["errorCode"] || b["error_msg"] != b["message"] || b["error_msg"] == "" {
		t.Fatalf("error body %s lacks matching error_code/errorCode and error_msg/message", r.body)
	}
	code, _ := b["error_code"].(string)
	return code
}

func (r reply) errMsg(t testing.TB) string {
	t.Helper()
	var b dis.ErrorBody
	r.decode(t, &b)
	return b.ErrorMsg
}

// do sends a request; body may be nil, []byte (sent as is) or a value (JSON).
func (e *env) do(method, path string, body any, hdr ...string) reply {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if e.sign != nil {
		e.sign(req, raw)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) mustStatus(want int, r reply) reply {
	e.t.Helper()
	if r.status != want {
		e.t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
	return r
}

func (e *env) createStream(name string, partitions int) {
	e.t.Helper()
	e.mustStatus(http.StatusCreated, e.do("POST", "/v2/"+testProject+"/streams", map[string]any{
		"stream_name": name, "partition_count": partitions,
	}))
}

type putEntry struct {
	Data            string `json:"data"`
	PartitionKey    string `json:"partition_key,omitempty"`
	PartitionID     string `json:"partition_id,omitempty"`
	ExplicitHashKey string `json:"explicit_hash_key,omitempty"`
	Timestamp       int64  `json:"timestamp,omitempty"`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (e *env) put(stream string, entries ...putEntry) dis.PutRecordsResponse {
	e.t.Helper()
	r := e.mustStatus(http.StatusOK, e.do("POST", "/v2/"+testProject+"/records", map[string]any{
		"stream_name": stream, "records": entries,
	}))
	var resp dis.PutRecordsResponse
	r.decode(e.t, &resp)
	if len(resp.Records) != len(entries) {
		e.t.Fatalf("PutRecords answered %d entries for %d records", len(resp.Records), len(entries))
	}
	return resp
}

func (e *env) cursorReply(stream, partition, ctype string, extra ...string) reply {
	e.t.Helper()
	q := url.Values{"stream-name": {stream}, "partition-id": {partition}}
	if ctype != "" {
		q.Set("cursor-type", ctype)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return e.do("GET", "/v2/"+testProject+"/cursors?"+q.Encode(), nil)
}

func (e *env) cursor(stream, partition, ctype string, extra ...string) string {
	e.t.Helper()
	r := e.mustStatus(http.StatusOK, e.cursorReply(stream, partition, ctype, extra...))
	var c dis.GetCursorResponse
	r.decode(e.t, &c)
	return c.PartitionCursor
}

func (e *env) getRecordsReply(cursor string, extra ...string) reply {
	e.t.Helper()
	q := url.Values{"partition-cursor": {cursor}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return e.do("GET", "/v2/"+testProject+"/records?"+q.Encode(), nil)
}

func (e *env) getRecords(cursor string, extra ...string) dis.GetRecordsResponse {
	e.t.Helper()
	r := e.mustStatus(http.StatusOK, e.getRecordsReply(cursor, extra...))
	var g dis.GetRecordsResponse
	r.decode(e.t, &g)
	if g.NextPartitionCursor == "" {
		e.t.Fatalf("GetRecords reply without next_partition_cursor: %s", r.body)
	}
	return g
}

// readAll reads a partition from TRIM_HORIZON to the end.
func (e *env) readAll(stream, partition string) []dis.Record {
	e.t.Helper()
	cur := e.cursor(stream, partition, dis.CursorTrimHorizon)
	var all []dis.Record
	for range 100000 {
		g := e.getRecords(cur)
		all = append(all, g.Records...)
		if len(g.Records) == 0 {
			return all
		}
		cur = g.NextPartitionCursor
	}
	e.t.Fatal("readAll: no end")
	return nil
}

func seqOf(t testing.TB, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("sequence number %q: %v", s, err)
	}
	return n
}
