package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/ratelog"
)

// deliveryBroker starts a mochi server configured like New does (inline
// client, no inherited properties on acks), open to every client, with the
// delivery hook installed. It is built directly so these tests do not depend
// on the authentication options.
func deliveryBroker(t *testing.T, opts DeliveryOptions, caps func(*mqtt.Capabilities)) (*Broker, *Delivery, string) {
	t.Helper()
	c := mqtt.NewDefaultServerCapabilities()
	c.Compatibilities.NoInheritedPropertiesOnAck = true
	if caps != nil {
		caps(c)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := mqtt.New(&mqtt.Options{Capabilities: c, InlineClient: true, Logger: log})
	if err := srv.AddHook(new(deliveryAllowAll), nil); err != nil {
		t.Fatal(err)
	}
	b := &Broker{srv: srv, log: log}
	d, err := NewDelivery(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The broker's own listener, not mochi's listeners.Net: its Close can
	// deadlock with a client leaving (closeClientsOf).
	hs := &handshakeLog{log: log, limit: ratelog.New(time.Minute, 0)}
	if err := srv.AddListener(&tcpListener{id: "tcp", proto: TypeTCP, ln: ln, hs: hs, closeClients: closeClientsOf(srv)}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return b, d, ln.Addr().String()
}

// deliveryAllowAll lets every client connect and use every topic.
type deliveryAllowAll struct{ mqtt.HookBase }

func (deliveryAllowAll) ID() string { return "allow-all" }
func (deliveryAllowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (deliveryAllowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (deliveryAllowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// waitDeliverySubscriber polls until clientID holds a subscription matching topic.
func waitDeliverySubscriber(t *testing.T, b *Broker, clientID, topic string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := b.srv.Topics.Subscribers(topic).Subscriptions[clientID]; ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s did not subscribe to a filter matching %s within 15s", clientID, topic)
}

func deliverAll(t *testing.T, d *Delivery, topic string, from, to int, qos byte) {
	t.Helper()
	for i := from; i <= to; i++ {
		res, err := d.Deliver(topic, []byte(strconv.Itoa(i)), false, qos)
		if err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
		if res.Dropped != 0 {
			t.Fatalf("deliver %d: %d deliveries dropped", i, res.Dropped)
		}
	}
}

// The acceptance test for the Receive Maximum fix: Debian's mosquitto_sub
// speaking MQTT 5 announces Receive Maximum 20; with plain mochi v2.7.9 it
// stalls after a few dozen QoS 1 messages and sees them out of order.
func TestMosquittoSubV5ReceivesThousandQoS1InOrder(t *testing.T) {
	sub := mqtttest.Tool(t, "mosquitto_sub")
	b, d, addr := deliveryBroker(t, DeliveryOptions{}, nil)
	host, port, _ := net.SplitHostPort(addr)
	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, "-V", "mqttv5", "-h", host, "-p", port, "-i", "msub",
		"-q", "1", "-t", "devices/d1/commands", "-C", strconv.Itoa(n))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitDeliverySubscriber(t, b, "msub", "devices/d1/commands")
	deliverAll(t, d, "devices/d1/commands", 1, n, 1)
	if err := cmd.Wait(); err != nil {
		got := strings.Count(out.String(), "\n")
		t.Fatalf("mosquitto_sub: %v after %d of %d messages; stderr: %s", err, got, n, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != n {
		t.Fatalf("mosquitto_sub printed %d messages, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("message %d is %q, want %d: out of order", i+1, l, i+1)
		}
	}
}

// rawV5Client is a minimal MQTT 5 client on a raw connection, so a test sees
// every packet and decides when to acknowledge.
type rawV5Client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRawV5(t *testing.T, addr, id string, receiveMax uint16, clean bool, expiry uint32) (*rawV5Client, bool) {
	t.Helper()
	return dialRawV5Props(t, addr, id, clean, packets.Properties{ReceiveMaximum: receiveMax, SessionExpiryInterval: expiry, SessionExpiryIntervalFlag: expiry > 0})
}

func dialRawV5Props(t *testing.T, addr, id string, clean bool, props packets.Properties) (*rawV5Client, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawV5Client{t: t, conn: conn, r: bufio.NewReader(conn)}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: clean, ClientIdentifier: id, Keepalive: 60,
		},
		Properties: props,
	}
	c.write(pk, (*packets.Packet).ConnectEncode)
	ack := c.read()
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK: %+v", ack)
	}
	return c, ack.SessionPresent
}

func (c *rawV5Client) write(pk packets.Packet, enc func(*packets.Packet, *bytes.Buffer) error) {
	c.t.Helper()
	var buf bytes.Buffer
	if err := enc(&pk, &buf); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawV5Client) subscribe(filter string, qos byte) {
	c.t.Helper()
	c.write(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}},
	}, (*packets.Packet).SubscribeEncode)
	if ack := c.read(); ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != qos {
		c.t.Fatalf("SUBACK: %+v", ack)
	}
}

func (c *rawV5Client) ack(typ byte, id uint16) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, ProtocolVersion: 5, PacketID: id}
	enc := map[byte]func(*packets.Packet, *bytes.Buffer) error{
		packets.Puback: (*packets.Packet).PubackEncode, packets.Pubrec: (*packets.Packet).PubrecEncode,
		packets.Pubrel: (*packets.Packet).PubrelEncode, packets.Pubcomp: (*packets.Packet).PubcompEncode,
	}[typ]
	if typ == packets.Pubrel {
		pk.FixedHeader.Qos = 1
	}
	c.write(pk, enc)
}

