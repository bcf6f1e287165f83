// Package buffer is edgegw's durable store-and-forward queue: MQTT publishes
// are appended here (and acknowledged to the device only once durable), the
// uplink reads them in Seq order per stream and acknowledges them once DIS
// holds them. It owns the byte and age bounds, the overflow policy, and the
// recovery after a crash. Storage is one Badger database in Options.Dir.
//
// # Concurrency model
//
//   - Append / AppendAsync: called concurrently by the broker's per-client
//     goroutines. Each hands a request to the single writer goroutine and
//     (Append) waits on its own channel, so a slow disk blocks only the
//     publishers whose records are in flight, never the others' reads.
//   - The writer goroutine (runWriter) gathers everything pending (up to
//     MaxBatchRecords / MaxBatchBytes, optionally waiting Linger), assigns
//     Seqs, applies the bounds, writes the batch as one or more badger
//     transactions (each under badger's 15%-of-memtable limit), calls
//     db.Sync once, then wakes every waiter and signals Notify. Being the
//     only writer of record keys makes Seq assignment trivial and conflict
//     free.
//   - Read / Ack / Head / Notify: called by uplink goroutines (one or more
//     per stream), concurrently with appends. Read seeks to max(from, head)
//     in a read snapshot; Ack marks records removed in memory, advances the
//     head and deletes the keys (unsynced: a lost delete means a duplicate,
//     never a loss).
//   - The janitor goroutine (runJanitor) expires records past MaxAge,
//     retries failed deletes, persists head hints and runs value-log GC.
//   - Close stops intake, lets the writer commit everything accepted, stops
//     the janitor, writes hints and a clean-close marker, closes badger.
//
// Locks: mu guards the in-memory state (streams, windows, counters) and is
// never held across disk I/O. ackMu orders deletes before head-hint writes.
// sendMu lets Close close the request channel safely; dbMu keeps badger open
// while a Read, Ack or Stats uses it.
//
// # Durability (Options.Sync)
//
//   - batch (default): one db.Sync per group commit. Survives kill -9 and
//     power loss; concurrent publishers share the fsync.
//   - always: every record is its own transaction followed by its own sync.
//     Same guarantee as batch, throughput limited to about 1/fsync.
//   - none: no explicit sync. A committed record is in the kernel page cache,
//     so it survives a process crash (kill -9, panic, OOM kill) but not a
//     power cut or kernel crash. Use it only where devices can resend.
//
// # Layout and cost
//
// Records live under 'q'+stream+0x00+Seq (big-endian), so a stream is a
// FIFO in key order. The in-memory state per stream is a head cursor and
// a window of 4-byte record sizes from head to tail (4 MiB per million
// buffered records); Read never walks the deletion markers below the head,
// which after a drain can be millions (LIBRARY-NOTES A2). The head is
// persisted as a hint (every JanitorInterval and on Close) so Open seeks
// near it; the next Seq is persisted with every commit so a drained queue
// never reuses a Seq after a restart.
//
// # Bounds
//
// MaxBytes (all streams) and StreamOptions.MaxBytes bound stored record
// bytes; when a record does not fit, overflow "reject" fails it with ErrFull
// and "drop_oldest" deletes the stream's oldest records to make room (both
// counted). MaxAge is enforced by the janitor. The disk bound is
// MinFreeDisk: while the filesystem has less free space, Append fails with
// ErrDiskFull and nothing is written; appends succeed again once space
// returns. The reserve exists because badger writes through mmap of sparse
// files, and a page fault on a full filesystem is SIGBUS, not ENOSPC:
// measured on a 64 MiB tmpfs, with the reserve disabled the process died of
// SIGBUS in badger's table builder; with it, Append returned ErrDiskFull and
// resumed once space was freed (TestRealFullFilesystem).
//
// Disk space of removed records comes back through LSM compaction. A
// drained queue writes nothing that would trigger it, so the janitor
// flattens the tree when tables are mostly dead (reclaim): measured, 1M x
// 300 B drained left 351 MiB, reclaim brought it to 18 MiB in ~5 s.
//
// # Memory (measured, TestSoakMillionRecords, 2 cores, pure-Go build)
//
// Badger memory is bounded by options, not by the backlog: two 8 MiB
// memtables (10 MiB arenas), a 4 MiB index cache, no block cache (no
// compression, tables read through mmap), compaction table builders. The
// buffer's own state is 4 bytes per buffered record. The Go heap churns
// through badger's table builders, so the gateway must run with a Go memory
// limit (GOMEMLIMIT / debug.SetMemoryLimit) or the heap grows to several
// times the live set. With 1,000,000 records of 300 B buffered:
//
//	memory limit 64 MiB: peak RssAnon 84 MiB, 69 MiB at full backlog;
//	                     fill ~14k rec/s, drain ~33k rec/s
//	no memory limit:     RssAnon ~150-190 MiB, fill ~20-30k rec/s
//
// RssFile (the mmap'd tables, ~350 MiB at that backlog) is page cache the
// kernel reclaims under pressure; it is not counted against the bound.
//
// # Throughput (BenchmarkAppend / BenchmarkDrain, 300 B records, 2 shared
// cores, virtual disk with ~0.3-0.5 ms fsync; noisy, ratios matter)
//
//	sync=batch   1 / 8 / 64 appenders: ~3k / 12-18k / 41-47k rec/s,
//	             1 / 7.4 / 47 records per sync
//	sync=always  ~2.1-2.5k rec/s whatever the concurrency (1 record per sync)
//	sync=none    64k / 139k / 275k rec/s
//	drain (Read 500 + Ack): ~700k rec/s from a fresh backlog
//
// # Crash recovery
//
// Badger replays its write-ahead log at Open and truncates a torn or
// corrupt tail by itself, silently (v4 has no option for this: it always
// truncates in read-write mode and refuses in read-only mode). Open reads
// the logs first with the same rules (wal.go) and reports each truncation at
// Warn with the file and the bytes dropped; it then rebuilds the in-memory
// state from the head hint forward. A missing clean-close marker is reported
// at Warn too. Only memtable logs are inspected: value-log files (records of
// about 1 MiB) are truncated by badger without a report.
package buffer
