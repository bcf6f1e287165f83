package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

func TestTLSListener(t *testing.T) {
	pki := mqtttest.NewPKI(t, "srv")
	rec := &recorder{}
	b, _ := startBroker(t, Options{Ingester: rec, Listeners: []ListenerConfig{{
		Name: "tls", Type: TypeTLS, Address: "127.0.0.1:0",
		TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey},
	}}})
	a := addr(b, "tls")

	c3, _ := connect3(t, "ssl://"+a, "v3-tls", "", "", pki.ClientTLS(t, ""))
	if err := publish3(c3, "over/tls/v3", 1, "x"); err != nil {
		t.Fatal(err)
	}
	c5 := mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "v5-tls", TLS: pki.ClientTLS(t, "")})
	if code, _, err := c5.PublishQoS1("over/tls/v5", []byte("x")); err != nil || code != 0 {
		t.Fatalf("v5 over TLS: 0x%02x %v", code, err)
	}
	// A plain-text client gets nowhere.
	if _, _, err := mqtttest.DialV5(a, mqtttest.V5Options{ClientID: "plain"}); err == nil {
		t.Fatal("a plain-text client connected to the TLS listener")
	}
	// A client that does not trust the server's CA refuses it.
	other := mqtttest.NewPKI(t, "other")
	if _, _, err := mqtttest.DialV5(a, mqtttest.V5Options{ClientID: "untrusting", TLS: other.ClientTLS(t, "")}); err == nil {
		t.Fatal("a client trusting another CA accepted the server")
	}
	t.Run("mosquitto_pub", func(t *testing.T) {
		pub := mqtttest.Tool(t, "mosquitto_pub")
		host, port := splitAddr(t, a)
		if out, err := runTool(t, pub, "-h", host, "-p", port, "--cafile", pki.CAFile, "-i", "mq-tls", "-t", "over/tls/mosquitto", "-m", "x", "-q", "1"); err != nil {
			t.Fatalf("mosquitto_pub over TLS: %v %s", err, out)
		}
	})
	waitFor(t, "the TLS publishes", func() bool {
		return strings.Contains(strings.Join(rec.topics(), ","), "over/tls/v3,over/tls/v5")
	})
}

// Mutual TLS with the device identity taken from the certificate: no
// password, the CN is the username ACLs and templates see.
func TestMutualTLSIdentityFromCN(t *testing.T) {
	pki := mqtttest.NewPKI(t, "fleet")
	rec := &recorder{}
	b, _ := startBroker(t, Options{
		Ingester: rec,
		Listeners: []ListenerConfig{{
			Name: "mtls", Type: TypeTLS, Address: "127.0.0.1:0",
			TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile, IdentityFromCN: true},
		}},
		Auth: AuthConfig{
			Anonymous: AnonymousNever,
			ACL:       ACLConfig{Rules: []ACLRule{{Users: []string{"*"}, Publish: []string{"devices/%u/#"}}}},
		},
	})
	a := addr(b, "mtls")

	c := mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "any-id", Username: "ignored", TLS: pki.ClientTLS(t, "dev-7")})
	if code, _, err := c.PublishQoS1("devices/dev-7/telemetry", []byte("x")); err != nil || code != 0 {
		t.Fatalf("own subtree: 0x%02x %v", code, err)
	}
	if code, _, _ := c.PublishQoS1("devices/dev-8/telemetry", []byte("x")); code != 0x87 {
		t.Fatalf("another device's subtree: 0x%02x, want 0x87", code)
	}
	if p := rec.all()[0]; p.Username != "dev-7" {
		t.Fatalf("ingested username %q, want the certificate CN dev-7", p.Username)
	}
	if _, _, err := mqtttest.DialV5(a, mqtttest.V5Options{ClientID: "nocert", TLS: pki.ClientTLS(t, "")}); err == nil {
		t.Fatal("a client without a certificate connected to a mutual-TLS listener")
	}
	rogue := mqtttest.NewPKI(t, "rogue")
	rogueTLS := rogue.ClientTLS(t, "dev-7")
	rogueTLS.RootCAs = pki.Pool // trusts the server, presents a certificate from another CA
	if _, _, err := mqtttest.DialV5(a, mqtttest.V5Options{ClientID: "rogue", TLS: rogueTLS}); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	if s := b.Stats(); s.Logins[LoginCertificate] != 1 {
		t.Fatalf("certificate logins = %d, want 1", s.Logins[LoginCertificate])
	}
	t.Run("mosquitto_pub", func(t *testing.T) {
		pub := mqtttest.Tool(t, "mosquitto_pub")
		host, port := splitAddr(t, a)
		cert, key, _ := pki.ClientCert(t, "dev-9")
		if out, err := runTool(t, pub, "-h", host, "-p", port, "--cafile", pki.CAFile, "--cert", cert, "--key", key,
			"-i", "mq-mtls", "-t", "devices/dev-9/telemetry", "-m", "x", "-q", "1"); err != nil {
			t.Fatalf("mosquitto_pub with a client certificate: %v %s", err, out)
		}
		if out, err := runTool(t, pub, "-h", host, "-p", port, "--cafile", pki.CAFile,
			"-i", "mq-nocert", "-t", "devices/dev-9/telemetry", "-m", "x", "-q", "1"); err == nil {
			t.Fatalf("mosquitto_pub without a certificate succeeded: %s", out)
		}
		waitFor(t, "dev-9's publish", func() bool {
			for _, p := range rec.all() {
				if p.Username == "dev-9" && p.Topic == "devices/dev-9/telemetry" {
					return true
				}
			}
			return false
		})
	})
}