// read returns the next packet; it fails the test after 20 s of silence.
func (c *rawV5Client) read() packets.Packet {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	hb, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		c.t.Fatal(err)
	}
	if pk.FixedHeader.Remaining, _, err = packets.DecodeLength(c.r); err != nil {
		c.t.Fatal(err)
	}
	body := make([]byte, pk.FixedHeader.Remaining)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	dec := map[byte]func(*packets.Packet, []byte) error{
		packets.Connack: (*packets.Packet).ConnackDecode, packets.Suback: (*packets.Packet).SubackDecode,
		packets.Publish: (*packets.Packet).PublishDecode, packets.Pubrel: (*packets.Packet).PubrelDecode,
	}[pk.FixedHeader.Type]
	if dec == nil {
		c.t.Fatalf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	if err := dec(&pk, body); err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// receiveWindowed reads n publishes numbered first.. while keeping exactly
// receiveMax unacknowledged whenever possible: it acknowledges the oldest
// only when the window is full, so the broker is held at the limit the whole
// time. It fails if the broker ever exceeds the window or sends out of order.
func (c *rawV5Client) receiveWindowed(first, n, receiveMax int, qos byte) {
	c.t.Helper()
	var window []uint16 // ids of unacknowledged publishes, oldest first
	released := 0       // QoS 2: PUBRECs sent whose PUBREL has not come yet
	next := first
	for received := 0; received < n || len(window) > 0 || released > 0; {
		if len(window) == receiveMax || (received == n && len(window) > 0) {
			id := window[0]
			window = window[1:]
			if qos == 1 {
				c.ack(packets.Puback, id)
			} else {
				c.ack(packets.Pubrec, id)
				released++
			}
			continue
		}
		pk := c.read()
		switch pk.FixedHeader.Type {
		case packets.Pubrel:
			released--
			c.ack(packets.Pubcomp, pk.PacketID)
		case packets.Publish:
			received++
			if got := string(pk.Payload); got != strconv.Itoa(next) {
				c.t.Fatalf("publish %d carries %q: out of order", next, got)
			}
			next++
			if pk.FixedHeader.Qos != qos {
				c.t.Fatalf("publish at QoS %d, want %d", pk.FixedHeader.Qos, qos)
			}
			window = append(window, pk.PacketID)
			if len(window)+released > receiveMax {
				c.t.Fatalf("broker sent publish %d with %d unacknowledged: Receive Maximum %d exceeded", next-1, len(window)+released-1, receiveMax)
			}
		}
	}
}

func TestFlowControlHoldsReceiveMaximumAndOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		qos  byte
		rm   uint16
	}{
		{"QoS 1, receive maximum 5", 1, 5},
		{"QoS 2, receive maximum 3", 2, 3},
		{"QoS 1, receive maximum 1", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, d, addr := deliveryBroker(t, DeliveryOptions{}, nil)
			c, _ := dialRawV5(t, addr, "fc", tc.rm, true, 0)
			c.subscribe("cmd", tc.qos)
			waitDeliverySubscriber(t, b, "fc", "cmd")
			const n = 60
			deliverAll(t, d, "cmd", 1, n, tc.qos)
			c.receiveWindowed(1, n, int(tc.rm), tc.qos)
			// Quota fully returned: a later burst flows the same way.
			deliverAll(t, d, "cmd", n+1, 2*n, tc.qos)
			c.receiveWindowed(n+1, n, int(tc.rm), tc.qos)
		})
	}
}

