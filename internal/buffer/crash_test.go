package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash tests re-execute the test binary as a child that appends and acks
// until the parent kills it with SIGKILL. The child reports on stdout:
//
//	A stream seq data   Append returned nil (the record is durable)
//	a stream seq        about to Ack seq (the record may or may not be gone)
//	K stream seq        Ack returned nil (the record is gone)
const childEnv = "EDGEGW_BUFFER_CRASH_CHILD_DIR"

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("helper process for the crash tests; runs only when re-executed by them")
	}
	round := os.Getenv("EDGEGW_BUFFER_CRASH_ROUND")
	b, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		outMu.Unlock()
	}
	type appended struct {
		stream string
		seq    uint64
	}
	toAck := make(chan appended, 1024)
	for g := range 8 {
		go func() {
			stream := fmt.Sprintf("s%d", g%2)
			for i := 0; ; i++ {
				data := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				seq, err := b.Append(context.Background(), Record{Stream: stream, PartitionKey: fmt.Sprint(g), Data: []byte(data)})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(4)
				}
				say("A %s %d %s", stream, seq, data)
				if i%3 == 0 {
					toAck <- appended{stream, seq}
				}
			}
		}()
	}
	for a := range toAck {
		say("a %s %d", a.stream, a.seq)
		if err := b.Ack(a.stream, a.seq); err != nil {
			fmt.Fprintln(os.Stderr, "child ack:", err)
			os.Exit(5)
		}
		say("K %s %d", a.stream, a.seq)
	}
}

type key struct {
	stream string
	seq    uint64
}

// crashLedger is what the parent learned from the children's reports.
type crashLedger struct {
	data      map[key]string // acknowledged appends
	ackIntent map[key]bool
	acked     map[key]bool
}

// runChildUntilKilled starts a child on dir, lets it acknowledge at least
// target appends, kills it with SIGKILL and records everything it reported.
func runChildUntilKilled(t *testing.T, dir string, round, target int, l *crashLedger) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, fmt.Sprintf("EDGEGW_BUFFER_CRASH_ROUND=%d", round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	appends := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		var k key
		k.stream = f[1]
		if _, err := fmt.Sscan(f[2], &k.seq); err != nil {
			t.Fatalf("child line %q", sc.Text())
		}
		switch f[0] {
		case "A":
			if old, dup := l.data[k]; dup {
				t.Fatalf("round %d: seq %v handed out twice (%q, then %q)", round, k, old, f[3])
			}
			l.data[k] = f[3]
			appends++
		case "a":
			l.ackIntent[k] = true
		case "K":
			l.acked[k] = true
		}
		if appends >= target && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true // keep reading: the pipe holds what it reported before dying
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before being killed: %v\n%s", err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, stderr.String())
	}
}

// checkAfterCrash opens dir and checks the ledger: every acknowledged append
// that was not being acked is present with its data, every completed ack is
// absent, records come in Seq order. It returns the Buffer (open).
func checkAfterCrash(t *testing.T, dir string, l *crashLedger, logs io.Writer) *Buffer {
	t.Helper()
	b, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	present := map[key]string{}
	for _, s := range b.Streams() {
		rs := readAll(t, b, s)
		if !slices.IsSortedFunc(rs, func(x, y Record) int { return int(x.Seq) - int(y.Seq) }) {
			t.Fatalf("stream %s not in Seq order", s)
		}
		for _, r := range rs {
			present[key{s, r.Seq}] = string(r.Data)
		}
	}
	missing := 0
	for k, data := range l.data {
		got, ok := present[k]
		switch {
		case l.acked[k]:
			if ok {
				t.Errorf("%v was acked but is back after the crash", k)
			}
		case l.ackIntent[k]:
			// The kill fell inside Ack: either outcome is correct.
		case !ok:
			missing++
			if missing < 5 {
				t.Errorf("%v (%s) was acknowledged to its publisher but is lost", k, data)
			}
		case got != data:
			t.Errorf("%v holds %q, want %q", k, got, data)
		}
	}
	if missing > 0 {
		t.Fatalf("%d acknowledged records lost", missing)
	}
	return b
}

func newLedger() *crashLedger {
	return &crashLedger{data: map[key]string{}, ackIntent: map[key]bool{}, acked: map[key]bool{}}
}

