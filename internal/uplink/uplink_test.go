package uplink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/distest"
)

func testLog() *slog.Logger {
	if os.Getenv("EDGEGW_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is a real buffer on disk and a real DIS server over HTTP.
type env struct {
	buf    *buffer.Buffer
	srv    *disserver.Server
	client *dis.Client
}

func newEnv(t *testing.T, faults disserver.Faults, partitions int) *env {
	t.Helper()
	dir := t.TempDir()
	sc := disserver.DefaultConfig()
	sc.DataDir = filepath.Join(dir, "dis")
	sc.FlowControl.Enabled = false
	sc.Faults = faults
	srv, err := disserver.New(sc, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	client, err := dis.NewClient(dis.ClientConfig{Endpoint: "http://" + ln.Addr().String(), ProjectID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	dur := 24
	if err := client.CreateStream(context.Background(), &dis.CreateStreamRequest{StreamName: "s1", PartitionCount: partitions, DataDuration: &dur}); err != nil {
		t.Fatal(err)
	}
	buf, err := buffer.Open(buffer.Options{Dir: filepath.Join(dir, "buffer"), Logger: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	return &env{buf: buf, srv: srv, client: client}
}

func testOptions() Options {
	return Options{
		Streams:         []string{"s1"},
		MaxBatchRecords: 100,
		MaxBatchBytes:   1 << 20,
		Linger:          2 * time.Millisecond,
		MaxInFlight:     4,
		BackoffInitial:  time.Millisecond,
		BackoffMax:      20 * time.Millisecond,
		Logger:          testLog(),
	}
}

// run starts u and returns a function that stops it.
func run(u *Uplink) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// appendKeyed appends n records spread over keys k0..k(keys-1); record i of
// key k has data "k/i".
func appendKeyed(t *testing.T, b *buffer.Buffer, n, keys int) {
	t.Helper()
	for i := 0; i < n; i++ {
		k := "k" + strconv.Itoa(i%keys)
		if _, err := b.Append(context.Background(), buffer.Record{Stream: "s1", PartitionKey: k, Data: []byte(k + "/" + strconv.Itoa(i/keys))}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkKeyed asserts every record of appendKeyed arrived once, in order per key.
func checkKeyed(t *testing.T, prs []distest.PartitionRecords, n, keys int) {
	t.Helper()
	next := map[string]int{}
	for _, p := range prs {
		for _, r := range p.Records {
			want := r.PartitionKey + "/" + strconv.Itoa(next[r.PartitionKey])
			if string(r.Data) != want {
				t.Fatalf("partition %s seq %s: got %q, want %q", p.PartitionID, r.SequenceNumber, r.Data, want)
			}
			next[r.PartitionKey]++
		}
	}
	total := 0
	for _, c := range next {
		total += c
	}
	if total != n {
		t.Fatalf("DIS holds %d records, want %d", total, n)
	}
}

func waitEmpty(t *testing.T, b *buffer.Buffer, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for b.Stats().Streams["s1"].Records > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("buffer still holds %d records after %s", b.Stats().Streams["s1"].Records, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDrainsInOrderPerKey(t *testing.T) {
	e := newEnv(t, disserver.Faults{}, 3)
	appendKeyed(t, e.buf, 1000, 7)
	u := New(e.buf, e.client, testOptions())
	defer run(u)()
	waitEmpty(t, e.buf, time.Minute)
	prs, err := distest.ReadStream(context.Background(), e.client, "s1")
	if err != nil {
		t.Fatal(err)
	}
	checkKeyed(t, prs, 1000, 7)
	st := u.Stats()["s1"]
	if st.Sent != 1000 || st.DeadLettered != 0 || st.State != Online {
		t.Fatalf("stats %+v", st)
	}
}

// Throttling: DIS fails every 7th record with DIS.4303 and answers every 5th
// request with 429. Everything arrives, once, in order per key.
func TestThrottlingKeepsOrderAndLosesNothing(t *testing.T) {
	e := newEnv(t, disserver.Faults{FailEveryNthRecord: 7, RejectEveryNthRequest: 5}, 2)
	appendKeyed(t, e.buf, 2000, 11)
	u := New(e.buf, e.client, testOptions())
	stop := run(u)
	// Keep appending while the uplink drains and retries.
	appendMore := sync.WaitGroup{}
	appendMore.Add(1)
	go func() {
		defer appendMore.Done()
		for i := 2000; i < 3000; i++ {
			k := "k" + strconv.Itoa(i%11)
			e.buf.Append(context.Background(), buffer.Record{Stream: "s1", PartitionKey: k, Data: []byte(k + "/" + strconv.Itoa(i/11))})
		}
	}()
	appendMore.Wait()
	waitEmpty(t, e.buf, time.Minute)
	stop()
	prs, err := distest.ReadStream(context.Background(), e.client, "s1")
	if err != nil {
		t.Fatal(err)
	}
	checkKeyed(t, prs, 3000, 11)
	st := u.Stats()["s1"]
	if st.Retried == 0 || st.FailedRequest == 0 {
		t.Fatalf("faults were not exercised: %+v", st)
	}
	if st.Sent != 3000 {
		t.Fatalf("sent %d, want 3000: %+v", st.Sent, st)
	}
}

// A record DIS refuses permanently goes to the dead letter with DIS's reason
// and does not block the records behind it.
func TestPermanentErrorGoesToDeadLetter(t *testing.T) {
	e := newEnv(t, disserver.Faults{}, 2)
	for i := 0; i < 10; i++ {
		rec := buffer.Record{Stream: "s1", PartitionKey: "k", Data: []byte(fmt.Sprint(i))}
		if i == 4 {
			rec.PartitionKey, rec.PartitionID = "", "99" // no such partition
		}
		if _, err := e.buf.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var dead []string
	opts := testOptions()
	opts.DeadLetter = func(rec buffer.Record, code, msg string) {
		mu.Lock()
		dead = append(dead, fmt.Sprintf("%s:%s", rec.Data, code))
		mu.Unlock()
	}
	u := New(e.buf, e.client, opts)
	defer run(u)()
	waitEmpty(t, e.buf, time.Minute)
	mu.Lock()
	defer mu.Unlock()
	if len(dead) != 1 || dead[0] != "4:"+dis.CodePartitionNotFound {
		t.Fatalf("dead letters %v, want [4:%s]", dead, dis.CodePartitionNotFound)
	}
	prs, err := distest.ReadStream(context.Background(), e.client, "s1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range prs {
		for _, r := range p.Records {
			got = append(got, string(r.Data))
		}
	}
	if fmt.Sprint(got) != "[0 1 2 3 5 6 7 8 9]" {
		t.Fatalf("DIS holds %v", got)
	}
}

// While DIS is down the uplink backs off without losing anything, reports
// offline, and drains when DIS returns.
func TestOutageThenRecovery(t *testing.T) {
	e := newEnv(t, disserver.Faults{OutageStart: 0, OutageDuration: time.Hour}, 2)
	appendKeyed(t, e.buf, 500, 5)
	u := New(e.buf, e.client, testOptions())
	defer run(u)()
	deadline := time.Now().Add(30 * time.Second)
	for u.Stats()["s1"].State != Offline {
		if time.Now().After(deadline) {
			t.Fatalf("state %s during outage, want offline", u.Stats()["s1"].State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.buf.Stats().Streams["s1"].Records; n != 500 {
		t.Fatalf("buffer holds %d during the outage, want 500", n)
	}
	if err := e.srv.SetFaults(disserver.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, e.buf, time.Minute)
	prs, err := distest.ReadStream(context.Background(), e.client, "s1")
	if err != nil {
		t.Fatal(err)
	}
	checkKeyed(t, prs, 500, 5)
}

// Shutdown drains what is buffered, then Run returns.
func TestShutdownFlushes(t *testing.T) {
	e := newEnv(t, disserver.Faults{}, 1)
	appendKeyed(t, e.buf, 300, 3)
	u := New(e.buf, e.client, testOptions())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	if err := u.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if n := e.buf.Stats().Streams["s1"].Records; n != 0 {
		t.Fatalf("%d records left after a flushing shutdown", n)
	}
}
