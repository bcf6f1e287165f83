package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Record is one buffered message.
type Record struct {
	Seq          uint64 // assigned by Append: strictly increasing per stream, never reused (also across restarts)
	Stream       string
	PartitionKey string // may be empty
	PartitionID  string // explicit DIS partition id, may be empty
	Data         []byte
	Timestamp    int64 // receive time, epoch ms; Append sets it to now when 0
}

// SyncMode says when an appended record counts as durable.
type SyncMode string

const (
	// SyncAlways syncs every record on its own: survives power loss; throughput
	// is about 1/fsync whatever the number of publishers.
	SyncAlways SyncMode = "always"
	// SyncBatch syncs once per group commit: survives power loss; concurrent
	// publishers share the fsync. The default.
	SyncBatch SyncMode = "batch"
	// SyncNone never syncs explicitly: a record survives a process crash
	// (kill -9: the data is in the kernel page cache) but not a power cut or
	// kernel crash.
	SyncNone SyncMode = "none"
)

// Overflow is the policy applied when a record does not fit the byte bound.
type Overflow string

const (
	// OverflowReject refuses the new record with ErrFull; the broker maps it to
	// MQTT 5 reason 0x97 or disconnects a 3.1.1 client so the device keeps it.
	OverflowReject Overflow = "reject"
	// OverflowDropOldest deletes the stream's oldest records to make room;
	// every dropped record is counted (Stats.DroppedOldest).
	OverflowDropOldest Overflow = "drop_oldest"
)

// StreamOptions override the global bounds for one stream. Zero values inherit.
type StreamOptions struct {
	MaxBytes int64         // bound on this stream's buffered bytes, on top of Options.MaxBytes
	MaxAge   time.Duration // records older than this are expired by the janitor
	Overflow Overflow
}

// Options configure a Buffer. Zero values take the documented defaults.
type Options struct {
	Dir  string
	Sync SyncMode // default SyncBatch

	// MaxBytes bounds the stored bytes of all buffered records of all streams
	// (payload + partition key + partition id + an 11-byte header with short keys). Default
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxAge: records older than this (by Record.Timestamp) are removed by the
	// janitor and counted as expired. 0 = no age bound; the gateway passes the
	// stream's DIS retention, since DIS would refuse older data anyway.
	MaxAge   time.Duration
	Overflow Overflow                 // default OverflowReject
	Streams  map[string]StreamOptions // per-stream overrides

	// Group-commit tuning.
	MaxBatchRecords int           // default DefaultMaxBatchRecords
	MaxBatchBytes   int           // default DefaultMaxBatchBytes
	Linger          time.Duration // default 0 (see DefaultLinger)

	// MinFreeDisk: Append fails with ErrDiskFull while the filesystem holding
	// Dir has less than this free. Default DefaultMinFreeDisk; negative
	// disables the check.
	MinFreeDisk int64
	// JanitorInterval: how often age expiry, head-hint persistence and retries
	// of failed deletes run. Default 1 s.
	JanitorInterval time.Duration
	// GCInterval: how often badger's value-log GC runs. Default 1 min.
	GCInterval time.Duration

	// ReadOnly opens the buffer for inspection (a `buffer stats` command):
	// Read, Head, Streams and Stats work; Append and Ack return ErrReadOnly.
	// Badger refuses a read-only open while another process holds the
	// directory, and when the last run crashed (its log needs truncation,
	// which only a read-write open does).
	ReadOnly bool

	Logger *slog.Logger // default slog.Default()

	now func() time.Time // clock; tests inject one
	// reclaimMin overrides reclaimMinLSM; tests use a small backlog.
	reclaimMin int64
}

