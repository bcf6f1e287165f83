package gateway

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/distest"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// downlinkConfig is the test config with a downlink route from the stream
// "commands" to devices/{partition_key}/commands at QoS 1, with fast
// polling, commits and discovery.
func downlinkConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Downlink.StartPosition = "trim_horizon" // the test creates the stream after the gateway starts
	cfg.Downlink.CommitEveryRecords = 10
	cfg.Downlink.CommitInterval = config.Duration(100 * time.Millisecond)
	cfg.Downlink.PollInterval = config.Duration(5 * time.Millisecond)
	cfg.Downlink.PollIntervalMax = config.Duration(50 * time.Millisecond)
	cfg.Downlink.BackoffInitial = config.Duration(20 * time.Millisecond)
	cfg.Downlink.BackoffMax = config.Duration(200 * time.Millisecond)
	cfg.Downlink.DiscoveryInterval = config.Duration(200 * time.Millisecond)
	cfg.Downlink.Routes = []config.DownlinkRoute{{Stream: "commands", Topic: "devices/{partition_key}/commands", QoS: 1, Transform: "raw"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func createStream(t *testing.T, c *dis.Client, name string, partitions int) {
	t.Helper()
	dur := 24
	if err := c.CreateStream(context.Background(), &dis.CreateStreamRequest{StreamName: name, PartitionCount: partitions, DataDuration: &dur}); err != nil {
		t.Fatal(err)
	}
}

// putCommands writes records "<prefix><i>" for i in [from, to) with the
// partition key keyOf(i), in batches of 100.
func putCommands(t *testing.T, c *dis.Client, prefix string, from, to int, keyOf func(int) string) {
	t.Helper()
	for i := from; i < to; {
		req := &dis.PutRecordsRequest{StreamName: "commands"}
		for ; i < to && len(req.Records) < 100; i++ {
			req.Records = append(req.Records, dis.PutRecordsRequestEntry{Data: fmt.Appendf(nil, "%s%d", prefix, i), PartitionKey: keyOf(i)})
		}
		resp, err := c.PutRecords(context.Background(), req)
		if err != nil || resp.FailedRecordCount > 0 {
			t.Fatalf("PutRecords: %v %+v", err, resp)
		}
	}
}

// inbox collects what a paho subscriber receives.
type inbox struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
}

func (b *inbox) all() []paho.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]paho.Message(nil), b.msgs...)
}

func (b *inbox) len() int { return len(b.all()) }

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func subscribe(t *testing.T, c paho.Client, filter string, qos byte, h paho.MessageHandler) {
	t.Helper()
	tok := c.Subscribe(filter, qos, h)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

// The acceptance test of the downlink: records put into the built-in DIS
// over HTTP reach a paho subscriber on the templated topics, in order per
// partition key, at the route's QoS.
func TestDownlinkRecordsReachSubscribersInOrder(t *testing.T) {
	r := startGateway(t, downlinkConfig(t))
	client := disClient(t, r.gw.DISEndpoint())
	createStream(t, client, "commands", 3)
	in := &inbox{}
	// In order: paho runs handlers in their own goroutines unless told not to.
	sub := mqtttest.Connect(t, r.mqttAddr(), "fleet-app", func(o *paho.ClientOptions) { o.SetOrderMatters(true) })
	subscribe(t, sub, "devices/+/commands", 2, in.handler) // the route's QoS 1 applies

	const n = 300
	key := func(i int) string { return "d" + strconv.Itoa(i%10) }
	putCommands(t, client, "c", 0, n, key)
	waitUntil(t, "300 commands", 30*time.Second, func() bool { return in.len() >= n })

	last := map[string]int{}
	for _, m := range in.all() {
		i, err := strconv.Atoi(strings.TrimPrefix(string(m.Payload()), "c"))
		if err != nil {
			t.Fatalf("payload %q", m.Payload())
		}
		if want := "devices/" + key(i) + "/commands"; m.Topic() != want {
			t.Fatalf("command %d on %s, want %s", i, m.Topic(), want)
		}
		if m.Qos() != 1 {
			t.Fatalf("command %d at QoS %d, want the route's 1", i, m.Qos())
		}
		if prev, ok := last[key(i)]; ok && i <= prev {
			t.Fatalf("%s: command %d after %d", key(i), i, prev)
		}
		last[key(i)] = i
	}
	if got := in.len(); got != n {
		t.Fatalf("received %d, want %d", got, n)
	}
	st, ok := r.gw.DownlinkStats()
	if !ok || st.Delivered != n || st.App != "edgegw-dev-downlink" {
		t.Fatalf("downlink stats %+v", st)
	}
}

// A device with a persistent session goes offline, commands arrive for it,
// and it gets them when it comes back.
func TestDownlinkOfflineDeviceGetsCommandsOnReconnect(t *testing.T) {
	r := startGateway(t, downlinkConfig(t))
	client := disClient(t, r.gw.DISEndpoint())
	createStream(t, client, "commands", 1)
	in := &inbox{}
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false).SetDefaultPublishHandler(in.handler) }
	dev, err := mqtttest.Dial(r.mqttAddr(), "dev1", persistent)
	if err != nil {
		t.Fatal(err)
	}
	subscribe(t, dev, "devices/dev1/commands", 1, nil)
	dev.Disconnect(100)
	waitUntil(t, "the device to be offline", 10*time.Second, func() bool { return r.gw.broker.ClientsConnected() == 0 })

	putCommands(t, client, "cmd", 0, 5, func(int) string { return "dev1" })
	waitUntil(t, "the commands handed to the device's session", 30*time.Second, func() bool {
		st, _ := r.gw.DownlinkStats()
		return st.Delivered == 5
	})
	if in.len() != 0 {
		t.Fatal("an offline device received messages")
	}
	dev = mqtttest.Connect(t, r.mqttAddr(), "dev1", persistent)
	waitUntil(t, "5 commands after reconnecting", 30*time.Second, func() bool { return in.len() >= 5 })
	got := map[string]bool{}
	for _, m := range in.all() {
		got[string(m.Payload())] = true
	}
	for i := range 5 {
		if !got["cmd"+strconv.Itoa(i)] {
			t.Fatalf("command %d missing; got %v", i, got)
		}
	}
}

