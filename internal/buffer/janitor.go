package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// runJanitor is the background goroutine owned by the Buffer (stopped by
// Close): every JanitorInterval it expires records older than their stream's
// MaxAge, retries failed deletes and persists head hints; every GCInterval it
// runs badger's value-log GC.
func (b *Buffer) runJanitor() {
	defer close(b.janitorDone)
	tick := time.NewTicker(b.opts.JanitorInterval)
	defer tick.Stop()
	gc := time.NewTicker(b.opts.GCInterval)
	defer gc.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			b.janitorPass()
		case <-gc.C:
			b.runValueLogGC()
			b.reclaim()
		}
	}
}

// janitorPass is one round of the janitor's periodic work.
func (b *Buffer) janitorPass() {
	if err := b.expire(); err != nil {
		b.log.Warn("buffer: expiring old records", "err", err)
	}
	b.retryPendingDeletes()
	if err := b.writeHints(); err != nil {
		b.log.Warn("buffer: persisting head hints", "err", err)
	}
}

// expireChunk bounds the records removed per transaction and per pass of one
// stream, so one pass over a huge expired backlog does not hold a read
// snapshot or build a giant delete for long; the next pass continues.
const expireChunk = 10000

// expire removes, per stream with a MaxAge, the records at the head whose
// Timestamp is older than now-MaxAge. It stops at the first younger record
// (FIFO: receive times grow along the queue, up to the ordering of
// concurrent publishers).
func (b *Buffer) expire() error {
	type job struct {
		s      *stream
		from   uint64
		end    uint64
		cutoff int64
	}
	now := b.now()
	var jobs []job
	b.mu.Lock()
	for _, s := range b.streams {
		if s.lim.maxAge > 0 && s.records > 0 {
			jobs = append(jobs, job{s, s.head, s.next, now.Add(-s.lim.maxAge).UnixMilli()})
		}
	}
	b.mu.Unlock()

	var errs []error
	for _, j := range jobs {
		seqs, err := b.olderThan(j.s.prefix, j.from, j.end, j.cutoff)
		if err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", j.s.name, err))
			continue
		}
		if len(seqs) == 0 {
			continue
		}
		b.ackMu.RLock()
		b.mu.Lock()
		keys := b.removeLocked(j.s, seqs, reasonExpire)
		b.mu.Unlock()
		if len(keys) > 0 {
			b.log.Info("buffer: expired records older than max age", "stream", j.s.name, "records", len(keys), "max_age", j.s.lim.maxAge)
			if err := b.deleteKeys(j.s, keys); err != nil {
				errs = append(errs, err)
			}
		}
		b.ackMu.RUnlock()
	}
	return errors.Join(errs...)
}

// olderThan returns up to expireChunk Seqs in [from, end) whose record is
// older than cutoff (epoch ms), stopping at the first younger one.
func (b *Buffer) olderThan(prefix []byte, from, end uint64, cutoff int64) ([]uint64, error) {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.dbClosed {
		return nil, ErrClosed
	}
	var seqs []uint64
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(recordKey(prefix, from)); it.Valid() && len(seqs) < expireChunk; it.Next() {
			item := it.Item()
			seq, ok := seqOfKey(prefix, item.Key())
			if !ok {
				continue
			}
			if seq >= end {
				break
			}
			var ts int64
			if err := item.Value(func(v []byte) (err error) { ts, err = timestampOf(v); return err }); err != nil {
				return fmt.Errorf("seq %d: %w", seq, err)
			}
			if ts >= cutoff {
				break
			}
			seqs = append(seqs, seq)
		}
		return nil
	})
	return seqs, err
}

// retryPendingDeletes retries deletes that failed earlier (disk trouble).
func (b *Buffer) retryPendingDeletes() {
	b.ackMu.RLock()
	defer b.ackMu.RUnlock()
	b.mu.Lock()
	pending := b.pendingDel
	b.pendingDel = make(map[*stream][][]byte)
	b.mu.Unlock()
	for s, keys := range pending {
		if err := b.writeDeletes(keys); err != nil {
			b.mu.Lock()
			b.pendingDel[s] = append(b.pendingDel[s], keys...)
			b.mu.Unlock()
			b.log.Warn("buffer: retrying deletes failed", "stream", s.name, "records", len(keys), "err", err)
		}
	}
}

