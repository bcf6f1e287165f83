package buffer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
)

// An I/O error other than a full disk (EIO) fails the appends of the
// batch with the cause, counted as write errors (not disk-full); records
// committed before stay readable and ackable, the failed appends leave no
// trace (no Seq used), and appends succeed again once the error stops.
func TestIOErrorFailsAppendsWithoutDamageAndRecovers(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, Options{Dir: dir})
	for i := range 10 {
		mustAppend(t, b, rec("s", i))
	}
	heal := failCommits(b, syscall.EIO)
	for i := range 3 {
		_, err := b.Append(context.Background(), rec("s", 100+i))
		if err == nil || !errors.Is(err, syscall.EIO) || errors.Is(err, ErrDiskFull) || errors.Is(err, ErrFull) {
			t.Fatalf("append during an I/O error: %v", err)
		}
	}
	if rs := readAll(t, b, "s"); !slices.Equal(seqsOf(rs), span(1, 10)) {
		t.Fatalf("readable during the I/O error: %v", seqsOf(rs))
	}
	if err := b.Ack("s", 1); err != nil {
		t.Fatalf("ack during an append I/O error: %v", err)
	}
	heal()
	if got := mustAppend(t, b, rec("s", 10)); got != 11 {
		t.Fatalf("seq after recovery %d, want 11", got)
	}
	if st := b.Stats(); st.WriteErrors != 3 || st.DiskFull != 0 || st.Records != 10 {
		t.Fatalf("writeErrors=%d diskFull=%d records=%d", st.WriteErrors, st.DiskFull, st.Records)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := openT(t, Options{Dir: dir})
	if got := seqsOf(readAll(t, b2, "s")); !slices.Equal(got, span(2, 11)) {
		t.Fatalf("after reopen: %v", got)
	}
}

// failCommits makes every commit of b fail with errno (as the WAL write
// would) until the returned heal is called.
func failCommits(b *Buffer, errno syscall.Errno) (heal func()) {
	var failing atomic.Bool
	failing.Store(true)
	b.commitHook = func() error {
		if failing.Load() {
			return fmt.Errorf("write wal: %w", errno)
		}
		return nil
	}
	return func() { failing.Store(false) }
}
