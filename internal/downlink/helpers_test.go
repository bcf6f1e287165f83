package downlink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
)

// disEnv is the built-in DIS server on 127.0.0.1 with its data in a temp
// dir, and a client for it. Its clock is real time plus an offset the test
// may move forward (cursor expiry, retention).
type disEnv struct {
	t      testing.TB
	srv    *disserver.Server
	addr   string
	client *dis.Client
	offset atomic.Int64 // ns
}

func startDIS(t testing.TB, mutate func(*disserver.Config)) *disEnv {
	t.Helper()
	e := &disEnv{t: t}
	cfg := disserver.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.FlowControl.Enabled = false
	cfg.JanitorInterval = time.Second
	cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := disserver.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	e.srv, e.addr = srv, ln.Addr().String()
	e.client = newClient(t, "http://"+e.addr)
	return e
}

func newClient(t testing.TB, endpoint string) *dis.Client {
	t.Helper()
	c, err := dis.NewClient(dis.ClientConfig{Endpoint: endpoint, ProjectID: "local", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *disEnv) advance(d time.Duration) { e.offset.Add(int64(d)) }

func (e *disEnv) createStream(name string, partitions int) {
	e.t.Helper()
	dur := 24
	if err := e.client.CreateStream(context.Background(), &dis.CreateStreamRequest{
		StreamName: name, PartitionCount: partitions, DataDuration: &dur,
	}); err != nil {
		e.t.Fatal(err)
	}
}

// put writes records with the given keys, data "<prefix><i>" for i from
// first, and returns where DIS put each.
func (e *disEnv) put(stream, prefix string, first int, keys ...string) []dis.PutRecordsResultEntry {
	e.t.Helper()
	req := &dis.PutRecordsRequest{StreamName: stream}
	for i, k := range keys {
		req.Records = append(req.Records, dis.PutRecordsRequestEntry{Data: fmt.Appendf(nil, "%s%d", prefix, first+i), PartitionKey: k})
	}
	resp, err := e.client.PutRecords(context.Background(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.FailedRecordCount > 0 {
		e.t.Fatalf("PutRecords: %d failed: %+v", resp.FailedRecordCount, resp.Records)
	}
	return resp.Records
}

func (e *disEnv) putData(stream, key string, data ...string) {
	e.t.Helper()
	req := &dis.PutRecordsRequest{StreamName: stream}
	for _, d := range data {
		req.Records = append(req.Records, dis.PutRecordsRequestEntry{Data: []byte(d), PartitionKey: key})
	}
	if resp, err := e.client.PutRecords(context.Background(), req); err != nil || resp.FailedRecordCount > 0 {
		e.t.Fatalf("PutRecords: %v %+v", err, resp)
	}
}

// checkpoint returns the app's checkpoint of a partition, or "" while the
// app does not exist yet.
func (e *disEnv) checkpoint(app, stream string, partition int) string {
	e.t.Helper()
	cp, err := e.client.GetCheckpoint(context.Background(), app, stream, dis.ShardID(partition))
	if dis.IsCode(err, dis.CodeAppNotFound) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return cp.SequenceNumber
}

// message is one publish the recorder saw.
type message struct {
	topic   string
	payload string
	retain  bool
	qos     byte
}

// recorder stands in for the broker: it records what the downlink hands
// over and can report drops for chosen payloads.
type recorder struct {
	mu    sync.Mutex
	msgs  []message
	drops map[string]int // payload → drops to report before accepting
	// unacked holds payloads some subscriber has not acknowledged yet.
	unacked map[string]bool
}

func (r *recorder) publish(topic string, payload []byte, retain bool, qos byte) (int, func() bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.drops[string(payload)]; n > 0 {
		r.drops[string(payload)] = n - 1
		return 1, nil, nil
	}
	r.msgs = append(r.msgs, message{topic, string(payload), retain, qos})
	if r.unacked != nil && r.unacked[string(payload)] {
		return 0, func() bool { r.mu.Lock(); defer r.mu.Unlock(); return !r.unacked[string(payload)] }, nil
	}
	return 0, nil, nil
}

func (r *recorder) all() []message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]message(nil), r.msgs...)
}

func (r *recorder) payloads() []string {
	var out []string
	for _, m := range r.all() {
		out = append(out, m.payload)
	}
	return out
}

// testOptions are fast settings for tests: commits every 10 records or
// 50 ms, polls between 5 and 50 ms, a short backoff.
func testOptions(t testing.TB, rec *recorder, routes ...Route) Options {
	return Options{
		App: "test-downlink", Routes: routes, Start: StartTrimHorizon,
		CommitEvery: 10, CommitInterval: 50 * time.Millisecond, AckTimeout: 10 * time.Second,
		PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond,
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		DiscoveryInterval: 100 * time.Millisecond,
		OnDrop:            DropRetry, MaxAttempts: 3,
		Publish: rec.publish,
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// running is a Downlink started by run; stop cancels it and waits.
type running struct {
	d    *Downlink
	stop func()
}

func run(t testing.TB, client DIS, opts Options) *running {
	t.Helper()
	d, err := New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("downlink did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return &running{d: d, stop: stop}
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