// The client's own QoS 2 publishes complete through the hook (mochi would
// raise the send quota on PUBREL) while it receives flow-controlled messages.
func TestFlowControlWithClientsOwnQoS2Publishes(t *testing.T) {
	b, d, addr := deliveryBroker(t, DeliveryOptions{}, nil)
	c, _ := dialRawV5(t, addr, "fc2", 2, true, 0)
	c.subscribe("cmd", 1)
	waitDeliverySubscriber(t, b, "fc2", "cmd")
	deliverAll(t, d, "cmd", 1, 2, 1) // the window is now full
	c.write(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, ProtocolVersion: 5, PacketID: 500,
		TopicName: "up", Payload: []byte("x"),
	}, (*packets.Packet).PublishEncode)
	deliverAll(t, d, "cmd", 3, 10, 1)
	// Read until the PUBREC for our publish, then complete it.
	var pubs []packets.Packet
	for {
		c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		hb, err := c.r.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		c.r.UnreadByte()
		if hb>>4 == packets.Pubrec {
			pk := packets.Packet{ProtocolVersion: 5}
			pk.FixedHeader.Decode(hb)
			c.r.ReadByte()
			l, _, _ := packets.DecodeLength(c.r)
			body := make([]byte, l)
			io.ReadFull(c.r, body)
			pk.PubrecDecode(body)
			if pk.PacketID != 500 {
				t.Fatalf("PUBREC for %d", pk.PacketID)
			}
			break
		}
		pubs = append(pubs, c.read())
	}
	if len(pubs) > 2 {
		t.Fatalf("%d publishes with none acknowledged; Receive Maximum is 2", len(pubs))
	}
	c.ack(packets.Pubrel, 500)
	if pk := c.readSkippingPublishes(&pubs); pk.FixedHeader.Type != packets.Pubcomp {
		t.Fatalf("want PUBCOMP, got %d", pk.FixedHeader.Type)
	}
	if len(pubs) > 2 {
		t.Fatalf("%d publishes with none acknowledged after the client's PUBREL: the send quota was raised", len(pubs))
	}
	// Acknowledge what arrived and receive the rest in order.
	for _, p := range pubs {
		c.ack(packets.Puback, p.PacketID)
	}
	c.receiveWindowed(len(pubs)+1, 10-len(pubs), 2, 1)
}

// readSkippingPublishes returns the next packet that is not a PUBLISH,
// collecting publishes into pubs.
func (c *rawV5Client) readSkippingPublishes(pubs *[]packets.Packet) packets.Packet {
	c.t.Helper()
	for {
		c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		hb, err := c.r.ReadByte()
		if err != nil {
			c.t.Fatal(err)
		}
		if hb>>4 == packets.Publish {
			c.r.UnreadByte()
			*pubs = append(*pubs, c.read())
			continue
		}
		pk := packets.Packet{ProtocolVersion: 5}
		pk.FixedHeader.Decode(hb)
		l, _, _ := packets.DecodeLength(c.r)
		body := make([]byte, l)
		io.ReadFull(c.r, body)
		if pk.FixedHeader.Type == packets.Pubcomp {
			pk.PubcompDecode(body)
		}
		return pk
	}
}

// What the hook repairs, shown on mochi's own accounting: with the fix off,
// once five queued messages were sent and acknowledged the send quota is
// gone, and a new message stays pending while the client has nothing
// unacknowledged; with the fix on it is delivered.
func TestMochiSendQuotaLeakWithoutTheFix(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		t.Run(fmt.Sprintf("fix=%v", fixed), func(t *testing.T) {
			b, d, addr := deliveryBroker(t, DeliveryOptions{DisableFlowControlFix: !fixed}, nil)
			c, _ := dialRawV5(t, addr, "leak", 5, true, 0)
			c.subscribe("cmd", 1)
			waitDeliverySubscriber(t, b, "leak", "cmd")
			deliverAll(t, d, "cmd", 1, 10, 1)
			got := map[string]bool{}
			for len(got) < 10 {
				pk := c.read()
				got[string(pk.Payload)] = true
				c.ack(packets.Puback, pk.PacketID)
			}
			cl, _ := b.srv.Clients.Get("leak")
			// Wait until the broker has processed the ten acks.
			deadline := time.Now().Add(15 * time.Second)
			for cl.State.Inflight.Len() != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			deliverAll(t, d, "cmd", 11, 11, 1)
			if !fixed {
				p := cl.State.Inflight.GetAll(false)
				if len(p) != 1 || p[0].Expiry != -1 {
					t.Fatalf("inflight %+v: expected message 11 stuck as pending", p)
				}
				return
			}
			if pk := c.read(); string(pk.Payload) != "11" {
				t.Fatalf("got %q, want 11", pk.Payload)
			}
		})
	}
}

