package gateway

// Store-and-forward acceptance tests at gateway level: paho devices publish
// QoS 1 over TCP to the real broker, records go through the real buffer on
// disk and the uplink into the built-in DIS server over HTTP, with the
// server's fault injection standing in for outages and throttling. Every
// test asserts on counts: what was acknowledged is in DIS, once, in publish
// order per device.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/distest"
	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/uplink"
)

func waitUplinkState(t *testing.T, gw *running, want uplink.State) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for gw.gw.UplinkState() != want {
		if time.Now().After(deadline) {
			t.Fatalf("uplink state %s, want %s; stats %+v", gw.gw.UplinkState(), want, gw.gw.UplinkStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DIS is down while 100,000 messages arrive: all are acknowledged and kept,
// the uplink reports offline and probes without a busy loop, and when DIS
// returns the backlog drains, nothing lost, in order per device.
func TestOutage100kMessagesDrainInOrder(t *testing.T) {
	const devices, perDevice = 20, 5000
	cfg := testConfig(t, t.TempDir())
	cfg.DIS.Builtin.Server.Faults = disserver.Faults{OutageDuration: 24 * time.Hour}
	gw := startGateway(t, cfg)

	// 100,000 durable publishes take a minute or two on 2 busy cores: a
	// deadline generous enough not to turn a slow box into a failure.
	publishDevicesWithin(t, gw.mqttAddr(), devices, perDevice, 10*time.Minute)
	if n := gw.gw.buf.Stats().Records; n != devices*perDevice {
		t.Fatalf("buffer holds %d records during the outage, want %d", n, devices*perDevice)
	}
	waitUplinkState(t, gw, uplink.Offline)
	st := gw.gw.UplinkStats()["telemetry"]
	if st.Sent != 0 || st.Requests > 200 {
		// Publishing took seconds; backoff from 100 ms allows a few dozen probes.
		t.Fatalf("uplink during the outage: %+v", st)
	}

	if err := gw.gw.disSrv.SetFaults(disserver.Faults{}); err != nil {
		t.Fatal(err)
	}
	c := disClient(t, gw.gw.DISEndpoint())
	prs, err := distest.WaitForCount(context.Background(), c, "telemetry", devices*perDevice, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkStream(t, prs, devices, perDevice)
	waitUplinkState(t, gw, uplink.Online)
	if st := gw.gw.UplinkStats()["telemetry"]; st.Sent != devices*perDevice || st.OrderInversions != 0 {
		t.Fatalf("uplink after the drain: %+v", st)
	}
}

// publishDevicesWithin publishes perDevice QoS 1 messages from each of
// devices paho clients (device ids d0, d1, ...) concurrently, and fails the
// test unless every one was acknowledged within timeout.
func publishDevicesWithin(t *testing.T, addr string, devices, perDevice int, timeout time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for d := 0; d < devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "d" + fmt.Sprint(d)
			c, err := mqtttest.Dial(addr, "pub-"+id)
			if err != nil {
				errs <- err
				return
			}
			defer c.Disconnect(250)
			payloads := make([][]byte, perDevice)
			for i := range payloads {
				payloads[i] = payload(id, i)
			}
			rs := mqtttest.PublishAll(c, []string{"devices/" + id + "/telemetry"}, payloads, 1, 64, timeout)
			if err := mqtttest.FirstError(rs); err != nil {
				errs <- fmt.Errorf("%s: %d/%d acked: %w", id, mqtttest.Acked(rs), perDevice, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// DIS fails a share of records with DIS.4303 and answers some requests with
// 429: everything arrives once, in order per device.
func TestThrottlingOverMQTT(t *testing.T) {
	const devices, perDevice = 10, 500
	cfg := testConfig(t, t.TempDir())
	cfg.DIS.Builtin.Server.Faults = disserver.Faults{FailEveryNthRecord: 20, RejectEveryNthRequest: 6}
	cfg.Uplink.BackoffMax = config.Duration(200 * time.Millisecond) // keep the test short
	gw := startGateway(t, cfg)
	publishDevices(t, gw.mqttAddr(), devices, perDevice)
	c := disClient(t, gw.gw.DISEndpoint())
	prs, err := distest.WaitForCount(context.Background(), c, "telemetry", devices*perDevice, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkStream(t, prs, devices, perDevice)
	st := gw.gw.UplinkStats()["telemetry"]
	if st.Retried == 0 || st.FailedRequest == 0 || st.Sent != devices*perDevice || st.OrderInversions != 0 {
		t.Fatalf("faults not exercised or counts off: %+v", st)
	}
}

// A record DIS refuses permanently (larger than its record limit) goes to the
// dead-letter topic with DIS's code, and the device's later records follow.
func TestPermanentRefusalIsDeadLetteredAndDoesNotBlock(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DIS.Builtin.Server.Limits.MaxRecordBytes = 1024
	gw := startGateway(t, cfg)

	dead := make(chan deadLetter, 10)
	sub := mqtttest.Connect(t, gw.mqttAddr(), "dl-watcher")
	if tok := sub.Subscribe(DeadLetterTopicPrefix+"telemetry", 1, func(_ paho.Client, m paho.Message) {
		var dl deadLetter
		if err := json.Unmarshal(m.Payload(), &dl); err != nil {
			t.Errorf("dead letter %q: %v", m.Payload(), err)
		}
		dead <- dl
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	pub := mqtttest.Connect(t, gw.mqttAddr(), "pub-d1")
	payloads := make([][]byte, 20)
	for i := range payloads {
		payloads[i] = payload("d1", i)
	}
	payloads[7] = bytes.Repeat([]byte("x"), 2000) // over DIS's 1 KiB record limit
	if err := mqtttest.FirstError(mqtttest.PublishAll(pub, []string{"devices/d1/telemetry"}, payloads, 1, 8, time.Minute)); err != nil {
		t.Fatal(err)
	}

	c := disClient(t, gw.gw.DISEndpoint())
	prs, err := distest.WaitForCount(context.Background(), c, "telemetry", 19, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, p := range prs {
		for _, r := range p.Records {
			var m struct{ N int }
			if err := json.Unmarshal(r.Data, &m); err != nil {
				t.Fatalf("record %q: %v", r.Data, err)
			}
			got = append(got, m.N)
		}
	}
	if fmt.Sprint(got) != "[0 1 2 3 4 5 6 8 9 10 11 12 13 14 15 16 17 18 19]" {
		t.Fatalf("DIS holds messages %v", got)
	}
	select {
	case dl := <-dead:
		if dl.Source != "dis" || dl.Code != "DIS.4300" || dl.Key != "d1" || dl.Data == nil || len(*dl.Data) != 2000 {
			t.Fatalf("dead letter %+v", dl)
		}
	case <-time.After(time.Minute):
		t.Fatal("no dead letter published")
	}
	if st := gw.gw.UplinkStats()["telemetry"]; st.DeadLettered != 1 || st.Sent != 19 {
		t.Fatalf("uplink stats %+v", st)
	}
}

// publishUntilRefused publishes QoS 1 messages of one device until the
// gateway refuses one (a 3.1.1 client is disconnected) and returns the
// indexes that were acknowledged.
func publishUntilRefused(t *testing.T, addr, device string, max int) (acked []int) {
	t.Helper()
	c, err := mqtttest.Dial(addr, "pub-"+device)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)
	const chunk = 500
	for start := 0; start < max; start += chunk {
		payloads := make([][]byte, chunk)
		for i := range payloads {
			payloads[i] = payload(device, start+i)
		}
		rs := mqtttest.PublishAll(c, []string{"devices/" + device + "/telemetry"}, payloads, 1, 32, time.Minute)
		refused := false
		for _, r := range rs {
			if r.Err == nil {
				acked = append(acked, start+r.Index)
			} else {
				refused = true
			}
		}
		if refused {
			if c.IsConnectionOpen() {
				t.Fatalf("publishes failed but the 3.1.1 client is still connected: %v", mqtttest.FirstError(rs))
			}
			return acked
		}
	}
	t.Fatalf("%d messages accepted; the gateway never refused one", max)
	return nil
}

// checkAcked asserts every acked message of a device is in DIS, once, in
// order, and nothing else of the device is there but messages it published.
func checkAcked(t *testing.T, prs []distest.PartitionRecords, acked map[string][]int) {
	t.Helper()
	seen := map[string][]int{}
	for _, p := range prs {
		for _, r := range p.Records {
			var m struct {
				Device string
				N      int
			}
			if err := json.Unmarshal(r.Data, &m); err != nil {
				t.Fatalf("record %q: %v", r.Data, err)
			}
			if !bytes.Equal(r.Data, payload(m.Device, m.N)) {
				t.Fatalf("record %q is not message %d of %s", r.Data, m.N, m.Device)
			}
			if s := seen[m.Device]; len(s) > 0 && s[len(s)-1] >= m.N {
				t.Fatalf("device %s: message %d after %d (duplicate or out of order)", m.Device, m.N, s[len(s)-1])
			}
			seen[m.Device] = append(seen[m.Device], m.N)
		}
	}
	for dev, want := range acked {
		have := map[int]bool{}
		for _, n := range seen[dev] {
			have[n] = true
		}
		for _, n := range want {
			if !have[n] {
				t.Fatalf("device %s: acknowledged message %d is not in DIS", dev, n)
			}
		}
	}
}

// v5Publish connects as an MQTT 5 client (mochi's packet codec over TCP) and
// publishes one QoS 1 message; it returns the PUBACK's reason code.
func v5Publish(t *testing.T, addr, clientID, topic string, body []byte) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	send := func(pk packets.Packet, enc func(*packets.Packet, *bytes.Buffer) error) {
		var b bytes.Buffer
		if err := enc(&pk, &b); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	read := func() (packets.FixedHeader, []byte) {
		hb, err := r.ReadByte()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var fh packets.FixedHeader
		if err := fh.Decode(hb); err != nil {
			t.Fatal(err)
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		fh.Remaining = n
		return fh, body
	}
	send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID}},
		(*packets.Packet).ConnectEncode)
	if fh, body := read(); fh.Type != packets.Connack || len(body) < 2 || body[1] != 0 {
		t.Fatalf("MQTT 5 connect: packet type %d body %x", fh.Type, body)
	}
	send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: topic, Payload: body, PacketID: 7}, (*packets.Packet).PublishEncode)
	for {
		fh, b := read()
		if fh.Type != packets.Puback {
			continue
		}
		pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 5}
		if err := pk.PubackDecode(b); err != nil {
			t.Fatal(err)
		}
		return pk.ReasonCode
	}
}

// fullThenRecover drives a gateway whose buffer will run out of room (DIS is
// down): devices publish until refused (3.1.1: disconnected; MQTT 5: PUBACK
// 0x97), then makeRoom runs (DIS returns, or disk space comes back), ingest
// resumes, and everything acknowledged is in DIS.
func fullThenRecover(t *testing.T, gw *running, maxPerDevice int, makeRoom func()) {
	t.Helper()
	acked := map[string][]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, dev := range []string{"d1", "d2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := publishUntilRefused(t, gw.mqttAddr(), dev, maxPerDevice)
			mu.Lock()
			acked[dev] = a
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// payload(_, 49) is the largest of the family: the room left after the
	// refusals is smaller than some refused message, so this cannot fit.
	const d3n = 49
	if code := v5Publish(t, gw.mqttAddr(), "v5-d3", "devices/d3/telemetry", payload("d3", d3n)); code != packets.ErrQuotaExceeded.Code {
		t.Fatalf("MQTT 5 publish to a full buffer: reason 0x%02x, want 0x97 (quota exceeded)", code)
	}
	refusedBefore := gw.gw.ingest.refused.Load()
	if refusedBefore < 3 {
		t.Fatalf("%d refusals counted, want at least 3", refusedBefore)
	}

	makeRoom()

	// Ingest resumes (retry: the room comes back asynchronously).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code := v5Publish(t, gw.mqttAddr(), "v5-d3", "devices/d3/telemetry", payload("d3", d3n))
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishes still refused (0x%02x) two minutes after room came back", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	acked["d3"] = []int{d3n}
	c := mqtttest.Connect(t, gw.mqttAddr(), "pub-d4")
	payloads := [][]byte{payload("d4", 0), payload("d4", 1), payload("d4", 2)}
	if err := mqtttest.FirstError(mqtttest.PublishAll(c, []string{"devices/d4/telemetry"}, payloads, 1, 4, time.Minute)); err != nil {
		t.Fatalf("publish after recovery: %v", err)
	}
	acked["d4"] = []int{0, 1, 2}

	total := 0
	for _, a := range acked {
		total += len(a)
	}
	dc := disClient(t, gw.gw.DISEndpoint())
	prs, err := distest.WaitForCount(context.Background(), dc, "telemetry", total, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, prs, acked)
	t.Logf("acknowledged %d+%d before the refusal, %d refusals counted", len(acked["d1"]), len(acked["d2"]), refusedBefore)
}

// A size-limited buffer (buffer.max_bytes, overflow reject) while DIS is down.
func TestBufferFullRefusesThenResumes(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Buffer.MaxBytes = 1 << 20 // ~8,000 of these messages
	cfg.DIS.Builtin.Server.Faults = disserver.Faults{OutageDuration: 24 * time.Hour}
	gw := startGateway(t, cfg)
	fullThenRecover(t, gw, 20000, func() {
		if st := gw.gw.buf.Stats(); st.Rejected == 0 || st.Bytes > 1<<20 {
			t.Fatalf("buffer at the refusal: %d rejected, %d bytes", st.Rejected, st.Bytes)
		}
		if err := gw.gw.disSrv.SetFaults(disserver.Faults{}); err != nil {
			t.Fatal(err)
		}
	})
}

// A real small filesystem (tmpfs, needs root): the buffer refuses appends
// while less than its disk reserve is free, and accepts again once space is
// freed.
func TestDiskFullRefusesThenResumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root; TestBufferFullRefusesThenResumes covers the size-limited buffer")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })

	cfg := testConfig(t, t.TempDir())
	cfg.Buffer.Dir = filepath.Join(mnt, "buffer")
	cfg.DIS.Builtin.Server.Faults = disserver.Faults{OutageDuration: 24 * time.Hour}
	gw := startGateway(t, cfg)

	// Leave 3 MiB above the buffer's 64 MiB reserve: a few thousand
	// messages fit, then appends are refused with ErrDiskFull.
	var fs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &fs); err != nil {
		t.Fatal(err)
	}
	free := int64(fs.Bavail) * int64(fs.Bsize)
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{0xA5}, int(free-(67<<20))), 0o600); err != nil {
		t.Fatal(err)
	}
	fullThenRecover(t, gw, 200000, func() {
		if st := gw.gw.buf.Stats(); st.DiskFull == 0 {
			t.Fatalf("buffer refused without counting disk-full: %+v", st)
		}
		if err := os.Remove(ballast); err != nil {
			t.Fatal(err)
		}
		if err := gw.gw.disSrv.SetFaults(disserver.Faults{}); err != nil {
			t.Fatal(err)
		}
	})
}

// IAM token auth end to end (the built-in server in token mode): the password
// comes from the environment or a file, records arrive, and neither the
// password nor any token appears in the gateway's debug log.
func TestTokenAuthCredentialsNeverLogged(t *testing.T) {
	const pw = "pw-Zq8!never-in-logs"
	for _, from := range []string{"env", "file"} {
		t.Run(from, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.DIS.Builtin.Server.Auth.Mode = disserver.AuthToken
			cfg.DIS.Builtin.Server.Auth.Users = []disserver.UserConfig{{Name: "edge", Password: pw, Domain: "acme", Projects: []string{"local"}}}
			cfg.DIS.Auth.Mode, cfg.DIS.Auth.User, cfg.DIS.Auth.Domain = "token", "edge", "acme"
			if from == "env" {
				t.Setenv(config.EnvDISPassword, pw)
			} else {
				f := filepath.Join(dir, "pw")
				if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.DIS.Auth.PasswordFile = f
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			gw, logs, stop := sendThreeWithDebugLogs(t, cfg)
			if st, ok := gw.DISTokenStatus(); !ok || !st.Valid || st.Fetches < 1 {
				t.Fatalf("token status %+v %v", st, ok)
			}
			stop() // the shutdown logs too
			text := logs.String()
			if strings.Contains(text, pw) || strings.Contains(text, "EGW1.") {
				t.Fatalf("the password or a token is in the log:\n%s", text)
			}
			if !strings.Contains(text, "level=DEBUG") && !strings.Contains(text, "edgegw running") {
				t.Fatalf("the log captured nothing:\n%s", text)
			}
		})
	}
}

// streams[].buffer overrides the buffer section for one stream: the global
// policy is reject, but telemetry drops its oldest records once its own
// 256 KiB bound is reached (DIS is down meanwhile). Every publish is acknowledged,
// the drops are counted in the buffer's stats and the status API, and when
// DIS returns it holds the newest records of every device, in order, once.
func TestStreamOverflowDropOldestOverridesGlobalReject(t *testing.T) {
	const devices, perDevice, bound = 2, 2000, 256 << 10 // ~430 KiB of records: about 40% must go
	cfg := testConfig(t, t.TempDir())
	cfg.Buffer.Overflow = "reject"
	cfg.Streams[0].Buffer = config.StreamBuffer{MaxBytes: bound, Overflow: "drop_oldest"}
	cfg.DIS.Builtin.Server.Faults = disserver.Faults{OutageDuration: 24 * time.Hour}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	publishDevices(t, gw.mqttAddr(), devices, perDevice) // fails unless every publish is acked

	ts := gw.gw.buf.Stats().Streams["telemetry"]
	if ts.Bytes > bound || ts.DroppedOldest == 0 || ts.Rejected != 0 || ts.Appended != devices*perDevice ||
		ts.Appended-ts.DroppedOldest != uint64(ts.Records) {
		t.Fatalf("telemetry buffer during the outage: %+v", ts)
	}
	if s := gw.gw.status().Buffer.Streams["telemetry"]; s.DroppedOldest != ts.DroppedOldest {
		t.Fatalf("status API: %d dropped, buffer counted %d", s.DroppedOldest, ts.DroppedOldest)
	}

	if err := gw.gw.disSrv.SetFaults(disserver.Faults{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for gw.gw.buf.Stats().Records > 0 || gw.gw.UplinkStats()["telemetry"].Pending > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not drained 2 minutes after DIS returned: buffer %+v, uplink %+v", gw.gw.buf.Stats().Streams["telemetry"], gw.gw.UplinkStats()["telemetry"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	prs, err := distest.ReadStream(context.Background(), disClient(t, gw.gw.DISEndpoint()), "telemetry")
	if err != nil {
		t.Fatal(err)
	}
	// Per device: byte-exact messages in increasing order, ending at its last
	// message (only the oldest were dropped).
	last := map[string]int{}
	total := 0
	for _, p := range prs {
		for _, r := range p.Records {
			var m struct{ N int }
			if err := json.Unmarshal(r.Data, &m); err != nil || !bytes.Equal(r.Data, payload(r.PartitionKey, m.N)) {
				t.Fatalf("record %q (key %s) is not a published message", r.Data, r.PartitionKey)
			}
			if prev, ok := last[r.PartitionKey]; ok && m.N <= prev {
				t.Fatalf("device %s: message %d after %d", r.PartitionKey, m.N, prev)
			}
			last[r.PartitionKey] = m.N
			total++
		}
	}
	for d := 0; d < devices; d++ {
		if dev := "d" + strconv.Itoa(d); last[dev] != perDevice-1 {
			t.Fatalf("device %s: DIS ends at message %d, want %d (the newest must survive)", dev, last[dev], perDevice-1)
		}
	}
	// Exactly what the buffer held reached DIS: the records the uplink had
	// read ahead before they were dropped were skipped, not sent.
	up := gw.gw.UplinkStats()["telemetry"]
	if total != int(ts.Records) || up.Sent != uint64(total) || up.Skipped == 0 {
		t.Fatalf("DIS holds %d records; the buffer held %d; uplink %+v", total, ts.Records, up)
	}
	t.Logf("%d published, %d dropped oldest (%d of them skipped by the uplink), %d in DIS", devices*perDevice, ts.DroppedOldest, up.Skipped, total)
}

// AK/SK auth end to end (the built-in server verifying SDK-HMAC-SHA256
// signatures): the key pair comes from the config, the environment or a
// secret key file; records arrive, and the secret key never appears in the
// gateway's debug log.
func TestAKSKCredentialsFromConfigEnvOrFileNeverLogged(t *testing.T) {
	const ak, sk = "AKEDGE0123456789", "sk-Xy7!never-in-logs-0123456789"
	for _, from := range []string{"config", "env", "file"} {
		t.Run(from, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.DIS.Builtin.Server.Auth.Mode = disserver.AuthAKSK
			cfg.DIS.Builtin.Server.Auth.Keys = []disserver.KeyConfig{{AccessKey: ak, SecretKey: sk, Projects: []string{"local"}}}
			cfg.DIS.Auth.Mode = "aksk"
			switch from {
			case "config":
				cfg.DIS.Auth.AccessKey, cfg.DIS.Auth.SecretKey = ak, sk
			case "env":
				t.Setenv(EnvAccessKey, ak)
				t.Setenv(EnvSecretKey, sk)
			case "file":
				f := filepath.Join(dir, "sk")
				if err := os.WriteFile(f, []byte(sk+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.DIS.Auth.AccessKey, cfg.DIS.Auth.SecretKeyFile = ak, f
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			gw, logs, stop := sendThreeWithDebugLogs(t, cfg)
			// The server refuses an unsigned client: the records above got in
			// only because the gateway signed its requests.
			if _, err := distest.ReadStream(context.Background(), disClient(t, gw.DISEndpoint()), "telemetry"); err == nil {
				t.Fatal("the built-in server accepted an unsigned request; the test proves nothing")
			}
			stop()
			if text := logs.String(); strings.Contains(text, sk) {
				t.Fatalf("the secret key is in the log:\n%s", text)
			} else if !strings.Contains(text, "level=DEBUG") && !strings.Contains(text, "edgegw running") {
				t.Fatalf("the log captured nothing:\n%s", text)
			}
		})
	}
}

// The buffer's age bound per stream: streams[].buffer.max_age, else
// buffer.max_age, else the stream's DIS retention (data_duration), since DIS
// would refuse older data anyway. Byte bound and overflow pass through.
func TestBufferMaxAgeDefaultsToStreamRetention(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	base := cfg.Streams[0]
	retained, global, own := base, base, base
	retained.Name, retained.DataDuration = "retained", 48
	global.Name = "global"
	own.Name, own.Buffer = "own", config.StreamBuffer{MaxAge: config.Duration(30 * time.Minute), MaxBytes: 8 << 20, Overflow: "drop_oldest"}
	cfg.Streams = []config.Stream{retained, global, own}
	opts := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))).bufferOptions()
	if got := opts.Streams["retained"]; got.MaxAge != 48*time.Hour || got.MaxBytes != 0 || got.Overflow != "" {
		t.Fatalf("no max_age anywhere: %+v, want the 48 h retention", got)
	}
	cfg.Buffer.MaxAge = config.Duration(2 * time.Hour)
	opts = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))).bufferOptions()
	if got := opts.Streams["global"]; got.MaxAge != 2*time.Hour {
		t.Fatalf("buffer.max_age 2h: %+v", got)
	}
	if got := opts.Streams["own"]; got.MaxAge != 30*time.Minute || got.MaxBytes != 8<<20 || got.Overflow != buffer.OverflowDropOldest {
		t.Fatalf("streams[].buffer: %+v", got)
	}
	if opts.Overflow != buffer.Overflow(cfg.Buffer.Overflow) || opts.MaxBytes != int64(cfg.Buffer.MaxBytes) {
		t.Fatalf("global bounds: %+v", opts)
	}
}

