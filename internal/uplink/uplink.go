// Package uplink drains the durable buffer into DIS PutRecords.
//
// One worker goroutine per stream reads batches from the buffer (bounded by
// record count and bytes, with a linger so a trickle is sent promptly and a flood
// fills batches), sends them, and acknowledges a record in the buffer only after
// DIS returned a sequence number for it. Per-record failures that are transient
// (DIS.4303 flow control, DIS.5xxx) are resent, alone, before anything read after
// them, so records of one partition key reach DIS in buffer order. Permanent
// per-record failures go to the dead-letter callback and are acknowledged, so
// they never block the records behind them. Whole-request failures (network,
// HTTP 429, 5xx, auth) back the stream off with capped exponential backoff and
// jitter, honouring Retry-After.
//
// Concurrency: Run starts and owns the workers; Shutdown asks them to drain
// what is buffered within a deadline and waits for them. Status may be called
// from any goroutine.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
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

// Sink is where records go (*dis.Client).
type Sink interface {
	PutRecords(ctx context.Context, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error)
}

// DeadLetterFunc receives a record DIS refused permanently, with DIS's reason.
// It is called on a stream worker's goroutine and must not block for long.
type DeadLetterFunc func(rec buffer.Record, code, message string)

// Options configures the uplink.
type Options struct {
	Streams         []string
	MaxBatchRecords int
	MaxBatchBytes   int
	Linger          time.Duration
	BackoffInitial  time.Duration
	BackoffMax      time.Duration
	DeadLetter      DeadLetterFunc
	Logger          *slog.Logger
}

// State is the uplink's view of DIS reachability.
type State string

const (
	// Online: the last request succeeded.
	Online State = "online"
	// Degraded: DIS answers but throttles or fails some records or requests.
	Degraded State = "degraded"
	// Offline: DIS could not be reached or failed every request recently.
	Offline State = "offline"
)

// Stats counts what the uplink did, per stream and in total.
type Stats struct {
	State         State
	Sent          uint64 // records DIS accepted
	Retried       uint64 // records resent after a transient per-record failure
	DeadLettered  uint64 // records DIS refused permanently
	Requests      uint64 // PutRecords requests sent
	FailedRequest uint64 // PutRecords requests that failed as a whole
	LastError     string
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

	mu      sync.Mutex
	streams map[string]*streamStats
}

type streamStats struct {
	state                                             State
	sent, retried, deadLettered, requests, failedReqs uint64
	lastErr                                           string
}

// New returns an uplink; Run starts it.
func New(src Source, sink Sink, opts Options) *Uplink {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DeadLetter == nil {
		opts.DeadLetter = func(buffer.Record, string, string) {}
	}
	u := &Uplink{src: src, sink: sink, opts: opts, log: opts.Logger, drainCh: make(chan struct{}), runDone: make(chan struct{}), streams: map[string]*streamStats{}}
	for _, s := range opts.Streams {
		u.streams[s] = &streamStats{state: Online}
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
			w := &worker{u: u, stream: s, st: u.streams[s], next: u.src.Head(s), backoff: u.opts.BackoffInitial}
			w.run(ctx)
		}()
	}
	wg.Wait()
}

// Shutdown asks the workers to send what is buffered and stop when their stream
// is empty. It returns when they have stopped or ctx is done (the caller then
// cancels Run's context; unsent records stay in the buffer for the next start).
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
		out[name] = Stats{State: s.state, Sent: s.sent, Retried: s.retried, DeadLettered: s.deadLettered,
			Requests: s.requests, FailedRequest: s.failedReqs, LastError: s.lastErr}
	}
	return out
}

// worker drains one stream. All its fields are owned by its goroutine.
type worker struct {
	u       *Uplink
	stream  string
	st      *streamStats
	next    uint64          // next buffer Seq to read
	retry   []buffer.Record // records to resend before anything newer, in order
	backoff time.Duration
	fails   int // consecutive whole-request failures
}

func (w *worker) run(ctx context.Context) {
	o := &w.u.opts
	for ctx.Err() == nil {
		batch := w.retry
		if len(batch) == 0 {
			var err error
			batch, err = w.read(ctx)
			if err != nil {
				w.u.log.Error("uplink: read buffer", "stream", w.stream, "err", err)
				w.sleep(ctx, w.nextBackoff(0))
				continue
			}
			if len(batch) == 0 {
				if w.u.draining.Load() {
					return // drained
				}
				select {
				case <-ctx.Done():
					return
				case <-w.u.src.Notify(w.stream):
				case <-w.u.drainCh:
				}
				continue
			}
		}
		w.retry = nil
		if err := w.send(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.sleep(ctx, w.nextBackoff(retryAfter(err)))
			continue
		}
		if len(w.retry) > 0 {
			// Some records were throttled: resend them alone, after a pause.
			w.sleep(ctx, w.nextBackoff(0))
		} else {
			w.backoff = o.BackoffInitial
		}
	}
}

// read returns the next batch from the buffer, waiting up to the linger time
// for a partial batch to fill.
func (w *worker) read(ctx context.Context) ([]buffer.Record, error) {
	o := &w.u.opts
	recs, err := w.u.src.Read(w.stream, w.next, o.MaxBatchRecords, o.MaxBatchBytes)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	if len(recs) < o.MaxBatchRecords && o.Linger > 0 && !w.u.draining.Load() {
		w.sleep(ctx, o.Linger)
		if more, err := w.u.src.Read(w.stream, w.next, o.MaxBatchRecords, o.MaxBatchBytes); err == nil && len(more) >= len(recs) {
			recs = more
		}
	}
	w.next = recs[len(recs)-1].Seq + 1
	return recs, nil
}

