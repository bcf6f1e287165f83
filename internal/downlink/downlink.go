// Package downlink is the path from DIS back to devices: it consumes DIS
// streams with a consumer app and LAST_READ checkpoints and republishes each
// record to an MQTT topic (commands, configuration, firmware notices).
//
// For every stream with routes a discovery goroutine describes the stream
// every DiscoveryInterval and keeps one reader goroutine per readable
// partition (ACTIVE, and DELETED ones until they are drained), so scaling
// is picked up without a restart. A reader resumes from the app's
// checkpoint, or from the configured start position when there is none,
// reads with GetRecords (again at once while records flow, backing off to
// PollMax when the partition is idle) and hands each record to the broker
// through the first route that accepts it. The start position applies to
// the partitions there when a stream is first consumed; partitions that
// appear later (scale-up) are read from TRIM_HORIZON so none of their
// records is skipped.
//
// The checkpoint is the next sequence number to read (the DIS Kafka
// adapter's convention; the value is opaque to DIS). It only ever covers
// records the broker has settled: handed to every matching subscriber and
// acknowledged by each connected QoS 1/2 subscriber (a record stored for an
// offline persistent session counts as handed over), so a crash of the
// gateway loses nothing a connected device had not acknowledged. It is
// committed every CommitEvery records or CommitInterval, whichever comes
// first, and at most CommitEvery delivered records per partition may be
// unacknowledged at a time, so a crash delivers at most 2 × CommitEvery
// records per partition a second time.
//
// A record counts as handed to the broker only when no subscriber delivery
// was dropped (mochi drops when a subscriber's queue or inflight store is
// full); otherwise it is published again, or after MaxAttempts sent to the
// dead letter, per OnDrop. DIS being unreachable makes readers back off
// (exponential, jittered, capped) and resume where they stopped; expired
// cursors are renewed (DIS.4225), and a position that fell below the
// stream's retention (DIS.4226) continues at TRIM_HORIZON, counted and
// logged.
//
// Concurrency: Run owns every goroutine and returns once all have stopped.
// Publish and DeadLetter are called from reader goroutines (several
// partitions at once, one record at a time per partition). Stats may be
// called from any goroutine at any time.
package downlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// DIS is the part of the DIS client the downlink uses; *dis.Client
// implements it.
type DIS interface {
	DescribeApp(ctx context.Context, name string) (*dis.App, error)
	CreateApp(ctx context.Context, name string) error
	DescribeStreamAll(ctx context.Context, name string) (*dis.DescribeStreamResponse, error)
	GetCheckpoint(ctx context.Context, app, stream, partitionID string) (*dis.GetCheckpointResponse, error)
	CommitCheckpoint(ctx context.Context, req *dis.CommitCheckpointRequest) error
	GetCursor(ctx context.Context, r dis.CursorRequest) (string, error)
	GetRecords(ctx context.Context, cursor string, maxFetchBytes int) (*dis.GetRecordsResponse, error)
}

// PublishFunc hands one message to the broker (broker.Delivery.Deliver). It
// reports how many subscriber deliveries were dropped, and settled, which
// reports later, from any goroutine, whether every connected subscriber
// has acknowledged the message; nil means settled at once.
type PublishFunc func(topic string, payload []byte, retain bool, qos byte) (dropped int, settled func() bool, err error)

// DeadLetter is a record the downlink gave up on.
type DeadLetter struct {
	Stream         string
	PartitionID    string
	SequenceNumber string
	PartitionKey   string
	Topic          string // empty when it could not be rendered
	// Code is "topic" (the template could not be filled), "transform" (the
	// payload could not be unwrapped) or "dropped" (subscribers kept
	// dropping it).
	Code      string
	Reason    string
	Timestamp int64
	Data      []byte
}

// Start positions for partitions without a checkpoint.
const (
	StartLatest      = "latest"
	StartTrimHorizon = "trim_horizon"
	StartTimestamp   = "timestamp"
)

