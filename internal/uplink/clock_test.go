package uplink

// Time-dependent behaviour (backoff, linger, Retry-After, offline probing)
// tested in synctest bubbles: the clock is virtual, so the assertions on
// durations are exact and the tests take no wall time. The bubble cannot hold
// Badger or a TCP server, so these tests use an in-memory queue with the
// buffer's Read/Ack contract and a scripted DIS; the same behaviours are
// exercised against the real buffer and server in uplink_test.go.

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/dis"
)

// memQueue is an in-memory stream with the buffer's contract: Read from a Seq
// skipping removed records, Ack in any order, Notify after appends.
type memQueue struct {
	mu     sync.Mutex
	recs   map[uint64]buffer.Record
	next   uint64
	notify chan struct{}
	added  map[uint64]time.Time // append time per Seq
}

func newMemQueue() *memQueue {
	return &memQueue{recs: map[uint64]buffer.Record{}, next: 1, notify: make(chan struct{}, 1), added: map[uint64]time.Time{}}
}

func (q *memQueue) add(key string, data string) {
	q.mu.Lock()
	q.recs[q.next] = buffer.Record{Seq: q.next, Stream: "s1", PartitionKey: key, Data: []byte(data)}
	q.added[q.next] = time.Now()
	q.next++
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *memQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs)
}

func (q *memQueue) Read(_ string, from uint64, maxRecords, maxBytes int) ([]buffer.Record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []buffer.Record
	total := 0
	for s := max(from, 1); s < q.next; s++ {
		r, ok := q.recs[s]
		if !ok {
			continue
		}
		if len(out) > 0 && total+len(r.Data) > maxBytes {
			break
		}
		out = append(out, r)
		total += len(r.Data)
		if len(out) >= maxRecords {
			break
		}
	}
	return out, nil
}

func (q *memQueue) Ack(_ string, seqs ...uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range seqs {
		delete(q.recs, s)
	}
	return nil
}

func (q *memQueue) Head(string) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	for s := uint64(1); s < q.next; s++ {
		if _, ok := q.recs[s]; ok {
			return s
		}
	}
	return q.next
}

func (q *memQueue) Notify(string) <-chan struct{} { return q.notify }

// scriptedDIS answers PutRecords after a virtual round trip, according to
// fail (nil: every record succeeds), and records every call.
type scriptedDIS struct {
	rtt time.Duration

	mu       sync.Mutex
	fail     func(call int, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error)
	calls    []time.Time
	cur      int
	peak     int
	received []dis.PutRecordsRequestEntry // accepted, in order of acceptance
	sentAt   map[string]time.Time         // data -> acceptance time
}

