package disserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// The crash test re-executes the test binary as a server process (TestMain
// sees the environment variable), loads it with PutRecords and checkpoint
// commits, kills it with SIGKILL mid-load, restarts it on the same data and
// checks that everything it acknowledged is there.

const (
	childEnv     = "EDGEGW_DISSERVER_CRASH_CHILD" // data dir of the child server
	childAddrEnv = "EDGEGW_DISSERVER_CRASH_ADDR"  // file the child writes its address to
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		runChild(dir, os.Getenv(childAddrEnv))
		return
	}
	os.Exit(m.Run())
}

// runChild serves until killed.
func runChild(dir, addrFile string) {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.FlowControl.Enabled = false
	s, err := New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	// Write then rename, so the parent never reads half an address.
	if err := os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()), 0o600); err != nil {
		os.Exit(2)
	}
	if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
		os.Exit(2)
	}
	if err := s.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
}

type child struct {
	cmd  *exec.Cmd
	base string
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, childAddrEnv+"="+addrFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Poll for the address with a deadline; the child needs to open Badger.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			return &child{cmd: cmd, base: "http://" + string(b)}
		}
		if time.Now().After(deadline) {
			t.Fatal("child server did not start within 30 s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a correctness wait
	}
}

func (c *child) post(hc *http.Client, path string, v any) (int, []byte, error) {
	b, _ := json.Marshal(v)
	resp, err := hc.Post(c.base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func TestSIGKILLDuringPutRecordsLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dir := t.TempDir()
	c := startChild(t, dir)
	setupCrashFixtures(t, c)
	var h crashHistory
	h.lastCheckpoint = -1
	c = crashCycle(t, dir, c, &h, 0, 3000)
	h.verify(t, c)
	t.Logf("%d records acknowledged before SIGKILL, all readable after restart; checkpoint metadata ≥ %d", len(h.acked), h.lastCheckpoint)
}

const crashPartitions = 3

func setupCrashFixtures(t *testing.T, c *child) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	if st, body, err := c.post(hc, "/v2/"+testProject+"/streams", map[string]any{"stream_name": "s", "partition_count": crashPartitions}); err != nil || st != 201 {
		t.Fatalf("create stream: %d %s %v", st, body, err)
	}
	if st, body, err := c.post(hc, "/v2/"+testProject+"/apps", map[string]any{"app_name": "a"}); err != nil || st != 201 {
		t.Fatalf("create app: %d %s %v", st, body, err)
	}
}

type ackedRecord struct{ partition, seq, data string }

// crashHistory is what every cycle so far acknowledged.
type crashHistory struct {
	acked          []ackedRecord
	lastCheckpoint int64 // highest checkpoint metadata acknowledged
}

