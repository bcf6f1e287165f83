package broker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

// The configured capabilities are what clients meet: the CONNACK announces
// the receive maximum and the maximum packet size and caps a longer session
// expiry, a packet over the
// maximum size ends the connection before it reaches the Ingester, and the
// per-client write queue is the configured one.
func TestConfiguredLimitsReachClients(t *testing.T) {
	rec := &recorder{}
	b, _ := startBroker(t, Options{Ingester: rec, MaxPacketSize: 2048, MaxSessionExpiry: time.Hour,
		ReceiveMaximum: 7, MaxClientWritesPending: 16})
	a := addr(b, "tcp")

	// A raw CONNECT asking for a day-long session.
	conn, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var buf bytes.Buffer
	connect := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect:    packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "long-session", Keepalive: 60},
		Properties: packets.Properties{SessionExpiryInterval: 86400, SessionExpiryIntervalFlag: true},
	}
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := readPacket(t, conn)
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	if ack.Properties.ReceiveMaximum != 7 {
		t.Errorf("CONNACK receive maximum %d, want the configured 7", ack.Properties.ReceiveMaximum)
	}
	if ack.Properties.MaximumPacketSize != 2048 {
		t.Errorf("CONNACK maximum packet size %d, want the configured 2048 announced", ack.Properties.MaximumPacketSize)
	}
	if !ack.Properties.SessionExpiryIntervalFlag || ack.Properties.SessionExpiryInterval != 3600 {
		t.Errorf("CONNACK session expiry %d (flag %v), want capped to the configured 3600 s",
			ack.Properties.SessionExpiryInterval, ack.Properties.SessionExpiryIntervalFlag)
	}

	if got := b.srv.Options.Capabilities.MaximumClientWritesPending; got != 16 {
		t.Errorf("per-client write queue %d, want the configured 16", got)
	}

	// Under the maximum packet size a publish is taken; over it the client
	// is disconnected (MQTT 5 DISCONNECT 0x95, packet too large) and
	// nothing is ingested.
	c := mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "sizes"})
	if code, _, err := c.PublishQoS1("fits", make([]byte, 1500)); err != nil || code != 0 {
		t.Fatalf("1500-byte publish: 0x%02x %v", code, err)
	}
	big := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: "too/big", PacketID: 1, Payload: make([]byte, 4096)}
	buf.Reset()
	if err := big.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The broker closes the connection; the unread payload may turn the
	// close into a reset, which can also swallow the DISCONNECT.
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	rest, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a 4096-byte publish over a 2048-byte maximum: the connection stayed open")
	}
	if len(rest) > 0 && (len(rest) < 3 || rest[0]>>4 != packets.Disconnect || rest[2] != packets.ErrPacketTooLarge.Code) {
		t.Fatalf("before closing, the broker sent % x, want DISCONNECT 0x95", rest)
	}
	if got := rec.topics(); len(got) != 1 || got[0] != "fits" {
		t.Fatalf("ingested %v, want only the publish that fits", got)
	}
}

// readPacket reads one MQTT 5 packet from conn (CONNACK here).
func readPacket(t *testing.T, conn net.Conn) packets.Packet {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(conn) // nothing follows the CONNACK until the caller writes again
	hb, err := r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(hb); err != nil {
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
	if pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("packet type %d, want CONNACK", pk.FixedHeader.Type)
	}
	if err := pk.ConnackDecode(body); err != nil {
		t.Fatal(err)
	}
	return pk
}

// A session expiry too long for MQTT's 32-bit seconds is capped at the
// largest, not wrapped around to a short one.
func TestSessionExpiryBeyond32BitsIsCapped(t *testing.T) {
	b, err := New(Options{MaxSessionExpiry: (1<<32 + 60) * time.Second}) // would wrap to 60 s
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.srv.Options.Capabilities.MaximumSessionExpiryInterval; got != 1<<32-1 {
		t.Fatalf("maximum session expiry %d s, want %d (the MQTT maximum)", got, uint32(1<<32-1))
	}
}

// The failed-login limit is kept per source address: one address that keeps
// failing is refused unchecked, also from another port, while another
// address is unaffected. (Only loopback can be dialled in a test, so the
// decision is called directly, as in TestAnonymousPolicy.)
func TestLoginLimitIsPerSourceAddress(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b, err := New(Options{
		Auth: AuthConfig{
			Anonymous:  AnonymousNever,
			Users:      []User{{Name: "d1", PasswordHash: hashPassword(t, "right")}},
			LoginLimit: LoginLimit{MaxFailures: 2, Window: time.Hour},
		},
		now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	login := func(remote, pass string) (bool, string) {
		cl := &mqtt.Client{ID: "c"}
		cl.Net.Remote, cl.Net.Listener = remote, "tcp"
		return b.authenticate(cl, []byte("d1"), []byte(pass))
	}
	for i := 0; i < 2; i++ {
		if ok, kind := login("10.0.0.1:5000", "wrong"); ok || kind != FailBadPassword {
			t.Fatalf("failure %d from 10.0.0.1: %v %s, want bad_password", i+1, ok, kind)
		}
	}
	if ok, kind := login("10.0.0.1:5001", "right"); ok || kind != FailRateLimited {
		t.Fatalf("10.0.0.1 from another port, right password: %v %s, want rate_limited", ok, kind)
	}
	if ok, kind := login("10.0.0.2:5000", "right"); !ok || kind != LoginPassword {
		t.Fatalf("10.0.0.2, right password: %v %s, want accepted (another address)", ok, kind)
	}
	if ok, kind := login("10.0.0.2:5000", "wrong"); ok || kind != FailBadPassword {
		t.Fatalf("10.0.0.2, wrong password: %v %s, want checked and refused, not rate limited", ok, kind)
	}
	if ok, kind := login("[2001:db8::1]:5000", "right"); !ok {
		t.Fatalf("an IPv6 address: %v %s, want accepted", ok, kind)
	}
}
