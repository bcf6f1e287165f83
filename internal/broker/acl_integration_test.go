package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

// deviceACL is the fleet pattern: each device publishes under its own
// subtree and subscribes to its own command topics, and to a per-client-id
// topic; d1 is additionally kept from one command topic.
func deviceACL(t *testing.T) AuthConfig {
	return AuthConfig{
		Anonymous: AnonymousNever,
		Users: []User{
			{Name: "d1", PasswordHash: hashPassword(t, "pw"), Groups: []string{"devices"}},
			{Name: "d2", PasswordHash: hashPassword(t, "pw"), Groups: []string{"devices"}},
		},
		ACL: ACLConfig{Rules: []ACLRule{
			{Users: []string{"d1"}, Access: Deny, Subscribe: []string{"devices/d1/commands/secret"}},
			{Groups: []string{"devices"}, Publish: []string{"devices/%u/#"},
				Subscribe: []string{"devices/%u/commands", "devices/%u/commands/#"}},
			{Users: []string{"*"}, Subscribe: []string{"clients/%c/#"}},
		}},
	}
}

func TestACLOverMQTT5(t *testing.T) {
	rec := &recorder{}
	b, logs := startBroker(t, Options{Ingester: rec, Auth: deviceACL(t)})
	d1 := mqtttest.ConnectV5(t, addr(b, "tcp"), mqtttest.V5Options{ClientID: "dev-one", Username: "d1", Password: "pw"})

	for _, tc := range []struct {
		topic string
		code  byte
	}{
		{"devices/d1/telemetry", 0x00},
		{"devices/d2/telemetry", 0x87}, // another device's subtree
		{"devices/d2/telemetry", 0x87}, // again: counted, not logged again
		{"elsewhere", 0x87},
	} {
		code, _, err := d1.PublishQoS1(tc.topic, []byte("x"))
		if err != nil || code != tc.code {
			t.Errorf("publish %s: 0x%02x %v, want 0x%02x", tc.topic, code, err, tc.code)
		}
	}
	if got := rec.topics(); len(got) != 1 || got[0] != "devices/d1/telemetry" {
		t.Fatalf("ingested %v: a denied publish must not reach the Ingester", got)
	}
	for _, tc := range []struct {
		filter string
		code   byte
	}{
		{"devices/d1/commands", 0x01},
		{"devices/+/commands", 0x87},  // wider than %u
		{"devices/d2/commands", 0x87}, // another device's
		{"clients/dev-one/#", 0x01},   // %c
		{"clients/dev-two/#", 0x87},
		{"devices/d1/commands/#", 0x01}, // granted: the deny covers only part of it
	} {
		code, err := d1.SubscribeOne(tc.filter, 1)
		if code != tc.code {
			t.Errorf("subscribe %s: 0x%02x %v, want 0x%02x", tc.filter, code, err, tc.code)
		}
	}
	// Deliveries are checked too: the partly denied subscription never
	// delivers the denied topic.
	for _, topic := range []string{"devices/d1/commands/secret", "devices/d1/commands/reboot"} {
		if err := b.Publish(topic, []byte(topic), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-d1.Messages:
		if m.Topic != "devices/d1/commands/reboot" {
			t.Fatalf("delivered %s; the denied topic must not be delivered", m.Topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the allowed command was not delivered")
	}
	if closed(d1.Lost()) {
		t.Fatalf("denials must not cost an MQTT 5 client its connection: %v", d1.LostErr())
	}
	s := b.Stats()
	if s.ACLDeniedPublish != 3 || s.ACLDeniedSubscribe != 3 || s.ACLDeniedDelivery != 1 {
		t.Fatalf("denials publish/subscribe/delivery = %d/%d/%d, want 3/3/1",
			s.ACLDeniedPublish, s.ACLDeniedSubscribe, s.ACLDeniedDelivery)
	}
	if n := logs.count("MQTT ACL denied publish"); n != 1 {
		t.Errorf("logged %d publish denials for one client, want 1", n)
	}
	if n := logs.count("MQTT ACL denied subscribe"); n != 1 {
		t.Errorf("logged %d subscribe denials for one client, want 1", n)
	}
}

// MQTT 3.1.1 has no negative PUBACK: a denied QoS 1 publish disconnects the
// client (mochi), a denied subscription gets SUBACK 0x80.
func TestACLOverMQTT311(t *testing.T) {
	rec := &recorder{}
	b, _ := startBroker(t, Options{Ingester: rec, Auth: deviceACL(t)})
	url := "tcp://" + addr(b, "tcp")
	d2, lost := connect3(t, url, "dev-two", "d2", "pw", nil)

	tok := d2.Subscribe("devices/d1/commands", 1, nil)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("no SUBACK")
	}
	if got := tok.(interface{ Result() map[string]byte }).Result()["devices/d1/commands"]; got != 0x80 {
		t.Fatalf("SUBACK 0x%02x, want 0x80", got)
	}
	tok = d2.Subscribe("devices/d2/commands", 1, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.(interface{ Result() map[string]byte }).Result()["devices/d2/commands"] != 1 {
		t.Fatal("its own command topic is granted")
	}
	if err := publish3(d2, "devices/d2/telemetry", 1, "x"); err != nil {
		t.Fatalf("allowed publish: %v", err)
	}
	if err := publish3(d2, "devices/d1/telemetry", 1, "x"); err == nil {
		t.Fatal("a denied QoS 1 publish was acked")
	}
	waitFor(t, "the disconnect of the 3.1.1 client", func() bool { return closed(lost) })
	if got := rec.topics(); len(got) != 1 {
		t.Fatalf("ingested %v", got)
	}
}

// mosquitto_sub is refused a subscription outside its rules, and gets
// messages inside them.
func TestACLWithMosquittoClients(t *testing.T) {
	sub := mqtttest.Tool(t, "mosquitto_sub")
	b, _ := startBroker(t, Options{Ingester: &recorder{}, Auth: deviceACL(t)})
	host, port := splitAddr(t, addr(b, "tcp"))
	out, err := runTool(t, sub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "ms", "-u", "d1", "-P", "pw",
		"-t", "devices/d2/commands", "-C", "1", "-W", "5")
	if !strings.Contains(out, "All subscription requests were denied") {
		t.Fatalf("mosquitto_sub to another device's commands: %v %q, want the subscription denied", err, out)
	}
	done := make(chan string, 1)
	go func() {
		out, err := runTool(t, sub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "ms2", "-u", "d1", "-P", "pw",
			"-t", "devices/d1/commands", "-C", "1", "-W", "20")
		if err != nil {
			out = "error: " + err.Error() + ": " + out
		}
		done <- out
	}()
	waitFor(t, "mosquitto_sub's subscription", func() bool { return b.srv.Topics.Subscribers("devices/d1/commands").Subscriptions["ms2"].Filter != "" })
	if err := b.Publish("devices/d1/commands", []byte("hello"), false, 1); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "hello\n" {
		t.Fatalf("mosquitto_sub printed %q, want hello", got)
	}
}
