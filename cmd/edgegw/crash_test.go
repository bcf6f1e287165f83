package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/distest"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// externalDIS is the DIS-compatible server run in the test process, so it
// outlives the gateway processes the tests kill.
type externalDIS struct {
	srv      *disserver.Server
	endpoint string
	client   *dis.Client
}

func startExternalDIS(t *testing.T) *externalDIS {
	t.Helper()
	sc := disserver.DefaultConfig()
	sc.DataDir = filepath.Join(t.TempDir(), "dis")
	sc.FlowControl.Enabled = false // the load is a test's, not a device fleet's
	srv, err := disserver.New(sc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	d := &externalDIS{srv: srv, endpoint: "http://" + ln.Addr().String()}
	if d.client, err = dis.NewClient(dis.ClientConfig{Endpoint: d.endpoint, ProjectID: "local"}); err != nil {
		t.Fatal(err)
	}
	return d
}

// gatewayConfig writes a config for a gateway process that sends to endpoint
// and keeps its buffer in dir.
func gatewayConfig(t *testing.T, dir, endpoint string, mqttPort int, extra string) string {
	t.Helper()
	text := fmt.Sprintf(`gateway:
  id: crash-test
log:
  level: warn
mqtt:
  anonymous: loopback
  listeners:
    - {name: tcp, type: tcp, address: "127.0.0.1:%d"}
buffer:
  dir: %s
dis:
  endpoint: %s
  project_id: local
  builtin:
    enabled: false
streams:
  - name: telemetry
    partition_count: 3
routes:
  - topic: devices/+/telemetry
    stream: telemetry
    partition_key: "{topic.2}"
admin:
  listen: ""
%s`, mqttPort, filepath.Join(dir, "buffer"), endpoint, extra)
	path := filepath.Join(dir, fmt.Sprintf("edgegw-%d.yaml", mqttPort))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// msg is the body of message n of a device: identity first, then filler that
// varies per message so a corrupted or swapped record is visible.
func msg(device string, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"device":%q,"n":%d,"pad":"`, device, n)
	for j := 0; j < 60+n%40; j++ {
		b.WriteByte(byte('a' + (n*7+j)%26))
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

// device publishes numbered QoS 1 messages on fresh connections and keeps
// the numbers that got a PUBACK on the connection that sent them.
type device struct {
	id    string
	next  int          // the next number to publish; never reused
	acked map[int]bool // numbers acknowledged
}

// runUntilLost publishes until the connection is lost or stop closes, in
// chunks with a bounded window.
func (d *device) runUntilLost(addr string, window int, stop <-chan struct{}) {
	c, err := mqtttest.Dial(addr, "pub-"+d.id)
	if err != nil {
		return // the gateway died before we connected
	}
	defer c.Disconnect(50)
	const chunk = 200
	for {
		select {
		case <-stop:
			return
		default:
		}
		payloads := make([][]byte, chunk)
		for i := range payloads {
			payloads[i] = msg(d.id, d.next+i)
		}
		rs := mqtttest.PublishAll(c, []string{"devices/" + d.id + "/telemetry"}, payloads, 1, window, 30*time.Second)
		lost := false
		for _, r := range rs {
			if r.Err == nil {
				d.acked[d.next+r.Index] = true
			} else {
				lost = true
			}
		}
		d.next += chunk
		if lost {
			return
		}
	}
}

type crashPlan struct {
	kills          int
	devices        int
	window         int
	minRun, maxRun time.Duration // how long the load runs before each kill
}

// crashTest runs a gateway process under QoS 1 load from several devices and
// kills it with SIGKILL at random moments, restarting it each time; then it
// lets the last one drain and checks every acknowledged message is in DIS,
// in order per device, and counts duplicates.
func crashTest(t *testing.T, plan crashPlan) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	t.Logf("seed %d", seed)
	d := startExternalDIS(t)
	dir := t.TempDir()
	devs := make([]*device, plan.devices)
	for i := range devs {
		devs[i] = &device{id: "d" + strconv.Itoa(i), acked: map[int]bool{}}
	}

	start := func() (*exec.Cmd, string, *lockedBuffer) {
		port := freePort(t)
		cfg := gatewayConfig(t, dir, d.endpoint, port, "")
		logs := &lockedBuffer{}
		cmd := edgegw(context.Background(), "run", "-c", cfg)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		waitListening(t, addr, logs)
		return cmd, addr, logs
	}

	for k := 0; k < plan.kills; k++ {
		cmd, addr, logs := start()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, dv := range devs {
			wg.Add(1)
			go func() { defer wg.Done(); dv.runUntilLost(addr, plan.window, stop) }()
		}
		run := plan.minRun + time.Duration(rng.Int64N(int64(plan.maxRun-plan.minRun)+1))
		time.Sleep(run) // the load runs for a random while: the kill lands at a random moment
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		close(stop)
		wg.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: the gateway exited by itself (%v) before the kill; log:\n%s", k+1, err, logs.String())
		}
	}

	// A last gateway drains the backlog; then an orderly stop.
	cmd, _, logs := start()
	acked := 0
	for _, dv := range devs {
		acked += len(dv.acked)
	}
	if acked == 0 {
		t.Fatalf("no message was acknowledged in %d runs", plan.kills)
	}
	prs := waitAllAcked(t, d.client, devs, 5*time.Minute)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gateway exit after SIGTERM: %v\n%s", err, logs.String())
	}

	// Analysis: byte-exact records, first occurrences in publish order per
	// device, every acknowledged message present, duplicates counted.
	seen := map[string]map[int]int{}
	last := map[string]int{}
	records, dups := 0, 0
	// A crash between PutRecords and the buffer's acknowledgement makes the
	// next run resend the records of the requests in flight, first thing:
	// in a device's records in DIS that is one run of repeats (a rewind) per
	// kill at most. Repeats anywhere else would be duplicates of another cause.
	rewinds := map[string]int{}
	for _, p := range prs {
		prevDup := map[string]bool{}
		for _, r := range p.Records {
			var m struct {
				Device string
				N      int
			}
			if err := json.Unmarshal(r.Data, &m); err != nil || !bytes.Equal(r.Data, msg(m.Device, m.N)) || m.Device != r.PartitionKey {
				t.Fatalf("partition %s seq %s: corrupt record %q (key %s)", p.PartitionID, r.SequenceNumber, r.Data, r.PartitionKey)
			}
			records++
			if seen[m.Device] == nil {
				seen[m.Device], last[m.Device] = map[int]int{}, -1
			}
			seen[m.Device][m.N]++
			if seen[m.Device][m.N] > 1 {
				dups++
				if !prevDup[m.Device] {
					rewinds[m.Device]++
				}
				prevDup[m.Device] = true
				continue
			}
			prevDup[m.Device] = false
			if m.N <= last[m.Device] {
				t.Fatalf("device %s: message %d arrived after %d", m.Device, m.N, last[m.Device])
			}
			last[m.Device] = m.N
		}
	}
	for _, dv := range devs {
		for n := range dv.acked {
			if seen[dv.id][n] == 0 {
				t.Fatalf("device %s: acknowledged message %d is not in DIS", dv.id, n)
			}
		}
	}
	// A duplicate needs a kill between PutRecords and the buffer ack: at most
	// the requests in flight (4 of at most 500 records) per kill, resent in
	// one rewind per device per kill.
	if bound := plan.kills * 4 * 500; dups > bound {
		t.Fatalf("%d duplicates after %d kills; at most %d can come from in-flight requests", dups, plan.kills, bound)
	}
	for dev, n := range rewinds {
		if n > plan.kills {
			t.Fatalf("device %s: duplicates in %d separate runs after %d kills; only a restart may resend", dev, n, plan.kills)
		}
	}
	t.Logf("%d kills: %d messages acknowledged, %d records in DIS (%d unacknowledged but kept), %d duplicates (rewinds per device %v)",
		plan.kills, acked, records, records-dups-acked, dups, rewinds)
}

// waitAllAcked polls DIS until every acknowledged message is there.
func waitAllAcked(t *testing.T, c *dis.Client, devs []*device, timeout time.Duration) []distest.PartitionRecords {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		prs, err := distest.ReadStream(context.Background(), c, "telemetry")
		missing := 0
		if err == nil {
			have := map[string]map[int]bool{}
			for _, p := range prs {
				for _, r := range p.Records {
					var m struct {
						Device string
						N      int
					}
					if json.Unmarshal(r.Data, &m) == nil {
						if have[m.Device] == nil {
							have[m.Device] = map[int]bool{}
						}
						have[m.Device][m.N] = true
					}
				}
			}
			for _, dv := range devs {
				for n := range dv.acked {
					if !have[dv.id][n] {
						missing++
					}
				}
			}
			if missing == 0 {
				return prs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d acknowledged messages are not in DIS (last error %v)", timeout, missing, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The short form of the crash test, for every CI run: 10 SIGKILLs at random
// moments under load from 4 devices. `make soak` runs the long form.
func TestSIGKILLTenTimesLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	crashTest(t, crashPlan{kills: 10, devices: 4, window: 32, minRun: 200 * time.Millisecond, maxRun: 1200 * time.Millisecond})
}