func TestSIGKILLLosesNothingAcknowledgedAndNeverReusesSeq(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	l := newLedger()
	for round := range 3 {
		runChildUntilKilled(t, dir, round, 300+200*round, l)
		var logs bytes.Buffer
		b := checkAfterCrash(t, dir, l, &logs)
		if !strings.Contains(logs.String(), "not closed cleanly") {
			t.Errorf("round %d: no unclean-shutdown warning; log:\n%s", round, logs.String())
		}
		// The next Seq is above everything ever handed out.
		for _, s := range []string{"s0", "s1"} {
			var maxSeq uint64
			for k := range l.data {
				if k.stream == s {
					maxSeq = max(maxSeq, k.seq)
				}
			}
			seq := mustAppend(t, b, Record{Stream: s, Data: []byte("parent")})
			if seq <= maxSeq {
				t.Fatalf("round %d: new seq %d on %s, but %d was handed out before the crash", round, seq, s, maxSeq)
			}
			l.data[key{s, seq}] = "parent"
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d appends acknowledged by children, %d acked, all accounted for", len(l.data), len(l.acked))
}

// newestWAL returns the memtable WAL file (*.mem) with the highest id that
// holds entries, and the offset just past its last non-zero byte.
func newestWAL(t *testing.T, dir string) (string, int64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files) // %05d names sort by id
	for i := len(files) - 1; i >= 0; i-- {
		buf, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		end := len(bytes.TrimRight(buf, "\x00"))
		if end > 64 { // more than the file header
			return files[i], int64(end)
		}
	}
	t.Fatalf("no WAL with entries in %s", dir)
	return "", 0
}

// copyDir copies the files of a live buffer: what a crash at this instant
// would leave on disk (every write so far is in the page cache or synced).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruptWALTailIsTruncatedAndReported(t *testing.T) {
	live := t.TempDir()
	b := openT(t, Options{Dir: live, JanitorInterval: time.Hour})
	const n = 50
	for i := range n {
		mustAppend(t, b, rec("s", i)) // one transaction each: the last entry of the WAL is seq n's
	}
	crashed := t.TempDir()
	copyDir(t, live, crashed)
	// The same crash without the torn write: reported as unclean, but no
	// truncation is claimed and nothing is missing.
	intact := t.TempDir()
	copyDir(t, live, intact)
	var intactLogs bytes.Buffer
	b1, err := Open(Options{Dir: intact, Logger: slog.New(slog.NewTextHandler(&intactLogs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(readAll(t, b1, "s")); !slices.Equal(got, span(1, n)) || strings.Contains(intactLogs.String(), "incomplete or corrupt") ||
		!strings.Contains(intactLogs.String(), "not closed cleanly") {
		t.Fatalf("intact copy: seqs %v, log:\n%s", got, intactLogs.String())
	}
	b1.Close()

	// Corrupt the checksum of the last entry written, as a torn write would.
	wal, end := newestWAL(t, crashed)
	f, err := os.OpenFile(wal, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, end-4); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var logs bytes.Buffer
	b2, err := Open(Options{Dir: crashed, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("Open refused a corrupt WAL tail: %v", err)
	}
	defer b2.Close()
	if !strings.Contains(logs.String(), "not closed cleanly") {
		t.Errorf("no warning; log:\n%s", logs.String())
	}
	// The truncation itself is reported, with what was dropped: the last
	// record's transaction (its set, its 'n' key, the commit marker).
	if !strings.Contains(logs.String(), "incomplete or corrupt write") || !strings.Contains(logs.String(), "file="+filepath.Base(wal)) ||
		strings.Contains(logs.String(), "dropped_bytes=0") {
		t.Errorf("the truncation is not reported; log:\n%s", logs.String())
	}
	t.Logf("startup log:\n%s", logs.String())
	// Exactly the torn transaction (the last record) is gone; everything
	// before it is intact.
	rs := readAll(t, b2, "s")
	if !slices.Equal(seqsOf(rs), span(1, n-1)) {
		t.Fatalf("after truncation: %v", seqsOf(rs))
	}
	for _, r := range rs {
		if !bytes.Equal(r.Data, rec("s", int(r.Seq-1)).Data) {
			t.Fatalf("seq %d: %q", r.Seq, r.Data)
		}
	}
	if seq := mustAppend(t, b2, rec("s", n)); seq != n {
		t.Fatalf("next seq %d, want %d (the torn record did not survive, so its Seq is free again)", seq, n)
	}
}