// send puts batch and settles every record: acked, dead-lettered, or appended
// to w.retry (to be resent before anything newer). An error means a request
// failed as a whole; the records it carried are in w.retry.
func (w *worker) send(ctx context.Context, batch []buffer.Record) error {
	req := &dis.PutRecordsRequest{StreamName: w.stream, Records: make([]dis.PutRecordsRequestEntry, len(batch))}
	for i, r := range batch {
		req.Records[i] = dis.PutRecordsRequestEntry{Data: r.Data, PartitionKey: r.PartitionKey, PartitionID: r.PartitionID, Timestamp: r.Timestamp}
	}
	w.count(func(s *streamStats) { s.requests++ })
	resp, err := w.u.sink.PutRecords(ctx, req)
	if err != nil {
		var de *dis.Error
		if errors.As(err, &de) && isBodyRefusal(de) {
			return w.isolate(ctx, batch, de)
		}
		w.requestFailed(len(batch), err)
		w.retry = append(w.retry, batch...)
		return err
	}
	w.fails = 0
	acked := make([]uint64, 0, len(batch))
	var retry []buffer.Record
	var dead int
	for i, res := range resp.Records {
		rec := batch[i]
		switch {
		case !res.Failed():
			acked = append(acked, rec.Seq)
		case dis.RetryableRecordError(res.ErrorCode):
			retry = append(retry, rec)
		default:
			w.u.log.Warn("uplink: DIS refused a record permanently; sent to dead letter",
				"stream", w.stream, "seq", rec.Seq, "code", res.ErrorCode, "reason", res.ErrorMessage)
			w.u.opts.DeadLetter(rec, res.ErrorCode, res.ErrorMessage)
			acked = append(acked, rec.Seq)
			dead++
		}
	}
	if err := w.u.src.Ack(w.stream, acked...); err != nil {
		// The records reached DIS; failing to forget them means they are sent
		// again after a restart (a counted duplicate), never lost.
		w.u.log.Error("uplink: acknowledge records in buffer", "stream", w.stream, "err", err)
	}
	w.retry = append(w.retry, retry...)
	w.count(func(s *streamStats) {
		s.sent += uint64(len(acked) - dead)
		s.deadLettered += uint64(dead)
		s.retried += uint64(len(retry))
		if len(retry) > 0 {
			s.state = Degraded
		} else {
			s.state = Online
		}
	})
	return nil
}

// isolate handles a batch DIS refused as a whole because of its body (413, or
// a 400 about the records): it splits the batch to find the record DIS cannot
// take and dead-letters it, so one bad record never blocks the rest. Whatever
// the first half leaves unsettled, the second half waits behind it to keep the
// order per key.
func (w *worker) isolate(ctx context.Context, batch []buffer.Record, de *dis.Error) error {
	if len(batch) == 1 {
		rec := batch[0]
		w.u.log.Warn("uplink: DIS refused a record permanently; sent to dead letter",
			"stream", w.stream, "seq", rec.Seq, "code", de.Code, "reason", de.Message)
		w.u.opts.DeadLetter(rec, de.Code, de.Message)
		if err := w.u.src.Ack(w.stream, rec.Seq); err != nil {
			w.u.log.Error("uplink: acknowledge records in buffer", "stream", w.stream, "err", err)
		}
		w.count(func(s *streamStats) { s.deadLettered++ })
		return nil
	}
	half := len(batch) / 2
	if err := w.send(ctx, batch[:half]); err != nil || len(w.retry) > 0 {
		w.retry = append(w.retry, batch[half:]...)
		return err
	}
	return w.send(ctx, batch[half:])
}

// requestFailed records a transient whole-request failure (network, 429, 5xx,
// credentials, a missing stream: all fixable without touching the data).
func (w *worker) requestFailed(records int, err error) {
	w.fails++
	var de *dis.Error
	w.count(func(s *streamStats) {
		s.failedReqs++
		s.lastErr = err.Error()
		if w.fails >= 3 || !errors.As(err, &de) {
			s.state = Offline
		} else {
			s.state = Degraded
		}
	})
	if w.fails == 1 || w.fails%20 == 0 {
		w.u.log.Warn("uplink: PutRecords failed; records stay buffered and will be retried",
			"stream", w.stream, "records", records, "attempt", w.fails, "err", err)
	}
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

func retryAfter(err error) time.Duration {
	var de *dis.Error
	if errors.As(err, &de) {
		return de.RetryAfter
	}
	return 0
}

// nextBackoff returns the pause before the next attempt: capped exponential with
// full jitter in [d/2, d], at least the server's Retry-After.
func (w *worker) nextBackoff(retryAfter time.Duration) time.Duration {
	o := &w.u.opts
	d := w.backoff
	w.backoff = min(w.backoff*2, o.BackoffMax)
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

func (w *worker) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (w *worker) count(f func(*streamStats)) {
	w.u.mu.Lock()
	f(w.st)
	w.u.mu.Unlock()
}