// Defaults, each with its reason.
const (
	// DefaultMaxBytes 1 GiB: about 3.5 million 300-byte records, hours to days
	// of an edge site's telemetry, while leaving most of a small eMMC free;
	// the in-memory index costs 4 bytes per record (14 MiB at that fill).
	DefaultMaxBytes = 1 << 30
	// DefaultMaxBatchRecords 1024: bounds the waiters woken per sync and the
	// per-batch allocation; a 2-core box rarely has more publishers waiting.
	DefaultMaxBatchRecords = 1024
	// DefaultMaxBatchBytes 4 MiB: one fsync is amortized over up to this much
	// data; the batch is written as several badger transactions of at most
	// ~1.1 MiB each (badger caps a transaction at 15% of the memtable).
	DefaultMaxBatchBytes = 4 << 20
	// DefaultLinger 0: batches form by themselves while the previous batch is
	// syncing; waiting on purpose would add latency to every PUBACK. Raise it
	// only for disks whose fsync is cheap relative to the arrival rate.
	DefaultLinger = 0
	// DefaultMinFreeDisk 64 MiB: badger writes its WAL and SSTables through
	// mmap of sparse files, and a page fault on a full filesystem kills the
	// process with SIGBUS instead of returning ENOSPC. Refusing appends while
	// less than this is free leaves room for the active memtable's WAL
	// (2 x 8 MiB mapping), one memtable flush (8 MiB) and the outputs of a
	// compaction (a few 1 MiB tables per level), with margin.
	DefaultMinFreeDisk = 64 << 20
	// MaxRecordBytes is the largest Data accepted: the DIS limit for one record.
	MaxRecordBytes = 1 << 20

	defaultJanitorInterval = time.Second
	defaultGCInterval      = time.Minute
)

var (
	// ErrFull: the record does not fit the byte bound and the policy is
	// reject (or drop_oldest found nothing old enough to drop).
	ErrFull = errors.New("buffer full")
	// ErrClosed: the buffer was closed.
	ErrClosed = errors.New("buffer closed")
	// ErrDiskFull: the filesystem is full (ENOSPC) or below Options.MinFreeDisk.
	// Nothing was written; retrying after space returns succeeds.
	ErrDiskFull = errors.New("buffer disk full")
	// ErrReadOnly: the buffer was opened with Options.ReadOnly.
	ErrReadOnly = errors.New("buffer opened read-only")
	// ErrTooLarge: Data is larger than MaxRecordBytes.
	ErrTooLarge = errors.New("record too large")
	// ErrBadStream: the stream name is empty or contains a NUL byte.
	ErrBadStream = errors.New("invalid stream name")
)

// Stats is a snapshot of the buffer. Counters count since Open.
type Stats struct {
	Streams map[string]StreamStats
	Records int64 // buffered records, all streams
	Bytes   int64 // buffered bytes, all streams (what MaxBytes bounds)

	Appended      uint64 // records committed
	Acked         uint64
	Rejected      uint64 // ErrFull
	DroppedOldest uint64
	Expired       uint64 // removed by MaxAge
	DiskFull      uint64 // appends refused for lack of disk space
	WriteErrors   uint64 // appends failed by other write or sync errors

	Batches uint64 // group commits
	Txns    uint64 // badger transactions committed
	Syncs   uint64 // db.Sync calls

	Reclaims uint64 // LSM flattens run to give back the space of removed records

	DiskLSM   int64 // badger's own accounting (db.Size), refreshed by badger about once a minute
	DiskVlog  int64
	DiskUsage int64 // bytes allocated by the files in Dir, measured now
}

// StreamStats describe one stream.
type StreamStats struct {
	Records   int64
	Bytes     int64
	OldestAge time.Duration // age of the head record; 0 when empty
	Head      uint64        // lowest buffered Seq (== Next when empty)
	Next      uint64        // Seq the next Append gets

	Appended, Acked, Rejected, DroppedOldest, Expired uint64
}

