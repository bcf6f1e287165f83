package disserver

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgegw/edgegw/internal/dis"
)

// The writer goroutine is the only place that assigns sequence numbers. It
// takes whole batches of jobs from its queue (everything that queued up
// while the previous batch was being synced), routes and admits their
// records, writes them in as few transactions as Badger allows, syncs once,
// and only then makes the records visible and answers. That is the group
// commit: concurrent PutRecords and checkpoint commits share one fsync.

// Batch bounds: a batch stops growing at 1024 jobs or 32 MiB of record data,
// so one slow sync never holds more than a few requests' worth of memory.
const (
	maxBatchJobs  = 1024
	maxBatchBytes = 32 << 20
)

// putRecord is one record of a PutRecords request, validated by the handler.
type putRecord struct {
	data         []byte
	partitionKey string
	partitionID  int   // -1: none given
	hashKey      int64 // -1: none given
	timestamp    int64 // 0: none given
	err          *dis.Error
}

// job is one unit of work for the writer: the records of a PutRecords
// request, plain key writes (checkpoints), or a barrier.
type job struct {
	st      *stream
	records []putRecord
	results []dis.PutRecordsResultEntry // filled by the writer, in request order

	sets    []kv
	barrier bool

	done chan error
}

type kv struct {
	key, value []byte
	delete     bool
}

type writer struct {
	s    *Server
	in   chan *job
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex // guards stopped against concurrent submit/stop
	stopped bool
}

func newWriter(s *Server) *writer {
	// 256 queued jobs: enough to keep the next batch full while one syncs;
	// beyond that submitters block, which is the back-pressure we want.
	return &writer{s: s, in: make(chan *job, 256), quit: make(chan struct{}), done: make(chan struct{})}
}

var errWriterStopped = errors.New("DIS server is shutting down")

// submit queues j and waits for its result. Called from handler goroutines.
func (w *writer) submit(j *job) error {
	j.done = make(chan error, 1)
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return errWriterStopped
	}
	w.mu.Unlock()
	select {
	case w.in <- j:
	case <-w.quit:
		return errWriterStopped
	}
	select {
	case err := <-j.done:
		return err
	case <-w.done:
		// The writer may have answered just before exiting.
		select {
		case err := <-j.done:
			return err
		default:
			return errWriterStopped
		}
	}
}

// barrier returns once every job queued before it has been written.
func (w *writer) barrier() error { return w.submit(&job{barrier: true}) }

// stop ends the writer after the batch in progress; queued jobs fail.
func (w *writer) stop() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	w.mu.Unlock()
	close(w.quit)
	<-w.done
}

func (w *writer) run() {
	defer close(w.done)
	var batch []*job
	for {
		batch = batch[:0]
		select {
		case j := <-w.in:
			batch = append(batch, j)
		case <-w.quit:
			w.drainFailed()
			return
		}
		bytes := jobBytes(batch[0])
	fill:
		for len(batch) < maxBatchJobs && bytes < maxBatchBytes {
			select {
			case j := <-w.in:
				batch = append(batch, j)
				bytes += jobBytes(j)
			default:
				break fill
			}
		}
		w.process(batch)
	}
}

func (w *writer) drainFailed() {
	for {
		select {
		case j := <-w.in:
			j.done <- errWriterStopped
		default:
			return
		}
	}
}

func jobBytes(j *job) int {
	n := 0
	for i := range j.records {
		n += len(j.records[i].data)
	}
	return n
}

// pending is one record entry to write.
type pending struct {
	j    *job
	i    int // index in j.records / j.results
	p    *partition
	seq  int64
	key  []byte
	val  []byte
	prev partitionMarks // partition state before this record, for rollback
}

type partitionMarks struct{ assign, arrival, index int64 }