// A flow-controlled client with a persistent session that drops its
// connection gets its unacknowledged and queued messages when it resumes,
// in order, and the window holds again afterwards.
func TestFlowControlAcrossSessionResume(t *testing.T) {
	b, d, addr := deliveryBroker(t, DeliveryOptions{}, nil)
	c, _ := dialRawV5(t, addr, "resume", 3, true, 3600)
	c.subscribe("cmd", 1)
	waitDeliverySubscriber(t, b, "resume", "cmd")
	deliverAll(t, d, "cmd", 1, 10, 1)
	for i := 1; i <= 3; i++ { // the window: 1-3, unacknowledged
		if pk := c.read(); string(pk.Payload) != strconv.Itoa(i) {
			t.Fatalf("got %q, want %d", pk.Payload, i)
		}
	}
	c.conn.Close()
	deadline := time.Now().Add(15 * time.Second)
	for b.ClientsConnected() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	deliverAll(t, d, "cmd", 11, 12, 1) // while offline
	c2, present := dialRawV5(t, addr, "resume", 3, false, 3600)
	if !present {
		t.Fatal("session not present after reconnect")
	}
	// mochi resends the stored session at once, ordered by creation second
	// only (see delivery.go); every message arrives.
	seen := map[string]bool{}
	for len(seen) < 12 {
		pk := c2.read()
		seen[string(pk.Payload)] = true
		c2.ack(packets.Puback, pk.PacketID)
	}
	deliverAll(t, d, "cmd", 13, 40, 1)
	c2.receiveWindowed(13, 28, 3, 1)
}

// Deliver reports a message as dropped when a subscriber's inflight store is
// full (an offline persistent session that stopped draining) and when its
// outbound queue is full (a connected client that stopped reading).
func TestDeliverReportsDrops(t *testing.T) {
	t.Run("inflight store full", func(t *testing.T) {
		b, d, addr := deliveryBroker(t, DeliveryOptions{}, func(c *mqtt.Capabilities) { c.MaximumInflight = 4 })
		sub := mqtttest.Connect(t, addr, "offline", func(o *paho.ClientOptions) { o.SetCleanSession(false) })
		if tok := sub.Subscribe("cmd", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		sub.Disconnect(100)
		deadline := time.Now().Add(15 * time.Second)
		for b.ClientsConnected() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		deliverAll(t, d, "cmd", 1, 4, 1) // stored for the session
		res, err := d.Deliver("cmd", []byte("5"), false, 1)
		if err != nil || res.Dropped != 1 {
			t.Fatalf("fifth delivery: %+v, %v; want 1 dropped", res, err)
		}
	})
	t.Run("outbound queue full", func(t *testing.T) {
		b, d, _ := deliveryBroker(t, DeliveryOptions{}, func(c *mqtt.Capabilities) { c.MaximumClientWritesPending = 2 })
		// A pipe blocks the broker's writer as soon as the client stops reading.
		client, server := net.Pipe()
		t.Cleanup(func() { client.Close(); server.Close() })
		go b.srv.EstablishConnection("pipe", server)
		c := &rawV5Client{t: t, conn: client, r: bufio.NewReader(client)}
		c.write(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "stuck", Keepalive: 60},
		}, (*packets.Packet).ConnectEncode)
		c.read()
		c.subscribe("cmd", 0)
		waitDeliverySubscriber(t, b, "stuck", "cmd")
		dropped := 0
		for i := 0; i < 10 && dropped == 0; i++ { // the writer holds 1, the queue 2
			res, err := d.Deliver("cmd", []byte("x"), false, 0)
			if err != nil {
				t.Fatal(err)
			}
			dropped = res.Dropped
		}
		if dropped != 1 {
			t.Fatalf("no drop reported after 10 messages to a client that does not read")
		}
	})
}

