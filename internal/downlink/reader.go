package downlink

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// streamGroup is one stream with its routes, its discovery goroutine and its
// partition readers.
type streamGroup struct {
	d      *Downlink
	name   string
	routes []*route
	all    bool         // some route reads every partition
	wanted map[int]bool // else: the union of the routes' partitions
	kick   chan struct{}
	passes int // successful discovery passes; discovery goroutine only

	wg sync.WaitGroup // readers
	mu sync.Mutex     // guards parts and the discovery fields of each partition
	// parts outlive their readers: a partition that is drained and later
	// re-activated continues from the position in memory.
	parts map[int]*partition
}

// unsettled is a delivered record some connected subscriber has not
// acknowledged yet.
type unsettled struct {
	seq     int64
	settled func() bool
	at      time.Time
}

// partition is one partition's state. The atomics are read by Stats; the
// reader fields belong to the partition's current reader goroutine (at most
// one at a time: a reader starts only after the previous one returned, under
// streamGroup.mu); the discovery fields are guarded by streamGroup.mu.
type partition struct {
	idx int
	id  string // shardId-NNNNNNNNNN

	state      atomic.Value // string
	position   atomic.Int64 // next sequence number to read, -1 unknown
	checkpoint atomic.Int64 // last committed, -1 none
	latest     atomic.Int64 // end of the partition at the last discovery, -1 unknown
	delivered  atomic.Uint64
	lastTS     atomic.Int64
	lastErr    atomic.Value // string
	deleted    atomic.Bool  // DELETED at the last discovery: drain and stop

	// reader fields
	checkpointRead bool      // the app's checkpoint has been looked up
	forceTrim      bool      // the next cursor is TRIM_HORIZON (position below retention)
	bornLater      bool      // appeared after the stream was first consumed: starts at TRIM_HORIZON
	dirtySince     time.Time // when position first moved past the checkpoint
	nextCommitTry  time.Time // after a failed commit
	lastDropLog    time.Time
	unsettled      []unsettled // delivered, not yet acknowledged by every subscriber, in order

	// discovery fields
	running bool
	drained bool
	cancel  context.CancelFunc
}

func newPartition(idx int) *partition {
	p := &partition{idx: idx, id: dis.ShardID(idx)}
	p.position.Store(-1)
	p.checkpoint.Store(-1)
	p.latest.Store(-1)
	p.state.Store("starting")
	p.lastErr.Store("")
	return p
}

func (p *partition) stats() PartitionStats {
	s := PartitionStats{
		PartitionID: p.id, State: p.state.Load().(string), Position: p.position.Load(),
		Checkpoint: p.checkpoint.Load(), Delivered: p.delivered.Load(), LastError: p.lastErr.Load().(string),
	}
	if ts := p.lastTS.Load(); ts > 0 {
		s.LastRecordTime = time.UnixMilli(ts)
	}
	if l, pos := p.latest.Load(), s.Position; l >= 0 && pos >= 0 && l > pos {
		s.Lag = uint64(l - pos)
	}
	return s
}

func (p *partition) setErr(err error) {
	if err == nil {
		p.lastErr.Store("")
		return
	}
	p.lastErr.Store(err.Error())
}

func (g *streamGroup) wants(idx int) bool { return g.all || g.wanted[idx] }