// Buffer is the durable queue. See the package comment for the concurrency model.
type Buffer struct {
	opts Options
	db   *badger.DB
	log  *slog.Logger
	now  func() time.Time

	// sendMu guards closed against the sends on reqs: senders hold it shared,
	// Close takes it exclusively to close reqs once no send is in progress.
	sendMu sync.RWMutex
	closed bool
	reqs   chan *request

	writerDone  chan struct{}
	stop        chan struct{}
	janitorDone chan struct{}
	closeOnce   sync.Once
	closeErr    error

	// dbMu keeps db open while Read, Ack and Stats use it: they hold it shared;
	// Close holds it exclusively around db.Close and sets dbClosed.
	dbMu     sync.RWMutex
	dbClosed bool

	// ackMu orders record deletions against head-hint writes: every code path
	// that marks records removed and then deletes their keys holds it shared
	// from marking until the delete committed; writeHints holds it exclusively,
	// so a hint never points past a record whose delete is still in flight.
	ackMu sync.RWMutex

	// mu guards everything below and every *stream.
	mu         sync.Mutex
	streams    map[string]*stream
	records    int64
	bytes      int64
	pendingDel map[*stream][][]byte // deletes that failed; the janitor retries them

	appended, acked, rejected, dropped, expired atomic.Uint64
	diskFull, writeErrors                       atomic.Uint64
	batches, txns, syncs, reclaims              atomic.Uint64

	// Test hooks. commitHook, when set, runs before a batch is written; its
	// error fails the batch as a write error would.
	commitHook   func() error
	readSteps    atomic.Uint64 // key versions visited by Read iterators
	recoverSteps atomic.Uint64 // key versions visited by Open's per-stream scans
}

// stream is the in-memory state of one stream; Buffer.mu guards it.
type stream struct {
	name   string
	prefix []byte
	next   uint64 // Seq for the next record
	head   uint64 // lowest live Seq; == next when empty
	win    window // sizes for [head, next)

	records, bytes int64
	lim            limits
	notify         chan struct{}
	persisted      bool // its 'n' key is on disk

	hint       uint64 // head hint last written
	batchFirst uint64 // next at the start of the current batch; only the writer uses it
	inBatch    bool

	headTS    int64 // cached Timestamp of the record at headTSSeq
	headTSSeq uint64

	appended, acked, rejected, dropped, expired uint64
}

type limits struct {
	maxBytes int64
	maxAge   time.Duration
	overflow Overflow
}

type removeReason int

const (
	reasonAck removeReason = iota
	reasonDrop
	reasonExpire
)

// Open opens (creating if needed) the buffer in opts.Dir and recovers its
// state: for each stream the head comes from the persisted hint followed by a
// forward seek, the tail from the records found and the persisted next Seq.
// A torn write-ahead-log tail left by a crash is truncated by badger during
// Open; it is reported at Warn with the bytes dropped, and an unclean
// shutdown is reported at Warn too.
func Open(opts Options) (*Buffer, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("open buffer %s: %w", opts.Dir, err)
		}
	}
	var torn []tornWAL
	if !opts.ReadOnly {
		torn = tornWALs(opts.Dir) // badger drops these silently; say so below
	}
	db, err := badger.Open(badgerOptions(opts.Dir, opts.ReadOnly, opts.Logger))
	if err != nil {
		if errors.Is(err, badger.ErrTruncateNeeded) {
			return nil, fmt.Errorf("open buffer %s read-only: the last run did not close it; open it read-write once (start the gateway) to recover: %w", opts.Dir, err)
		}
		return nil, fmt.Errorf("open buffer %s: %w", opts.Dir, err)
	}
	b := &Buffer{
		opts:        opts,
		db:          db,
		log:         opts.Logger,
		now:         opts.now,
		reqs:        make(chan *request, opts.MaxBatchRecords),
		writerDone:  make(chan struct{}),
		stop:        make(chan struct{}),
		janitorDone: make(chan struct{}),
		streams:     make(map[string]*stream),
		pendingDel:  make(map[*stream][][]byte),
	}
	if err := b.recover(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open buffer %s: %w", opts.Dir, err)
	}
	for _, w := range torn {
		b.log.Warn("buffer: the write-ahead log ended in an incomplete or corrupt write; badger truncated it at the last complete transaction. After a crash during a write, its records were never acknowledged to a device; if the disk damaged synced data, check the disk",
			"dir", opts.Dir, "file", w.file, "dropped_bytes", w.dropped)
	}
	if opts.ReadOnly {
		close(b.writerDone)
		close(b.janitorDone)
		return b, nil
	}
	go b.runWriter()
	go b.runJanitor()
	return b, nil
}