// optional: a certificate is verified if sent; without one the client
// logs in with a password.
func TestOptionalClientCertificateFallsBackToPassword(t *testing.T) {
	pki := mqtttest.NewPKI(t, "opt")
	b, _ := startBroker(t, Options{
		Listeners: []ListenerConfig{{
			Name: "tls", Type: TypeTLS, Address: "127.0.0.1:0",
			TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile,
				ClientAuth: ClientAuthOptional, IdentityFromCN: true},
		}},
		Auth: AuthConfig{Anonymous: AnonymousNever, Users: []User{{Name: "u", PasswordHash: hashPassword(t, "pw")}}},
	})
	a := addr(b, "tls")
	mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "by-cert", TLS: pki.ClientTLS(t, "dev-1")})
	mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "by-pw", Username: "u", Password: "pw", TLS: pki.ClientTLS(t, "")})
	if _, ca, err := mqtttest.DialV5(a, mqtttest.V5Options{ClientID: "neither", TLS: pki.ClientTLS(t, "")}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("no certificate and no password: %v %+v", err, ca)
	}
}

func TestWebSocketListeners(t *testing.T) {
	pki := mqtttest.NewPKI(t, "ws")
	rec := &recorder{}
	b, _ := startBroker(t, Options{Ingester: rec, Listeners: []ListenerConfig{
		{Name: "ws", Type: TypeWS, Address: "127.0.0.1:0", AllowedOrigins: []string{"https://dash.example.com"}},
		{Name: "wss", Type: TypeWSS, Address: "127.0.0.1:0", TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}},
	}})
	ws, _ := connect3(t, "ws://"+addr(b, "ws")+"/mqtt", "over-ws", "", "", nil)
	if err := publish3(ws, "over/ws", 1, "x"); err != nil {
		t.Fatal(err)
	}
	wss, _ := connect3(t, "wss://"+addr(b, "wss")+"/mqtt", "over-wss", "", "", pki.ClientTLS(t, ""))
	if err := publish3(wss, "over/wss", 1, "x"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.topics(), ","); got != "over/ws,over/wss" {
		t.Fatalf("ingested %s", got)
	}

	// Browser origins: the listed one and none are accepted, others refused.
	dial := func(origin string) int {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
		c, resp, err := d.Dial("ws://"+addr(b, "ws")+"/mqtt", h)
		if err == nil {
			c.Close()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"", http.StatusSwitchingProtocols},
		{"https://dash.example.com", http.StatusSwitchingProtocols},
		{"http://" + addr(b, "ws"), http.StatusSwitchingProtocols}, // same host
		{"https://evil.example", http.StatusForbidden},
	} {
		if got := dial(tc.origin); got != tc.status {
			t.Errorf("Origin %q: HTTP %d, want %d", tc.origin, got, tc.status)
		}
	}
}

