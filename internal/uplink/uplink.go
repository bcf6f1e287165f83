// Package uplink drains the durable buffer into DIS PutRecords.
//
// # Model
//
// Each stream has one scheduler goroutine (runner.run) that owns all of the
// stream's state without locks: it reads records from the buffer ahead of
// sending (bounded to MaxInFlight+1 batches), forms batches bounded by record
// count and bytes with a linger so a trickle is sent promptly and a flood fills
// batches, and keeps up to MaxInFlight PutRecords requests in flight, each in
// its own short-lived goroutine that reports its outcome back on a channel.
//
// Order per partition key: a record's ordering key is its partition key, or
// its explicit partition id when it has no key; records with neither have no
// order constraint. Each stream has MaxInFlight lanes; a key always maps to the
// same lane (by hash), a keyless record to the lane with the least pending, and
// a lane has at most one request in flight. So requests run in parallel over
// disjoint sets of keys, and a key's records are sent one request after the
// other. Records that fail transiently (DIS.4303 flow control, DIS.5xxx) go
// back into their lane at their place in buffer order, after a per-record
// backoff during which the later records of that key wait too, so they are
// sent again before anything later with the same key; a whole-request failure
// puts the whole batch back. Within one request, DIS fails the later records of
// a throttled partition too (its flow control is per partition, and the
// built-in server does the same), so a retried record is never overtaken by a
// later record of its key from the same request; if a DIS ever did that, the
// inversion is detected, logged and counted (Stats.OrderInversions).
//
// A record leaves the buffer (Ack) only after DIS returned a sequence number
// for it, or refused it permanently: then it goes to the dead-letter callback
// with DIS's reason, and the records behind it continue. A body DIS refuses as
// a whole (HTTP 413, or a 400 about the records) is split to isolate the bad
// record.
//
// Backoff: HTTP 429, 5xx, auth and network failures pause the whole stream
// (capped exponential backoff with jitter, at least Retry-After). Per-record
// throttling pauses only the throttled keys. After offlineAfter consecutive
// failures, or any network failure, the stream is Offline: a single probe
// request is in flight at a time, spaced by the backoff, so an unreachable DIS
// costs one request per backoff period, not a busy loop. The first success
// makes it Online again with every slot open, so the backlog drains at full
// speed while appends continue.
//
// Concurrency: Run starts and owns the schedulers; each scheduler owns its
// request goroutines and waits for them before it returns. Shutdown asks the
// schedulers to send what is buffered and stop; it returns when they did or
// its context ends (the caller then cancels Run's context: requests in flight
// are abandoned and their records stay buffered). Stats and State may be
// called from any goroutine.
package uplink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/dis"
)

// Source is the buffer the uplink drains (*buffer.Buffer).
type Source interface {
	Read(stream string, from uint64, maxRecords, maxBytes int) ([]buffer.Record, error)
	Ack(stream string, seqs ...uint64) error
	Head(stream string) uint64
	Notify(stream string) <-chan struct{}
}

// bufferedChecker is implemented by a Source that can tell whether records
// read earlier are still buffered (*buffer.Buffer). Records it dropped
// meanwhile (overflow drop_oldest, max age) are then not sent.
type bufferedChecker interface {
	Buffered(stream string, seqs []uint64) []bool
}

// Sink is where records go (*dis.Client).
type Sink interface {
	PutRecords(ctx context.Context, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error)
}

// DeadLetterFunc receives a record DIS refused permanently, with DIS's reason.
// It is called from request goroutines, possibly concurrently, and must not
// block for long.
type DeadLetterFunc func(rec buffer.Record, code, message string)

// Options configures the uplink. Zero values take the defaults below.
type Options struct {
	Streams         []string
	MaxBatchRecords int           // default DefaultMaxBatchRecords
	MaxBatchBytes   int           // default DefaultMaxBatchBytes
	Linger          time.Duration // 0: send partial batches at once
	// MaxInFlight is the number of PutRecords requests in flight per stream.
	// Default DefaultMaxInFlight.
	MaxInFlight    int
	BackoffInitial time.Duration // default DefaultBackoffInitial
	BackoffMax     time.Duration // default DefaultBackoffMax
	DeadLetter     DeadLetterFunc
	Logger         *slog.Logger
}

