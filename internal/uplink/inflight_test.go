package uplink

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/distest"
)

// concurrency wraps the real DIS client and records how many PutRecords were
// in flight at once, and which keys were in flight together.
type concurrency struct {
	Sink
	cur, peak atomic.Int32

	mu        sync.Mutex
	inFlight  map[string]int // ordering key -> requests carrying it now
	keyClash  int            // a key in two requests at once
	maxRecs   int
	requests  int
	withKeys  int // requests carrying keyed records
	keyless   int // keyless records seen
	mixedReqs int // requests holding records of more than one key
}

func newConcurrency(s Sink) *concurrency { return &concurrency{Sink: s, inFlight: map[string]int{}} }

func (c *concurrency) PutRecords(ctx context.Context, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error) {
	n := c.cur.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	keys := map[string]bool{}
	for i := range req.Records {
		r := buffer.Record{PartitionKey: req.Records[i].PartitionKey, PartitionID: req.Records[i].PartitionID}
		if k := orderKey(&r); k != "" {
			keys[k] = true
		}
	}
	c.mu.Lock()
	c.requests++
	c.maxRecs = max(c.maxRecs, len(req.Records))
	if len(keys) > 1 {
		c.mixedReqs++
	}
	for k := range keys {
		if c.inFlight[k] > 0 {
			c.keyClash++
		}
		c.inFlight[k]++
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		for k := range keys {
			c.inFlight[k]--
		}
		c.mu.Unlock()
		c.cur.Add(-1)
	}()
	return c.Sink.PutRecords(ctx, req)
}