// process admits, writes and syncs one batch, then answers every job.
func (w *writer) process(batch []*job) {
	s := w.s
	now := ms(s.now())
	var entries []pending
	var sets []kv
	for _, j := range batch {
		if j.st != nil {
			entries = w.admit(j, now, entries)
		}
		sets = append(sets, j.sets...)
	}
	failedFrom, err := w.write(entries, sets)
	if err == nil {
		if err = s.db.Sync(); err != nil {
			failedFrom = 0
		}
	}
	if err != nil {
		s.log.Error("DIS record write failed", "err", err, "records", len(entries)-failedFrom)
		// Roll back every partition to its first failed sequence number, so
		// numbers stay dense: the failed suffix will be assigned again.
		for k := len(entries) - 1; k >= failedFrom; k-- {
			e := entries[k]
			e.p.assign, e.p.lastArrival, e.p.lastIndex = e.prev.assign, e.prev.arrival, e.prev.index
			e.j.results[e.i] = dis.PutRecordsResultEntry{ErrorCode: dis.CodeSystemError, ErrorMessage: "System error. The record was not stored."}
		}
	}
	// Publish: readers may now see everything up to the last stored record.
	for _, e := range entries[:failedFrom] {
		if e.p.committed.Load() < e.seq+1 {
			e.p.committed.Store(e.seq + 1)
		}
	}
	for _, j := range batch {
		if j.st == nil && len(j.sets) > 0 && err != nil {
			j.done <- fmt.Errorf("write: %w", err)
			continue
		}
		j.done <- nil
	}
}

// write stores entries (then sets) in as few transactions as fit. On a
// failure it returns the index of the first entry that is not stored.
func (w *writer) write(entries []pending, sets []kv) (int, error) {
	db := w.s.db
	txn := db.NewTransaction(true)
	defer func() { txn.Discard() }()
	txnStart := 0 // first entry in the open transaction
	commit := func(upTo int) error {
		if err := txn.Commit(); err != nil {
			return err
		}
		txn = db.NewTransaction(true)
		txnStart = upTo
		return nil
	}
	for k := range entries {
		e := badger.NewEntry(entries[k].key, entries[k].val)
		err := txn.SetEntry(e)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := commit(k); err != nil {
				return txnStart, err
			}
			err = txn.SetEntry(e)
		}
		if err != nil {
			return txnStart, err
		}
	}
	for _, s := range sets {
		var err error
		apply := func() error {
			if s.delete {
				return txn.Delete(s.key)
			}
			return txn.Set(s.key, s.value)
		}
		err = apply()
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := commit(len(entries)); err != nil {
				return txnStart, err
			}
			err = apply()
		}
		if err != nil {
			return txnStart, err
		}
	}
	if err := txn.Commit(); err != nil {
		return txnStart, err
	}
	return len(entries), nil
}