// Defaults, each with its reason.
const (
	// DefaultMaxBatchRecords 500: the DIS limit of records per PutRecords request.
	DefaultMaxBatchRecords = 500
	// DefaultMaxBatchBytes 4 MiB: the Python SDK's request split, well under
	// the DIS body cap even with base64's third on top.
	DefaultMaxBatchBytes = 4 << 20
	// DefaultMaxInFlight 4: with ~50 ms to a cloud region, 4 requests of 500
	// records carry 40k records/s, more than a small box ingests durably;
	// each slot costs up to one batch of memory (plus its JSON body).
	DefaultMaxInFlight = 4
	// DefaultBackoffInitial 100 ms: a throttled or failed request is retried
	// quickly once, then exponentially less often.
	DefaultBackoffInitial = 100 * time.Millisecond
	// DefaultBackoffMax 30 s: the Java SDK's cap; an unreachable DIS costs one
	// request per 15-30 s.
	DefaultBackoffMax = 30 * time.Second

	// offlineAfter: consecutive whole-request failures after which the stream
	// is offline even though DIS answers (e.g. 503s); one failure may be a
	// hiccup, three in a row with backoff in between is an outage.
	offlineAfter = 3
	// throttleBackoffMax 1 s: DIS flow control is a per-second budget per
	// partition, so waiting longer than a second never finds more capacity.
	throttleBackoffMax = time.Second
	// readRetryInterval 1 s: a failing buffer read (an I/O error) is retried
	// without spinning; the buffer logs its own cause.
	readRetryInterval = time.Second
)

// State is the uplink's view of DIS reachability.
type State string

const (
	// Online: the last request succeeded.
	Online State = "online"
	// Degraded: DIS answers but throttles or fails some records or requests.
	Degraded State = "degraded"
	// Offline: DIS could not be reached or failed every request recently;
	// one probe request is sent per backoff period.
	Offline State = "offline"
)

func (s State) rank() int {
	switch s {
	case Offline:
		return 2
	case Degraded:
		return 1
	}
	return 0
}

// Stats counts what the uplink did for one stream. Counters count since New.
type Stats struct {
	State         State
	Sent          uint64 // records DIS accepted
	Retried       uint64 // records resent after a transient per-record failure (DIS.4303, DIS.5xxx)
	DeadLettered  uint64 // records DIS refused permanently
	Requests      uint64 // PutRecords requests sent
	FailedRequest uint64 // PutRecords requests that failed as a whole (network, 429, 5xx, auth)
	// OrderInversions counts records DIS accepted after an earlier record of
	// the same key in the same request failed transiently; expected to stay 0
	// (see the package comment).
	OrderInversions uint64
	// AckErrors counts buffer acknowledgements that failed after DIS accepted
	// the records (they are sent again after a restart: duplicates).
	AckErrors uint64
	// Skipped counts records read ahead that the buffer dropped (overflow
	// drop_oldest, max age) before they were sent; they are not sent.
	Skipped uint64

	InFlight   int // requests in flight now
	Pending    int // records read from the buffer and not yet settled (incl. in flight)
	Throttled  int // records waiting for their per-record backoff to pass
	Failures   int // consecutive whole-request failures
	LastError  string
	LastOK     time.Time // last request DIS answered with 200; zero if none yet
	PausedTill time.Time // whole-stream backoff: no request before this; zero if none
	// StateSince is when State last changed.
	StateSince time.Time
}

// Uplink drains the buffer into DIS.
type Uplink struct {
	src  Source
	sink Sink
	opts Options
	log  *slog.Logger

	draining atomic.Bool
	drainCh  chan struct{}
	runDone  chan struct{} // closed when Run returns

	mu      sync.Mutex // guards the *Stats in streams
	streams map[string]*Stats
}

