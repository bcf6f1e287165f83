package buffer

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/skl"
)

// request is one pending append, owned by the writer once enqueued.
type request struct {
	stream string
	val    []byte      // encoded record value
	done   chan result // nil for AppendAsync

	// set by the writer
	s   *stream
	seq uint64
	err error
}

type result struct {
	seq uint64
	err error
}

// Transaction budget. badger refuses a transaction above 15% of the memtable
// (maxBatchSize) or maxBatchSize/MaxNodeSize entries; we close a transaction
// before either, keeping txnReserve bytes and entries for the per-stream 'n'
// keys added at commit.
var (
	txnMaxBytes   = int64(memTableSize) * 15 / 100
	txnMaxEntries = txnMaxBytes / int64(skl.MaxNodeSize)
)

const (
	// txnReserve: room for the 'n' keys of up to ~1000 streams per transaction.
	txnReserve = 64 << 10
	// txnReserveEntries: entries kept free for those 'n' keys.
	txnReserveEntries = 1024
	// entryOverhead approximates badger's per-entry accounting (meta bytes,
	// version) so our estimate stays above its own.
	entryOverhead = 16
)

// runWriter is the single writer goroutine: it gathers pending appends into a
// batch and commits the batch (group commit). It exits when reqs is closed and
// drained, so every append accepted before Close is committed.
func (b *Buffer) runWriter() {
	defer close(b.writerDone)
	var batch []*request
	for {
		r, ok := <-b.reqs
		if !ok {
			return
		}
		batch = b.gather(append(batch[:0], r))
		b.commitBatch(batch)
		clear(batch) // drop references to the requests
	}
}

