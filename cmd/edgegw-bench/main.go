// Command edgegw-bench measures the store-and-forward path side by side in one
// run (make bench):
//
//  1. durable QoS 1 ingest: the same load (paho publishers over loopback TCP,
//     a bounded window each) against a bare mochi broker and against the
//     gateway (buffer.sync batch, built-in DIS draining meanwhile); the ratio
//     is what durability costs;
//  2. backlog drain: a backlog built while DIS is down, then the time until
//     the uplink has sent all of it to the built-in DIS server;
//  3. publish→DIS latency: publishers at a fixed rate below saturation; a tap
//     in front of DIS notes when each record's PutRecords was answered;
//  4. and 5. the downlink's DIS→MQTT throughput and PutRecords→MQTT latency
//     (downlink.go).
//
// Absolute numbers depend on the box (and on whatever else runs on it); the
// ratio is measured in one process, one after the other, on the same cores.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/gateway"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

func main() {
	devices := flag.Int("devices", 8, "publishing connections")
	perDevice := flag.Int("messages", 10000, "QoS 1 messages per connection for the ingest comparison")
	size := flag.Int("size", 300, "payload bytes")
	window := flag.Int("window", 64, "unacknowledged publishes per connection")
	backlog := flag.Int("backlog", 100000, "records in the drain test")
	rate := flag.Int("rate", 2000, "messages/s (all connections) in the latency test")
	latencyFor := flag.Duration("latency-for", 10*time.Second, "duration of the latency test")
	flag.Parse()
	if err := run(*devices, *perDevice, *size, *window, *backlog, *rate, *latencyFor); err != nil {
		fmt.Fprintln(os.Stderr, "edgegw-bench:", err)
		os.Exit(1)
	}
}