// DIS goes away and comes back: devices keep talking to the broker, the
// downlink backs off and resumes by itself, nothing is lost or repeated.
func TestDownlinkSurvivesDISOutage(t *testing.T) {
	dcfg := disserver.DefaultConfig()
	dcfg.DataDir = t.TempDir()
	dcfg.FlowControl.Enabled = false
	srv, err := disserver.New(dcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	direct := disClient(t, "http://"+ln.Addr().String())
	createStream(t, direct, "commands", 2)
	px := distest.StartProxy(t, ln.Addr().String())

	cfg := downlinkConfig(t)
	cfg.DIS.Builtin.Enabled = false
	cfg.DIS.Endpoint = px.URL()
	r := startGateway(t, cfg)
	in := &inbox{}
	sub := mqtttest.Connect(t, r.mqttAddr(), "app")
	subscribe(t, sub, "devices/+/commands", 1, in.handler)
	key := func(i int) string { return "d" + strconv.Itoa(i%4) }
	putCommands(t, direct, "a", 0, 20, key)
	waitUntil(t, "commands before the outage", 30*time.Second, func() bool { return in.len() == 20 })

	px.SetDown(true)
	st, _ := r.gw.DownlinkStats()
	errsBefore := st.ReadErrors
	putCommands(t, direct, "b", 0, 20, key)
	waitUntil(t, "the downlink to back off", 30*time.Second, func() bool {
		st, _ := r.gw.DownlinkStats()
		return st.ReadErrors > errsBefore+2
	})
	// The broker keeps serving devices meanwhile.
	chat := &inbox{}
	subscribe(t, sub, "chat/#", 1, chat.handler)
	pub := mqtttest.Connect(t, r.mqttAddr(), "talker")
	if err := mqtttest.FirstError(mqtttest.PublishAll(pub, []string{"chat/x"}, [][]byte{[]byte("hi")}, 1, 1, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "device-to-device message during the outage", 10*time.Second, func() bool { return chat.len() == 1 })
	if in.len() != 20 {
		t.Fatalf("%d commands delivered while DIS was unreachable", in.len())
	}

	px.SetDown(false)
	waitUntil(t, "commands after the outage", 60*time.Second, func() bool { return in.len() >= 40 })
	seen := map[string]bool{}
	for _, m := range in.all() {
		if seen[string(m.Payload())] {
			t.Fatalf("%s delivered twice", m.Payload())
		}
		seen[string(m.Payload())] = true
	}
	if len(seen) != 40 {
		t.Fatalf("%d distinct commands, want 40", len(seen))
	}
}

// Debian's mosquitto_sub speaking MQTT 5 (Receive Maximum 20) gets 1,000
// QoS 1 commands from DIS, complete and in order (mochi alone stalls it
// after a few dozen; see internal/broker/delivery.go).
func TestDownlinkToMosquittoSubV5(t *testing.T) {
	mosq := mqtttest.Tool(t, "mosquitto_sub")
	r := startGateway(t, downlinkConfig(t))
	client := disClient(t, r.gw.DISEndpoint())
	createStream(t, client, "commands", 1)
	host, port, _ := net.SplitHostPort(r.mqttAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mosq, "-V", "mqttv5", "-h", host, "-p", port, "-i", "m5", "-q", "1",
		"-t", "devices/m5/commands", "-t", "probe/m5", "-F", "%t %p")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 2048)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Probe until mosquitto_sub has subscribed.
	probe := mqtttest.Connect(t, r.mqttAddr(), "prober")
	subscribed := false
	for deadline := time.Now().Add(15 * time.Second); !subscribed && time.Now().Before(deadline); {
		probe.Publish("probe/m5", 0, false, "p").WaitTimeout(time.Second)
		select {
		case l := <-lines:
			subscribed = strings.HasPrefix(l, "probe/m5 ")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !subscribed {
		t.Fatal("mosquitto_sub did not subscribe within 15s")
	}
	const n = 1000
	putCommands(t, client, "", 0, n, func(int) string { return "m5" })
	next := 0
	timeout := time.After(90 * time.Second)
	for next < n {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mosquitto_sub exited after %d of %d commands", next, n)
			}
			topic, p, _ := strings.Cut(l, " ")
			if topic != "devices/m5/commands" {
				continue // a late probe
			}
			if p != strconv.Itoa(next) {
				t.Fatalf("command %d is %q: out of order", next, p)
			}
			next++
		case <-timeout:
			t.Fatalf("mosquitto_sub got %d of %d commands in 90s", next, n)
		}
	}
}