func (o *Options) normalize() error {
	if o.Dir == "" {
		return errors.New("open buffer: Options.Dir is empty")
	}
	if o.Sync == "" {
		o.Sync = SyncBatch
	}
	switch o.Sync {
	case SyncAlways, SyncBatch, SyncNone:
	default:
		return fmt.Errorf("open buffer: sync %q: want always, batch or none", o.Sync)
	}
	if o.Overflow == "" {
		o.Overflow = OverflowReject
	}
	if err := checkOverflow(o.Overflow); err != nil {
		return fmt.Errorf("open buffer: overflow %w", err)
	}
	for name, so := range o.Streams {
		if err := validStream(name); err != nil {
			return fmt.Errorf("open buffer: streams[%q]: %w", name, err)
		}
		if so.Overflow != "" {
			if err := checkOverflow(so.Overflow); err != nil {
				return fmt.Errorf("open buffer: streams[%q].overflow %w", name, err)
			}
		}
		if so.MaxBytes < 0 || so.MaxAge < 0 {
			return fmt.Errorf("open buffer: streams[%q]: negative bound", name)
		}
	}
	if o.MaxBytes < 0 || o.MaxAge < 0 || o.MaxBatchRecords < 0 || o.MaxBatchBytes < 0 || o.Linger < 0 {
		return errors.New("open buffer: negative bound or batch option")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxBatchRecords == 0 {
		o.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MinFreeDisk == 0 {
		o.MinFreeDisk = DefaultMinFreeDisk
	}
	if o.JanitorInterval <= 0 {
		o.JanitorInterval = defaultJanitorInterval
	}
	if o.GCInterval <= 0 {
		o.GCInterval = defaultGCInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	return nil
}

func checkOverflow(o Overflow) error {
	switch o {
	case OverflowReject, OverflowDropOldest:
		return nil
	}
	return fmt.Errorf("%q: want reject or drop_oldest", string(o))
}

func validStream(name string) error {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%w: %q", ErrBadStream, name)
	}
	return nil
}

func (b *Buffer) limitsFor(name string) limits {
	l := limits{maxAge: b.opts.MaxAge, overflow: b.opts.Overflow}
	if so, ok := b.opts.Streams[name]; ok {
		l.maxBytes = so.MaxBytes
		if so.MaxAge != 0 {
			l.maxAge = so.MaxAge
		}
		if so.Overflow != "" {
			l.overflow = so.Overflow
		}
	}
	return l
}

// streamLocked returns the state of name, creating an empty one. b.mu held.
func (b *Buffer) streamLocked(name string) *stream {
	s := b.streams[name]
	if s == nil {
		s = &stream{
			name:   name,
			prefix: recordPrefix(name),
			next:   1,
			head:   1,
			win:    newWindow(1),
			lim:    b.limitsFor(name),
			notify: make(chan struct{}, 1),
			hint:   1,
		}
		b.streams[name] = s
	}
	return s
}

// Append adds rec to its stream and blocks until it is durable as Options.Sync
// says (group commit: it shares one badger transaction set and one sync with
// every append that arrived meanwhile). It returns the record's Seq, or
// ErrFull, ErrClosed, ErrDiskFull, ErrTooLarge, ErrBadStream, a wrapped I/O
// error, or ctx.Err(). After ctx ends the record may still be committed.
//
// Called from many goroutines (one per MQTT client); each blocks only itself.
func (b *Buffer) Append(ctx context.Context, rec Record) (uint64, error) {
	r, err := b.newRequest(rec, true)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := b.enqueue(ctx.Done(), r); err != nil {
		if err == errCtxDone {
			err = ctx.Err()
		}
		return 0, err
	}
	select {
	case res := <-r.done:
		return res.seq, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// AppendAsync enqueues rec for the next group commit without waiting for it
// (MQTT QoS 0). It blocks only while the writer's queue is full. Failures
// after enqueueing (ErrFull, disk full) are counted in Stats and logged.
func (b *Buffer) AppendAsync(rec Record) error {
	r, err := b.newRequest(rec, false)
	if err != nil {
		return err
	}
	return b.enqueue(nil, r)
}

var errCtxDone = errors.New("context done")

func (b *Buffer) newRequest(rec Record, wait bool) (*request, error) {
	if b.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if err := validStream(rec.Stream); err != nil {
		return nil, err
	}
	if len(rec.Data) > MaxRecordBytes {
		return nil, fmt.Errorf("%w: %d bytes of data, the limit is %d", ErrTooLarge, len(rec.Data), MaxRecordBytes)
	}
	if rec.Timestamp == 0 {
		rec.Timestamp = b.now().UnixMilli()
	}
	r := &request{stream: rec.Stream, val: encodeValue(&rec)}
	if wait {
		r.done = make(chan result, 1)
	}
	return r, nil
}

func (b *Buffer) enqueue(cancel <-chan struct{}, r *request) error {
	b.sendMu.RLock()
	defer b.sendMu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	select {
	case b.reqs <- r:
		return nil
	case <-cancel:
		return errCtxDone
	}
}

// Read returns up to maxRecords records and up to maxBytes of Data (but at
// least one record if any) of stream with Seq >= from, in Seq order. Acked,
// dropped and expired records are skipped. It seeks straight to
// max(from, head), never walking the tombstones below the head.
// maxRecords or maxBytes <= 0 means no limit of that kind.
//
// Safe for concurrent use (uplink goroutines); it does not block appends.
func (b *Buffer) Read(stream string, from uint64, maxRecords, maxBytes int) ([]Record, error) {
	b.mu.Lock()
	s := b.streams[stream]
	if s == nil {
		b.mu.Unlock()
		return nil, nil
	}
	start, end, prefix := max(from, s.head), s.next, s.prefix
	b.mu.Unlock()
	if start >= end {
		return nil, nil
	}

	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.dbClosed {
		return nil, ErrClosed
	}
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	// AllVersions makes the iterator hand us deletion markers too instead of
	// skipping them inside badger, so readSteps counts every key version the
	// read visits (the tombstone test asserts on it).
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, AllVersions: true, PrefetchValues: false})
	defer it.Close()

	var (
		out   []Record
		seqs  []uint64
		total int
		last  []byte
		steps uint64
	)
	for it.Seek(recordKey(prefix, start)); it.Valid(); it.Next() {
		steps++
		item := it.Item()
		k := item.Key()
		if last != nil && bytes.Equal(k, last) {
			continue // an older version of a key already seen
		}
		last = append(last[:0], k...)
		if item.IsDeletedOrExpired() {
			continue
		}
		seq, ok := seqOfKey(prefix, k)
		if !ok {
			continue
		}
		if seq >= end {
			break
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			b.readSteps.Add(steps)
			return nil, fmt.Errorf("read %s seq %d: %w", stream, seq, err)
		}
		rec := Record{Seq: seq, Stream: stream}
		if err := decodeValue(v, &rec); err != nil {
			b.readSteps.Add(steps)
			return nil, fmt.Errorf("read %s seq %d: %w", stream, seq, err)
		}
		if len(out) > 0 && maxBytes > 0 && total+len(rec.Data) > maxBytes {
			break
		}
		out = append(out, rec)
		seqs = append(seqs, seq)
		total += len(rec.Data)
		if maxRecords > 0 && len(out) >= maxRecords {
			break
		}
	}
	b.readSteps.Add(steps)

	// Drop what was removed after the snapshot was taken (a concurrent Ack),
	// so an acked record is not handed out again.
	b.mu.Lock()
	kept := out[:0]
	for i, r := range out {
		if s.win.get(seqs[i]) != 0 {
			kept = append(kept, r)
		}
	}
	b.mu.Unlock()
	return kept, nil
}

// Ack removes records of stream (they reached DIS). It is idempotent and
// takes seqs in any order; unknown or already removed seqs are ignored. The
// head advances past every removed record at the front. The deletes are not
// synced: after a power cut an acked record may be sent again (at-least-once).
//
// When the delete fails the records stay removed in memory, the delete is
// retried by the janitor, and the error is returned.
func (b *Buffer) Ack(stream string, seqs ...uint64) error {
	if b.opts.ReadOnly {
		return ErrReadOnly
	}
	b.dbMu.RLock()
	closed := b.dbClosed
	b.dbMu.RUnlock()
	if closed {
		return ErrClosed
	}
	b.ackMu.RLock()
	defer b.ackMu.RUnlock()
	b.mu.Lock()
	s := b.streams[stream]
	if s == nil {
		b.mu.Unlock()
		return nil
	}
	keys := b.removeLocked(s, seqs, reasonAck)
	b.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	if err := b.deleteKeys(s, keys); err != nil {
		return fmt.Errorf("ack %s: %w", stream, err)
	}
	return nil
}

// removeLocked marks seqs of s removed, updates the accounting and the head,
// and returns the keys to delete. b.mu held.
func (b *Buffer) removeLocked(s *stream, seqs []uint64, why removeReason) [][]byte {
	var keys [][]byte
	for _, seq := range seqs {
		p := s.win.slot(seq)
		if p == nil || *p == 0 {
			continue
		}
		size := int64(*p)
		*p = 0
		s.records--
		s.bytes -= size
		b.records--
		b.bytes -= size
		switch why {
		case reasonAck:
			s.acked++
			b.acked.Add(1)
		case reasonDrop:
			s.dropped++
			b.dropped.Add(1)
		case reasonExpire:
			s.expired++
			b.expired.Add(1)
		}
		keys = append(keys, recordKey(s.prefix, seq))
	}
	for s.head < s.next && s.win.get(s.head) == 0 {
		s.head++
	}
	s.win.dropFront(s.head)
	return keys
}

// deleteKeys deletes keys of s; on failure they are queued for the janitor.
// Caller holds b.ackMu shared.
func (b *Buffer) deleteKeys(s *stream, keys [][]byte) error {
	err := b.writeDeletes(keys)
	if err != nil {
		b.mu.Lock()
		b.pendingDel[s] = append(b.pendingDel[s], keys...)
		b.mu.Unlock()
		b.log.Warn("buffer: delete failed, will retry", "stream", s.name, "records", len(keys), "err", err)
	}
	return err
}

func (b *Buffer) writeDeletes(keys [][]byte) error {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.dbClosed {
		return ErrClosed
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("delete records: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("delete records: %w", err)
	}
	return nil
}

// Head returns the lowest Seq still buffered in stream, or the next Seq to be
// assigned when the stream is empty (1 for an unknown stream).
func (b *Buffer) Head(stream string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.streams[stream]; s != nil {
		return s.head
	}
	return 1
}

// Buffered reports, for each of seqs, whether stream still holds that record:
// false once it was acked, dropped by overflow or expired. The uplink checks
// it before sending records it read ahead, so a record counted as dropped is
// not sent after all (up to the moment of the check).
func (b *Buffer) Buffered(stream string, seqs []uint64) []bool {
	out := make([]bool, len(seqs))
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.streams[stream]; s != nil {
		for i, seq := range seqs {
			out[i] = s.win.get(seq) != 0
		}
	}
	return out
}

// Notify returns a channel (capacity 1) that receives a value after each
// commit that added records to stream. A reader drains it, then Reads until
// empty, then waits on it again; one signal may stand for many commits.
func (b *Buffer) Notify(stream string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.streamLocked(stream).notify
}

// Streams returns, sorted, the streams that have records or are known from
// disk (a stream is known once a record was committed to it).
func (b *Buffer) Streams() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for name, s := range b.streams {
		if s.persisted || s.records > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Stats returns a snapshot. It reads one record per non-empty stream (the head,
// for its age) unless cached, and stats the files in Dir.
func (b *Buffer) Stats() Stats {
	st := Stats{
		Streams:       make(map[string]StreamStats),
		Appended:      b.appended.Load(),
		Acked:         b.acked.Load(),
		Rejected:      b.rejected.Load(),
		DroppedOldest: b.dropped.Load(),
		Expired:       b.expired.Load(),
		DiskFull:      b.diskFull.Load(),
		WriteErrors:   b.writeErrors.Load(),
		Batches:       b.batches.Load(),
		Txns:          b.txns.Load(),
		Syncs:         b.syncs.Load(),
		Reclaims:      b.reclaims.Load(),
	}
	type headRef struct {
		s   *stream
		seq uint64
	}
	var refresh []headRef
	b.mu.Lock()
	st.Records, st.Bytes = b.records, b.bytes
	for name, s := range b.streams {
		if !s.persisted && s.records == 0 {
			continue
		}
		st.Streams[name] = s.statsLocked()
		if s.records > 0 && s.headTSSeq != s.head {
			refresh = append(refresh, headRef{s, s.head})
		}
	}
	b.mu.Unlock()

	b.dbMu.RLock()
	if !b.dbClosed {
		st.DiskLSM, st.DiskVlog = b.db.Size()
		for _, h := range refresh {
			ts, err := b.timestampAt(h.s.prefix, h.seq)
			if err != nil {
				continue // removed meanwhile; the age is refreshed next time
			}
			b.mu.Lock()
			h.s.headTS, h.s.headTSSeq = ts, h.seq
			b.mu.Unlock()
		}
	}
	b.dbMu.RUnlock()
	st.DiskUsage = dirUsage(b.opts.Dir)

	now := b.now().UnixMilli()
	b.mu.Lock()
	for name, ss := range st.Streams {
		if s := b.streams[name]; s != nil && ss.Records > 0 && s.headTSSeq == ss.Head {
			ss.OldestAge = time.Duration(max(0, now-s.headTS)) * time.Millisecond
			st.Streams[name] = ss
		}
	}
	b.mu.Unlock()
	return st
}

func (s *stream) statsLocked() StreamStats {
	return StreamStats{
		Records: s.records, Bytes: s.bytes, Head: s.head, Next: s.next,
		Appended: s.appended, Acked: s.acked, Rejected: s.rejected,
		DroppedOldest: s.dropped, Expired: s.expired,
	}
}

// timestampAt reads the Timestamp of one record. Caller holds b.dbMu shared.
func (b *Buffer) timestampAt(prefix []byte, seq uint64) (int64, error) {
	var ts int64
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(prefix, seq))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			ts, err = timestampOf(v)
			return err
		})
	})
	return ts, err
}

