package buffer

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// fill appends n records to stream through the group-commit path without one
// sync per record, and waits for the last.
func fill(t testing.TB, b *Buffer, stream string, n int, size int) {
	t.Helper()
	data := bytes.Repeat([]byte{'d'}, size)
	for i := range n - 1 {
		if err := b.AppendAsync(Record{Stream: stream, PartitionKey: fmt.Sprint(i % 16), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Append(context.Background(), Record{Stream: stream, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// ackRange acks [from, to] in chunks, as an uplink would.
func ackRange(t testing.TB, b *Buffer, stream string, from, to uint64) {
	t.Helper()
	const chunk = 500 // a PutRecords batch
	for s := from; s <= to; s += chunk {
		if err := b.Ack(stream, span(s, min(s+chunk-1, to))...); err != nil {
			t.Fatal(err)
		}
	}
}

// versionsFromPrefixStart counts the key versions a scan from the start of the
// stream's prefix visits: what Read would cost without the head cursor.
func versionsFromPrefixStart(t *testing.T, b *Buffer, stream string) int {
	n := 0
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordPrefix(stream), AllVersions: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReadAfterManyAcksSeeksInsteadOfScanningTombstones(t *testing.T) {
	const n = 100_000
	dir := t.TempDir()
	b := openT(t, Options{Dir: dir})
	fill(t, b, "s", n, 20)
	ackRange(t, b, "s", 1, n)

	if h := b.Head("s"); h != n+1 {
		t.Fatalf("head %d", h)
	}
	before := b.readSteps.Load()
	if rs := readAll(t, b, "s"); len(rs) != 0 {
		t.Fatalf("read %d from an empty stream", len(rs))
	}
	if got := b.readSteps.Load() - before; got != 0 {
		t.Fatalf("Read on the empty queue visited %d keys, want 0", got)
	}

	seq := mustAppend(t, b, Record{Stream: "s", Data: []byte("after")})
	before = b.readSteps.Load()
	rs := readAll(t, b, "s")
	if !slices.Equal(seqsOf(rs), []uint64{seq}) {
		t.Fatalf("read %v, want [%d]", seqsOf(rs), seq)
	}
	steps := b.readSteps.Load() - before
	// The deletion markers are still there: a scan from the prefix start
	// visits every one of them. The read must not.
	full := versionsFromPrefixStart(t, b, "s")
	t.Logf("read visited %d key versions; a scan from the prefix start visits %d", steps, full)
	if steps > 2 {
		t.Fatalf("Read visited %d key versions for 1 record: it scans instead of seeking", steps)
	}
	if full < n {
		t.Fatalf("only %d versions from the prefix start: the tombstones were compacted away, so this test no longer shows anything", full)
	}

	// Open seeks to the persisted head hint too.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := openT(t, Options{Dir: dir})
	if got := b2.recoverSteps.Load(); got > 2 {
		t.Fatalf("Open visited %d key versions for a 1-record stream after %d acks", got, n)
	}
	if got := seqsOf(readAll(t, b2, "s")); !slices.Equal(got, []uint64{seq}) {
		t.Fatalf("after reopen %v", got)
	}
}