// New returns an uplink; Run starts it.
func New(src Source, sink Sink, opts Options) *Uplink {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DeadLetter == nil {
		opts.DeadLetter = func(buffer.Record, string, string) {}
	}
	if opts.MaxBatchRecords <= 0 {
		opts.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = DefaultBackoffInitial
	}
	if opts.BackoffMax < opts.BackoffInitial {
		opts.BackoffMax = max(DefaultBackoffMax, opts.BackoffInitial)
	}
	u := &Uplink{src: src, sink: sink, opts: opts, log: opts.Logger, drainCh: make(chan struct{}), runDone: make(chan struct{}), streams: map[string]*Stats{}}
	now := time.Now()
	for _, s := range opts.Streams {
		u.streams[s] = &Stats{State: Online, StateSince: now}
	}
	return u
}

// Run drains every stream until ctx is cancelled (hard stop: in-flight requests
// are abandoned and their records stay buffered) or Shutdown has drained them.
// It must be called once.
func (u *Uplink) Run(ctx context.Context) {
	defer close(u.runDone)
	var wg sync.WaitGroup
	for _, s := range u.opts.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			newRunner(u, s).run(ctx)
		}()
	}
	wg.Wait()
}

// Shutdown asks the schedulers to send what is buffered and stop when their
// stream is empty (or offline: nothing can be sent then). It returns when they
// have stopped or ctx is done; the caller then cancels Run's context, and
// unsent records stay in the buffer for the next start.
func (u *Uplink) Shutdown(ctx context.Context) error {
	if u.draining.CompareAndSwap(false, true) {
		close(u.drainCh)
	}
	select {
	case <-u.runDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("uplink flush: %w; the rest stays buffered", ctx.Err())
	}
}

// Stats returns per-stream counters and state.
func (u *Uplink) Stats() map[string]Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]Stats, len(u.streams))
	for name, s := range u.streams {
		out[name] = *s
	}
	return out
}

// State returns the worst state over all streams (Online when there are none).
func (u *Uplink) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := Online
	for _, s := range u.streams {
		if s.State.rank() > st.rank() {
			st = s.State
		}
	}
	return st
}

func (u *Uplink) update(stream string, f func(*Stats)) {
	u.mu.Lock()
	f(u.streams[stream])
	u.mu.Unlock()
}

// item is one record held by a runner, from Read until it is settled.
type item struct {
	rec       buffer.Record
	key       string // ordering key; "" means no order constraint
	lane      int
	size      int
	attempts  int       // transient per-record failures so far
	notBefore time.Time // per-record backoff after a transient failure
}

func orderKey(r *buffer.Record) string {
	switch {
	case r.PartitionKey != "":
		return "k" + r.PartitionKey
	case r.PartitionID != "":
		// "3" and "shardId-0000000003" name the same partition.
		if n, err := dis.ParsePartitionID(r.PartitionID); err == nil {
			return "p" + strconv.Itoa(n)
		}
		return "p" + r.PartitionID // DIS will refuse it; its order does not matter
	}
	return ""
}

// outcome is what a request goroutine reports back to its runner.
type outcome struct {
	items []*item // every item of the request
	// settled items were acked (sent or dead-lettered); retry items failed
	// transiently per record; unsent items were not accepted (whole-request
	// failure, or held back behind an isolated record).
	settled, retry, unsent []*item
	sent, dead, inversions uint64
	skipped                uint64
	ackErr                 bool
	err                    error // the whole-request failure, if any
	requests, failedReqs   uint64
}

// runner schedules one stream. All fields are owned by its goroutine.
type runner struct {
	u      *Uplink
	stream string
	o      *Options

	next     uint64 // next buffer Seq to read
	more     bool   // the buffer may hold records at or after next
	lanes    []lane
	inflight int
	held     int // records in lanes and in flight
	heldB    int // their bytes
	results  chan outcome

	state      State
	fails      int           // consecutive whole-request failures
	backoff    time.Duration // next whole-stream backoff
	pausedTill time.Time
	readRetry  time.Time // a failed buffer Read is tried again then; zero if none
}

