package disserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Key layout (LIBRARY-NOTES A2: prefix + big-endian integers, so that
// lexicographic order is sequence order):
//
//	m/s/<project>\x00<stream>           stream metadata (JSON)
//	m/a/<project>\x00<app>              app metadata (JSON)
//	m/sid                               last stream key number issued (uint64)
//	m/secret                            HMAC key for issued tokens
//	m/purge/<sid:8>                     a deleted stream whose keys are still being removed
//	r<sid:8><partition:4><seq:8>        one record
//	f<sid:8><partition:4>               first retained sequence number (uint64), written by the janitor
//	c<project>\x00<app>\x00<sid:8><partition:4>   checkpoint (JSON)
//
// Stream names, app names and project ids never contain \x00 (validated), so
// the separators are unambiguous. Records are keyed by the stream's key
// number (sid), never by name, so a stream deleted and re-created under the
// same name never sees the old data.
const (
	pfxStreamMeta = "m/s/"
	pfxAppMeta    = "m/a/"
	keySID        = "m/sid"
	keySecret     = "m/secret"
	pfxPurge      = "m/purge/"
	pfxRecord     = 'r'
	pfxFirst      = 'f'
	pfxCheckpoint = 'c'
)

func streamMetaKey(project, name string) []byte {
	return []byte(pfxStreamMeta + project + "\x00" + name)
}

func appMetaKey(project, name string) []byte { return []byte(pfxAppMeta + project + "\x00" + name) }

func purgeKey(sid uint64) []byte { return binary.BigEndian.AppendUint64([]byte(pfxPurge), sid) }

func partPrefix(pfx byte, sid uint64, part int) []byte {
	b := make([]byte, 0, 21)
	b = append(b, pfx)
	b = binary.BigEndian.AppendUint64(b, sid)
	return binary.BigEndian.AppendUint32(b, uint32(part))
}

func recordKey(sid uint64, part int, seq int64) []byte {
	return binary.BigEndian.AppendUint64(partPrefix(pfxRecord, sid, part), uint64(seq))
}

func recordSeq(key []byte) int64 { return int64(binary.BigEndian.Uint64(key[13:21])) }

func streamRecordPrefix(sid uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxRecord}, sid)
}

func firstKey(sid uint64, part int) []byte { return partPrefix(pfxFirst, sid, part) }

func checkpointAppPrefix(project, app string) []byte {
	return []byte(string(pfxCheckpoint) + project + "\x00" + app + "\x00")
}

func checkpointKey(project, app string, sid uint64, part int) []byte {
	b := checkpointAppPrefix(project, app)
	b = binary.BigEndian.AppendUint64(b, sid)
	return binary.BigEndian.AppendUint32(b, uint32(part))
}

// checkpointKeySID extracts the stream key number and partition of a checkpoint key.
func checkpointKeySID(key []byte) (sid uint64, part int, ok bool) {
	if len(key) < 12 {
		return 0, 0, false
	}
	t := key[len(key)-12:]
	return binary.BigEndian.Uint64(t[:8]), int(binary.BigEndian.Uint32(t[8:])), true
}

// Record value layout (version 1):
//
//	[0]      version = 1
//	[1:9]    arrival time, epoch ms (server clock, monotonic per partition): retention
//	[9:17]   timestamp, epoch ms (producer's or arrival): returned to readers
//	[17:25]  index time, epoch ms = max(timestamp so far in the partition): AT_TIMESTAMP search
//	uvarint  partition key length, then the key
//	rest     data
type storedRecord struct {
	Arrival      int64
	Timestamp    int64
	IndexTime    int64
	PartitionKey string
	Data         []byte
}

const recordVersion = 1

func encodeRecord(r *storedRecord) []byte {
	b := make([]byte, 0, 25+binary.MaxVarintLen64+len(r.PartitionKey)+len(r.Data))
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Arrival))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Timestamp))
	b = binary.BigEndian.AppendUint64(b, uint64(r.IndexTime))
	b = binary.AppendUvarint(b, uint64(len(r.PartitionKey)))
	b = append(b, r.PartitionKey...)
	return append(b, r.Data...)
}

var errCorruptRecord = errors.New("corrupt stored record")

// decodeRecord parses a stored value; Data aliases v, so callers copy v
// first when it comes from a Badger item.
func decodeRecord(v []byte) (storedRecord, error) {
	var r storedRecord
	if len(v) < 26 || v[0] != recordVersion {
		return r, errCorruptRecord
	}
	r.Arrival = int64(binary.BigEndian.Uint64(v[1:9]))
	r.Timestamp = int64(binary.BigEndian.Uint64(v[9:17]))
	r.IndexTime = int64(binary.BigEndian.Uint64(v[17:25]))
	n, k := binary.Uvarint(v[25:])
	if k <= 0 || uint64(len(v)-25-k) < n {
		return r, errCorruptRecord
	}
	off := 25 + k
	r.PartitionKey = string(v[off : off+int(n)])
	r.Data = v[off+int(n):]
	return r, nil
}

// openBadger opens the database tuned for a small box. LIBRARY-NOTES A2
// measured ~770 MB RSS with defaults and ~200 MB with options like these.
func openBadger(dir string, log *slog.Logger) (*badger.DB, error) {
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		// We call db.Sync once per group commit instead (LIBRARY-NOTES A2:
		// SyncWrites syncs once per transaction).
		WithSyncWrites(false).
		// 16 MiB: the largest transaction is 15% of it (2.4 MiB), enough for a
		// 1 MiB record and for a 500 × 1 KiB request in one transaction; the
		// 64 MiB default costs 5 × 64 MiB of arenas.
		WithMemTableSize(16 << 20).
		// 3 memtables: one being written, up to two being flushed.
		WithNumMemtables(3).
		// Flush L0 early and stall late: few small tables keep reads cheap.
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		// 2 MiB SSTs (the default): small compactions on a 2-core box.
		WithBaseTableSize(2 << 20).
		// 16 MiB block cache: GetRecords mostly reads the recent tail, which
		// is still in memtables; the 256 MiB default is for servers.
		WithBlockCacheSize(16 << 20).
		// Bounded index/bloom cache instead of "all in memory" (the default 0).
		WithIndexCacheSize(8 << 20).
		// 64 MiB vlog files: only records of ~1 MiB reach the vlog
		// (ValueThreshold stays at its 1 MiB default), so they stay small.
		WithValueLogFileSize(64 << 20).
		// 2 compactors: the minimum Badger accepts, one per core.
		WithNumCompactors(2).
		WithNumVersionsToKeep(1)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open DIS data directory %s: %w", dir, err)
	}
	return db, nil
}

// badgerLogger forwards Badger's warnings and errors to slog; its Info and
// Debug chatter (every compaction) is dropped.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "library", "badger")
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "library", "badger")
}
func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
