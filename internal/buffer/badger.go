package buffer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Badger sizing for a small edge box. The goal is memory that does not grow with
// the backlog (the whole gateway targets 128 MiB RSS) and disk that shrinks as
// the queue drains. LIBRARY-NOTES A2 lists the measurements behind these numbers
// and the hard constraints they respect.
const (
	// memTableSize 8 MiB: the smallest memtable that keeps badger's default
	// ValueThreshold (1 MiB) valid, since Open requires ValueThreshold below
	// maxBatchSize = 15% of MemTableSize (1.2 MiB here; 4 MiB fails to open).
	// It also bounds one transaction at 1.2 MiB, which still fits one maximal
	// DIS record (1 MiB) and is why group-commit batches split into several
	// transactions (ErrTxnTooBig) rather than grow.
	memTableSize = 8 << 20
	// numMemtables 2: one being written, one being flushed; more only buffers
	// memory (each is an 8 MiB arena).
	numMemtables = 2
	// numLevelZeroTables 2: push memtable flushes down early so tombstones of
	// drained records meet their values and compaction can drop both.
	numLevelZeroTables = 2
	// numLevelZeroTablesStall 8: a stall blocks every publisher's PUBACK, so
	// leave room for bursts; L0 tables cost disk, their index sits in the
	// bounded index cache.
	numLevelZeroTablesStall = 8
	// baseTableSize 1 MiB: smaller compaction outputs keep the table builder's
	// arena (which dominated the heap profile during flushes) small.
	baseTableSize = 1 << 20
	// blockCacheSize 0: with compression off, blocks are read straight from
	// the mmap'd tables (page cache, which the kernel can reclaim) instead of
	// being copied into a Go-heap cache. Allowed only with options.None
	// (with compression, 0 panics at Open).
	blockCacheSize = 0
	// indexCacheSize 4 MiB: bounds table indexes and bloom filters, which the
	// default (0 = unbounded, all in memory) lets grow with the backlog.
	indexCacheSize = 4 << 20
	// valueLogFileSize 16 MiB: only values >= 1 MiB go to the value log; small
	// files let GC reclaim them and bound what the never-collected last file
	// keeps after a drain (ipfs/go-ds-badger#54).
	valueLogFileSize = 16 << 20
	// numCompactors 2: the minimum badger accepts (1 is rejected), matching 2 cores.
	numCompactors = 2
)

// badgerOptions returns the tuned options for dir.
func badgerOptions(dir string, readOnly bool, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithReadOnly(readOnly).
		// We sync once per group commit with db.Sync (SyncWrites syncs per
		// transaction, not per batch; LIBRARY-NOTES A2).
		WithSyncWrites(false).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(numLevelZeroTablesStall).
		WithBaseTableSize(baseTableSize).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithValueLogFileSize(valueLogFileSize).
		WithNumCompactors(numCompactors).
		// No compression. Measured (TestSoak, 1M x 300 B): with Snappy a
		// compaction's table builder keeps every uncompressed block until the
		// *compressed* table reaches its target size, so its memory grows with
		// the data's compression ratio (8 builders in flight held ~400 MiB
		// on repetitive JSON), and decompressed blocks churn the Go heap.
		// Uncompressed, a builder holds ~2 x table size whatever the data; the
		// price is disk (about the stored record bytes, which MaxBytes bounds).
		WithCompression(options.None).
		// One version per key: a record is written once and deleted once.
		WithNumVersionsToKeep(1).
		// One writer goroutine owns record keys; acks touch distinct keys.
		// Conflict detection would only cost memory.
		WithDetectConflicts(false).
		WithLogger(badgerLogger{log})
}

// badgerLogger forwards badger's log to slog. Info and Debug are dropped: badger
// logs every compaction and table flush at Info, which is noise for operators.
// Lines carry library=badger; the logger already names the component (buffer
// or dis-server), and a second component key would make JSON lines ambiguous.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) {
	b.log(slog.LevelWarn, f, a...)
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}

func (b badgerLogger) log(level slog.Level, f string, a ...any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(f, a...)), "library", "badger")
}