// gather adds to batch every request already waiting, then, if Linger > 0,
// those arriving within Linger, up to the batch bounds.
func (b *Buffer) gather(batch []*request) []*request {
	size := len(batch[0].val)
	full := func() bool { return len(batch) >= b.opts.MaxBatchRecords || size >= b.opts.MaxBatchBytes }
	// The publishers woken by the previous batch are about to enqueue their
	// next record; yielding once lets them reach the queue before we take
	// what is there (measured with 8 appenders: 4.0 -> 7+ records per sync).
	runtime.Gosched()
	for !full() {
		select {
		case r, ok := <-b.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			size += len(r.val)
			continue
		default:
		}
		break
	}
	if b.opts.Linger <= 0 || full() {
		return batch
	}
	t := time.NewTimer(b.opts.Linger)
	defer t.Stop()
	for !full() {
		select {
		case r, ok := <-b.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			size += len(r.val)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// op is one write of a batch: a record set (req != nil) or the delete of a
// record dropped by drop_oldest.
type op struct {
	key []byte
	req *request
	s   *stream // for deletes: owner of key
}

// commitBatch admits, writes, syncs and acknowledges one batch.
func (b *Buffer) commitBatch(batch []*request) {
	b.batches.Add(1)
	b.ackMu.RLock() // drop_oldest deletes ride in this batch; see ackMu
	defer b.ackMu.RUnlock()

	// 1. Admission under b.mu: bounds, overflow policy, Seq assignment.
	var ops []op
	var touched []*stream
	accepted := 0
	b.mu.Lock()
	for _, r := range batch {
		s := b.streamLocked(r.stream)
		r.s = s
		if !s.inBatch {
			s.inBatch, s.batchFirst = true, s.next
			touched = append(touched, s)
		}
		victims, err := b.admitLocked(s, int64(len(r.val)))
		for _, k := range victims {
			ops = append(ops, op{key: k, s: s})
		}
		if err != nil {
			r.err = err
			continue
		}
		r.seq = s.next
		s.next++
		s.win.push(uint32(len(r.val)))
		s.records++
		s.bytes += int64(len(r.val))
		b.records++
		b.bytes += int64(len(r.val))
		ops = append(ops, op{key: recordKey(s.prefix, r.seq), req: r})
		accepted++
	}
	b.mu.Unlock()

	// 2. Write: ops[:durable] are durable, ops[durable:written] committed
	// but their sync failed, ops[written:] not written at all.
	durable, written := len(ops), len(ops)
	var werr, serr error
	if len(ops) > 0 {
		if err := b.checkSpace(accepted); err != nil {
			durable, written, werr = 0, 0, err
		} else {
			durable, written, werr, serr = b.writeOps(ops)
		}
	}

	// 3. Settle under b.mu: roll back what was not written, publish the rest.
	var lostVictims map[*stream][][]byte
	rollbackFrom := make(map[*stream]uint64)
	for i := durable; i < len(ops); i++ {
		o := ops[i]
		if i < written {
			// Committed and visible, durability unknown: the publisher is
			// told, the record stays (it may reach DIS: at-least-once).
			if o.req != nil {
				o.req.err = serr
			}
			continue
		}
		if o.req == nil {
			if lostVictims == nil {
				lostVictims = make(map[*stream][][]byte)
			}
			lostVictims[o.s] = append(lostVictims[o.s], o.key)
			continue
		}
		o.req.err = werr
		if _, ok := rollbackFrom[o.req.s]; !ok {
			rollbackFrom[o.req.s] = o.req.seq
		}
	}
	b.mu.Lock()
	for s, from := range rollbackFrom {
		for seq := from; seq < s.next; seq++ {
			if size := int64(s.win.get(seq)); size > 0 {
				s.records--
				s.bytes -= size
				b.records--
				b.bytes -= size
			}
		}
		s.win.truncate(from)
		s.next = from
		if s.head > s.next {
			s.head = s.next
		}
	}
	for s, keys := range lostVictims {
		// Dropped in memory but their delete was not written: retry later.
		b.pendingDel[s] = append(b.pendingDel[s], keys...)
	}
	for _, s := range touched {
		if s.next > s.batchFirst {
			s.persisted = true
			s.appended += s.next - s.batchFirst
			b.appended.Add(s.next - s.batchFirst)
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
		s.inBatch = false
	}
	for _, r := range batch {
		if r.err != nil && r.s != nil && errors.Is(r.err, ErrFull) {
			r.s.rejected++
		}
	}
	b.mu.Unlock()

	// 4. Wake the waiters.
	asyncFailures := 0
	var asyncErr error
	for _, r := range batch {
		switch {
		case r.err == nil:
		case errors.Is(r.err, ErrFull):
			b.rejected.Add(1)
		case errors.Is(r.err, ErrDiskFull):
			b.diskFull.Add(1)
		default:
			b.writeErrors.Add(1)
		}
		if r.done != nil {
			r.done <- result{seq: r.seq, err: r.err}
		} else if r.err != nil {
			asyncFailures++
			asyncErr = r.err
		}
	}
	if werr != nil || serr != nil {
		b.log.Warn("buffer: append failed", "not_written", len(ops)-written, "not_synced", written-durable, "err", errors.Join(werr, serr))
	}
	if asyncFailures > 0 {
		b.log.Warn("buffer: asynchronous appends lost", "records", asyncFailures, "err", asyncErr)
	}
}

// admitLocked applies the byte bounds to a record of size bytes for s. Under
// drop_oldest it removes s's oldest committed records until the record fits
// and returns their keys for deletion. b.mu held.
func (b *Buffer) admitLocked(s *stream, size int64) (victims [][]byte, err error) {
	over := func() bool {
		return b.bytes+size > b.opts.MaxBytes || (s.lim.maxBytes > 0 && s.bytes+size > s.lim.maxBytes)
	}
	if !over() {
		return nil, nil
	}
	if size > b.opts.MaxBytes || (s.lim.maxBytes > 0 && size > s.lim.maxBytes) {
		return nil, fmt.Errorf("%w: stream %s: a %d-byte record exceeds the bound itself", ErrFull, s.name, size)
	}
	if s.lim.overflow != OverflowDropOldest {
		return nil, fmt.Errorf("%w: stream %s: %d bytes buffered (%d all streams), bound %d", ErrFull, s.name, s.bytes, b.bytes, b.boundFor(s))
	}
	for over() {
		// Only records committed before this batch can be dropped: the
		// others are not on disk yet.
		if s.head >= s.batchFirst {
			return victims, fmt.Errorf("%w: stream %s: nothing left to drop (%d bytes buffered by other streams, bound %d)", ErrFull, s.name, b.bytes-s.bytes, b.boundFor(s))
		}
		victims = append(victims, b.removeLocked(s, []uint64{s.head}, reasonDrop)...)
	}
	return victims, nil
}

func (b *Buffer) boundFor(s *stream) int64 {
	if s.lim.maxBytes > 0 && s.lim.maxBytes < b.opts.MaxBytes {
		return s.lim.maxBytes
	}
	return b.opts.MaxBytes
}

// checkSpace refuses a batch that would write while the filesystem is below
// the free-space reserve (or when a test injects a failure).
func (b *Buffer) checkSpace(records int) error {
	if b.commitHook != nil {
		if err := b.commitHook(); err != nil {
			return classify(fmt.Errorf("append %d records: %w", records, err))
		}
	}
	if b.opts.MinFreeDisk < 0 {
		return nil
	}
	free, err := freeBytes(b.opts.Dir)
	if err != nil {
		return classify(fmt.Errorf("append: statfs %s: %w", b.opts.Dir, err))
	}
	if free >= 0 && free < b.opts.MinFreeDisk {
		return fmt.Errorf("%w: %s has %d bytes free, below the %d-byte reserve", ErrDiskFull, b.opts.Dir, free, b.opts.MinFreeDisk)
	}
	return nil
}

// classify marks ENOSPC errors as ErrDiskFull.
func classify(err error) error {
	if err != nil && isNoSpace(err) && !errors.Is(err, ErrDiskFull) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// writeOps writes ops as a sequence of badger transactions, each within
// badger's size limits, and syncs per Options.Sync (SyncAlways: each record
// in its own transaction followed by a sync; SyncBatch: one sync after the
// last transaction; SyncNone: none). ops[:durable] are durable,
// ops[durable:written] are committed but their sync failed (serr),
// ops[written:] were not written (werr).
func (b *Buffer) writeOps(ops []op) (durable, written int, werr, serr error) {
	perRecord := b.opts.Sync == SyncAlways
	for written < len(ops) {
		end, err := b.writeTxn(ops, written, perRecord)
		if err != nil {
			werr = classify(err)
			break
		}
		written = end
		if perRecord {
			if err := b.sync(); err != nil {
				return durable, written, err, err
			}
			durable = written
		}
	}
	if !perRecord && written > 0 {
		if b.opts.Sync == SyncBatch {
			if err := b.sync(); err != nil {
				return 0, written, werr, err
			}
		}
		durable = written
	}
	return durable, written, werr, nil
}

func (b *Buffer) sync() error {
	b.syncs.Add(1)
	if err := b.db.Sync(); err != nil {
		return classify(fmt.Errorf("sync buffer: %w", err))
	}
	return nil
}

// writeTxn commits one transaction holding ops[start:end] and returns end.
func (b *Buffer) writeTxn(ops []op, start int, onePerTxn bool) (int, error) {
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	var size, entries int64
	nexts := make(map[*stream]uint64)
	i := start
	for ; i < len(ops); i++ {
		o := ops[i]
		est := int64(len(o.key)) + entryOverhead
		if o.req != nil {
			est += int64(len(o.req.val))
		}
		if i > start && (size+est > txnMaxBytes-txnReserve || entries+1 > txnMaxEntries-txnReserveEntries) {
			break
		}
		var err error
		if o.req == nil {
			err = txn.Delete(o.key)
		} else {
			err = txn.Set(o.key, o.req.val)
			nexts[o.req.s] = o.req.seq + 1
		}
		if errors.Is(err, badger.ErrTxnTooBig) && i > start {
			break // our estimate was short; commit what we have
		}
		if err != nil {
			return start, fmt.Errorf("append: %w", err)
		}
		size += est
		entries++
		if onePerTxn && o.req != nil {
			i++
			break
		}
	}
	for s, next := range nexts {
		if err := txn.Set(metaKey(pfxNext, s.name), u64(next)); err != nil {
			return start, fmt.Errorf("append: next seq of %s: %w", s.name, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return start, fmt.Errorf("append: commit: %w", err)
	}
	b.txns.Add(1)
	return i, nil
}
