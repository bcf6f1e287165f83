package broker

import (
	"testing"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

// Mutual TLS over WebSocket (wss): the certificate verified in the HTTPS
// handshake is the device identity too, so %u rules see its CN; a client
// without a certificate cannot connect.
func TestMutualTLSOverWebSocketIdentityFromCN(t *testing.T) {
	pki := mqtttest.NewPKI(t, "wss-fleet")
	rec := &recorder{}
	b, _ := startBroker(t, Options{
		Ingester: rec,
		Listeners: []ListenerConfig{{
			Name: "wss", Type: TypeWSS, Address: "127.0.0.1:0",
			TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile, IdentityFromCN: true},
		}},
		Auth: AuthConfig{
			Anonymous: AnonymousNever,
			ACL:       ACLConfig{Rules: []ACLRule{{Users: []string{"*"}, Publish: []string{"devices/%u/#"}}}},
		},
	})
	url := "wss://" + addr(b, "wss") + "/mqtt"
	c, lost := connect3(t, url, "browser-dev", "", "", pki.ClientTLS(t, "dev-7"))
	if err := publish3(c, "devices/dev-7/telemetry", 1, "x"); err != nil {
		t.Fatalf("own subtree over wss: %v", err)
	}
	if p := rec.all(); len(p) != 1 || p[0].Username != "dev-7" {
		t.Fatalf("ingested %+v, want one publish by the certificate CN dev-7", p)
	}
	// Another device's subtree: denied, and MQTT 3.1.1 has no negative
	// PUBACK, so mochi disconnects the client.
	if err := publish3(c, "devices/dev-8/telemetry", 1, "x"); err == nil {
		t.Fatal("a publish outside the CN's subtree was acked")
	}
	waitFor(t, "the disconnect after the denied publish", func() bool { return closed(lost) })
	if _, _, err := dial3(url, "nocert", "", "", pki.ClientTLS(t, "")); err == nil {
		t.Fatal("a client without a certificate connected to a mutual-TLS WebSocket listener")
	}
	if s := b.Stats(); s.Logins[LoginCertificate] != 1 || s.ACLDeniedPublish != 1 {
		t.Fatalf("certificate logins %d, publish denials %d; want 1 and 1", s.Logins[LoginCertificate], s.ACLDeniedPublish)
	}
}