// Drop policies.
const (
	DropRetry      = "retry"
	DropDeadLetter = "dead_letter"
)

// Options configures a Downlink. Zero durations and counts are errors
// except where noted; the config package supplies the defaults.
type Options struct {
	// App is the DIS consumer app the checkpoints belong to; created if missing.
	App    string
	Routes []Route
	// Start is where a partition without a checkpoint begins: StartLatest,
	// StartTrimHorizon, or StartTimestamp at StartTime.
	Start     string
	StartTime time.Time
	// CommitEvery and CommitInterval batch checkpoint commits; CommitEvery
	// also bounds the delivered records of a partition awaiting
	// acknowledgement.
	CommitEvery    int
	CommitInterval time.Duration
	// AckTimeout is how long a delivered record may stay unacknowledged
	// before the reader stops waiting for it.
	AckTimeout time.Duration
	// PollMin and PollMax bound the wait between GetRecords calls on an idle
	// partition (doubling from PollMin); a page with records is followed
	// by the next read at once.
	PollMin, PollMax time.Duration
	// MaxFetchBytes caps one GetRecords page; 0 is the server's default.
	MaxFetchBytes int
	// BackoffInitial and BackoffMax bound the retry delay while DIS fails.
	BackoffInitial, BackoffMax time.Duration
	// DiscoveryInterval is how often each stream's partitions are listed.
	DiscoveryInterval time.Duration
	// OnDrop is DropRetry (publish again until every subscriber took it,
	// holding up the partition) or DropDeadLetter (after MaxAttempts).
	OnDrop      string
	MaxAttempts int
	Publish     PublishFunc
	// DeadLetter receives records given up on; nil discards them (counted).
	DeadLetter func(DeadLetter)
	Logger     *slog.Logger
}

// Retry delays after a dropped delivery: a subscriber's queue of thousands
// of messages drains in milliseconds when it is alive, and a stuck one
// should not be hammered.
const (
	dropRetryInitial = 50 * time.Millisecond
	dropRetryMax     = 2 * time.Second
)

// finalCommitTimeout bounds the checkpoint commit at shutdown: long enough
// for one request, short enough not to hold up the gateway's stop.
const finalCommitTimeout = 5 * time.Second

// finalSettleTimeout bounds the wait at shutdown for acknowledgements of
// what was just delivered: connected devices answer in milliseconds, and
// what is not acknowledged by then is delivered again after the restart.
const finalSettleTimeout = time.Second

// Downlink consumes the routed streams. Create it with New and run it with Run.
type Downlink struct {
	dis    DIS
	opts   Options
	log    *slog.Logger
	groups []*streamGroup
	state  atomic.Int32
	c      counters
}

type counters struct {
	delivered, filtered, retries, dropped, deadLettered atomic.Uint64
	trimJumps, cursorRenewals, commits, commitErrors    atomic.Uint64
	readErrors, ackTimeouts                             atomic.Uint64
}

// State is the downlink's overall state.
type State int32

const (
	StateStarting State = iota // ensuring the app exists
	StateRunning
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	default:
		return "stopped"
	}
}

var appNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)