// writeHints persists each stream's head when it moved. It holds ackMu
// exclusively, so every record below a head it writes has its delete
// committed (streams with deletes awaiting retry are skipped).
func (b *Buffer) writeHints() error {
	b.ackMu.Lock()
	defer b.ackMu.Unlock()
	type hint struct {
		s    *stream
		head uint64
	}
	var hints []hint
	b.mu.Lock()
	for _, s := range b.streams {
		if s.persisted && s.head != s.hint && len(b.pendingDel[s]) == 0 {
			hints = append(hints, hint{s, s.head})
		}
	}
	b.mu.Unlock()
	if len(hints) == 0 {
		return nil
	}
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.dbClosed {
		return ErrClosed
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, h := range hints {
		if err := wb.Set(metaKey(pfxHint, h.s.name), u64(h.head)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	b.mu.Lock()
	for _, h := range hints {
		h.s.hint = h.head
	}
	b.mu.Unlock()
	return nil
}

// runValueLogGC rewrites value-log files until badger finds none worth it.
// Records below 1 MiB never reach the value log (LIBRARY-NOTES A2), so this
// usually returns at once; LSM compaction is what reclaims their space.
func (b *Buffer) runValueLogGC() {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.dbClosed {
		return
	}
	for {
		err := b.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			b.log.Warn("buffer: value log GC", "err", err)
		}
		return
	}
}

// Reclaim thresholds. Deleted records keep their space until their
// tombstones are compacted into the bottom level, and a drained queue writes
// nothing that would trigger that compaction: measured, 1M records of 300 B
// drained left 350 MiB on disk; a Flatten brought it to 20 MiB in 1.7 s.
const (
	// reclaimMinLSM 64 MiB: below this the dead space is not worth a rewrite.
	reclaimMinLSM = 64 << 20
	// reclaimDeadRatio 4: flatten only when live records are under a quarter
	// of the tables, so the rewrite of live data costs at most a third of
	// what it frees.
	reclaimDeadRatio = 4
)

// reclaim flattens the LSM tree into one level when it is mostly dead
// records (a drained backlog), which drops tombstones with the values they
// delete. Writes go on meanwhile; badger pauses its own compactions.
func (b *Buffer) reclaim() {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.dbClosed {
		return
	}
	sst := filesUsage(b.opts.Dir, ".sst")
	b.mu.Lock()
	live := b.bytes
	b.mu.Unlock()
	minLSM := int64(reclaimMinLSM)
	if b.opts.reclaimMin > 0 {
		minLSM = b.opts.reclaimMin
	}
	if sst < minLSM || sst < reclaimDeadRatio*live {
		return
	}
	start := time.Now()
	if err := b.db.Flatten(1); err != nil {
		b.log.Warn("buffer: reclaiming disk space", "err", err)
		return
	}
	b.reclaims.Add(1)
	b.log.Info("buffer: reclaimed disk space of removed records", "tables_before", sst, "tables_after", filesUsage(b.opts.Dir, ".sst"), "live_bytes", live, "took", time.Since(start).Round(time.Millisecond))
}

// recover rebuilds the in-memory state from disk (called by Open).
func (b *Buffer) recover() error {
	start := time.Now()
	clean := false
	type meta struct {
		name       string
		next, hint uint64
	}
	var metas []meta
	err := b.db.View(func(txn *badger.Txn) error {
		switch _, err := txn.Get(keyClean); {
		case err == nil:
			clean = true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxNext}})
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			m := meta{name: string(item.Key()[1:]), hint: 1}
			if err := item.Value(func(v []byte) error { return decodeU64(v, &m.next) }); err != nil {
				it.Close()
				return fmt.Errorf("next seq of %q: %w", m.name, err)
			}
			metas = append(metas, m)
		}
		it.Close()
		for i := range metas {
			item, err := txn.Get(metaKey(pfxHint, metas[i].name))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := item.Value(func(v []byte) error { return decodeU64(v, &metas[i].hint) }); err != nil {
				return fmt.Errorf("head hint of %q: %w", metas[i].name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}

	for _, m := range metas {
		if err := b.recoverStream(m.name, m.next, m.hint); err != nil {
			return fmt.Errorf("recover stream %s: %w", m.name, err)
		}
	}

	if !b.opts.ReadOnly {
		if clean {
			// Remove the marker (durably) so that a crash from now on is seen.
			if err := b.db.Update(func(txn *badger.Txn) error { return txn.Delete(keyClean) }); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
			if err := b.db.Sync(); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
		} else if len(metas) > 0 {
			b.log.Warn("buffer: not closed cleanly last time; badger replayed its write-ahead log and truncated any torn tail, records not yet synced then may be missing",
				"dir", b.opts.Dir, "sync", string(b.opts.Sync))
		}
	}
	b.log.Info("buffer: opened", "dir", b.opts.Dir, "streams", len(metas), "records", b.records, "bytes", b.bytes, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// recoverStream seeks to the head hint and walks forward over the live
// records to rebuild the window (sizes) and find the first live record and
// the tail. It never visits keys below the hint.
func (b *Buffer) recoverStream(name string, next, hint uint64) error {
	s := b.streamLocked(name)
	s.persisted = true
	s.hint = hint
	seek := max(hint, 1)
	first, end := uint64(0), seek // end: one past the last live record seen
	s.win = newWindow(seek)
	err := b.db.View(func(txn *badger.Txn) error {
		// AllVersions: see Read; recoverSteps counts every key version visited.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.prefix, PrefetchValues: false, AllVersions: true})
		defer it.Close()
		var last []byte
		steps := uint64(0)
		defer func() { b.recoverSteps.Add(steps) }()
		for it.Seek(recordKey(s.prefix, seek)); it.Valid(); it.Next() {
			steps++
			item := it.Item()
			if last != nil && bytes.Equal(item.Key(), last) {
				continue
			}
			last = append(last[:0], item.Key()...)
			if item.IsDeletedOrExpired() {
				continue
			}
			seq, ok := seqOfKey(s.prefix, item.Key())
			if !ok {
				continue
			}
			size := item.ValueSize()
			if size <= 0 || size > 1<<31 {
				return fmt.Errorf("seq %d: implausible value size %d", seq, size)
			}
			if first == 0 {
				first = seq
				s.win = newWindow(seq)
			}
			for ; end < seq && end >= first; end++ {
				s.win.push(0) // a gap: removed out of order before the crash
			}
			s.win.push(uint32(size))
			end = seq + 1
			s.records++
			s.bytes += size
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.next = max(next, end, 1)
	if first == 0 {
		s.head = s.next
		s.win = newWindow(s.next)
	} else {
		s.head = first
		for s.win.end() < s.next {
			s.win.push(0)
		}
	}
	b.records += s.records
	b.bytes += s.bytes
	return nil
}

func decodeU64(v []byte, out *uint64) error {
	if len(v) != 8 {
		return fmt.Errorf("want 8 bytes, got %d", len(v))
	}
	*out = binary.BigEndian.Uint64(v)
	return nil
}