// lane is a subset of the stream's keys with at most one request in flight.
type lane struct {
	pending     []*item // read and not in flight, in Seq order
	busy        bool    // a request of this lane is in flight
	lingerStart time.Time
}

func newRunner(u *Uplink, stream string) *runner {
	return &runner{
		u: u, stream: stream, o: &u.opts,
		next: u.src.Head(stream), more: true,
		lanes:   make([]lane, u.opts.MaxInFlight),
		results: make(chan outcome, u.opts.MaxInFlight),
		state:   Online, backoff: u.opts.BackoffInitial,
	}
}

func (r *runner) run(ctx context.Context) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		for r.inflight > 0 { // requests see ctx and return soon
			r.settle(<-r.results)
		}
		r.publish()
	}()
	for {
		r.fill()
		draining := r.u.draining.Load()
		if draining && r.inflight == 0 {
			if r.held == 0 && !r.more {
				return // flushed
			}
			if r.state == Offline {
				r.u.log.Warn("uplink: DIS is offline; leaving the backlog buffered for the next start", "stream", r.stream)
				return
			}
		}
		wake := r.dispatch(ctx, time.Now(), draining)
		r.publish()

		// Go ≥1.23 timers: Reset and Stop never leave a stale tick behind.
		var tc <-chan time.Time
		switch {
		case !wake.IsZero() && timer == nil:
			timer = time.NewTimer(time.Until(wake))
			tc = timer.C
		case !wake.IsZero():
			timer.Reset(time.Until(wake))
			tc = timer.C
		case timer != nil:
			timer.Stop()
		}
		drainCh := r.u.drainCh
		if draining {
			drainCh = nil
		}
		select {
		case <-ctx.Done():
			return
		case res := <-r.results:
			r.settle(res)
		case <-r.u.src.Notify(r.stream):
			r.more = true
		case <-drainCh:
		case <-tc:
		}
	}
}

// fill reads ahead from the buffer, in whole batches, up to MaxInFlight+1
// batches held (in lanes plus in flight): the uplink's memory bound.
func (r *runner) fill() {
	o := r.o
	limitRecs := (o.MaxInFlight + 1) * o.MaxBatchRecords
	limitBytes := (o.MaxInFlight + 1) * o.MaxBatchBytes
	for r.more && r.held+o.MaxBatchRecords <= limitRecs && r.heldB+o.MaxBatchBytes <= limitBytes {
		recs, err := r.u.src.Read(r.stream, r.next, o.MaxBatchRecords, o.MaxBatchBytes)
		if err != nil {
			if !errors.Is(err, buffer.ErrClosed) {
				r.u.log.Error("uplink: read buffer", "stream", r.stream, "err", err)
			}
			r.readRetry = time.Now().Add(readRetryInterval)
			return
		}
		r.readRetry = time.Time{}
		if len(recs) == 0 {
			r.more = false
			return
		}
		for i := range recs {
			it := &item{rec: recs[i], key: orderKey(&recs[i]), size: len(recs[i].Data)}
			it.lane = r.laneFor(it.key)
			r.lanes[it.lane].pending = append(r.lanes[it.lane].pending, it)
			r.held++
			r.heldB += it.size
		}
		r.next = recs[len(recs)-1].Seq + 1
	}
}

// laneFor maps an ordering key to its lane by hash; a keyless record goes to
// the lane with the least pending.
func (r *runner) laneFor(key string) int {
	if key != "" {
		h := fnv.New32a()
		h.Write([]byte(key))
		return int(h.Sum32() % uint32(len(r.lanes)))
	}
	best := 0
	for i := range r.lanes {
		if len(r.lanes[i].pending) < len(r.lanes[best].pending) {
			best = i
		}
	}
	return best
}