// rediscover asks the discovery goroutine for an early pass.
func (g *streamGroup) rediscover() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// discover lists the stream's partitions every DiscoveryInterval and keeps
// a reader on each readable one. It returns once ctx is done and every
// reader has stopped.
func (g *streamGroup) discover(ctx context.Context) {
	d := g.d
	defer g.wg.Wait()
	bo := d.newBackoff()
	var lastErr string
	for {
		desc, err := d.dis.DescribeStreamAll(ctx, g.name)
		if err == nil {
			err = g.reconcile(ctx, desc)
		}
		wait := d.opts.DiscoveryInterval
		switch {
		case err == nil:
			if lastErr != "" {
				d.log.Info("downlink: stream described again", "stream", g.name)
				lastErr = ""
			}
			bo.reset()
		case ctx.Err() != nil:
			return
		default:
			d.c.readErrors.Add(1)
			if msg := err.Error(); msg != lastErr {
				d.log.Warn("downlink: cannot describe the stream; readers keep their positions, retrying", "stream", g.name, "err", err)
				lastErr = msg
			}
			wait = min(bo.next(), d.opts.DiscoveryInterval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-g.kick:
			// A reader found its partition gone: look again soon, but not
			// in a tight loop should DIS keep contradicting itself.
			t.Stop()
			if !sleep(ctx, d.opts.BackoffInitial) {
				return
			}
		case <-t.C:
		}
	}
}

// reconcile starts readers on readable partitions and stops the others.
//
// The configured start position is for partitions that exist when the
// stream is first consumed. A partition that appears later (scale-up) is
// read from TRIM_HORIZON, or the records written to it before its reader
// started would be skipped: on the first pass of this process, a partition
// without a checkpoint is new when another partition of the stream has one.
func (g *streamGroup) reconcile(ctx context.Context, desc *dis.DescribeStreamResponse) error {
	type readable struct {
		p      *partition
		status string
	}
	var list []readable
	seen := map[int]bool{}
	g.mu.Lock()
	for _, pr := range desc.Partitions {
		idx, err := dis.ParsePartitionID(pr.PartitionID)
		if err != nil || !g.wants(idx) {
			continue
		}
		seen[idx] = true
		p := g.parts[idx]
		if p == nil {
			p = newPartition(idx)
			p.bornLater = g.passes > 0
			g.parts[idx] = p
		}
		if end, ok := rangeEnd(pr.SequenceNumberRange); ok && end > p.latest.Load() {
			p.latest.Store(end)
		}
		list = append(list, readable{p, pr.Status})
	}
	g.mu.Unlock()
	if g.passes == 0 {
		var first []*partition
		for _, r := range list {
			if r.status == dis.PartitionActive || r.status == dis.PartitionDeleted {
				first = append(first, r.p)
			}
		}
		if err := g.readCheckpoints(ctx, first); err != nil {
			return err
		}
	}
	g.passes++
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range list {
		p := r.p
		switch r.status {
		case dis.PartitionActive:
			p.deleted.Store(false)
			p.drained = false
			g.start(ctx, p)
		case dis.PartitionDeleted:
			// Readable until its data expires; read it to the end once.
			p.deleted.Store(true)
			if !p.drained {
				g.start(ctx, p)
			}
		default: // EXPIRED, or not yet ACTIVE
			g.stop(p)
		}
	}
	for idx, p := range g.parts {
		if !seen[idx] {
			g.stop(p)
		}
	}
	return nil
}

// readCheckpoints looks up the app's checkpoints of the partitions found by
// the first discovery pass, before any reader runs (so the reader fields may
// be set here), and marks those without one as new if others have one.
func (g *streamGroup) readCheckpoints(ctx context.Context, parts []*partition) error {
	anyCheckpoint := false
	for _, p := range parts {
		if !p.checkpointRead {
			cp, err := g.d.dis.GetCheckpoint(ctx, g.d.opts.App, g.name, p.id)
			if err != nil {
				return fmt.Errorf("checkpoint of %s: %w", p.id, err)
			}
			p.checkpointRead = true
			if seq, ok := parseSeq(cp.SequenceNumber); ok {
				g.resumeFrom(p, seq)
			}
		}
		if p.checkpoint.Load() >= 0 {
			anyCheckpoint = true
		}
	}
	for _, p := range parts {
		if p.checkpoint.Load() < 0 {
			p.bornLater = anyCheckpoint
		}
	}
	return nil
}

func (g *streamGroup) resumeFrom(p *partition, seq int64) {
	p.position.Store(seq)
	p.checkpoint.Store(seq)
	g.d.log.Info("downlink: resuming from the checkpoint; records delivered after it was committed are delivered again",
		"stream", g.name, "partition", p.id, "seq", seq, "at_most", 2*g.d.opts.CommitEvery)
}

// start runs a reader on p unless one runs. Caller holds g.mu.
func (g *streamGroup) start(ctx context.Context, p *partition) {
	if p.running {
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	p.running, p.cancel = true, cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		drained := g.read(rctx, p)
		cancel()
		g.mu.Lock()
		p.running, p.cancel = false, nil
		if drained {
			p.drained = true
		}
		g.mu.Unlock()
	}()
}

// stop cancels p's reader, if any. Caller holds g.mu.
func (g *streamGroup) stop(p *partition) {
	if p.cancel != nil {
		p.cancel()
	}
	if !p.running {
		p.state.Store("stopped")
	}
}

// rangeEnd parses the end of a sequence_number_range "[first : end]".
func rangeEnd(r string) (int64, bool) {
	_, after, ok := strings.Cut(r, ":")
	if !ok {
		return 0, false
	}
	return parseSeq(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(after), "]")))
}

// gone reports errors after which the partition cannot be read any more;
// discovery decides what happens next.
func gone(err error) bool {
	return dis.IsCode(err, dis.CodePartitionNotFound) || dis.IsCode(err, dis.CodePartitionExpired) ||
		dis.IsCode(err, dis.CodeStreamNotFound)
}