// dirUsage returns the bytes allocated to the regular files directly in dir
// (badger preallocates sparse files, so apparent sizes would overstate it).
func dirUsage(dir string) int64 { return filesUsage(dir, "") }

// filesUsage is dirUsage restricted to names ending in suffix.
func filesUsage(dir, suffix string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += int64(st.Blocks) * 512
		} else {
			n += fi.Size()
		}
	}
	return n
}

// Close commits every append already accepted, stops the background
// goroutines, persists the head hints and a clean-close marker, and closes
// badger. It is idempotent; Append after Close returns ErrClosed.
func (b *Buffer) Close() error {
	b.closeOnce.Do(func() {
		b.sendMu.Lock()
		b.closed = true
		if !b.opts.ReadOnly {
			close(b.reqs)
		}
		b.sendMu.Unlock()
		<-b.writerDone
		if !b.opts.ReadOnly {
			close(b.stop)
		}
		<-b.janitorDone

		var errs []error
		if !b.opts.ReadOnly {
			b.retryPendingDeletes()
			if err := b.writeHints(); err != nil {
				errs = append(errs, err)
			}
			b.mu.Lock()
			pending := len(b.pendingDel)
			b.mu.Unlock()
			if pending == 0 {
				if err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(keyClean, nil) }); err != nil {
					errs = append(errs, fmt.Errorf("write clean marker: %w", err))
				}
			}
		}
		b.dbMu.Lock()
		b.dbClosed = true
		if err := b.db.Close(); err != nil {
			errs = append(errs, err)
		}
		b.dbMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			b.closeErr = fmt.Errorf("close buffer %s: %w", b.opts.Dir, err)
		}
	})
	return b.closeErr
}

// isNoSpace reports whether err is ENOSPC. badger's y.CombineErrors (used by
// db.Sync) flattens errors to text, so the message is checked as well.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error())
}