// dispatch starts a request on every idle lane that has a batch ready, as far
// as the stream's state allows, and returns when the runner must look again
// without an event (a linger or backoff ending), or the zero time.
func (r *runner) dispatch(ctx context.Context, now time.Time, draining bool) time.Time {
	slots := r.o.MaxInFlight
	if r.state == Offline {
		slots = 1 // one probe at a time
	}
	var wake time.Time
	later := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	later(r.readRetry)
	if now.Before(r.pausedTill) {
		later(r.pausedTill)
		return wake
	}
	for i := range r.lanes {
		if r.inflight >= slots {
			break
		}
		l := &r.lanes[i]
		if l.busy {
			continue
		}
		batch, full, retryAt := r.form(l, now)
		later(retryAt)
		if len(batch) == 0 {
			continue
		}
		// Linger: a partial batch waits for more records, unless more are
		// already buffered or we are flushing.
		if !full && !draining && !r.more && r.o.Linger > 0 {
			if l.lingerStart.IsZero() {
				l.lingerStart = now
			}
			if end := l.lingerStart.Add(r.o.Linger); now.Before(end) {
				later(end)
				continue
			}
		}
		l.lingerStart = time.Time{}
		take(l, batch)
		l.busy = true
		r.inflight++
		go func() { r.results <- r.u.sendBatch(ctx, r.stream, batch) }()
	}
	return wake
}

// form picks the lane's next batch without removing it: records in Seq order
// not held back by their own or an earlier same-key record's backoff. full
// reports that a bound stopped it; retryAt is the earliest backoff that held a
// record back.
func (r *runner) form(l *lane, now time.Time) (batch []*item, full bool, retryAt time.Time) {
	var blocked map[string]bool
	bytes := 0
	for _, it := range l.pending {
		if it.key != "" && blocked[it.key] {
			continue
		}
		if now.Before(it.notBefore) {
			if retryAt.IsZero() || it.notBefore.Before(retryAt) {
				retryAt = it.notBefore
			}
			if it.key != "" {
				if blocked == nil {
					blocked = map[string]bool{}
				}
				blocked[it.key] = true // later records of the key wait behind it
			}
			continue
		}
		if len(batch) > 0 && (len(batch) >= r.o.MaxBatchRecords || bytes+it.size > r.o.MaxBatchBytes) {
			return batch, true, retryAt
		}
		batch = append(batch, it)
		bytes += it.size
	}
	return batch, len(batch) >= r.o.MaxBatchRecords, retryAt
}

// take removes batch, a Seq-ordered subsequence of l.pending, from it.
func take(l *lane, batch []*item) {
	kept := l.pending[:0]
	j := 0
	for _, it := range l.pending {
		if j < len(batch) && it == batch[j] {
			j++
			continue
		}
		kept = append(kept, it)
	}
	clear(l.pending[len(kept):])
	l.pending = kept
}