func run(devices, perDevice, size, window, backlog, rate int, latencyFor time.Duration) error {
	dir, err := os.MkdirTemp("", "edgegw-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("edgegw bench: %d cores, %d connections, %d B payloads, window %d\n\n", runtime.NumCPU(), devices, size, window)

	// 1. Ingest, bare broker then gateway.
	bareAddr, stopBare, err := startBareMochi()
	if err != nil {
		return err
	}
	bare, err := publishLoad(bareAddr, devices, perDevice, size, window, 0)
	stopBare()
	if err != nil {
		return fmt.Errorf("bare mochi: %w", err)
	}
	gw, err := startGateway(filepath.Join(dir, "ingest"), "")
	if err != nil {
		return err
	}
	stopIngestProfile, err := startProfile(*ingestProfile)
	if err != nil {
		gw.stop()
		return err
	}
	durable, err := publishLoad(gw.mqtt, devices, perDevice, size, window, 0)
	stopIngestProfile()
	gw.stop()
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	n := devices * perDevice
	fmt.Printf("QoS 1 ingest, %d messages\n", n)
	fmt.Printf("  bare mochi broker          %9.0f msg/s\n", bare.rate)
	fmt.Printf("  edgegw (sync=batch)        %9.0f msg/s   ratio %.2f\n\n", durable.rate, durable.rate/bare.rate)

	// 2. Backlog drain into the DIS-compatible server.
	d, err := startDIS(filepath.Join(dir, "dis-drain"), nil)
	if err != nil {
		return err
	}
	if err := d.srv.SetFaults(disserver.Faults{OutageDuration: 24 * time.Hour}); err != nil {
		return err
	}
	gw, err = startGateway(filepath.Join(dir, "drain"), d.endpoint)
	if err != nil {
		return err
	}
	if _, err := publishLoad(gw.mqtt, devices, backlog/devices, size, window, 0); err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	want := uint64(backlog / devices * devices)
	stopProfile, err := startProfile(*drainProfile)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := d.srv.SetFaults(disserver.Faults{}); err != nil {
		return err
	}
	for sent(gw.g) < want {
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("drain: %d of %d sent after 10 minutes", sent(gw.g), want)
		}
		time.Sleep(5 * time.Millisecond) // polling resolution of the measurement
	}
	drain := time.Since(start)
	stopProfile()
	gw.stop()
	d.stop()
	fmt.Printf("backlog drain, %d records into the built-in DIS server\n", want)
	fmt.Printf("  %.0f records/s (%s)\n\n", float64(want)/drain.Seconds(), drain.Round(time.Millisecond))

	// 3. Latency at a fixed rate.
	tap := &latencyTap{}
	d, err = startDIS(filepath.Join(dir, "dis-latency"), tap)
	if err != nil {
		return err
	}
	gw, err = startGateway(filepath.Join(dir, "latency"), d.endpoint)
	if err != nil {
		return err
	}
	total := int(float64(rate) * latencyFor.Seconds())
	res, err := publishLoad(gw.mqtt, devices, total/devices, size, window, rate)
	if err != nil {
		return fmt.Errorf("latency load: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for tap.count() < res.messages && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	gw.stop()
	d.stop()
	p50, p99, got := tap.percentiles()
	fmt.Printf("publish→DIS latency at %d msg/s for %s (%d records)\n", rate, latencyFor, got)
	fmt.Printf("  p50 %s   p99 %s   (publish call to PutRecords answered; linger %s)\n",
		p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), config.Default().Uplink.Linger.D())
	if got < res.messages {
		return fmt.Errorf("only %d of %d records reached DIS", got, res.messages)
	}
	fmt.Println()
	return benchDownlink(dir, size) // 4 and 5: downlink.go
}

// drainProfile: a CPU profile of the drain phase (gateway and built-in DIS
// server run in this process), for finding what limits the drain rate:
// go tool pprof -top <file>.
var drainProfile = flag.String("drain-cpuprofile", "", "write a CPU profile of the backlog drain to this file")

// ingestProfile: a CPU profile of the durable ingest phase (the gateway with
// its built-in DIS draining alongside, as in the measured run).
var ingestProfile = flag.String("ingest-cpuprofile", "", "write a CPU profile of the durable QoS 1 ingest to this file")

func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func sent(g *gateway.Gateway) uint64 {
	var n uint64
	for _, s := range g.UplinkStats() {
		n += s.Sent
	}
	return n
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func startBareMochi() (string, func(), error) {
	srv := mqtt.New(&mqtt.Options{Capabilities: mqtt.NewDefaultServerCapabilities(), Logger: quietLog()})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		return "", nil, err
	}
	if err := srv.Serve(); err != nil {
		return "", nil, err
	}
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// allowAll admits every client and topic (mochi's hooks/auth.AllowHook
// without its package, which pulls in a second YAML library).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

type runningGateway struct {
	g    *gateway.Gateway
	mqtt string
	stop func()
}

// startGateway runs a gateway with its data in dir: the built-in DIS when
// endpoint is empty, else that endpoint.
func startGateway(dir, endpoint string) (*runningGateway, error) {
	cfg := config.Default()
	cfg.Log.Level = "error"
	cfg.MQTT.Listeners[0].Address = "127.0.0.1:0"
	cfg.MQTT.Anonymous = "loopback" // the load clients send no credentials
	cfg.Buffer.Dir = filepath.Join(dir, "buffer")
	cfg.Admin.Listen = ""
	cfg.DIS.Builtin.Server.Listen = "127.0.0.1:0"
	cfg.DIS.Builtin.Server.DataDir = filepath.Join(dir, "dis")
	cfg.DIS.Builtin.Server.FlowControl.Enabled = false // measure the gateway, not DIS's per-partition limits
	if endpoint != "" {
		cfg.DIS.Endpoint, cfg.DIS.Builtin.Enabled = endpoint, false
	}
	cfg.Streams = []config.Stream{{Name: "telemetry", Create: true, PartitionCount: 4, StreamType: "COMMON", DataType: "BLOB", DataDuration: 24}}
	routes, err := config.Parse([]byte("streams: [{name: telemetry}]\nroutes:\n  - {topic: devices/+/telemetry, stream: telemetry, partition_key: \"{topic.2}\"}\ndis: {builtin: {auth: {mode: none}}}\n"))
	if err != nil {
		return nil, err
	}
	cfg.Routing = routes.Routing
	return runGateway(cfg)
}

// runGateway validates cfg and runs a gateway on it until stop.
func runGateway(cfg config.Config) (*runningGateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := gateway.New(cfg, quietLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &runningGateway{g: g, mqtt: g.MQTTAddr("tcp").String(), stop: func() { cancel(); <-done }}, nil
}

type loadResult struct {
	messages int
	rate     float64
}

// publishLoad publishes perDevice QoS 1 messages from each of devices
// connections; rate > 0 paces all of them together to rate msg/s. Each
// payload starts with its publish time (unix ns) for the latency tap.
func publishLoad(addr string, devices, perDevice, size, window, rate int) (loadResult, error) {
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	start := time.Now()
	for d := 0; d < devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "b" + strconv.Itoa(d)
			c, err := mqtttest.Dial(addr, "bench-"+id+strconv.FormatInt(time.Now().UnixNano(), 36))
			if err != nil {
				errs <- err
				return
			}
			defer c.Disconnect(100)
			topic := []string{"devices/" + id + "/telemetry"}
			stamp := func() []byte {
				p := strconv.AppendInt(make([]byte, 0, size), time.Now().UnixNano(), 10)
				p = append(p, ' ')
				for len(p) < size {
					p = append(p, 'x')
				}
				return p
			}
			if rate > 0 {
				// Paced: one message at a time, stamped when it is sent.
				interval := time.Duration(float64(time.Second) * float64(devices) / float64(rate))
				for i := 0; i < perDevice; i++ {
					time.Sleep(time.Until(start.Add(time.Duration(i) * interval))) // pacing, not synchronisation
					if err := mqtttest.FirstError(mqtttest.PublishAll(c, topic, [][]byte{stamp()}, 1, 1, time.Minute)); err != nil {
						errs <- err
						return
					}
				}
				return
			}
			const chunk = 1000
			for off := 0; off < perDevice; off += chunk {
				payloads := make([][]byte, min(chunk, perDevice-off))
				for i := range payloads {
					payloads[i] = stamp()
				}
				if err := mqtttest.FirstError(mqtttest.PublishAll(c, topic, payloads, 1, window, 5*time.Minute)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return loadResult{}, err
	}
	total := devices * perDevice
	return loadResult{messages: total, rate: float64(total) / time.Since(start).Seconds()}, nil
}

type disServer struct {
	srv      *disserver.Server
	endpoint string
	stop     func()
}

// startDIS runs the DIS-compatible server; with a tap, behind a reverse
// proxy that times every accepted record.
func startDIS(dir string, tap *latencyTap) (*disServer, error) {
	sc := disserver.DefaultConfig()
	sc.DataDir = dir
	sc.FlowControl.Enabled = false
	srv, err := disserver.New(sc, quietLog())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	d := &disServer{srv: srv, endpoint: "http://" + ln.Addr().String()}
	if tap == nil {
		d.stop = func() { srv.Shutdown(context.Background()) }
		return d, nil
	}
	target, _ := url.Parse(d.endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tap
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: proxy}
	go hs.Serve(pln)
	d.endpoint = "http://" + pln.Addr().String()
	d.stop = func() { hs.Close(); srv.Shutdown(context.Background()) }
	return d, nil
}

// latencyTap forwards requests to DIS and, for every PutRecords record DIS
// accepted, records now minus the publish time stamped in its payload.
type latencyTap struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (l *latencyTap) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/records") {
		return http.DefaultTransport.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	now := time.Now()
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	var req dis.PutRecordsRequest
	var res dis.PutRecordsResponse
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(rb, &res) != nil || len(res.Records) != len(req.Records) {
		return resp, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range req.Records {
		if res.Records[i].Failed() {
			continue
		}
		ts, _, _ := bytes.Cut(e.Data, []byte(" "))
		if ns, err := strconv.ParseInt(string(ts), 10, 64); err == nil {
			l.lat = append(l.lat, now.Sub(time.Unix(0, ns)))
		}
	}
	return resp, nil
}

func (l *latencyTap) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lat)
}

func (l *latencyTap) percentiles() (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.lat)
	slices.Sort(s)
	if len(s) == 0 {
		return 0, 0, 0
	}
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)], len(s)
}