func (d *scriptedDIS) PutRecords(ctx context.Context, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error) {
	d.mu.Lock()
	call := len(d.calls)
	d.calls = append(d.calls, time.Now())
	d.cur++
	d.peak = max(d.peak, d.cur)
	fail := d.fail
	d.mu.Unlock()
	defer func() { d.mu.Lock(); d.cur--; d.mu.Unlock() }()
	select {
	case <-time.After(d.rtt):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var resp *dis.PutRecordsResponse
	if fail != nil {
		var err error
		if resp, err = fail(call, req); err != nil {
			return nil, err
		}
	}
	if resp == nil {
		resp = &dis.PutRecordsResponse{Records: make([]dis.PutRecordsResultEntry, len(req.Records))}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, r := range resp.Records {
		if !r.Failed() {
			d.received = append(d.received, req.Records[i])
			if d.sentAt == nil {
				d.sentAt = map[string]time.Time{}
			}
			d.sentAt[string(req.Records[i].Data)] = time.Now()
		}
	}
	return resp, nil
}

func (d *scriptedDIS) setFail(f func(int, *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error)) {
	d.mu.Lock()
	d.fail = f
	d.peak = d.cur
	d.mu.Unlock()
}

func (d *scriptedDIS) snapshot() (calls []time.Time, peak int, received []dis.PutRecordsRequestEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.calls...), d.peak, append([]dis.PutRecordsRequestEntry(nil), d.received...)
}

var errRefused = errors.New("dial tcp 127.0.0.1:9: connect: connection refused")

func startInBubble(t *testing.T, q *memQueue, sink Sink, opts Options) (u *Uplink, stop func()) {
	opts.Streams = []string{"s1"}
	opts.Logger = testLog()
	u = New(q, sink, opts)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	return u, func() { cancel(); <-done }
}

// checkOrder asserts every record "key/i" arrived once, in order per key.
func checkOrder(t *testing.T, got []dis.PutRecordsRequestEntry, want int) {
	t.Helper()
	next := map[string]int{}
	for _, r := range got {
		if w := r.PartitionKey + "/" + strconv.Itoa(next[r.PartitionKey]); string(r.Data) != w {
			t.Fatalf("got %q, want %q", r.Data, w)
		}
		next[r.PartitionKey]++
	}
	if len(got) != want {
		t.Fatalf("DIS accepted %d records, want %d", len(got), want)
	}
}

// While DIS is unreachable the uplink probes with one request per backoff
// period (exponential, capped), never faster; when DIS returns it opens every
// slot and drains the backlog, and appends made meanwhile arrive too.
func TestOfflineProbesWithBackoffThenDrainsAtFullSpeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		for i := 0; i < 2000; i++ {
			k := "k" + strconv.Itoa(i%16)
			q.add(k, k+"/"+strconv.Itoa(i/16))
		}
		d := &scriptedDIS{rtt: 20 * time.Millisecond}
		d.setFail(func(int, *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error) { return nil, errRefused })
		opts := Options{MaxBatchRecords: 100, MaxBatchBytes: 1 << 20, MaxInFlight: 4,
			BackoffInitial: 100 * time.Millisecond, BackoffMax: 30 * time.Second}
		u, stop := startInBubble(t, q, d, opts)
		defer stop()

		const outage = 10 * time.Minute
		time.Sleep(outage)
		calls, _, _ := d.snapshot()
		if st := u.Stats()["s1"]; st.State != Offline || st.Sent != 0 || st.LastError == "" || !st.PausedTill.After(time.Now()) {
			t.Fatalf("after %s of outage: %+v", outage, st)
		}
		// The first dispatch may fill every slot before anything failed;
		// after that, one probe at a time, spaced by the backoff.
		first := min(len(calls), opts.MaxInFlight)
		for i := first + 1; i < len(calls); i++ {
			if gap := calls[i].Sub(calls[i-1]); gap < opts.BackoffInitial/2 {
				t.Fatalf("requests %d and %d only %s apart while offline", i-1, i, gap)
			}
		}
		// Backoff doubles from 100 ms to 30 s with jitter in [d/2, d]: the
		// first 9 steps take at least 25.5 s, every later one at least 15 s.
		maxCalls := opts.MaxInFlight + 9 + int((outage-25500*time.Millisecond)/(15*time.Second)) + 1
		if len(calls) > maxCalls || len(calls) < 20 {
			t.Fatalf("%d requests in %s of outage, want 20..%d", len(calls), outage, maxCalls)
		}

		// DIS returns: the next probe succeeds, every slot opens.
		d.setFail(nil)
		stopAdding := make(chan struct{})
		go func() { // devices keep publishing during the drain
			defer close(stopAdding)
			for i := 2000; i < 2400; i++ {
				k := "k" + strconv.Itoa(i%16)
				q.add(k, k+"/"+strconv.Itoa(i/16))
				time.Sleep(time.Millisecond)
			}
		}()
		<-stopAdding
		for deadline := time.Now().Add(time.Hour); q.len() > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d records left an hour after DIS returned", q.len())
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, peak, got := d.snapshot()
		checkOrder(t, got, 2400)
		if peak != opts.MaxInFlight {
			t.Fatalf("peak requests in flight during the drain %d, want %d", peak, opts.MaxInFlight)
		}
		if st := u.Stats()["s1"]; st.State != Online || st.Sent != 2400 || st.Failures != 0 {
			t.Fatalf("after the drain: %+v", st)
		}
	})
}

// A 429 with Retry-After pauses the whole stream at least that long.
func TestRetryAfterIsHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		for i := 0; i < 10; i++ {
			q.add("k", "k/"+strconv.Itoa(i))
		}
		d := &scriptedDIS{rtt: time.Millisecond}
		d.setFail(func(call int, _ *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error) {
			if call == 0 {
				return nil, &dis.Error{Status: 429, Code: dis.CodeTrafficControl, RetryAfter: 7 * time.Second}
			}
			return nil, nil
		})
		u, stop := startInBubble(t, q, d, Options{MaxBatchRecords: 100, BackoffInitial: 10 * time.Millisecond, BackoffMax: time.Second})
		defer stop()
		for q.len() > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		calls, _, got := d.snapshot()
		checkOrder(t, got, 10)
		if len(calls) != 2 {
			t.Fatalf("%d requests, want 2", len(calls))
		}
		if gap := calls[1].Sub(calls[0]); gap < 7*time.Second {
			t.Fatalf("retried %s after a 429 with Retry-After 7s", gap)
		}
		if st := u.Stats()["s1"]; st.FailedRequest != 1 || st.State != Online {
			t.Fatalf("stats %+v", st)
		}
	})
}

// A trickle is sent after the linger time; a flood fills batches and does
// not wait.
func TestLingerSendsTrickleAndFloodFillsBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		d := &scriptedDIS{rtt: time.Millisecond}
		const linger = 50 * time.Millisecond
		_, stop := startInBubble(t, q, d, Options{MaxBatchRecords: 100, Linger: linger, MaxInFlight: 2})
		defer stop()

		q.add("k", "k/0")
		added := time.Now()
		for q.len() > 0 {
			time.Sleep(time.Millisecond)
		}
		d.mu.Lock()
		wait := d.calls[0].Sub(added)
		d.mu.Unlock()
		if wait != linger {
			t.Fatalf("a lone record was sent %s after its append, want the linger %s", wait, linger)
		}

		// Two keys that hash to different lanes: each fills a batch, and both
		// go out at once without lingering.
		r := newRunner(&Uplink{opts: Options{MaxInFlight: 2}, src: q}, "s1")
		keys := []string{"a"}
		for i := 0; len(keys) < 2; i++ {
			if k := "b" + strconv.Itoa(i); r.laneFor("k"+k) != r.laneFor("k"+keys[0]) {
				keys = append(keys, k)
			}
		}
		for i := 0; i < 200; i++ {
			q.add(keys[i%2], "x")
		}
		flood := time.Now()
		synctest.Wait()
		d.mu.Lock()
		calls := d.calls[1:]
		d.mu.Unlock()
		if len(calls) != 2 || calls[0] != flood || calls[1] != flood {
			t.Fatalf("flood: requests at %v, want 2 full batches at once (%s)", calls, flood)
		}
		for q.len() > 0 {
			time.Sleep(time.Millisecond)
		}
	})
}