// Several requests are in flight at once, never two carrying the same key,
// and under DIS.4303 and 429 faults every keyed record still arrives once, in
// order per key; keyless records arrive once; explicit partition ids (in both
// spellings) keep their order per partition.
func TestInFlightRequestsKeepOrderPerKeyUnderFaults(t *testing.T) {
	e := newEnv(t, disserver.Faults{FailEveryNthRecord: 13, RejectEveryNthRequest: 9}, 3)
	const keyed, keys, keyless, perPID = 3000, 40, 300, 200
	var wg sync.WaitGroup
	appendAll := func() {
		// Keyed records while the uplink runs, interleaved with keyless
		// ones and with records pinned to partition 1 by id.
		for i := 0; i < keyed; i++ {
			k := "k" + strconv.Itoa(i%keys)
			mustAppend(t, e.buf, buffer.Record{Stream: "s1", PartitionKey: k, Data: []byte(k + "/" + strconv.Itoa(i/keys))})
			if i%10 == 0 {
				mustAppend(t, e.buf, buffer.Record{Stream: "s1", Data: []byte("free/" + strconv.Itoa(i/10))})
			}
			if i%15 == 0 {
				pid := "1"
				if (i/15)%2 == 1 {
					pid = "shardId-0000000001"
				}
				mustAppend(t, e.buf, buffer.Record{Stream: "s1", PartitionID: pid, Data: []byte("pid/" + strconv.Itoa(i/15))})
			}
		}
	}
	sink := newConcurrency(e.client)
	opts := testOptions()
	opts.MaxBatchRecords = 40
	u := New(e.buf, sink, opts)
	stop := run(u)
	wg.Add(1)
	go func() { defer wg.Done(); appendAll() }()
	wg.Wait()
	waitEmpty(t, e.buf, 2*time.Minute)
	stop()

	prs, err := distest.ReadStream(context.Background(), e.client, "s1")
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	free := map[string]int{}
	pidNext, pidPartition := 0, ""
	for _, p := range prs {
		for _, r := range p.Records {
			d := string(r.Data)
			switch {
			case r.PartitionKey != "":
				want := r.PartitionKey + "/" + strconv.Itoa(next[r.PartitionKey])
				if d != want {
					t.Fatalf("partition %s seq %s: got %q, want %q", p.PartitionID, r.SequenceNumber, d, want)
				}
				next[r.PartitionKey]++
			case len(d) > 5 && d[:5] == "free/":
				free[d]++
			default:
				if want := "pid/" + strconv.Itoa(pidNext); d != want {
					t.Fatalf("partition %s seq %s: got %q, want %q (order per partition id)", p.PartitionID, r.SequenceNumber, d, want)
				}
				pidNext++
				pidPartition = p.PartitionID
			}
		}
	}
	total := 0
	for _, n := range next {
		total += n
	}
	if total != keyed || len(next) != keys {
		t.Fatalf("DIS holds %d keyed records of %d keys, want %d of %d", total, len(next), keyed, keys)
	}
	if len(free) != keyless {
		t.Fatalf("DIS holds %d distinct keyless records, want %d", len(free), keyless)
	}
	for d, n := range free {
		if n != 1 {
			t.Fatalf("keyless %s arrived %d times", d, n)
		}
	}
	if pidNext != perPID || pidPartition != dis.ShardID(1) {
		t.Fatalf("partition-id records: %d in %s, want %d in %s", pidNext, pidPartition, perPID, dis.ShardID(1))
	}

	st := u.Stats()["s1"]
	if st.Retried == 0 || st.FailedRequest == 0 {
		t.Fatalf("faults were not exercised: %+v", st)
	}
	if st.Sent != keyed+keyless+perPID || st.OrderInversions != 0 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.InFlight != 0 || st.Pending != 0 {
		t.Fatalf("gauges not back to zero after the drain: %+v", st)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.keyClash != 0 {
		t.Fatalf("%d times a key was in two requests at once", sink.keyClash)
	}
	if p := sink.peak.Load(); p < 2 || int(p) > opts.MaxInFlight {
		t.Fatalf("peak requests in flight %d, want 2..%d", p, opts.MaxInFlight)
	}
	if sink.maxRecs > opts.MaxBatchRecords {
		t.Fatalf("a request carried %d records, over the bound %d", sink.maxRecs, opts.MaxBatchRecords)
	}
	if sink.mixedReqs == 0 {
		t.Fatalf("no request mixed keys: batches are not being filled across keys")
	}
}

func mustAppend(t *testing.T, b *buffer.Buffer, r buffer.Record) {
	t.Helper()
	if _, err := b.Append(context.Background(), r); err != nil {
		t.Error(err) // may run off the test goroutine
	}
}

// Batches are bounded by bytes as well as by count.
func TestBatchesBoundedByBytes(t *testing.T) {
	e := newEnv(t, disserver.Faults{}, 1)
	data := make([]byte, 10<<10)
	for i := 0; i < 200; i++ {
		mustAppend(t, e.buf, buffer.Record{Stream: "s1", PartitionKey: fmt.Sprint(i % 3), Data: data})
	}
	sink := &byteCounter{Sink: e.client}
	opts := testOptions()
	opts.MaxBatchBytes = 64 << 10
	u := New(e.buf, sink, opts)
	defer run(u)()
	waitEmpty(t, e.buf, time.Minute)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.maxBytes > opts.MaxBatchBytes || sink.records != 200 {
		t.Fatalf("largest request %d bytes (bound %d), %d records sent", sink.maxBytes, opts.MaxBatchBytes, sink.records)
	}
	if sink.maxBytes < opts.MaxBatchBytes-len(data) {
		t.Fatalf("largest request %d bytes: batches are not filled up to the byte bound %d", sink.maxBytes, opts.MaxBatchBytes)
	}
}

type byteCounter struct {
	Sink
	mu       sync.Mutex
	maxBytes int
	records  int
}

func (b *byteCounter) PutRecords(ctx context.Context, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error) {
	n := 0
	for _, r := range req.Records {
		n += len(r.Data)
	}
	b.mu.Lock()
	b.maxBytes = max(b.maxBytes, n)
	b.records += len(req.Records)
	b.mu.Unlock()
	return b.Sink.PutRecords(ctx, req)
}

// Shutdown with DIS offline does not wait out the flush deadline: nothing can
// be sent, so it returns at once and leaves every record buffered.
func TestShutdownWhileOfflineLeavesRecordsBuffered(t *testing.T) {
	e := newEnv(t, disserver.Faults{OutageDuration: time.Hour}, 1)
	appendKeyed(t, e.buf, 200, 4)
	u := New(e.buf, e.client, testOptions())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for u.State() != Offline {
		if time.Now().After(deadline) {
			t.Fatalf("state %s during the outage, want offline", u.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer scancel()
	if err := u.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-done
	if n := e.buf.Stats().Streams["s1"].Records; n != 200 {
		t.Fatalf("buffer holds %d records after an offline shutdown, want 200", n)
	}
}
