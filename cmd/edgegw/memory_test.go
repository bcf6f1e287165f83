package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/distest"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// memoryBound is the documented bound on the gateway's anonymous resident
// memory (RssAnon: heap, stacks, Badger's arenas) with a backlog, at the
// default gateway.memory_limit. Measured with 1,000,000 records
// (TestSoakMemoryMillionRecordBacklog): 97.4 MiB peak. File-backed pages of Badger's mmap'd tables
// (RssFile) are page cache the kernel reclaims under pressure; they are
// reported, not bounded.
const memoryBound = 128 << 20

// buildGateway builds edgegw without the race detector (whose shadow memory
// would make any RSS figure meaningless) into a temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "edgegw")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// procMem reads resident memory figures of a process from /proc.
func procMem(pid int) (anon, file, hwm int64, ok bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		switch name {
		case "RssAnon":
			anon = kb << 10
		case "RssFile":
			file = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return anon, file, hwm, anon > 0
}

// rssSampler records a process's peak RssAnon and RssFile. It only observes.
type rssSampler struct {
	mu                 sync.Mutex
	peakAnon, peakFile int64
	hwm                int64
	stop, done         chan struct{}
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tk := time.NewTicker(25 * time.Millisecond)
		defer tk.Stop()
		for {
			if anon, file, hwm, ok := procMem(pid); ok {
				s.mu.Lock()
				s.peakAnon, s.peakFile, s.hwm = max(s.peakAnon, anon), max(s.peakFile, file), max(s.hwm, hwm)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) peaks() (anon, file, hwm int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakAnon, s.peakFile, s.hwm
}

func (s *rssSampler) close() { close(s.stop); <-s.done }

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// memoryTest runs the real binary with DIS down while devices publish
// records QoS 1 messages of ~300 bytes, then lets the backlog drain, and
// checks the gateway's peak RssAnon stays under memoryBound throughout.
func memoryTest(t *testing.T, records int) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	bin := buildGateway(t)
	d := startExternalDIS(t)
	dir := t.TempDir()
	port := freePort(t)
	cfgPath := gatewayConfig(t, dir, d.endpoint, port, "")
	// DIS is down (stream management stays up, so the gateway creates its stream).
	if err := d.srv.SetFaults(disserver.Faults{OutageDuration: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Env = withoutEnv(os.Environ(), "GOMEMLIMIT", "GOGC")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, logs)
	rss := sampleRSS(cmd.Process.Pid)
	defer rss.close()

	const devices = 8
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for i := 0; i < devices; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "m" + strconv.Itoa(i)
			c, err := mqtttest.Dial(addr, "pub-"+id)
			if err != nil {
				errs <- err
				return
			}
			defer c.Disconnect(100)
			per := records / devices
			const chunk = 2000
			pad := strings.Repeat("x", 260)
			for off := 0; off < per; off += chunk {
				n := min(chunk, per-off)
				payloads := make([][]byte, n)
				for j := range payloads {
					payloads[j] = fmt.Appendf(nil, `{"d":%q,"n":%d,"p":%q}`, id, off+j, pad)
				}
				rs := mqtttest.PublishAll(c, []string{"devices/" + id + "/telemetry"}, payloads, 1, 64, 5*time.Minute)
				if err := mqtttest.FirstError(rs); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v\ngateway log:\n%s", err, logs.String())
	}
	fill := time.Since(start)
	fillAnon, fillFile, _ := rss.peaks()

	if err := d.srv.SetFaults(disserver.Faults{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	want := records / devices * devices
	if _, err := distest.WaitForCount(context.Background(), d.client, "telemetry", want, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	drain := time.Since(start)
	anon, file, hwm := rss.peaks()
	t.Logf("%d records of ~300 B: fill %s (%.0f rec/s), drain %s (%.0f rec/s)", want, fill.Round(time.Millisecond),
		float64(want)/fill.Seconds(), drain.Round(time.Millisecond), float64(want)/drain.Seconds())
	t.Logf("peak RssAnon %.1f MiB during the fill, %.1f MiB overall (bound %.0f MiB); peak RssFile %.1f MiB (fill %.1f); VmHWM %.1f MiB",
		mib(fillAnon), mib(anon), mib(memoryBound), mib(file), mib(fillFile), mib(hwm))
	if anon > memoryBound {
		t.Errorf("peak RssAnon %.1f MiB is over the documented bound of %.0f MiB", mib(anon), mib(memoryBound))
	}
}

func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// The short form for every CI run: a 50,000-record backlog (Badger's and the
// uplink's memory is bounded by options, not by the backlog; the buffer's own
// index costs 4 bytes per record). `make soak` runs the 1,000,000-record
// form (TestSoakMemoryMillionRecordBacklog).
func TestMemoryBoundWithBacklog(t *testing.T) {
	memoryTest(t, 50_000)
}