// Per-record flow control (DIS.4303) pauses only the throttled key: other
// keys keep flowing (as long as the throttled key's records do not fill the
// read-ahead, MaxInFlight+1 batches), the throttled key's records keep their
// order.
func TestThrottledKeyDoesNotBlockOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		next := map[string]int{}
		for i := 0; i < 300; i++ {
			k := "k" + strconv.Itoa(1+i%3)
			if i%10 == 0 {
				k = "k0" // 30 records: under the 80-record read-ahead
			}
			q.add(k, k+"/"+strconv.Itoa(next[k]))
			next[k]++
		}
		d := &scriptedDIS{rtt: time.Millisecond}
		hotRequests, hotFails := 0, 0
		d.setFail(func(_ int, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error) {
			resp := &dis.PutRecordsResponse{Records: make([]dis.PutRecordsResultEntry, len(req.Records))}
			throttle := false
			for _, r := range req.Records {
				throttle = throttle || r.PartitionKey == "k0"
			}
			if throttle {
				hotRequests++
				throttle = hotRequests <= 6 // k0's partition is over its limit for a while
			}
			for i, r := range req.Records {
				if r.PartitionKey == "k0" && throttle {
					hotFails++
					resp.Records[i] = dis.PutRecordsResultEntry{ErrorCode: dis.CodeTrafficControl, ErrorMessage: "Exceeded traffic control limit."}
					resp.FailedRecordCount++
				}
			}
			return resp, nil
		})
		u, stop := startInBubble(t, q, d, Options{MaxBatchRecords: 20, MaxInFlight: 3, BackoffInitial: 100 * time.Millisecond, BackoffMax: 5 * time.Second})
		defer stop()
		for q.len() > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		_, _, got := d.snapshot()
		checkOrder(t, got, 300)
		d.mu.Lock()
		var lastOther, lastHot time.Time
		for data, at := range d.sentAt {
			if data[:2] == "k0" && at.After(lastHot) {
				lastHot = at
			} else if data[:2] != "k0" && at.After(lastOther) {
				lastOther = at
			}
		}
		d.mu.Unlock()
		if !lastOther.Before(lastHot) {
			t.Fatalf("the other keys finished at %s, after the throttled key (%s): they were held up", lastOther, lastHot)
		}
		st := u.Stats()["s1"]
		d.mu.Lock()
		fails := hotFails
		d.mu.Unlock()
		if st.Retried != uint64(fails) || fails == 0 || st.FailedRequest != 0 || st.Sent != 300 || st.State != Online {
			t.Fatalf("stats %+v", st)
		}
		if !st.PausedTill.IsZero() {
			t.Fatalf("per-record throttling paused the whole stream: %+v", st)
		}
	})
}

// Shutdown flushes for at most its deadline: with DIS answering but slowly,
// it returns when the deadline passes (not when the backlog is sent), the
// request in flight is abandoned when Run's context ends, and every record
// DIS did not accept stays in the buffer.
func TestShutdownFlushStopsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newMemQueue()
		for i := 0; i < 2000; i++ {
			q.add("k", "k/"+strconv.Itoa(i))
		}
		d := &scriptedDIS{rtt: time.Second} // 100 records per second: 20 s for the backlog
		opts := Options{Streams: []string{"s1"}, MaxBatchRecords: 100, MaxInFlight: 1, Logger: testLog()}
		u := New(q, d, opts)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { u.Run(ctx); close(done) }()
		time.Sleep(500 * time.Millisecond) // the first request is in flight

		const deadline = 3 * time.Second
		start := time.Now()
		sctx, scancel := context.WithTimeout(context.Background(), deadline)
		err := u.Shutdown(sctx)
		scancel()
		if took := time.Since(start); err == nil || took != deadline {
			t.Fatalf("Shutdown returned %v after %s, want the deadline error after %s", err, took, deadline)
		}
		cancel() // what the gateway does next
		<-done
		_, _, got := d.snapshot()
		checkOrder(t, got, len(got))
		if len(got) != 300 || q.len() != 2000-len(got) {
			t.Fatalf("DIS accepted %d records (want the 3 requests answered before the deadline, 300), buffer holds %d", len(got), q.len())
		}
		if st := u.Stats()["s1"]; st.Sent != uint64(len(got)) || st.InFlight != 0 {
			t.Fatalf("stats after the hard stop: %+v", st)
		}
	})
}
