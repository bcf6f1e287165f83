package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// The downlink's part of make bench:
//
//  4. DIS→MQTT throughput: a backlog in DIS, held back by an injected outage
//     until the subscriber is connected, then drained by the downlink to one
//     QoS 1 subscriber;
//  5. PutRecords→MQTT latency: records put at a fixed rate, each stamped
//     just before its PutRecords call, timed when the subscriber gets it.

var (
	dlRecords    = flag.Int("downlink-records", 20000, "records in the downlink throughput test")
	dlRate       = flag.Int("downlink-rate", 500, "records/s in the downlink latency test")
	dlLatencyFor = flag.Duration("downlink-latency-for", 10*time.Second, "duration of the downlink latency test")
)

// dlPartitions is the command stream's partition count: one reader each.
const dlPartitions = 4

func benchDownlink(dir string, size int) error {
	// 4. Throughput.
	d, err := startDIS(filepath.Join(dir, "dis-downlink"), nil)
	if err != nil {
		return err
	}
	client, err := dis.NewClient(dis.ClientConfig{Endpoint: d.endpoint, ProjectID: "local"})
	if err != nil {
		return err
	}
	if err := createCommands(client); err != nil {
		return err
	}
	n := *dlRecords
	if err := putCommands(client, n, size, 0); err != nil {
		return err
	}
	if err := d.srv.SetFaults(disserver.Faults{OutageDuration: 24 * time.Hour}); err != nil {
		return err
	}
	gw, err := startDownlinkGateway(filepath.Join(dir, "downlink"), d.endpoint)
	if err != nil {
		return err
	}
	sub, err := subscribeCommands(gw.mqtt)
	if err != nil {
		return err
	}
	if err := d.srv.SetFaults(disserver.Faults{}); err != nil {
		return err
	}
	if err := sub.wait(n, 5*time.Minute); err != nil {
		return fmt.Errorf("downlink throughput: %w", err)
	}
	first, last := sub.span()
	sub.close()
	gw.stop()
	d.stop()
	fmt.Printf("downlink DIS→MQTT, %d records on %d partitions to one QoS 1 subscriber\n", n, dlPartitions)
	fmt.Printf("  %.0f records/s (first to last delivery %s)\n\n", float64(n-1)/last.Sub(first).Seconds(), last.Sub(first).Round(time.Millisecond))

	// 5. Latency at a fixed rate.
	d, err = startDIS(filepath.Join(dir, "dis-downlink-latency"), nil)
	if err != nil {
		return err
	}
	if client, err = dis.NewClient(dis.ClientConfig{Endpoint: d.endpoint, ProjectID: "local"}); err != nil {
		return err
	}
	if err := createCommands(client); err != nil {
		return err
	}
	gw, err = startDownlinkGateway(filepath.Join(dir, "downlink-latency"), d.endpoint)
	if err != nil {
		return err
	}
	if sub, err = subscribeCommands(gw.mqtt); err != nil {
		return err
	}
	// Wait until every partition's reader is at the end of the stream, so
	// the first records are not read at a reader's start-up.
	for deadline := time.Now().Add(time.Minute); ; {
		st, _ := gw.g.DownlinkStats()
		ready := 0
		for _, p := range st.Partitions {
			if p.Position >= 0 {
				ready++
			}
		}
		if ready == dlPartitions {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("downlink latency: readers not started after a minute")
		}
		time.Sleep(10 * time.Millisecond) // polling resolution of the set-up, not measured
	}
	total := int(float64(*dlRate) * dlLatencyFor.Seconds())
	if err := putCommands(client, total, size, *dlRate); err != nil {
		return err
	}
	if err := sub.wait(total, time.Minute); err != nil {
		return fmt.Errorf("downlink latency: %w", err)
	}
	lat := sub.latencies()
	sub.close()
	gw.stop()
	d.stop()
	slices.Sort(lat)
	dl := config.Default().Downlink
	fmt.Printf("downlink PutRecords→MQTT latency at %d records/s for %s (%d records)\n", *dlRate, *dlLatencyFor, len(lat))
	fmt.Printf("  p50 %s   p99 %s   (PutRecords call to the subscriber's callback; poll_interval %s to %s)\n",
		lat[len(lat)/2].Round(100*time.Microsecond), lat[min(len(lat)-1, len(lat)*99/100)].Round(100*time.Microsecond),
		dl.PollInterval.D(), dl.PollIntervalMax.D())
	return nil
}

