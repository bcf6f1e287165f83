package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/distest"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// downlinkCommitEvery is the restart test's commit batch: the bound on
// duplicates after a crash.
const downlinkCommitEvery = 20

// The downlink's restart acceptance test: the gateway process is killed
// with SIGKILL while commands stream from DIS to a subscriber, and started
// again. No command is skipped; the ones delivered twice are bounded by
// twice the commit batch per partition, and counted here.
func TestDownlinkSIGKILLSkipsNoCommand(t *testing.T) {
	downlinkKillTest(t, 1, 3000)
}

// downlinkKillTest streams n commands and kills the gateway kills times,
// evenly through the stream.
func downlinkKillTest(t *testing.T, kills, n int) {
	d := startExternalDIS(t)
	const partitions = 2
	dur := 24
	if err := d.client.CreateStream(context.Background(), &dis.CreateStreamRequest{StreamName: "commands", PartitionCount: partitions, DataDuration: &dur}); err != nil {
		t.Fatal(err)
	}
	// The gateway reads DIS through a proxy, so the test can keep the
	// restarted gateway away from DIS until the subscriber is back.
	px := distest.StartProxy(t, strings.TrimPrefix(d.endpoint, "http://"))
	dir := t.TempDir()
	port := freePort(t)
	cfg := gatewayConfig(t, dir, px.URL(), port, fmt.Sprintf(`downlink:
  start_position: trim_horizon
  commit_every_records: %d
  commit_interval: 1h      # only the record count commits: the bound is exact
  poll_interval: 5ms
  poll_interval_max: 50ms
  backoff_initial: 20ms
  backoff_max: 200ms
  discovery_interval: 1s
  routes:
    - {stream: commands, topic: "devices/{partition_key}/commands", qos: 1}
`, downlinkCommitEvery))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(kills+3)*time.Minute)
	defer cancel()
	start := func() (*exec.Cmd, *lockedBuffer) {
		logs := &lockedBuffer{}
		cmd := edgegw(ctx, "run", "-c", cfg)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitListening(t, addr, logs)
		return cmd, logs
	}

	var mu sync.Mutex
	var got []string
	handler := func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, string(m.Payload()))
		mu.Unlock()
	}
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	subscribe := func() paho.Client {
		c := mqtttest.Connect(t, addr, "fleet-app", func(o *paho.ClientOptions) { o.SetOrderMatters(true) })
		if tok := c.Subscribe("devices/+/commands", 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		return c
	}
	distinct := func() map[string]int {
		m := map[string]int{}
		for _, p := range received() {
			m[p]++
		}
		return m
	}

	gw, logs := start()
	defer func() { gw.Process.Kill(); gw.Wait() }()
	sub := subscribe()

	const keys = 10
	for i := 0; i < n; i += 100 {
		req := &dis.PutRecordsRequest{StreamName: "commands"}
		for j := i; j < min(i+100, n); j++ {
			req.Records = append(req.Records, dis.PutRecordsRequestEntry{Data: []byte(strconv.Itoa(j)), PartitionKey: "k" + strconv.Itoa(j%keys)})
		}
		if resp, err := d.client.PutRecords(context.Background(), req); err != nil || resp.FailedRecordCount > 0 {
			t.Fatalf("PutRecords: %v %+v", err, resp)
		}
	}
	for k := 1; k <= kills; k++ {
		at := k * n / (kills + 1)
		deadline := time.Now().Add(2 * time.Minute)
		for len(distinct()) < at {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: %d distinct commands after 2 minutes, want %d; gateway log:\n%s", k, len(distinct()), at, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		gw.Wait()
		if len(distinct()) >= n {
			t.Fatalf("kill %d: all %d commands arrived before it; the test needs a backlog", k, n)
		}
		sub.Disconnect(0)
		px.SetDown(true) // until the subscriber is back
		gw, logs = start()
		sub = subscribe()
		px.SetDown(false)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(distinct()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d distinct commands after the last restart; gateway log:\n%s", len(distinct()), n, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	all := received()
	dups := len(all) - n
	// Per partition and kill: the records after the last checkpoint, at
	// most commit_every_records delivered since it plus at most as many
	// that were unacknowledged when it was committed.
	if bound := kills * partitions * 2 * downlinkCommitEvery; dups > bound {
		t.Fatalf("%d commands delivered twice after %d kills; want at most %d", dups, kills, bound)
	}
	t.Logf("%d kills during %d commands: none skipped, %d delivered twice", kills, n, dups)
	// First deliveries keep each key's order.
	last := map[string]int{}
	seen := map[string]bool{}
	for _, p := range all {
		if seen[p] {
			continue
		}
		seen[p] = true
		i, _ := strconv.Atoi(p)
		k := "k" + strconv.Itoa(i%keys)
		if prev, ok := last[k]; ok && i < prev {
			t.Fatalf("%s: command %d first delivered after %d", k, i, prev)
		}
		last[k] = i
	}
}