// AppName derives the default app name from a gateway id: "<id>-downlink"
// with every character DIS does not allow in app names replaced by '-'.
func AppName(gatewayID string) string {
	var b strings.Builder
	for _, r := range gatewayID {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 200-len("-downlink") {
		s = s[:200-len("-downlink")]
	}
	return s + "-downlink"
}

// New checks opts and compiles the routes; nothing runs until Run.
func New(client DIS, opts Options) (*Downlink, error) {
	var errs []error
	if !appNameRe.MatchString(opts.App) {
		errs = append(errs, fmt.Errorf("app %q must be 1 to 200 letters, digits, '_' or '-'", opts.App))
	}
	switch opts.Start {
	case StartLatest, StartTrimHorizon:
	case StartTimestamp:
		if opts.StartTime.IsZero() {
			errs = append(errs, errors.New("start position timestamp needs a start time"))
		}
	default:
		errs = append(errs, fmt.Errorf("start position %q is not latest, trim_horizon or timestamp", opts.Start))
	}
	switch opts.OnDrop {
	case DropRetry:
	case DropDeadLetter:
		if opts.MaxAttempts < 1 {
			errs = append(errs, fmt.Errorf("max attempts %d: want at least 1", opts.MaxAttempts))
		}
	default:
		errs = append(errs, fmt.Errorf("on drop %q is not retry or dead_letter", opts.OnDrop))
	}
	if opts.CommitEvery < 1 || opts.CommitInterval <= 0 || opts.AckTimeout <= 0 || opts.PollMin <= 0 || opts.PollMax < opts.PollMin ||
		opts.BackoffInitial <= 0 || opts.BackoffMax < opts.BackoffInitial || opts.DiscoveryInterval <= 0 || opts.MaxFetchBytes < 0 {
		errs = append(errs, errors.New("commit, ack timeout, poll, backoff and discovery settings must be positive (maxima at least their minima)"))
	}
	if opts.Publish == nil {
		errs = append(errs, errors.New("no Publish function"))
	}
	d := &Downlink{dis: client, opts: opts, log: opts.Logger}
	if d.log == nil {
		d.log = slog.Default()
	}
	byStream := map[string]*streamGroup{}
	for i, r := range opts.Routes {
		c, err := compileRoute(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d]: %w", i, err))
			continue
		}
		g := byStream[r.Stream]
		if g == nil {
			g = &streamGroup{d: d, name: r.Stream, parts: map[int]*partition{}, wanted: map[int]bool{}, kick: make(chan struct{}, 1)}
			byStream[r.Stream] = g
			d.groups = append(d.groups, g)
		}
		g.routes = append(g.routes, c)
		if c.parts == nil {
			g.all = true
		}
		for p := range c.parts {
			g.wanted[p] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("downlink: %w", err)
	}
	return d, nil
}

// Run consumes until ctx is cancelled, then commits what was handed to the
// broker and returns once every goroutine has stopped. It returns early
// only if ctx ends while the app is being ensured.
func (d *Downlink) Run(ctx context.Context) {
	defer d.state.Store(int32(StateStopped))
	if len(d.groups) == 0 {
		<-ctx.Done()
		return
	}
	if !d.ensureApp(ctx) {
		return
	}
	d.state.Store(int32(StateRunning))
	var wg sync.WaitGroup
	for _, g := range d.groups {
		wg.Go(func() { g.discover(ctx) })
	}
	wg.Wait()
}

// ensureApp makes sure the consumer app exists, retrying while DIS fails.
func (d *Downlink) ensureApp(ctx context.Context) bool {
	bo := d.newBackoff()
	var last string
	for {
		_, err := d.dis.DescribeApp(ctx, d.opts.App)
		if dis.IsCode(err, dis.CodeAppNotFound) {
			if err = d.dis.CreateApp(ctx, d.opts.App); err == nil || dis.IsCode(err, dis.CodeAppExists) {
				d.log.Info("created DIS consumer app for the downlink", "app", d.opts.App)
				err = nil
			}
		}
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if msg := err.Error(); msg != last {
			d.log.Warn("downlink: cannot reach the DIS consumer app; retrying", "app", d.opts.App, "err", err)
			last = msg
		}
		if !sleep(ctx, bo.next()) {
			return false
		}
	}
}

// backoff is capped exponential backoff with jitter in [d/2, d).
type backoff struct {
	initial, max, cur time.Duration
}

func (d *Downlink) newBackoff() *backoff {
	return &backoff{initial: d.opts.BackoffInitial, max: d.opts.BackoffMax}
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.initial
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Stats is a snapshot of the downlink's counters and partitions, for the
// metrics and status pages.
type Stats struct {
	App   string
	State State
	// Delivered records were handed to every matching subscriber.
	Delivered uint64
	// Filtered records matched no route (another gateway's devices).
	Filtered uint64
	// Dropped counts subscriber deliveries mochi dropped; Retries counts
	// the publishes repeated because of them (each may reach the
	// subscribers that did get the first one again).
	Dropped, Retries uint64
	// DeadLettered records were given up on (see DeadLetter.Code).
	DeadLettered uint64
	// TrimHorizonJumps counts positions that had fallen below retention
	// (DIS.4226): records in between expired before they were delivered.
	TrimHorizonJumps uint64
	// CursorRenewals counts expired cursors replaced (DIS.4225).
	CursorRenewals uint64
	Commits        uint64
	CommitErrors   uint64
	// ReadErrors counts failed DIS calls of the readers and discovery.
	ReadErrors uint64
	// AckTimeouts counts delivered records a subscriber did not acknowledge
	// within AckTimeout; the reader went on without them.
	AckTimeouts uint64
	Partitions  []PartitionStats
}

// PartitionStats describes one partition reader.
type PartitionStats struct {
	Stream      string
	PartitionID string // shardId-NNNNNNNNNN
	// State is "starting", "reading", "idle", "backoff" (DIS failing),
	// "drained" (a DELETED partition read to its end) or "stopped".
	State string
	// Position is the next sequence number to read; -1 before it is known.
	Position int64
	// Checkpoint is the last committed checkpoint; -1 before the first.
	Checkpoint int64
	// Lag estimates the records not yet read: the end of the partition as
	// described at the last discovery (0 once a read comes back empty).
	Lag       uint64
	Delivered uint64
	// LastRecordTime is the DIS timestamp of the last record delivered.
	LastRecordTime time.Time
	LastError      string
}

// Stats returns a snapshot; safe to call from any goroutine.
func (d *Downlink) Stats() Stats {
	s := Stats{
		App: d.opts.App, State: State(d.state.Load()),
		Delivered: d.c.delivered.Load(), Filtered: d.c.filtered.Load(),
		Dropped: d.c.dropped.Load(), Retries: d.c.retries.Load(), DeadLettered: d.c.deadLettered.Load(),
		TrimHorizonJumps: d.c.trimJumps.Load(), CursorRenewals: d.c.cursorRenewals.Load(),
		Commits: d.c.commits.Load(), CommitErrors: d.c.commitErrors.Load(), ReadErrors: d.c.readErrors.Load(),
		AckTimeouts: d.c.ackTimeouts.Load(),
	}
	for _, g := range d.groups {
		g.mu.Lock()
		for _, p := range g.parts {
			ps := p.stats()
			ps.Stream = g.name
			s.Partitions = append(s.Partitions, ps)
		}
		g.mu.Unlock()
	}
	sort.Slice(s.Partitions, func(i, j int) bool {
		a, b := s.Partitions[i], s.Partitions[j]
		return a.Stream < b.Stream || a.Stream == b.Stream && a.PartitionID < b.PartitionID
	})
	return s
}

// deadLetter hands a record to the dead-letter function and counts it.
func (d *Downlink) deadLetter(g *streamGroup, p *partition, rec dis.Record, topic, code, reason string) {
	d.c.deadLettered.Add(1)
	d.log.Warn("downlink: record sent to the dead letter", "stream", g.name, "partition", p.id,
		"seq", rec.SequenceNumber, "code", code, "reason", reason)
	if d.opts.DeadLetter != nil {
		d.opts.DeadLetter(DeadLetter{
			Stream: g.name, PartitionID: p.id, SequenceNumber: rec.SequenceNumber, PartitionKey: rec.PartitionKey,
			Topic: topic, Code: code, Reason: reason, Timestamp: rec.Timestamp, Data: rec.Data,
		})
	}
}

// parseSeq parses a sequence number; DIS sends them as decimal strings.
func parseSeq(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}
