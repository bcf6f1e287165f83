package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/distest"
	"github.com/edgegw/edgegw/internal/router"
)

// testConfig is the shipped default config with every address on an
// ephemeral loopback port and every directory in dir.
func testConfig(t testing.TB, dir string) config.Config {
	t.Helper()
	cfg, err := config.Load("../../configs/edgegw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.MQTT.Listeners[0].Address = "127.0.0.1:0"
	cfg.Buffer.Dir = filepath.Join(dir, "buffer")
	cfg.DIS.Builtin.Server.Listen = "127.0.0.1:0"
	cfg.DIS.Builtin.Server.DataDir = filepath.Join(dir, "dis")
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.DIS.Builtin.Server.FlowControl.Enabled = false // a test load is not a production device
	cfg.Uplink.FlushTimeout = config.Duration(5 * time.Second)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// running is a gateway started by startGateway.
type running struct {
	gw     *Gateway
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned; err is then set
	err    error
	logs   *syncBuffer
}

func (r *running) mqttAddr() string { return r.gw.MQTTAddr("tcp").String() }

// stop shuts the gateway down and waits for Run to return.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("gateway Run: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop within 30s")
	}
}

func startGateway(t testing.TB, cfg config.Config) *running {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter(t)), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{gw: New(cfg, log), cancel: cancel, done: make(chan struct{}), logs: logs}
	go func() { r.err = r.gw.Run(ctx); close(r.done) }()
	select {
	case <-r.gw.Ready():
	case <-r.done:
		cancel()
		t.Fatalf("gateway failed to start: %v", r.err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("gateway not ready within 30s")
	}
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func testLogWriter(t testing.TB) io.Writer {
	if os.Getenv("EDGEGW_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func disClient(t testing.TB, endpoint string) *dis.Client {
	t.Helper()
	c, err := dis.NewClient(dis.ClientConfig{Endpoint: endpoint, ProjectID: "local"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// payload is the body of message i of a device: its identity, then filler
// bytes that vary per message so any corruption or swap is visible.
func payload(device string, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"device":%q,"n":%d,"pad":"`, device, i)
	for j := 0; j < 40+i%50; j++ {
		b.WriteByte(byte('a' + (i*7+j)%26))
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

// publishDevices is publishDevicesWithin with two minutes for the acks.
func publishDevices(t *testing.T, addr string, devices, perDevice int) {
	t.Helper()
	publishDevicesWithin(t, addr, devices, perDevice, 2*time.Minute)
}

// checkStream asserts the stream holds exactly perDevice messages of each
// device, byte-exact, each once, in publish order per device, and that every
// device's records share one partition.
func checkStream(t *testing.T, prs []distest.PartitionRecords, devices, perDevice int) {
	t.Helper()
	next := map[string]int{}
	partOf := map[string]string{}
	for _, p := range prs {
		for _, r := range p.Records {
			dev := r.PartitionKey
			i := next[dev]
			if want := payload(dev, i); !bytes.Equal(r.Data, want) {
				t.Fatalf("partition %s seq %s key %s: got %q, want message %d %q", p.PartitionID, r.SequenceNumber, dev, r.Data, i, want)
			}
			next[dev] = i + 1
			if prev, ok := partOf[dev]; ok && prev != p.PartitionID {
				t.Fatalf("device %s in partitions %s and %s", dev, prev, p.PartitionID)
			}
			partOf[dev] = p.PartitionID
		}
	}
	if len(next) != devices {
		t.Fatalf("records from %d devices, want %d", len(next), devices)
	}
	for dev, n := range next {
		if n != perDevice {
			t.Errorf("device %s: %d records, want %d", dev, n, perDevice)
		}
	}
}

// The whole path: 10 devices publish 10,000 QoS 1 messages; every one reaches
// the built-in DIS exactly once, byte-exact, in publish order per device.
func TestEndToEnd(t *testing.T) {
	const devices, perDevice = 10, 1000
	gw := startGateway(t, testConfig(t, t.TempDir()))
	publishDevices(t, gw.mqttAddr(), devices, perDevice)

	c := disClient(t, gw.gw.DISEndpoint())
	ctx := context.Background()
	prs, err := distest.WaitForCount(ctx, c, "telemetry", devices*perDevice, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := distest.Count(prs); n != devices*perDevice {
		t.Fatalf("stream holds %d records, want %d", n, devices*perDevice)
	}
	checkStream(t, prs, devices, perDevice)
	if len(prs) != 3 {
		t.Errorf("stream has %d partitions, want the configured 3", len(prs))
	}
}

// DIS is down while devices publish; the gateway is restarted with the data
// still buffered; when DIS comes back everything acknowledged arrives, once.
func TestRestartWhileDISDown(t *testing.T) {
	const devices, perDevice = 4, 500
	dir := t.TempDir()

	// An external DIS server (the built-in one, run alone) that we can stop.
	disCfg := testConfig(t, dir)
	disSrv := startStandaloneDIS(t, disCfg)
	endpoint := disSrv.endpoint
	// Let the first gateway create the stream, then take DIS away.
	cfg := testConfig(t, dir)
	cfg.DIS.Builtin.Enabled = false
	cfg.DIS.Endpoint = endpoint
	gw := startGateway(t, cfg)
	disSrv.stop(t)

	publishDevices(t, gw.mqttAddr(), devices, perDevice)
	gw.stop(t) // flush deadline passes with DIS down: all stays buffered

	gw2 := startGateway(t, cfg) // DIS still down: it starts and buffers
	disSrv = startStandaloneDISAt(t, disCfg, strings.TrimPrefix(endpoint, "http://"))

	c := disClient(t, endpoint)
	prs, err := distest.WaitForCount(context.Background(), c, "telemetry", devices*perDevice, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := distest.Count(prs); n != devices*perDevice {
		t.Fatalf("stream holds %d records, want %d", n, devices*perDevice)
	}
	checkStream(t, prs, devices, perDevice)
	gw2.stop(t)
	_ = disSrv
}

// The shipped route sends devices/{id}/telemetry to telemetry keyed by the id.
func TestShippedRoute(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	r, err := router.New(cfg.Routing)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Route(&router.Message{Topic: "devices/d9/telemetry", Payload: []byte("x")})
	if err != nil || res.Stream != "telemetry" || res.PartitionKey != "d9" {
		t.Fatalf("got %+v, %v", res, err)
	}
}

// standaloneDIS is the DIS-compatible server run on its own, as `edgegw dis
// serve` does, so a test can take DIS away from a running gateway.
type standaloneDIS struct {
	srv      *disserver.Server
	endpoint string
	done     chan error
}

func startStandaloneDIS(t testing.TB, cfg config.Config) *standaloneDIS {
	return startStandaloneDISAt(t, cfg, "127.0.0.1:0")
}

func startStandaloneDISAt(t testing.TB, cfg config.Config, addr string) *standaloneDIS {
	t.Helper()
	sc := cfg.DIS.Builtin.Server
	srv, err := disserver.New(sc, slog.New(slog.NewTextHandler(testLogWriter(t), nil)))
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	// The port was just released by the previous instance; retry briefly.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		srv.Shutdown(context.Background())
		t.Fatal(err)
	}
	d := &standaloneDIS{srv: srv, endpoint: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	go func() { d.done <- srv.Serve(ln) }()
	t.Cleanup(func() { d.srv.Shutdown(context.Background()) })
	return d
}

func (d *standaloneDIS) stop(t testing.TB) {
	t.Helper()
	if err := d.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
