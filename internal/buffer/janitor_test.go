package buffer

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the janitor.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestJanitorExpiresRecordsOlderThanMaxAge(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_700_000_000_000)}
	b := openT(t, Options{
		MaxAge:          time.Hour,
		Streams:         map[string]StreamOptions{"short": {MaxAge: time.Minute}},
		JanitorInterval: time.Hour, // the test runs passes itself
		now:             clock.now,
	})
	// 10 records per minute for 10 minutes, on two streams.
	for m := range 10 {
		for i := range 10 {
			for _, s := range []string{"long", "short"} {
				mustAppend(t, b, Record{Stream: s, Data: []byte("x"), Timestamp: clock.now().UnixMilli()})
			}
			_ = i
		}
		clock.add(time.Minute)
		_ = m
	}
	// now = start+10m. "short" keeps records at most 1m old: the 10 written
	// at start+9m stay, 90 go; "long" keeps all (max age 1h).
	b.janitorPass()
	st := b.Stats()
	if st.Expired != 90 || st.Streams["short"].Expired != 90 || st.Streams["long"].Expired != 0 {
		t.Fatalf("expired total=%d short=%d long=%d", st.Expired, st.Streams["short"].Expired, st.Streams["long"].Expired)
	}
	if h := b.Head("short"); h != 91 {
		t.Fatalf("short head %d", h)
	}
	if got := st.Streams["long"].OldestAge; got != 10*time.Minute {
		t.Fatalf("long oldest age %v, want 10m", got)
	}

	// At start+65m-1ms the records of minutes 0-4 of "long" (50) are more
	// than an hour old; those of minute 5 are 1ms short of it.
	clock.add(55*time.Minute - time.Millisecond)
	b.janitorPass()
	st = b.Stats()
	if st.Streams["long"].Expired != 50 || b.Head("long") != 51 {
		t.Fatalf("long expired=%d head=%d, want 50 and 51", st.Streams["long"].Expired, b.Head("long"))
	}
	if got := seqsOf(readAll(t, b, "long")); !slices.Equal(got, span(51, 100)) {
		t.Fatalf("long left %v", got)
	}
	// Acked records are not expired twice.
	if err := b.Ack("long", span(51, 60)...); err != nil {
		t.Fatal(err)
	}
	clock.add(24 * time.Hour)
	b.janitorPass()
	st = b.Stats()
	if st.Streams["long"].Expired != 90 || st.Streams["long"].Acked != 10 || st.Streams["short"].Expired != 100 || st.Records != 0 {
		t.Fatalf("long expired=%d acked=%d records=%d", st.Streams["long"].Expired, st.Streams["long"].Acked, st.Records)
	}
}

func TestJanitorGoroutineRunsOnItsTicker(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_700_000_000_000)}
	b := openT(t, Options{MaxAge: time.Minute, JanitorInterval: time.Millisecond, now: clock.now})
	for range 5 {
		mustAppend(t, b, Record{Stream: "s", Data: []byte("x"), Timestamp: clock.now().UnixMilli()})
	}
	clock.add(2 * time.Minute)
	deadline := time.Now().Add(2 * time.Minute)
	for b.Stats().Expired != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("janitor expired %d of 5 within 20s", b.Stats().Expired)
		}
		time.Sleep(time.Millisecond) // polling, not timing: the assertion is on the count
	}
	if b.Head("s") != 6 {
		t.Fatalf("head %d", b.Head("s"))
	}
}

// Disk space comes back as the queue drains: a backlog is written to tables,
// acknowledged, and the janitor (on its GC ticker) flattens the mostly dead
// tree, so the tables shrink to a fraction of what the backlog took.
func TestDiskSpaceIsReclaimedAfterTheQueueDrains(t *testing.T) {
	const n, size = 120_000, 300 // ~36 MB of records: several memtable flushes
	b := openT(t, Options{Sync: SyncNone, GCInterval: 20 * time.Millisecond, reclaimMin: 4 << 20})
	fill(t, b, "s", n, size)
	if err := b.db.Flatten(1); err != nil { // the backlog in tables, like a long outage leaves it
		t.Fatal(err)
	}
	full := filesUsage(b.opts.Dir, ".sst")
	if full < 20<<20 {
		t.Fatalf("the backlog took only %d bytes of tables: nothing to reclaim, the test shows nothing", full)
	}
	ackRange(t, b, "s", 1, n)
	// The deletion markers reach the tables by the memtable flushes that
	// later writes cause; a drained queue's next records do that.
	fill(t, b, "s", 30_000, size)
	ackRange(t, b, "s", n+1, n+30_000)

	deadline := time.Now().Add(2 * time.Minute)
	for {
		now := filesUsage(b.opts.Dir, ".sst")
		if now < full/4 && b.Stats().Reclaims > 0 {
			t.Logf("tables: %.1f MiB with the backlog, %.1f MiB after the drain (%d reclaims); all files now %.1f MiB",
				mib(full), mib(now), b.Stats().Reclaims, mib(b.Stats().DiskUsage))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tables still %.1f MiB (%.1f MiB with the backlog) two minutes after the drain; %d reclaims", mib(now), mib(full), b.Stats().Reclaims)
		}
		time.Sleep(50 * time.Millisecond) // polling; the assertion is on sizes
	}
}