// Every listener type binds in New, so a taken port stops startup with an
// error naming the listener (mochi's WebSocket listener would only log it).
func TestBindFailureNamesTheListener(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	pki := mqtttest.NewPKI(t, "bind")
	for _, lc := range []ListenerConfig{
		{Name: "plain", Type: TypeTCP},
		{Name: "secure", Type: TypeTLS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}},
		{Name: "web", Type: TypeWS},
		{Name: "websecure", Type: TypeWSS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}},
	} {
		lc.Address = taken.Addr().String()
		ok := ListenerConfig{Name: "first", Type: TypeTCP, Address: "127.0.0.1:0"}
		_, err := New(Options{Listeners: []ListenerConfig{ok, lc}})
		var opErr *net.OpError
		if err == nil || !strings.Contains(err.Error(), `MQTT listener "`+lc.Name+`"`) || !errors.As(err, &opErr) {
			t.Errorf("%s: %v, want a bind error naming the listener", lc.Type, err)
		}
	}
}

func TestListenerConfigErrors(t *testing.T) {
	pki := mqtttest.NewPKI(t, "cfg")
	for _, tc := range []struct {
		lc   ListenerConfig
		want []string
	}{
		{ListenerConfig{Type: "quic"}, []string{`type: "quic" is not allowed`}},
		{ListenerConfig{Type: TypeTLS}, []string{"tls: a tls listener needs tls.cert_file and tls.key_file"}},
		{ListenerConfig{Type: TypeTCP, TLS: &TLSConfig{}, AllowedOrigins: []string{"*"}},
			[]string{"allowed_origins: applies to ws and wss listeners only", "tls: applies to tls and wss listeners only"}},
		{ListenerConfig{Type: TypeWS, AllowedOrigins: []string{"dash.example.com"}}, []string{`allowed_origins[0]: "dash.example.com" is not an origin`}},
		{ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.CAFile}}, []string{"tls.cert_file: load key pair"}},
		{ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: "/nonexistent.pem", KeyFile: pki.ServerKey}}, []string{"tls.cert_file: stat /nonexistent.pem"}},
		{ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientAuth: ClientAuthRequire}},
			[]string{"tls.client_ca_file: missing"}},
		{ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile, ClientAuth: ClientAuthNone}},
			[]string{"tls.client_auth: is none but client_ca_file is set"}},
		{ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, IdentityFromCN: true, MinVersion: "1.0"}},
			[]string{"tls.identity_from_cn: needs client certificates", `tls.min_version: "1.0"`}},
		{ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.ServerKey}},
			[]string{"tls.client_ca_file: " + pki.ServerKey + " holds no PEM certificate"}},
	} {
		err := CheckListener(tc.lc)
		if err == nil {
			t.Errorf("%+v: accepted", tc.lc)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: missing %q in:\n%v", tc.lc, w, err)
			}
		}
		if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
			t.Errorf("%+v: %d problems, want %d:\n%v", tc.lc, n, len(tc.want), err)
		}
	}
	good := ListenerConfig{Type: TypeWSS, TLS: &TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile, IdentityFromCN: true, MinVersion: "1.3"}}
	if err := CheckListener(good); err != nil {
		t.Errorf("a good wss listener: %v", err)
	}
}

// A renewed server certificate (the files replaced) is served to new
// connections without a restart.
func TestServerCertificateIsReloadedWhenItsFilesChange(t *testing.T) {
	certCheckEvery = 0
	t.Cleanup(func() { certCheckEvery = time.Second })
	pki := mqtttest.NewPKI(t, "renew")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	install := func(cert, key string) {
		for src, dst := range map[string]string{cert: certFile, key: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			// Write aside and rename, as certificate tools do.
			if err := os.WriteFile(dst+".new", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".new", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(pki.ServerCert, pki.ServerKey)
	b, _ := startBroker(t, Options{Listeners: []ListenerConfig{{
		Name: "tls", Type: TypeTLS, Address: "127.0.0.1:0", TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile},
	}}})
	serial := func() string {
		c, err := tls.Dial("tcp", addr(b, "tls"), pki.ClientTLS(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	renewed := mqtttest.NewPKI(t, "renewed") // another server certificate; trust both CAs
	install(renewed.ServerCert, renewed.ServerKey)
	cfg := pki.ClientTLS(t, "")
	cfg.RootCAs = renewed.Pool
	c, err := tls.Dial("tcp", addr(b, "tls"), cfg)
	if err != nil {
		t.Fatalf("after the renewal the new certificate is served: %v", err)
	}
	defer c.Close()
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber.String(); got == first {
		t.Fatal("still the old certificate")
	}
}