// Settled turns true only once every connected subscriber acknowledged the
// message (the downlink checkpoints on it), for clients under the
// flow-control fix and for clients mochi handles alone.
func TestDeliverSettlesOnAcknowledgement(t *testing.T) {
	for _, rm := range []uint16{0, 10} { // 0: no Receive Maximum, mochi's own path
		t.Run(fmt.Sprintf("receive maximum %d", rm), func(t *testing.T) {
			b, d, addr := deliveryBroker(t, DeliveryOptions{}, nil)
			c1, _ := dialRawV5(t, addr, "s1", rm, true, 0)
			c1.subscribe("cmd", 1)
			c2, _ := dialRawV5(t, addr, "s2", rm, true, 0)
			c2.subscribe("cmd", 2)
			waitDeliverySubscriber(t, b, "s1", "cmd")
			waitDeliverySubscriber(t, b, "s2", "cmd")

			waitFor := func(what string, cond func() bool) {
				deadline := time.Now().Add(15 * time.Second)
				for !cond() {
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s", what)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			res, err := d.Deliver("cmd", []byte("x"), false, 1)
			if err != nil || res.Dropped != 0 {
				t.Fatal(res, err)
			}
			p1, p2 := c1.read(), c2.read() // s2 gets QoS 1: the message's QoS caps its subscription's 2
			if res.Settled() {
				t.Fatal("settled before any acknowledgement")
			}
			c1.ack(packets.Puback, p1.PacketID)
			c1.ack(packets.Puback, p1.PacketID) // a repeated ack changes nothing
			if res.Settled() {
				t.Fatal("settled with s2 unacknowledged")
			}
			c2.ack(packets.Puback, p2.PacketID)
			waitFor("settlement after both acks", res.Settled)

			// A subscriber that disconnects without acking settles too.
			res, _ = d.Deliver("cmd", []byte("y"), false, 1)
			c1.read()
			c2.ack(packets.Puback, c2.read().PacketID)
			c1.conn.Close()
			waitFor("settlement after the disconnect", res.Settled)

			// QoS 0 needs no acknowledgement.
			if res, _ := d.Deliver("cmd", []byte("z"), false, 0); !res.Settled() {
				t.Fatal("QoS 0 not settled at once")
			}
		})
	}
}

// A message stored for an offline persistent session is settled at once:
// the device may come back in hours.
func TestDeliverToOfflineSessionIsSettled(t *testing.T) {
	b, d, addr := deliveryBroker(t, DeliveryOptions{}, nil)
	c, _ := dialRawV5(t, addr, "away", 5, true, 3600)
	c.subscribe("cmd", 1)
	waitDeliverySubscriber(t, b, "away", "cmd")
	c.conn.Close()
	deadline := time.Now().Add(15 * time.Second)
	for b.ClientsConnected() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res, err := d.Deliver("cmd", []byte("later"), false, 1)
	if err != nil || res.Dropped != 0 || !res.Settled() {
		t.Fatalf("%+v %v: want stored and settled", res, err)
	}
	cl, _ := b.srv.Clients.Get("away")
	if cl.State.Inflight.Len() != 1 {
		t.Fatal("message not stored for the session")
	}
}

// A message larger than the client's Maximum Packet Size is discarded (MQTT
// 5 §3.1.2.11.4) without holding a slot of its Receive Maximum window.
func TestFlowControlDiscardsTooLargeMessages(t *testing.T) {
	b, d, addr := deliveryBroker(t, DeliveryOptions{}, nil)
	c, _ := dialRawV5Props(t, addr, "small", true, packets.Properties{ReceiveMaximum: 1, MaximumPacketSize: 64})
	c.subscribe("cmd", 1)
	waitDeliverySubscriber(t, b, "small", "cmd")
	res, err := d.Deliver("cmd", bytes.Repeat([]byte{'x'}, 200), false, 1)
	if err != nil || res.Dropped != 0 {
		t.Fatal(res, err)
	}
	deliverAll(t, d, "cmd", 1, 3, 1)
	c.receiveWindowed(1, 3, 1, 1)
	deadline := time.Now().Add(15 * time.Second)
	for !res.Settled() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if !res.Settled() {
		t.Fatal("the discarded message is still awaiting acknowledgement")
	}
}
