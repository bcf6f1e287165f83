package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
)

// procStatus returns the named fields of /proc/self/status in bytes.
func procStatus(fields ...string) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for _, want := range fields {
			if name == want {
				var kb int64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
				out[name] = kb << 10
			}
		}
	}
	return out
}

// memSampler records the peak of the Go runtime's memory obtained from the
// OS (heap, stacks, badger's arenas and caches, which are Go allocations in a
// pure-Go build) while it runs. Sampling only observes; nothing waits on it.
type memSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peak     uint64
	peakAnon int64 // RssAnon: the process's own memory, not the mmap'd table pages
}

func startMemSampler() *memSampler {
	m := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if cur := ms.Sys - ms.HeapReleased; cur > m.peak+(16<<20) {
				m.peak = cur
				if path := os.Getenv("EDGEGW_BUFFER_PEAKPROFILE"); path != "" {
					// Heap profile at each new peak, for investigating the numbers.
					if f, err := os.Create(path); err == nil {
						_ = pprof.WriteHeapProfile(f)
						f.Close()
					}
				}
			}
			m.peak = max(m.peak, ms.Sys-ms.HeapReleased)
			m.peakAnon = max(m.peakAnon, procStatus("RssAnon")["RssAnon"])
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memSampler) Stop() uint64 { close(m.stop); <-m.done; return m.peak }

type soakResult struct {
	fill, drain   time.Duration
	goPeak        uint64
	anonPeak      int64
	status        map[string]int64
	diskFull      int64 // bytes allocated in Dir with the backlog
	diskDrained   int64 // after draining
	diskReclaimed int64 // after the janitor's reclaim step
	reclaimTook   time.Duration
	reclaims      uint64
	recordsPerSec float64
}

// soak fills a buffer with n records of size bytes from 8 appenders, then
// drains it with Read+Ack as the uplink would.
func soak(t testing.TB, n, size int) soakResult {
	b := openT(t, Options{MaxBytes: 4 << 30})
	var r soakResult
	sampler := startMemSampler()
	start := time.Now()
	const appenders = 8
	var wg sync.WaitGroup
	data := bytes.Repeat([]byte(`{"temp":21.5,"hum":40}`), size/22+1)[:size]
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := a; i < n; i += appenders {
				if err := b.AppendAsync(Record{Stream: "telemetry", PartitionKey: fmt.Sprintf("dev%d", i%1000), Data: data}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := b.Append(context.Background(), Record{Stream: "telemetry", Data: data}); err != nil {
		t.Fatal(err)
	}
	r.fill = time.Since(start)
	st := b.Stats()
	if st.Records != int64(n+1) {
		t.Fatalf("buffered %d records, want %d", st.Records, n+1)
	}
	r.diskFull = st.DiskUsage
	if path := os.Getenv("EDGEGW_BUFFER_HEAPPROFILE"); path != "" {
		// Heap profile at the full backlog, for investigating the numbers.
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	r.status = procStatus("VmRSS", "VmHWM", "RssAnon", "RssFile")

	start = time.Now()
	for {
		rs, err := b.Read("telemetry", 0, 500, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		if err := b.Ack("telemetry", seqsOf(rs)...); err != nil {
			t.Fatal(err)
		}
	}
	r.drain = time.Since(start)
	r.goPeak = sampler.Stop()
	r.anonPeak = sampler.peakAnon
	if st := b.Stats(); st.Records != 0 {
		t.Fatalf("%d records left after draining", st.Records)
	}
	r.diskDrained = b.Stats().DiskUsage
	start = time.Now()
	b.reclaim() // what the janitor does every GCInterval
	r.reclaimTook = time.Since(start)
	r.diskReclaimed = b.Stats().DiskUsage
	r.reclaims = b.Stats().Reclaims
	return r
}

func (r soakResult) report(t testing.TB, n int) {
	t.Logf("%d records: fill %v (%.0f rec/s), drain %v (%.0f rec/s)", n, r.fill.Round(time.Millisecond), float64(n)/r.fill.Seconds(), r.drain.Round(time.Millisecond), float64(n)/r.drain.Seconds())
	t.Logf("peaks: Go memory %.1f MiB, RssAnon %.1f MiB (memory limit %s)", mib(int64(r.goPeak)), mib(r.anonPeak), limitString())
	t.Logf("Go memory peak %.1f MiB; process at full backlog: VmRSS %.1f MiB (anon %.1f, file %.1f), VmHWM %.1f MiB",
		mib(int64(r.goPeak)), mib(r.status["VmRSS"]), mib(r.status["RssAnon"]), mib(r.status["RssFile"]), mib(r.status["VmHWM"]))
	t.Logf("disk allocated: %.1f MiB with the backlog, %.1f MiB after draining, %.1f MiB after reclaim (%d flattens, %v)",
		mib(r.diskFull), mib(r.diskDrained), mib(r.diskReclaimed), r.reclaims, r.reclaimTook.Round(time.Millisecond))
}

func limitString() string {
	l := debug.SetMemoryLimit(-1)
	if l == math.MaxInt64 {
		return "none"
	}
	return fmt.Sprintf("%d MiB", l>>20)
}

// withMemoryLimit sets the Go memory limit the gateway runs with (GOMEMLIMIT,
// or debug.SetMemoryLimit in main) for the test, unless GOMEMLIMIT is set.
func withMemoryLimit(t testing.TB, limit int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	old := debug.SetMemoryLimit(limit)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
}

func mib(v int64) float64 { return float64(v) / (1 << 20) }

// TestMemoryStaysBoundedWithBacklog is the short version of the soak test
// (build tag soak, 1,000,000 records): 150,000 records of 300 bytes.
func TestMemoryStaysBoundedWithBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 150k records")
	}
	const n = 150_000
	withMemoryLimit(t, 64<<20)
	r := soak(t, n, 300)
	r.report(t, n)
	// The bound is on what the Go runtime holds (the race detector's shadow
	// memory is outside it, so this holds under -race too). Badger's
	// memtables (2 x 10 MiB arenas), index cache (4 MiB) and compaction
	// table builders are inside.
	const bound = 128 << 20
	if r.goPeak > bound {
		t.Fatalf("Go memory peaked at %.1f MiB, bound %d MiB", mib(int64(r.goPeak)), bound>>20)
	}
}