// read is the reader goroutine of p. It returns when ctx is done, when the
// partition is gone, or when a DELETED partition has been read to its end
// (drained is then true). Before returning it commits what was delivered.
func (g *streamGroup) read(ctx context.Context, p *partition) (drained bool) {
	d := g.d
	defer func() {
		for deadline := time.Now().Add(finalSettleTimeout); g.committable(p) != p.position.Load() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalCommitTimeout)
		g.commit(cctx, p, true)
		cancel()
		if drained {
			p.state.Store("drained")
		} else {
			p.state.Store("stopped")
		}
	}()
	bo := d.newBackoff()
	idle := time.Duration(0)
	cursor := ""
	failing := false
	fail := func(what string, err error) bool {
		d.c.readErrors.Add(1)
		p.setErr(err)
		p.state.Store("backoff")
		if !failing {
			d.log.Warn("downlink: "+what+" failed; backing off and retrying", "stream", g.name, "partition", p.id, "err", err)
			failing = true
		}
		return sleep(ctx, bo.next())
	}
	for ctx.Err() == nil {
		if cursor == "" {
			c, err := g.open(ctx, p)
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				if gone(err) {
					d.log.Info("downlink: partition no longer readable", "stream", g.name, "partition", p.id, "err", err)
					g.rediscover()
					return false
				}
				fail("getting a cursor", err)
				continue
			}
			cursor = c
		}
		resp, err := d.dis.GetRecords(ctx, cursor, d.opts.MaxFetchBytes)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return false
			case dis.IsCode(err, dis.CodeExpiredCursor):
				d.c.cursorRenewals.Add(1)
				cursor = ""
			case dis.IsCode(err, dis.CodeRecordExpired):
				g.jumpToTrimHorizon(p, err)
				cursor = ""
			case gone(err):
				d.log.Info("downlink: partition no longer readable", "stream", g.name, "partition", p.id, "err", err)
				g.rediscover()
				return false
			default:
				fail("reading records", err)
			}
			continue
		}
		if failing {
			d.log.Info("downlink: reading again", "stream", g.name, "partition", p.id)
			failing = false
		}
		bo.reset()
		p.setErr(nil)
		for _, rec := range resp.Records {
			seq, ok := parseSeq(rec.SequenceNumber)
			if !ok {
				d.deadLetter(g, p, rec, "", "transform", fmt.Sprintf("sequence number %q is not a decimal number", rec.SequenceNumber))
				continue
			}
			if pos := p.position.Load(); pos >= 0 && seq < pos {
				continue // already handed over (a renewed cursor never goes back, but be safe)
			}
			if !g.awaitWindow(ctx, p) {
				return false
			}
			settled, err := g.dispatch(ctx, p, rec)
			if err != nil {
				return false // ctx done while retrying; the record stays unacknowledged
			}
			if settled != nil && !settled() {
				p.unsettled = append(p.unsettled, unsettled{seq, settled, time.Now()})
			}
			g.advance(p, seq+1)
			g.maybeCommit(ctx, p)
		}
		if resp.NextPartitionCursor != "" {
			cursor = resp.NextPartitionCursor
		} else {
			cursor = "" // reopen at the position
		}
		if len(resp.Records) > 0 {
			idle = 0
			p.state.Store("reading")
			continue
		}
		// Caught up.
		if pos := p.position.Load(); pos >= 0 {
			p.latest.Store(pos)
		}
		if p.deleted.Load() {
			return true
		}
		p.state.Store("idle")
		g.maybeCommit(ctx, p)
		idle = min(max(idle*2, d.opts.PollMin), d.opts.PollMax)
		wait := idle
		if !p.dirtySince.IsZero() {
			wait = min(wait, max(time.Until(p.dirtySince.Add(d.opts.CommitInterval)), time.Millisecond))
		}
		sleep(ctx, wait)
	}
	return false
}

// advance moves the position past a record handed to the broker.
func (g *streamGroup) advance(p *partition, next int64) {
	p.position.Store(next)
	if p.dirtySince.IsZero() && next != p.checkpoint.Load() {
		p.dirtySince = time.Now()
	}
}