// settle applies a request's outcome: frees its lane, puts retried and unsent
// records back in Seq order, and moves the stream's state and backoff.
func (r *runner) settle(res outcome) {
	now := time.Now()
	r.inflight--
	l := &r.lanes[res.items[0].lane]
	l.busy = false
	for _, it := range res.settled {
		r.held--
		r.heldB -= it.size
	}
	for _, it := range res.retry {
		it.attempts++
		d := min(r.o.BackoffInitial<<min(it.attempts-1, 20), r.o.BackoffMax, throttleBackoffMax)
		it.notBefore = now.Add(jitter(d))
	}
	back := append(append([]*item(nil), res.retry...), res.unsent...)
	if len(back) > 0 {
		slices.SortFunc(back, func(a, b *item) int { return cmp.Compare(a.rec.Seq, b.rec.Seq) })
		l.pending = mergeBySeq(l.pending, back)
	}

	st := r.state
	if res.err != nil {
		r.fails++
		var de *dis.Error
		if r.fails >= offlineAfter || !errors.As(res.err, &de) {
			st = Offline
		} else {
			st = Degraded
		}
		ra := time.Duration(0)
		if de != nil {
			ra = de.RetryAfter
		}
		d := max(jitter(r.backoff), ra)
		r.backoff = min(r.backoff*2, r.o.BackoffMax)
		r.pausedTill = now.Add(d)
		if r.fails == 1 || r.fails%20 == 0 {
			r.u.log.Warn("uplink: PutRecords failed; records stay buffered and will be retried",
				"stream", r.stream, "records", len(res.items), "attempt", r.fails, "retry_in", d.Round(time.Millisecond), "err", res.err)
		}
	} else if res.requests > 0 { // a batch the buffer had wholly dropped sent nothing: no news about DIS
		r.fails = 0
		r.backoff = r.o.BackoffInitial
		r.pausedTill = time.Time{}
		if len(res.retry) > 0 {
			st = Degraded
		} else {
			st = Online
		}
	}
	if st != r.state {
		level := slog.LevelInfo
		if st == Offline {
			level = slog.LevelWarn
		}
		r.u.log.Log(context.Background(), level, "uplink: DIS "+string(st), "stream", r.stream, "was", string(r.state), "records_held", r.held)
		r.state = st
	}
	r.u.update(r.stream, func(s *Stats) {
		s.Sent += res.sent
		s.DeadLettered += res.dead
		s.Retried += uint64(len(res.retry))
		s.OrderInversions += res.inversions
		s.Skipped += res.skipped
		s.Requests += res.requests
		s.FailedRequest += res.failedReqs
		if res.ackErr {
			s.AckErrors++
		}
		if res.err != nil {
			s.LastError = res.err.Error()
		} else if res.requests > 0 {
			s.LastOK = now
		}
		if s.State != st {
			s.State, s.StateSince = st, now
		}
	})
}

// publish copies the runner's gauges into Stats.
func (r *runner) publish() {
	now := time.Now()
	throttled := 0
	for i := range r.lanes {
		for _, it := range r.lanes[i].pending {
			if now.Before(it.notBefore) {
				throttled++
			}
		}
	}
	r.u.update(r.stream, func(s *Stats) {
		s.InFlight, s.Pending, s.Throttled, s.Failures = r.inflight, r.held, throttled, r.fails
		s.PausedTill = r.pausedTill
	})
}

// sendBatch sends one batch and settles every record in the buffer: acked
// (sent or dead-lettered), or returned for retry. It runs on a request
// goroutine.
func (u *Uplink) sendBatch(ctx context.Context, stream string, batch []*item) outcome {
	res := outcome{items: batch}
	batch = u.dropUnbuffered(stream, batch, &res)
	if len(batch) == 0 {
		return res
	}
	u.put(ctx, stream, batch, &res)
	if len(res.settled) > 0 {
		seqs := make([]uint64, len(res.settled))
		for i, it := range res.settled {
			seqs[i] = it.rec.Seq
		}
		if err := u.src.Ack(stream, seqs...); err != nil {
			// The records reached DIS; failing to forget them means they are
			// sent again after a restart (a counted duplicate), never lost.
			u.log.Error("uplink: acknowledge records in buffer", "stream", stream, "err", err)
			res.ackErr = true
		}
	}
	return res
}

// dropUnbuffered settles, unsent, the records of batch the buffer no longer
// holds: the runner read them ahead (possibly long ago, while DIS was down)
// and the buffer has since dropped them by its overflow policy or max age,
// counting them there. It returns the rest. A drop after this check can
// still let a record through: at-least-once, never a loss.
func (u *Uplink) dropUnbuffered(stream string, batch []*item, res *outcome) []*item {
	bc, ok := u.src.(bufferedChecker)
	if !ok {
		return batch
	}
	seqs := make([]uint64, len(batch))
	for i, it := range batch {
		seqs[i] = it.rec.Seq
	}
	live := bc.Buffered(stream, seqs)
	kept := batch[:0:0]
	for i, it := range batch {
		if live[i] {
			kept = append(kept, it)
			continue
		}
		res.settled = append(res.settled, it)
		res.skipped++
	}
	return kept
}