// crashCycle loads the child with PutRecords and checkpoint commits, kills
// it with SIGKILL once killAt more records are acknowledged, and returns a
// restarted child on the same data. cycle tags the records' data.
func crashCycle(t *testing.T, dir string, c *child, h *crashHistory, cycle int, killAt int64) *child {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	var mu sync.Mutex
	var total atomic.Int64
	var lastCheckpoint atomic.Int64
	lastCheckpoint.Store(h.lastCheckpoint)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Bounded load: at most 4 producers × 400 requests × 20 records, 60 s.
	loadDeadline := time.Now().Add(60 * time.Second)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 400 && time.Now().Before(loadDeadline); r++ {
				select {
				case <-stop:
					return
				default:
				}
				var entries []putEntry
				for i := range 20 {
					entries = append(entries, putEntry{Data: b64(fmt.Sprintf("c%d-g%d-r%d-i%d", cycle, g, r, i)), PartitionKey: fmt.Sprintf("k%d", (r+i)%7)})
				}
				st, body, err := c.post(hc, "/v2/"+testProject+"/records", putBody("s", entries...))
				if err != nil {
					return // the server died
				}
				if st != 200 {
					t.Errorf("PutRecords: %d %s", st, body)
					return
				}
				var resp dis.PutRecordsResponse
				if err := json.Unmarshal(body, &resp); err != nil {
					t.Errorf("PutRecords reply: %v", err)
					return
				}
				mu.Lock()
				for i, e := range resp.Records {
					if !e.Failed() {
						h.acked = append(h.acked, ackedRecord{e.PartitionID, e.SequenceNumber, entries[i].Data})
					}
				}
				mu.Unlock()
				total.Add(int64(len(resp.Records)))
			}
		}()
	}
	wg.Add(1)
	go func() { // one checkpoint committer with increasing metadata
		defer wg.Done()
		for v := h.lastCheckpoint + 1; time.Now().Before(loadDeadline); v++ {
			select {
			case <-stop:
				return
			default:
			}
			st, _, err := c.post(hc, "/v2/"+testProject+"/checkpoints", map[string]any{
				"app_name": "a", "checkpoint_type": "LAST_READ", "stream_name": "s", "partition_id": "0", "sequence_number": "0", "metadata": strconv.FormatInt(v, 10),
			})
			if err != nil {
				return
			}
			if st == 201 {
				lastCheckpoint.Store(v)
			}
		}
	}()
	// Kill when enough is acknowledged, while producers are mid-request.
	for total.Load() < killAt && time.Now().Before(loadDeadline) {
		time.Sleep(time.Millisecond) // polling the counter; the kill point is not a correctness condition
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	close(stop)
	wg.Wait()
	if total.Load() < killAt {
		t.Fatalf("cycle %d: only %d records acknowledged before the deadline", cycle, total.Load())
	}
	h.lastCheckpoint = lastCheckpoint.Load()
	return startChild(t, dir)
}

// verify checks, on a restarted server, that every acknowledged record is
// readable with its data, numbering is dense, the last acknowledged
// checkpoint survived, and writing continues densely.
func (h *crashHistory) verify(t *testing.T, c *child) {
	t.Helper()
	e := &env{t: t, base: c.base, hc: &http.Client{Timeout: 30 * time.Second}}
	byPartition := map[string]map[string]string{}
	for p := range crashPartitions {
		m := map[string]string{}
		for i, r := range e.readAll("s", strconv.Itoa(p)) {
			if r.SequenceNumber != strconv.Itoa(i) {
				t.Fatalf("partition %d: record %d has sequence %s after restart", p, i, r.SequenceNumber)
			}
			m[r.SequenceNumber] = b64(string(r.Data))
		}
		byPartition[dis.ShardID(p)] = m
	}
	for _, a := range h.acked {
		if byPartition[a.partition][a.seq] != a.data {
			t.Fatalf("acknowledged record %s/%s (%s) is missing or different after SIGKILL", a.partition, a.seq, a.data)
		}
	}
	var cp dis.GetCheckpointResponse
	e.mustStatus(200, e.do("GET", checkpointsPath+"?app_name=a&stream_name=s&partition_id=0&checkpoint_type=LAST_READ", nil)).decode(t, &cp)
	meta, _ := strconv.ParseInt(cp.Metadata, 10, 64)
	if h.lastCheckpoint >= 0 && (cp.SequenceNumber != "0" || meta < h.lastCheckpoint) {
		t.Fatalf("checkpoint after restart %+v, last acknowledged metadata %d", cp, h.lastCheckpoint)
	}
	resp := e.put("s", putEntry{Data: b64("after"), PartitionID: "0"})
	if want := strconv.Itoa(len(byPartition[dis.ShardID(0)])); resp.Records[0].SequenceNumber != want {
		t.Fatalf("first sequence after restart %s, want %s", resp.Records[0].SequenceNumber, want)
	}
	h.acked = append(h.acked, ackedRecord{"shardId-0000000000", resp.Records[0].SequenceNumber, b64("after")})
}