// open returns a cursor at the partition's position: the one in memory,
// else the app's checkpoint, else the configured start position.
func (g *streamGroup) open(ctx context.Context, p *partition) (string, error) {
	d := g.d
	if p.position.Load() < 0 && !p.checkpointRead && !p.forceTrim {
		cp, err := d.dis.GetCheckpoint(ctx, d.opts.App, g.name, p.id)
		if err != nil {
			return "", err
		}
		p.checkpointRead = true
		if seq, ok := parseSeq(cp.SequenceNumber); ok {
			g.resumeFrom(p, seq)
		}
	}
	req := dis.CursorRequest{StreamName: g.name, PartitionID: p.id}
	pos := p.position.Load()
	switch {
	case p.forceTrim:
		req.CursorType = dis.CursorTrimHorizon
	case pos >= 0:
		req.CursorType, req.StartingSequenceNumber = dis.CursorAtSequenceNumber, strconv.FormatInt(pos, 10)
	case p.bornLater || d.opts.Start == StartTrimHorizon:
		req.CursorType = dis.CursorTrimHorizon
	case d.opts.Start == StartTimestamp:
		req.CursorType, req.Timestamp = dis.CursorAtTimestamp, d.opts.StartTime.UnixMilli()
	default:
		req.CursorType = dis.CursorLatest
	}
	cur, err := d.dis.GetCursor(ctx, req)
	if req.CursorType == dis.CursorAtSequenceNumber && (dis.IsCode(err, dis.CodeSequenceOutOfRange) || dis.IsCode(err, dis.CodeRecordExpired)) {
		// The position is outside what DIS holds: below retention, or past
		// the end of a stream that was deleted and created again.
		g.jumpToTrimHorizon(p, err)
		req = dis.CursorRequest{StreamName: g.name, PartitionID: p.id, CursorType: dis.CursorTrimHorizon}
		cur, err = d.dis.GetCursor(ctx, req)
	}
	if err != nil {
		return "", err
	}
	p.forceTrim = false
	if req.CursorType != dis.CursorAtSequenceNumber {
		// Learn the position the cursor stands for (DIS cursors carry it;
		// the Kafka adapter reads it too) and commit it, so that a restart
		// before the first record resumes here rather than at a later LATEST.
		if c, err := dis.DecodeCursor(cur); err == nil {
			if seq, ok := parseSeq(c.StartingSequenceNumber); ok {
				p.position.Store(seq)
				p.dirtySince = time.Now()
				g.commit(ctx, p, true)
			}
		}
	}
	return cur, nil
}

// jumpToTrimHorizon makes the next cursor TRIM_HORIZON after DIS said the
// position is no longer held.
func (g *streamGroup) jumpToTrimHorizon(p *partition, err error) {
	g.d.c.trimJumps.Add(1)
	g.d.log.Warn("downlink: position is outside the records DIS holds (below retention); continuing at TRIM_HORIZON, records in between were never delivered",
		"stream", g.name, "partition", p.id, "position", p.position.Load(), "err", err)
	p.position.Store(-1)
	p.forceTrim = true
	p.unsettled = nil // delivered before the jump; the checkpoint moves past them anyway
}

// committable is the position the checkpoint may move to: the position,
// or the first delivered record not yet acknowledged by every subscriber.
// Reader goroutine.
func (g *streamGroup) committable(p *partition) int64 {
	for len(p.unsettled) > 0 && p.unsettled[0].settled() {
		p.unsettled = p.unsettled[1:]
	}
	if len(p.unsettled) > 0 {
		return p.unsettled[0].seq
	}
	if cap(p.unsettled) > 1024 {
		p.unsettled = nil // let a burst's backing array go
	}
	return p.position.Load()
}

// ackPoll is how often a reader whose window is full looks for
// acknowledgements: a connected device acknowledges within milliseconds.
const ackPoll = 2 * time.Millisecond

// awaitWindow waits until fewer than CommitEvery delivered records of p are
// unacknowledged, so a crash repeats at most twice CommitEvery records per
// partition and a slow subscriber is not flooded (mochi would drop). A
// record unacknowledged for AckTimeout stops counting (the partition must
// not wait on one stuck device; its persistent session still holds it). It
// reports false when ctx ends.
func (g *streamGroup) awaitWindow(ctx context.Context, p *partition) bool {
	d := g.d
	for {
		g.committable(p)
		if len(p.unsettled) < d.opts.CommitEvery {
			return true
		}
		if time.Since(p.unsettled[0].at) >= d.opts.AckTimeout {
			d.c.ackTimeouts.Add(1)
			d.log.Warn("downlink: a subscriber has not acknowledged a command; not waiting any longer",
				"stream", g.name, "partition", p.id, "seq", p.unsettled[0].seq, "ack_timeout", d.opts.AckTimeout)
			p.unsettled = p.unsettled[1:]
			continue
		}
		g.maybeCommit(ctx, p)
		if !sleep(ctx, ackPoll) {
			return false
		}
	}
}

