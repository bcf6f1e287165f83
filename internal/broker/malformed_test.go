package broker

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

// Raw MQTT bytes for the malformed-packet tests. connect311 and connect5 are
// valid CONNECTs (clean start, keepalive 30, client id "raw"); the rest are
// broken on purpose.
var (
	connect311 = []byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 3, 'r', 'a', 'w'}
	connect5   = []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0, 0, 3, 'r', 'a', 'w'}
)

// publish311 is a PUBLISH with the given first byte (type and flags), topic
// bytes, packet id (written only when withID) and payload.
func publish311(first byte, topic []byte, withID bool, payload string) []byte {
	var body []byte
	body = append(body, byte(len(topic)>>8), byte(len(topic)))
	body = append(body, topic...)
	if withID {
		body = append(body, 0, 1)
	}
	body = append(body, payload...)
	return append([]byte{first, byte(len(body))}, body...)
}

// malformedInputs are byte streams a broken or hostile client might send.
// None of them may crash the process or put a message on the ingest path.
var malformedInputs = []struct {
	name string
	in   []byte
}{
	{"HTTP request on the MQTT port", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
	{"TLS client hello on the plain port", []byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00}},
	{"CONNECT with protocol name MQTX", []byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 30, 0, 3, 'r', 'a', 'w'}},
	{"CONNECT with protocol level 9", []byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 9, 0x02, 0, 30, 0, 3, 'r', 'a', 'w'}},
	{"CONNECT with the reserved flag set", []byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 30, 0, 3, 'r', 'a', 'w'}},
	{"CONNECT with a client id longer than the packet", []byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0xff, 0xff, 'r', 'a', 'w'}},
	{"MQTT 5 CONNECT with a property length past the end", []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0x7f, 3, 'r', 'a', 'w', 0}},
	{"remaining length of five bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	{"remaining length of 256 MiB", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}},
	{"PUBLISH before CONNECT", publish311(0x32, []byte("devices/x/telemetry"), true, "early")},
	{"PUBLISH with QoS 3", cat(connect311, publish311(0x36, []byte("devices/x/telemetry"), true, "qos3"))},
	{"PUBLISH to a wildcard topic", cat(connect311, publish311(0x32, []byte("devices/+/telemetry"), true, "wild"))},
	{"PUBLISH to an empty topic", cat(connect311, publish311(0x32, nil, true, "empty"))},
	{"PUBLISH to a topic that is not UTF-8", cat(connect311, publish311(0x32, []byte{'d', 0xff, 0xfe}, true, "utf8"))},
	{"PUBLISH to a topic with NUL", cat(connect311, publish311(0x32, []byte("devices/\x00/t"), true, "nul"))},
	{"QoS 1 PUBLISH with packet id 0", cat(connect311, []byte{0x32, 10, 0, 3, 'a', '/', 'b', 0, 0, 'z', 'z', 'z'})},
	{"PUBLISH with a topic length past the end", cat(connect311, []byte{0x32, 6, 0xff, 0xff, 'a', 'b', 'c', 'd'})},
	{"second CONNECT", cat(connect311, connect311)},
	{"reserved packet type 0", cat(connect311, []byte{0x00, 0})},
	{"AUTH packet in MQTT 3.1.1", cat(connect311, []byte{0xf0, 0})},
	{"SUBSCRIBE with no topic filters", cat(connect311, []byte{0x82, 2, 0, 1})},
	{"SUBSCRIBE with bad fixed-header flags", cat(connect311, []byte{0x80, 8, 0, 1, 0, 3, 'a', '/', 'b', 1})},
	{"SUBSCRIBE with QoS 3 requested", cat(connect311, []byte{0x82, 8, 0, 1, 0, 3, 'a', '/', 'b', 3})},
	{"MQTT 5 PUBLISH with a property length past the end", cat(connect5, []byte{0x32, 9, 0, 3, 'a', '/', 'b', 0, 1, 0x7f, 'x'})},
	{"MQTT 5 PUBLISH with topic alias 0", cat(connect5, []byte{0x32, 12, 0, 3, 'a', '/', 'b', 0, 1, 3, 0x23, 0, 0, 'x'})},
	{"MQTT 5 PUBLISH with an unknown property", cat(connect5, []byte{0x32, 11, 0, 3, 'a', '/', 'b', 0, 1, 2, 0x7e, 0, 'x'})},
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// sendRaw writes in to a new connection to addr, then reads whatever the
// broker answers until it closes the connection or quiet passes with no
// byte; it returns the answer and whether the broker closed the connection.
func sendRaw(t testing.TB, addr string, in []byte, quiet time.Duration) (answer []byte, closedByBroker bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(in); err != nil {
		return nil, true // the broker closed on an earlier part of in
	}
	buf := make([]byte, 512)
	for {
		conn.SetReadDeadline(time.Now().Add(quiet))
		n, err := conn.Read(buf)
		if len(answer) < 4096 {
			answer = append(answer, buf[:n]...)
		}
		if err != nil {
			ne, ok := err.(net.Error)
			return answer, err == io.EOF || !ok || !ne.Timeout()
		}
	}
}

// Every malformed input gets its connection closed, puts nothing on the
// ingest path, and leaves the broker serving other clients.
func TestMalformedPacketsCloseTheConnectionAndNothingElse(t *testing.T) {
	rec := &recorder{}
	b, _ := startBroker(t, Options{Ingester: rec})
	a := addr(b, "tcp")

	// A well-behaved device connected throughout must not notice.
	good := mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "bystander"})

	for _, tc := range malformedInputs {
		t.Run(tc.name, func(t *testing.T) {
			if answer, closed := sendRaw(t, a, tc.in, 5*time.Second); !closed {
				t.Errorf("the broker kept the connection open after %x (answered %x)", tc.in, answer)
			}
		})
	}

	// Not every bad input is a protocol error. A packet cut short is
	// indistinguishable from a slow link until the keepalive runs out: the
	// broker waits and ingests nothing. An invalid filter in a 3.1.1
	// SUBSCRIBE is refused with return code 0x80 on a connection that stays.
	t.Run("PUBLISH cut short", func(t *testing.T) {
		sendRaw(t, a, cat(connect311, []byte{0x32, 100, 0, 20, 'd', 'e', 'v'}), time.Second)
	})
	t.Run("SUBSCRIBE to a filter with # in the middle", func(t *testing.T) {
		answer, _ := sendRaw(t, a, cat(connect311, []byte{0x82, 8, 0, 1, 0, 3, 'a', '#', 'b', 1}), time.Second)
		// CONNACK (20 02 00 00), then SUBACK for packet id 1 with 0x80.
		if want := []byte{0x20, 2, 0, 0, 0x90, 3, 0, 1, 0x80}; !bytes.Equal(answer, want) {
			t.Errorf("answer %x, want CONNACK then SUBACK failure %x", answer, want)
		}
	})
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d malformed publishes reached the ingest path: %+v", n, rec.all())
	}
	if closed(good.Lost()) {
		t.Fatalf("the bystander lost its connection: %v", good.LostErr())
	}
	if code, reason, err := good.PublishQoS1("devices/d1/telemetry", []byte(`{"ok":true}`)); err != nil || code != 0 {
		t.Fatalf("publish after the malformed inputs: code 0x%02x %q, err %v", code, reason, err)
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d publishes ingested, want the bystander's 1", n)
	}
}

// FuzzBrokerConnection sends arbitrary bytes as a client's first and only
// words: the broker (mochi's packet decoder and edgegw's hooks) must not
// panic, whatever they are. Seeds: every malformed input above, and a valid
// session.
func FuzzBrokerConnection(f *testing.F) {
	for _, tc := range malformedInputs {
		f.Add(tc.in)
	}
	f.Add(cat(connect311, publish311(0x32, []byte("devices/d1/telemetry"), true, `{"t":1}`), []byte{0xe0, 0}))
	f.Add(cat(connect5, []byte{0x30, 8, 0, 3, 'a', '/', 'b', 0, 'h', 'i'}))

	rec := &recorder{}
	b, err := New(Options{Ingester: rec, MaxPacketSize: 256 << 10,
		Listeners: []ListenerConfig{{Name: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"}},
		Logger:    slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	if err := b.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	a := addr(b, "tcp")
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = sendRaw(t, a, in, 200*time.Millisecond)
	})
}
