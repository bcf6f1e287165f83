package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

// mochi v2.7.9 answers a QoS 1 publish that carries properties with a
// malformed PUBACK unless NoInheritedPropertiesOnAck is set, and Paho v5
// drops the connection on it (LIBRARY-NOTES "defects found" #1). The user
// properties still reach the ingest path.
func TestV5PublishWithUserPropertiesIsAckedAndConnectionStays(t *testing.T) {
	rec := &recorder{}
	b, _ := startBroker(t, Options{Ingester: rec})
	c := mqtttest.ConnectV5(t, addr(b, "tcp"), mqtttest.V5Options{ClientID: "v5-props"})

	for i := 0; i < 3; i++ {
		code, reason, err := c.PublishQoS1("devices/d1/telemetry", []byte(`{"temp":21}`),
			paho.UserProperty{Key: "site", Value: "berlin"}, paho.UserProperty{Key: "fw", Value: "1.2.3"})
		if err != nil || code != 0 {
			t.Fatalf("publish %d: code 0x%02x %q, err %v; want a successful PUBACK", i, code, reason, err)
		}
	}
	if closed(c.Lost()) {
		t.Fatalf("the client dropped the connection: %v", c.LostErr())
	}
	pubs := rec.all()
	if len(pubs) != 3 {
		t.Fatalf("ingested %d publishes, want 3", len(pubs))
	}
	p := pubs[0]
	if p.ProtocolVersion != 5 || p.ClientID != "v5-props" || len(p.UserProperties) != 2 ||
		p.UserProperties[0].Key != "site" || p.UserProperties[0].Val != "berlin" {
		t.Fatalf("ingested %+v", p)
	}
}

// The Ingester's refusals become MQTT 5 reason codes with the reason
// string; MQTT 3.1.1 publishers are acked (AckV311) or disconnected.
func TestIngestRefusalsBecomeReasonCodes(t *testing.T) {
	rec := &recorder{reply: func(p *Publish) error {
		switch p.Topic {
		case "invalid":
			return &Reject{Code: CodePayloadFormatInvalid, Reason: "$.temp: want int, got string", AckV311: true}
		case "full":
			return &Reject{Code: CodeQuotaExceeded, Reason: "buffer for stream t is full; retry later"}
		}
		return nil
	}}
	b, _ := startBroker(t, Options{Ingester: rec})

	t.Run("MQTT 5", func(t *testing.T) {
		c := mqtttest.ConnectV5(t, addr(b, "tcp"), mqtttest.V5Options{ClientID: "v5"})
		for _, tc := range []struct {
			topic  string
			code   byte
			reason string
		}{
			{"invalid", 0x99, "$.temp: want int, got string"},
			{"full", 0x97, "buffer for stream t is full; retry later"},
			{"fine", 0x00, ""},
		} {
			code, reason, err := c.PublishQoS1(tc.topic, []byte("x"))
			if err != nil || code != tc.code || reason != tc.reason {
				t.Errorf("%s: PUBACK 0x%02x %q (err %v), want 0x%02x %q", tc.topic, code, reason, err, tc.code, tc.reason)
			}
		}
		// QoS 2: the refusal is a PUBREC with the code (not mochi's PUBACK).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pr, err := c.Publish(ctx, &paho.Publish{Topic: "invalid", QoS: 2, Payload: []byte("x")})
		if pr == nil || pr.ReasonCode != 0x99 {
			t.Errorf("QoS 2: got %+v, %v; want PUBREC 0x99", pr, err)
		}
		if closed(c.Lost()) {
			t.Fatalf("refusals must not cost the connection: %v", c.LostErr())
		}
	})

	t.Run("MQTT 3.1.1", func(t *testing.T) {
		c, lost := connect3(t, "tcp://"+addr(b, "tcp"), "v3", "", "", nil)
		if err := publish3(c, "invalid", 1, "x"); err != nil {
			t.Fatalf("a payload that can never succeed is acked (AckV311): %v", err)
		}
		if closed(lost) {
			t.Fatal("AckV311 must not disconnect")
		}
		if err := publish3(c, "full", 1, "x"); err == nil {
			t.Fatal("a retryable refusal must not be acked: the device keeps the message")
		}
		waitFor(t, "the disconnect", func() bool { return closed(lost) })
	})
}

// Server-side publishes (downlink, dead letters) reach subscribers and never
// the Ingester, or the gateway would write its own commands into the uplink.
func TestServerPublishesNeverReachTheIngester(t *testing.T) {
	rec := &recorder{}
	b, _ := startBroker(t, Options{Ingester: rec})
	sub := mqtttest.ConnectV5(t, addr(b, "tcp"), mqtttest.V5Options{ClientID: "sub"})
	if code, err := sub.SubscribeOne("devices/+/commands", 1); err != nil || code != 1 {
		t.Fatalf("subscribe: 0x%02x %v", code, err)
	}
	if err := b.Publish("devices/d1/commands", []byte("reboot"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sub.Messages:
		if m.Topic != "devices/d1/commands" || string(m.Payload) != "reboot" {
			t.Fatalf("got %s %q", m.Topic, m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber did not get the server's publish")
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("the Ingester saw %d server publishes, want 0", n)
	}
	// A device publish on the same topic does reach it (the check above can fail).
	dev := mqtttest.ConnectV5(t, addr(b, "tcp"), mqtttest.V5Options{ClientID: "dev"})
	if code, _, err := dev.PublishQoS1("devices/d1/commands", []byte("x")); err != nil || code != 0 {
		t.Fatalf("device publish: 0x%02x %v", code, err)
	}
	if got := rec.topics(); len(got) != 1 {
		t.Fatalf("ingested %v, want the device's publish only", got)
	}
}

func TestNewRefusesBadAuthWithKeys(t *testing.T) {
	_, err := New(Options{Auth: AuthConfig{
		Anonymous: "sometimes",
		Users:     []User{{Name: "d1", PasswordHash: "plain"}, {Name: "d1"}},
		ACL:       ACLConfig{Rules: []ACLRule{{Users: []string{"d1"}, Publish: []string{"a/#/b"}}}},
	}})
	if err == nil {
		t.Fatal("New accepted a bad auth config")
	}
	for _, want := range []string{
		`anonymous: "sometimes" is not allowed`,
		`users[0].password_hash: not a bcrypt hash`,
		`users[1].name: user "d1" is listed twice`,
		`acl.rules[0].publish[0]`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
