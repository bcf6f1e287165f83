package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func openT(t testing.TB, opts Options) *Buffer {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func rec(stream string, i int) Record {
	return Record{Stream: stream, PartitionKey: fmt.Sprintf("k%d", i%7), Data: fmt.Appendf(nil, "payload-%s-%06d", stream, i)}
}

func mustAppend(t testing.TB, b *Buffer, r Record) uint64 {
	t.Helper()
	seq, err := b.Append(context.Background(), r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

func seqsOf(rs []Record) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func span(from, to uint64) []uint64 { // [from, to]
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func readAll(t testing.TB, b *Buffer, stream string) []Record {
	t.Helper()
	rs, err := b.Read(stream, 0, 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return rs
}

func TestAppendAssignsDenseSeqsPerStreamAndReadReturnsThemInOrder(t *testing.T) {
	b := openT(t, Options{})
	for i := range 50 {
		for _, s := range []string{"a", "b"} {
			r := rec(s, i)
			r.PartitionID = "shardId-0000000001"
			r.Timestamp = int64(1000 + i)
			if got := mustAppend(t, b, r); got != uint64(i+1) {
				t.Fatalf("stream %s record %d got Seq %d, want %d", s, i, got, i+1)
			}
		}
	}
	rs := readAll(t, b, "a")
	if !slices.Equal(seqsOf(rs), span(1, 50)) {
		t.Fatalf("seqs = %v", seqsOf(rs))
	}
	for i, r := range rs {
		want := rec("a", i)
		if r.Stream != "a" || r.PartitionKey != want.PartitionKey || r.PartitionID != "shardId-0000000001" ||
			!bytes.Equal(r.Data, want.Data) || r.Timestamp != int64(1000+i) {
			t.Fatalf("record %d = %+v", i, r)
		}
	}
	if got := b.Streams(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Streams = %v", got)
	}
}

func TestReadFromArbitrarySeqWithLimits(t *testing.T) {
	b := openT(t, Options{})
	for i := range 20 {
		mustAppend(t, b, Record{Stream: "s", Data: bytes.Repeat([]byte{'x'}, 10)})
		_ = i
	}
	tests := []struct {
		name                 string
		from                 uint64
		maxRecords, maxBytes int
		want                 []uint64
	}{
		{"from 0 means from the head", 0, 0, 0, span(1, 20)},
		{"from the middle", 7, 0, 0, span(7, 20)},
		{"record limit", 7, 3, 0, span(7, 9)},
		{"byte limit counts Data bytes", 7, 0, 35, span(7, 9)},
		{"at least one record even above the byte limit", 7, 0, 5, []uint64{7}},
		{"past the tail is empty", 21, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := b.Read("s", tc.from, tc.maxRecords, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqsOf(rs), tc.want) {
				t.Fatalf("got %v, want %v", seqsOf(rs), tc.want)
			}
		})
	}
	if rs, err := b.Read("unknown", 0, 0, 0); err != nil || len(rs) != 0 {
		t.Fatalf("unknown stream: %v %v", rs, err)
	}
}

func TestAckOutOfOrderIsSkippedByReadAndHeadAdvancesOverContiguousAcks(t *testing.T) {
	b := openT(t, Options{})
	for i := range 10 {
		mustAppend(t, b, rec("s", i))
	}
	if err := b.Ack("s", 3, 5, 2); err != nil {
		t.Fatal(err)
	}
	if h := b.Head("s"); h != 1 {
		t.Fatalf("head = %d, want 1 (seq 1 not acked)", h)
	}
	if got := seqsOf(readAll(t, b, "s")); !slices.Equal(got, []uint64{1, 4, 6, 7, 8, 9, 10}) {
		t.Fatalf("after acking 2,3,5: %v", got)
	}
	if err := b.Ack("s", 1); err != nil {
		t.Fatal(err)
	}
	if h := b.Head("s"); h != 4 {
		t.Fatalf("head = %d, want 4", h)
	}
	// Idempotent, and unknown seqs are ignored.
	if err := b.Ack("s", 1, 2, 3, 999, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack("nope", 1); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Acked != 4 || st.Streams["s"].Records != 6 || st.Records != 6 {
		t.Fatalf("stats after 4 acks: acked=%d records=%d/%d", st.Acked, st.Streams["s"].Records, st.Records)
	}
	if err := b.Ack("s", span(4, 10)...); err != nil {
		t.Fatal(err)
	}
	if h := b.Head("s"); h != 11 {
		t.Fatalf("head of empty stream = %d, want next seq 11", h)
	}
	if rs := readAll(t, b, "s"); len(rs) != 0 {
		t.Fatalf("empty stream read %v", seqsOf(rs))
	}
	st = b.Stats()
	if st.Bytes != 0 || st.Records != 0 || st.Streams["s"].Bytes != 0 {
		t.Fatalf("bytes after draining: %+v", st)
	}
	if got := mustAppend(t, b, rec("s", 11)); got != 11 {
		t.Fatalf("next seq = %d, want 11", got)
	}
}

func TestConcurrentAppendsShareSyncs(t *testing.T) {
	b := openT(t, Options{})
	const writers, each = 32, 40
	// All appenders are released together so that they queue behind each
	// other's syncs, which is where group commit forms batches.
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				if _, err := b.Append(context.Background(), rec(fmt.Sprintf("s%d", w%4), i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Appended != writers*each {
		t.Fatalf("appended %d", st.Appended)
	}
	t.Logf("%d appends, %d batches, %d syncs (%.1f records per sync)", st.Appended, st.Batches, st.Syncs, float64(st.Appended)/float64(st.Syncs))
	if st.Syncs >= st.Appended/2 {
		t.Fatalf("%d syncs for %d appends: group commit is not sharing syncs", st.Syncs, st.Appended)
	}
	for s := range 4 {
		rs := readAll(t, b, fmt.Sprintf("s%d", s))
		if !slices.Equal(seqsOf(rs), span(1, uint64(len(rs)))) || len(rs) != writers/4*each {
			t.Fatalf("stream s%d: %d records, seqs not dense", s, len(rs))
		}
	}
}

func TestSyncModes(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncBatch, SyncNone} {
		t.Run(string(mode), func(t *testing.T) {
			b := openT(t, Options{Sync: mode})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 20 {
						if _, err := b.Append(context.Background(), rec("s", w*100+i)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			st := b.Stats()
			switch mode {
			case SyncAlways:
				if st.Syncs != st.Appended {
					t.Fatalf("always: %d syncs for %d records, want one each", st.Syncs, st.Appended)
				}
			case SyncBatch:
				if st.Syncs != st.Batches {
					t.Fatalf("batch: %d syncs for %d batches, want one each", st.Syncs, st.Batches)
				}
			case SyncNone:
				if st.Syncs != 0 {
					t.Fatalf("none: %d syncs", st.Syncs)
				}
			}
			if n := len(readAll(t, b, "s")); n != 160 {
				t.Fatalf("read %d records", n)
			}
		})
	}
}

func TestRestartKeepsUnackedRecordsAndNeverReusesSeq(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, Options{Dir: dir})
	for i := range 100 {
		mustAppend(t, b, rec("s", i))
	}
	for i := range 5 {
		mustAppend(t, b, rec("drained", i))
	}
	if err := b.Ack("s", append(span(1, 40), 45, 50, 99)...); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack("drained", span(1, 5)...); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Append(context.Background(), rec("s", 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}

	b2 := openT(t, Options{Dir: dir})
	var want []uint64
	for s := uint64(41); s <= 100; s++ {
		if s != 45 && s != 50 && s != 99 {
			want = append(want, s)
		}
	}
	rs := readAll(t, b2, "s")
	if !slices.Equal(seqsOf(rs), want) {
		t.Fatalf("after restart: %v", seqsOf(rs))
	}
	for _, r := range rs {
		if !bytes.Equal(r.Data, rec("s", int(r.Seq-1)).Data) {
			t.Fatalf("seq %d data %q", r.Seq, r.Data)
		}
	}
	if h := b2.Head("s"); h != 41 {
		t.Fatalf("head = %d", h)
	}
	st := b2.Stats()
	if st.Records != int64(len(want)) || st.Streams["drained"].Records != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if got := mustAppend(t, b2, rec("s", 100)); got != 101 {
		t.Fatalf("seq after restart = %d, want 101", got)
	}
	if got := mustAppend(t, b2, rec("drained", 5)); got != 6 {
		t.Fatalf("drained stream seq after restart = %d, want 6 (never reuse)", got)
	}
	if !slices.Equal(b2.Streams(), []string{"drained", "s"}) {
		t.Fatalf("streams %v", b2.Streams())
	}
}

func TestRejectWhenFullWithExactCounts(t *testing.T) {
	// Each record value is version 1 + timestamp 8 + pk len 1 + pid len 1 + 89 data = 100 bytes.
	data := bytes.Repeat([]byte{'x'}, 89)
	b := openT(t, Options{MaxBytes: 1000})
	var full int
	for range 15 {
		_, err := b.Append(context.Background(), Record{Stream: "s", Data: data})
		if errors.Is(err, ErrFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if full != 5 || st.Rejected != 5 || st.Streams["s"].Rejected != 5 || st.Records != 10 || st.Bytes != 1000 {
		t.Fatalf("full=%d rejected=%d records=%d bytes=%d", full, st.Rejected, st.Records, st.Bytes)
	}
	if err := b.Ack("s", 1, 2); err != nil {
		t.Fatal(err)
	}
	if got := mustAppend(t, b, Record{Stream: "s", Data: data}); got != 11 {
		t.Fatalf("after ack: seq %d (rejections must not consume seqs)", got)
	}
}

func TestDropOldestWithExactCounts(t *testing.T) {
	data := bytes.Repeat([]byte{'x'}, 89) // 100-byte values, see above
	b := openT(t, Options{MaxBytes: 100000, Streams: map[string]StreamOptions{
		"lossy": {MaxBytes: 1000, Overflow: OverflowDropOldest},
	}})
	for range 25 {
		mustAppend(t, b, Record{Stream: "lossy", Data: data})
	}
	st := b.Stats()
	if st.DroppedOldest != 15 || st.Streams["lossy"].DroppedOldest != 15 || st.Streams["lossy"].Records != 10 {
		t.Fatalf("dropped=%d records=%d", st.DroppedOldest, st.Streams["lossy"].Records)
	}
	if got := seqsOf(readAll(t, b, "lossy")); !slices.Equal(got, span(16, 25)) {
		t.Fatalf("kept %v, want the newest 10", got)
	}
	if h := b.Head("lossy"); h != 16 {
		t.Fatalf("head %d", h)
	}
	// A record larger than the stream bound can never fit.
	if _, err := b.Append(context.Background(), Record{Stream: "lossy", Data: make([]byte, 2000)}); !errors.Is(err, ErrFull) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestDiskFullFailsAppendsWithoutDamageAndRecovers(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, Options{Dir: dir})
	for i := range 20 {
		mustAppend(t, b, rec("s", i))
	}
	heal := failCommits(b, syscall.ENOSPC)
	for i := range 5 {
		_, err := b.Append(context.Background(), rec("s", 100+i))
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append on full disk: %v", err)
		}
	}
	if err := b.Ack("s", 1, 2); err != nil {
		t.Fatalf("ack while appends fail: %v", err)
	}
	heal()
	if got := mustAppend(t, b, rec("s", 20)); got != 21 {
		t.Fatalf("seq after recovery %d, want 21 (failed appends wrote nothing)", got)
	}
	st := b.Stats()
	if st.DiskFull != 5 || st.Records != 19 {
		t.Fatalf("diskFull=%d records=%d", st.DiskFull, st.Records)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := openT(t, Options{Dir: dir})
	if got := seqsOf(readAll(t, b2, "s")); !slices.Equal(got, span(3, 21)) {
		t.Fatalf("after reopen: %v", got)
	}
}

func TestCloseCommitsPendingAppends(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, Options{Dir: dir})
	for i := range 200 {
		if err := b.AppendAsync(rec("s", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAsync(rec("s", 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendAsync after Close: %v", err)
	}
	b2 := openT(t, Options{Dir: dir})
	if got := seqsOf(readAll(t, b2, "s")); !slices.Equal(got, span(1, 200)) {
		t.Fatalf("after close+reopen: %d records", len(got))
	}
}

func TestNotifySignalsAfterCommit(t *testing.T) {
	b := openT(t, Options{})
	ch := b.Notify("s")
	select {
	case <-ch:
		t.Fatal("signal before any append")
	default:
	}
	if err := b.AppendAsync(rec("s", 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no signal within 10s of an append")
	}
	if rs := readAll(t, b, "s"); len(rs) != 1 {
		t.Fatalf("read %d after signal", len(rs))
	}
}

func TestAppendValidation(t *testing.T) {
	b := openT(t, Options{})
	ctx := context.Background()
	if _, err := b.Append(ctx, Record{Stream: "", Data: []byte("x")}); !errors.Is(err, ErrBadStream) {
		t.Fatalf("empty stream: %v", err)
	}
	if _, err := b.Append(ctx, Record{Stream: "a\x00b"}); !errors.Is(err, ErrBadStream) {
		t.Fatalf("NUL in stream: %v", err)
	}
	if _, err := b.Append(ctx, Record{Stream: "s", Data: make([]byte, MaxRecordBytes+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Append(cctx, rec("s", 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	// A maximal DIS record fits in one transaction.
	big := Record{Stream: "s", PartitionKey: "k", Data: bytes.Repeat([]byte{'y'}, MaxRecordBytes)}
	seq := mustAppend(t, b, big)
	rs, err := b.Read("s", seq, 1, 0)
	if err != nil || len(rs) != 1 || !bytes.Equal(rs[0].Data, big.Data) {
		t.Fatalf("big record read back: %v", err)
	}
}

var _ = io.Discard