// sendThreeWithDebugLogs runs a gateway on cfg with a debug-level log kept
// in memory, publishes three QoS 1 messages of device d1 and reads them back
// from DIS with the gateway's own client settings (credentials included).
// stop ends the gateway (also run at cleanup); the log then holds its shutdown.
func sendThreeWithDebugLogs(t *testing.T, cfg config.Config) (gw *Gateway, logs *syncBuffer, stop func()) {
	t.Helper()
	logs = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	gw = New(cfg, log)
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	select {
	case <-gw.Ready():
	case err := <-done:
		once.Do(cancel) // it has ended: stop must not wait for it again
		t.Fatalf("gateway: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("gateway not ready")
	}
	c := mqtttest.Connect(t, gw.MQTTAddr("tcp").String(), "pub-d1")
	payloads := [][]byte{payload("d1", 0), payload("d1", 1), payload("d1", 2)}
	if err := mqtttest.FirstError(mqtttest.PublishAll(c, []string{"devices/d1/telemetry"}, payloads, 1, 4, time.Minute)); err != nil {
		t.Fatal(err)
	}
	reader, err := NewDISClient(cfg.DIS, gw.DISEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	prs, err := distest.WaitForCount(context.Background(), reader, "telemetry", 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkStream(t, prs, 1, 3)
	return gw, logs, stop
}