func createCommands(c *dis.Client) error {
	dur := 24
	return c.CreateStream(context.Background(), &dis.CreateStreamRequest{StreamName: "commands", PartitionCount: dlPartitions, DataDuration: &dur})
}

// putCommands puts n records for 64 devices, each stamped (unix ns) just
// before its PutRecords call; rate > 0 paces them in batches every 10 ms.
func putCommands(c *dis.Client, n, size, rate int) error {
	batch := 500
	var tick time.Duration
	if rate > 0 {
		tick = 10 * time.Millisecond
		batch = max(1, rate/100)
	}
	start := time.Now()
	for i, b := 0, 0; i < n; b++ {
		if tick > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(b) * tick))) // pacing, not synchronisation
		}
		req := &dis.PutRecordsRequest{StreamName: "commands"}
		stamp := strconv.AppendInt(nil, time.Now().UnixNano(), 10)
		for ; i < n && len(req.Records) < batch; i++ {
			p := append(append(slices.Clone(stamp), ' '), bytes.Repeat([]byte{'x'}, max(0, size-len(stamp)-1))...)
			req.Records = append(req.Records, dis.PutRecordsRequestEntry{Data: p, PartitionKey: "dev" + strconv.Itoa(i%64)})
		}
		resp, err := c.PutRecords(context.Background(), req)
		if err != nil {
			return err
		}
		if resp.FailedRecordCount > 0 {
			return fmt.Errorf("PutRecords: %d records failed", resp.FailedRecordCount)
		}
	}
	return nil
}

// startDownlinkGateway runs a gateway on the shipped defaults with a
// downlink route from "commands" (reading from TRIM_HORIZON), against the
// DIS server at endpoint.
func startDownlinkGateway(dir, endpoint string) (*runningGateway, error) {
	cfg := config.Default()
	cfg.Log.Level = "error"
	cfg.MQTT.Listeners[0].Address = "127.0.0.1:0"
	cfg.MQTT.Anonymous = "loopback" // the load clients send no credentials
	cfg.Buffer.Dir = filepath.Join(dir, "buffer")
	cfg.Admin.Listen = ""
	cfg.DIS.Endpoint, cfg.DIS.Builtin.Enabled = endpoint, false
	parsed, err := config.Parse([]byte(`streams: [{name: telemetry, create: false}]
routes: [{topic: devices/+/telemetry, stream: telemetry}]
dis: {builtin: {auth: {mode: none}}}  # only routes and downlink are taken from this
downlink:
  start_position: trim_horizon
  backoff_initial: 50ms  # resume at once when the bench lifts the outage
  backoff_max: 100ms
  routes:
    - {stream: commands, topic: "devices/{partition_key}/commands", qos: 1}
`))
	if err != nil {
		return nil, err
	}
	cfg.Streams, cfg.Routing, cfg.Downlink = parsed.Streams, parsed.Routing, parsed.Downlink
	return runGateway(cfg)
}

// commandSink is a QoS 1 subscriber to every device's commands.
type commandSink struct {
	c           paho.Client
	mu          sync.Mutex
	n           int
	first, last time.Time
	lat         []time.Duration
}

func subscribeCommands(addr string) (*commandSink, error) {
	s := &commandSink{}
	c, err := mqtttest.Dial(addr, "bench-fleet-app")
	if err != nil {
		return nil, err
	}
	tok := c.Subscribe("devices/+/commands", 1, func(_ paho.Client, m paho.Message) {
		now := time.Now()
		ts, _, _ := bytes.Cut(m.Payload(), []byte(" "))
		ns, _ := strconv.ParseInt(string(ts), 10, 64)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.n == 0 {
			s.first = now
		}
		s.n++
		s.last = now
		s.lat = append(s.lat, now.Sub(time.Unix(0, ns)))
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe: %v", tok.Error())
	}
	s.c = c
	return s, nil
}

func (s *commandSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *commandSink) wait(n int, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); s.count() < n; {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d records delivered after %s", s.count(), n, timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling resolution; the times are taken in the callback
	}
	return nil
}

func (s *commandSink) span() (first, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, s.last
}

func (s *commandSink) latencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lat)
}

func (s *commandSink) close() { s.c.Disconnect(100) }