// maybeCommit commits when CommitEvery records or CommitInterval have
// passed since the checkpoint.
func (g *streamGroup) maybeCommit(ctx context.Context, p *partition) {
	pos, cp := p.position.Load(), p.checkpoint.Load()
	if pos < 0 || pos == cp {
		return
	}
	if pos-cp >= int64(g.d.opts.CommitEvery) || time.Since(p.dirtySince) >= g.d.opts.CommitInterval {
		g.commit(ctx, p, false)
	}
}

// commit stores the committable position as the app's checkpoint. Unless
// force is set it waits a CommitInterval after a failure before trying
// again.
func (g *streamGroup) commit(ctx context.Context, p *partition, force bool) {
	d := g.d
	pos := g.committable(p)
	if pos < 0 || pos == p.checkpoint.Load() {
		return
	}
	if !force && time.Now().Before(p.nextCommitTry) {
		return
	}
	err := d.dis.CommitCheckpoint(ctx, &dis.CommitCheckpointRequest{
		AppName: d.opts.App, CheckpointType: dis.CheckpointLastRead, StreamName: g.name,
		PartitionID: p.id, SequenceNumber: strconv.FormatInt(pos, 10),
	})
	if err != nil {
		d.c.commitErrors.Add(1)
		p.nextCommitTry = time.Now().Add(d.opts.CommitInterval)
		if ctx.Err() == nil {
			d.log.Warn("downlink: committing the checkpoint failed; retrying", "stream", g.name, "partition", p.id, "seq", pos, "err", err)
		}
		if dis.IsCode(err, dis.CodeAppNotFound) {
			// Someone deleted the app; make it again so the next commit lands.
			if cerr := d.dis.CreateApp(ctx, d.opts.App); cerr == nil {
				d.log.Warn("downlink: the consumer app was gone and has been created again", "app", d.opts.App)
			}
		}
		return
	}
	d.c.commits.Add(1)
	p.checkpoint.Store(pos)
	p.dirtySince = time.Time{}
	if pos != p.position.Load() {
		p.dirtySince = time.Now()
	}
}

// dispatch hands one record to the broker through the first route that
// accepts it, and returns its settlement (nil: nothing to wait for). It
// returns an error only when ctx ends while it waits to publish again.
func (g *streamGroup) dispatch(ctx context.Context, p *partition, rec dis.Record) (func() bool, error) {
	d := g.d
	r := &record{stream: g.name, partition: p.idx, key: rec.PartitionKey, data: rec.Data}
	var rt *route
	for _, c := range g.routes {
		if c.accepts(r) {
			rt = c
			break
		}
	}
	if rt == nil {
		d.c.filtered.Add(1)
		return nil, nil
	}
	topic, err := rt.topic.render(r, rt.KeyPrefix)
	if err != nil {
		d.deadLetter(g, p, rec, "", "topic", err.Error())
		return nil, nil
	}
	payload, err := rt.payload(r)
	if err != nil {
		d.deadLetter(g, p, rec, topic, "transform", err.Error())
		return nil, nil
	}
	wait := dropRetryInitial
	for attempt := 1; ; attempt++ {
		dropped, settled, err := d.opts.Publish(topic, payload, rt.Retain, rt.QoS)
		if err == nil && dropped == 0 {
			d.c.delivered.Add(1)
			p.delivered.Add(1)
			p.lastTS.Store(rec.Timestamp)
			return settled, nil
		}
		d.c.dropped.Add(uint64(dropped))
		if time.Since(p.lastDropLog) > 10*time.Second { // one line per partition per 10 s; every drop is counted
			d.log.Warn("downlink: subscribers dropped a message (queue or inflight store full); publishing again",
				"stream", g.name, "partition", p.id, "seq", rec.SequenceNumber, "topic", topic, "dropped", dropped, "attempt", attempt, "err", err)
			p.lastDropLog = time.Now()
		}
		if d.opts.OnDrop == DropDeadLetter && attempt >= d.opts.MaxAttempts {
			reason := fmt.Sprintf("%d subscriber deliveries dropped on the last of %d attempts", dropped, attempt)
			if err != nil {
				reason = fmt.Sprintf("publish failed on the last of %d attempts: %v", attempt, err)
			}
			d.deadLetter(g, p, rec, topic, "dropped", reason)
			return nil, nil
		}
		d.c.retries.Add(1)
		g.maybeCommit(ctx, p) // what came before this record is delivered
		if !sleep(ctx, wait) {
			return nil, ctx.Err()
		}
		wait = min(wait*2, dropRetryMax)
	}
}