// put sends batch as one request and sorts its records into res. A body DIS
// refuses as a whole is split in halves, sent one after the other, to isolate
// the record DIS cannot take; whatever the first half leaves unsettled, the
// second half waits behind it, so the order per key holds.
func (u *Uplink) put(ctx context.Context, stream string, batch []*item, res *outcome) {
	req := &dis.PutRecordsRequest{StreamName: stream, Records: make([]dis.PutRecordsRequestEntry, len(batch))}
	for i, it := range batch {
		r := &it.rec
		req.Records[i] = dis.PutRecordsRequestEntry{Data: r.Data, PartitionKey: r.PartitionKey, PartitionID: r.PartitionID, Timestamp: r.Timestamp}
	}
	res.requests++
	resp, err := u.sink.PutRecords(ctx, req)
	if err != nil {
		var de *dis.Error
		if errors.As(err, &de) && isBodyRefusal(de) {
			if len(batch) == 1 {
				u.deadLetter(stream, batch[0], de.Code, de.Message)
				res.settled = append(res.settled, batch[0])
				res.dead++
				return
			}
			half := len(batch) / 2
			u.put(ctx, stream, batch[:half], res)
			if res.err != nil || len(res.retry) > 0 || len(res.unsent) > 0 {
				res.unsent = append(res.unsent, batch[half:]...)
				return
			}
			u.put(ctx, stream, batch[half:], res)
			return
		}
		res.failedReqs++
		res.err = err
		res.unsent = append(res.unsent, batch...)
		return
	}
	var failedKeys map[string]bool
	for i, r := range resp.Records {
		it := batch[i]
		switch {
		case !r.Failed():
			if it.key != "" && failedKeys[it.key] {
				res.inversions++
				u.log.Error("uplink: DIS accepted a record after failing an earlier record of its key in the same request; their order in DIS is inverted",
					"stream", stream, "seq", it.rec.Seq, "key", it.rec.PartitionKey)
			}
			res.settled = append(res.settled, it)
			res.sent++
		case dis.RetryableRecordError(r.ErrorCode):
			res.retry = append(res.retry, it)
			if it.key != "" {
				if failedKeys == nil {
					failedKeys = map[string]bool{}
				}
				failedKeys[it.key] = true
			}
		default:
			u.deadLetter(stream, it, r.ErrorCode, r.ErrorMessage)
			res.settled = append(res.settled, it)
			res.dead++
		}
	}
}

func (u *Uplink) deadLetter(stream string, it *item, code, msg string) {
	u.log.Warn("uplink: DIS refused a record permanently; sent to dead letter",
		"stream", stream, "seq", it.rec.Seq, "code", code, "reason", msg)
	u.opts.DeadLetter(it.rec, code, msg)
}

// isBodyRefusal reports a 4xx that is about the request body itself, so
// resending it unchanged can never succeed.
func isBodyRefusal(e *dis.Error) bool {
	switch {
	case e.Status == http.StatusRequestEntityTooLarge:
		return true
	case e.Status != http.StatusBadRequest:
		return false // 401/403 credentials, 404/410 routing, 429 throttling: fixable, retry
	}
	switch e.Code {
	case dis.CodeStreamNotFound, dis.CodeStreamNotRunning, dis.CodeTrafficControl,
		dis.CodeTooManyStreamRequests, dis.CodeTooManyFailures, dis.CodeInvalidProject:
		return false // a stream or project problem, not the records'
	}
	return true
}

// jitter returns a duration in [d/2, d] (full jitter above a floor, so a
// backoff never collapses to zero).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// mergeBySeq merges two Seq-ordered slices.
func mergeBySeq(a, b []*item) []*item {
	out := make([]*item, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i].rec.Seq <= b[j].rec.Seq {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}