// admit routes one job's records, applies flow control and fault injection,
// and assigns sequence numbers to the records that pass. Runs on the writer
// goroutine with the stream read-locked, so partitions cannot change under it.
func (w *writer) admit(j *job, now int64, entries []pending) []pending {
	s := w.s
	st := j.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	j.results = make([]dis.PutRecordsResultEntry, len(j.records))
	if st.deleted {
		for i := range j.results {
			j.results[i] = dis.PutRecordsResultEntry{ErrorCode: dis.CodeStreamNotFound, ErrorMessage: "The stream does not exist. " + st.meta.Name}
		}
		return entries
	}
	faults := s.currentFaults()
	limit := s.cfg.FlowControl.Common
	if st.meta.StreamType == dis.StreamTypeAdvanced {
		limit = s.cfg.FlowControl.Advanced
	}
	// Once a partition throttles a record in this request (flow control or
	// injected), later records of the same partition fail too, as with real
	// per-partition flow control, so a client that resends the failed ones
	// keeps per-partition order.
	var throttled map[int]bool
	for i := range j.records {
		r := &j.records[i]
		res := &j.results[i]
		if r.err != nil {
			*res = entryError(r.err)
			continue
		}
		idx, perr := w.route(st, r)
		if perr != nil {
			*res = entryError(perr)
			continue
		}
		p := st.parts[idx]
		if throttled[idx] {
			*res = throttleEntry("an earlier record of partition %s in this request was throttled", dis.ShardID(idx))
			continue
		}
		// Only records that would otherwise be stored count, so every N
		// counted records hold N-1 successes and resending cannot livelock.
		s.recordCounter++
		if faults.FailEveryNthRecord > 0 && s.recordCounter%uint64(faults.FailEveryNthRecord) == 0 {
			throttled = markThrottled(throttled, idx)
			*res = throttleEntry("fault injection: every %dth record fails", faults.FailEveryNthRecord)
			continue
		}
		if s.cfg.FlowControl.Enabled && !p.admit(limit, len(r.data), now, s.cfg.Limits.MaxRecordBytes) {
			throttled = markThrottled(throttled, idx)
			*res = throttleEntry("partition %s is limited to %d bytes/s and %d records/s", dis.ShardID(idx), limit.BytesPerSecond, limit.RecordsPerSecond)
			continue
		}
		prev := partitionMarks{p.assign, p.lastArrival, p.lastIndex}
		seq := p.assign
		p.assign++
		arrival := max(now, p.lastArrival) // monotonic per partition, whatever the clock does
		ts := r.timestamp
		if ts == 0 {
			ts = arrival
		}
		index := max(ts, p.lastIndex)
		p.lastArrival, p.lastIndex = arrival, index
		val := encodeRecord(&storedRecord{Arrival: arrival, Timestamp: ts, IndexTime: index, PartitionKey: r.partitionKey, Data: r.data})
		entries = append(entries, pending{j: j, i: i, p: p, seq: seq, key: recordKey(st.sid, idx, seq), val: val, prev: prev})
		*res = dis.PutRecordsResultEntry{PartitionID: dis.ShardID(idx), SequenceNumber: strconv.FormatInt(seq, 10)}
	}
	return entries
}

func markThrottled(m map[int]bool, idx int) map[int]bool {
	if m == nil {
		m = map[int]bool{}
	}
	m[idx] = true
	return m
}

func entryError(e *dis.Error) dis.PutRecordsResultEntry {
	return dis.PutRecordsResultEntry{ErrorCode: e.Code, ErrorMessage: e.Message}
}

func throttleEntry(format string, args ...any) dis.PutRecordsResultEntry {
	return dis.PutRecordsResultEntry{ErrorCode: dis.CodeTrafficControl, ErrorMessage: "Exceeded traffic control limit. " + fmt.Sprintf(format, args...)}
}

// route picks a record's partition: partition_id > explicit_hash_key >
// partition_key (MD5 → 63-bit hash → range containment over the ACTIVE
// partitions), and round-robin when none is given (COMPAT-NOTES fact 17).
func (w *writer) route(st *stream, r *putRecord) (int, *dis.Error) {
	n := st.meta.Active
	switch {
	case r.partitionID >= 0:
		if r.partitionID >= len(st.meta.Partitions) {
			return 0, dis.NewError(dis.CodePartitionNotFound, "Partition does not exist. %s", dis.ShardID(r.partitionID))
		}
		if status := st.meta.Partitions[r.partitionID].Status; status != dis.PartitionActive {
			return 0, dis.NewError(dis.CodePartitionNotFound, "Partition does not exist. %s is %s and not writable", dis.ShardID(r.partitionID), status)
		}
		return r.partitionID, nil
	case r.hashKey >= 0:
		return partitionForHash(r.hashKey, n), nil
	case r.partitionKey != "":
		return partitionForHash(HashPartitionKey(r.partitionKey), n), nil
	default:
		st.rr = (st.rr + 1) % n
		return st.rr, nil
	}
}

// HashPartitionKey is the DIS SDKs' partition-key hash: the first 8 bytes of
// MD5(key) as a big-endian int64, masked to 63 bits.
func HashPartitionKey(key string) int64 {
	sum := md5.Sum([]byte(key))
	return int64(binary.BigEndian.Uint64(sum[:8]) & math.MaxInt64)
}
