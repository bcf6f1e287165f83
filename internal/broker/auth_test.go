package broker

import (
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

func TestPasswordLogins(t *testing.T) {
	rec := &recorder{}
	b, logs := startBroker(t, Options{Ingester: rec, Auth: AuthConfig{
		Anonymous:  AnonymousNever,
		Users:      []User{{Name: "d1", PasswordHash: hashPassword(t, "s3cret")}},
		LoginLimit: LoginLimit{MaxFailures: 100, Window: time.Minute}, // this test is about the answers
	}})
	a := addr(b, "tcp")

	t.Run("MQTT 5", func(t *testing.T) {
		for _, tc := range []struct {
			name, user, pass string
			ok               bool
		}{
			{"right password", "d1", "s3cret", true},
			{"wrong password", "d1", "guess", false},
			{"unknown user", "nobody", "s3cret", false},
			{"no credentials (anonymous: never)", "", "", false},
		} {
			c, ca, err := mqtttest.DialV5(a, mqtttest.V5Options{ClientID: "c-" + tc.user, Username: tc.user, Password: tc.pass})
			if tc.ok {
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				c.Close()
				continue
			}
			if err == nil {
				t.Fatalf("%s: connected", tc.name)
			}
			if ca == nil || ca.ReasonCode != 0x86 {
				t.Errorf("%s: CONNACK %+v, want reason 0x86 (bad user name or password)", tc.name, ca)
			}
		}
	})
	t.Run("MQTT 3.1.1", func(t *testing.T) {
		// mochi answers 3.1.1 clients with return code 5, not authorised.
		if _, _, err := dial3("tcp://"+a, "v3-bad", "d1", "guess", nil); err == nil ||
			!strings.Contains(strings.ToLower(err.Error()), "not authorized") {
			t.Fatalf("wrong password: %v, want not authorized", err)
		}
		c, _ := connect3(t, "tcp://"+a, "v3-good", "d1", "s3cret", nil)
		if err := publish3(c, "t", 1, "x"); err != nil {
			t.Fatal(err)
		}
		if p := rec.all()[0]; p.Username != "d1" {
			t.Fatalf("ingested username %q, want d1", p.Username)
		}
	})
	t.Run("mosquitto_pub", func(t *testing.T) {
		pub := mqtttest.Tool(t, "mosquitto_pub")
		host, port := splitAddr(t, a)
		out, err := exec.Command(pub, "-h", host, "-p", port, "-i", "mq-bad", "-u", "d1", "-P", "guess", "-t", "t", "-m", "x", "-q", "1").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Connection Refused: not authorised") {
			t.Fatalf("mosquitto_pub with a wrong password: %v %s", err, out)
		}
		out, err = exec.Command(pub, "-h", host, "-p", port, "-i", "mq-good", "-u", "d1", "-P", "s3cret", "-t", "t", "-m", "x", "-q", "1").CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub with the right password: %v %s", err, out)
		}
	})

	s := b.Stats()
	if s.Logins[LoginPassword] < 3 || s.AuthFailures[FailBadPassword] < 4 || s.AuthFailures[FailAnonymous] != 1 {
		t.Fatalf("stats %+v", s)
	}
	if n := logs.count("MQTT login refused"); n != 1 {
		t.Fatalf("logged %d refusals from 127.0.0.1, want 1 (then one per minute per address)", n)
	}
}

func splitAddr(t *testing.T, a string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		t.Fatalf("address %q", a)
	}
	return a[:i], a[i+1:]
}

// After MaxFailures failed logins an address is refused without its
// credentials being checked, until the bucket refills.
func TestFailedLoginsAreRateLimitedPerAddress(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	b, _ := startBroker(t, Options{Auth: AuthConfig{
		Anonymous:  AnonymousNever,
		Users:      []User{{Name: "d1", PasswordHash: hashPassword(t, "right")}},
		LoginLimit: LoginLimit{MaxFailures: 2, Window: time.Hour},
	}, now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	a := addr(b, "tcp")
	try := func(pass string) byte {
		c, ca, err := mqtttest.DialV5(a, mqtttest.V5Options{ClientID: "rl", Username: "d1", Password: pass})
		if err == nil {
			c.Close()
			return 0
		}
		if ca == nil {
			t.Fatalf("no CONNACK: %v", err)
		}
		return ca.ReasonCode
	}
	if try("wrong") != 0x86 || try("wrong") != 0x86 {
		t.Fatal("the first failures are checked and refused")
	}
	if code := try("right"); code != 0x9F {
		t.Fatalf("third login with the right password: 0x%02x, want 0x9F (connection rate exceeded)", code)
	}
	// MQTT 3.1.1 has no rate code: not authorized (0x05).
	if c, _, err := dial3("tcp://"+a, "rl3", "d1", "right", nil); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		if c != nil {
			c.Disconnect(0)
		}
		t.Fatalf("MQTT 3.1.1 login while rate limited: %v, want not authorized", err)
	}
	if got := b.Stats().AuthFailures[FailRateLimited]; got != 2 {
		t.Fatalf("rate_limited = %d, want 2", got)
	}
	mu.Lock()
	now = now.Add(30 * time.Minute) // one token back (2 per hour)
	mu.Unlock()
	if code := try("right"); code != 0 {
		t.Fatalf("after the refill: 0x%02x, want accepted", code)
	}
	// A success takes no token: the next failure is still allowed to be checked.
	if code := try("right"); code != 0 {
		t.Fatalf("successes do not count against the limit: 0x%02x", code)
	}
}

// The anonymous policy, decided on the remote address mochi reports. A
// non-loopback address cannot be dialled in a test, so the decision is
// called directly.
func TestAnonymousPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy, remote string
		ok             bool
	}{
		{AnonymousLoopback, "127.0.0.1:5000", true},
		{AnonymousLoopback, "[::1]:5000", true},
		{AnonymousLoopback, "10.0.0.7:5000", false},
		{AnonymousLoopback, "192.168.1.20:5000", false},
		{AnonymousAlways, "10.0.0.7:5000", true},
		{AnonymousNever, "127.0.0.1:5000", false},
	} {
		b, err := New(Options{Auth: AuthConfig{Anonymous: tc.policy}})
		if err != nil {
			t.Fatal(err)
		}
		cl := &mqtt.Client{ID: "anon"}
		cl.Net.Remote, cl.Net.Listener = tc.remote, "tcp"
		ok, kind := b.authenticate(cl, nil, nil)
		if ok != tc.ok {
			t.Errorf("anonymous %s from %s: ok=%v (%s), want %v", tc.policy, tc.remote, ok, kind, tc.ok)
		}
		if !ok && kind != FailAnonymous {
			t.Errorf("refusal reason %q, want %q", kind, FailAnonymous)
		}
		b.Close()
	}
}

// Anonymous access is granted only explicitly: with the policy left empty,
// a client with no credentials is refused even from loopback, with a
// reason that says how to grant it.
func TestAnonymousNeverUnlessGranted(t *testing.T) {
	b, err := New(Options{Logger: slog.New(slog.DiscardHandler),
		Listeners: []ListenerConfig{{Name: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, ca, err := mqtttest.DialV5(addr(b, "tcp"), mqtttest.V5Options{ClientID: "anon"})
	if err == nil || ca == nil || ca.ReasonCode != 0x86 && ca.ReasonCode != 0x87 {
		t.Fatalf("anonymous connect with no policy set: %v %+v, want refused", err, ca)
	}
}

// A username with no password is not an anonymous login under that name:
// it must authenticate.
func TestUsernameWithoutPasswordIsNotAnonymous(t *testing.T) {
	b, _ := startBroker(t, Options{Auth: AuthConfig{
		Anonymous: AnonymousAlways,
		Users:     []User{{Name: "d1", PasswordHash: hashPassword(t, "pw")}},
	}})
	if _, ca, err := mqtttest.DialV5(addr(b, "tcp"), mqtttest.V5Options{ClientID: "x", Username: "d1"}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("username d1 without its password: %v %+v, want refused", err, ca)
	}
}

// ReloadAuth swaps users and rules; connected clients stay connected and
// their next publish is checked with the new rules; a bad config changes
// nothing.
func TestReloadAuthKeepsConnections(t *testing.T) {
	rec := &recorder{}
	cfg := AuthConfig{
		Anonymous: AnonymousNever,
		Users:     []User{{Name: "d1", PasswordHash: hashPassword(t, "pw1"), Groups: []string{"devices"}}},
		ACL:       ACLConfig{Rules: []ACLRule{{Groups: []string{"devices"}, Publish: []string{"devices/%u/#"}}}},
	}
	b, _ := startBroker(t, Options{Ingester: rec, Auth: cfg})
	a := addr(b, "tcp")
	d1 := mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "d1", Username: "d1", Password: "pw1"})
	if code, _, _ := d1.PublishQoS1("devices/d1/secret", []byte("x")); code != 0 {
		t.Fatalf("before the reload: 0x%02x", code)
	}

	next := cfg
	next.Users = append(next.Users, User{Name: "d2", PasswordHash: hashPassword(t, "pw2"), Groups: []string{"devices"}})
	next.ACL.Rules = append([]ACLRule{{Users: []string{"d1"}, Access: Deny, Publish: []string{"devices/d1/secret"}}}, cfg.ACL.Rules...)
	if err := b.ReloadAuth(next); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := d1.PublishQoS1("devices/d1/secret", []byte("x")); code != 0x87 {
		t.Fatalf("after the reload: 0x%02x, want 0x87 (the new deny rule)", code)
	}
	if code, _, _ := d1.PublishQoS1("devices/d1/telemetry", []byte("x")); code != 0 {
		t.Fatalf("after the reload, other topics: 0x%02x", code)
	}
	if closed(d1.Lost()) {
		t.Fatal("the reload dropped a connection")
	}
	mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "d2", Username: "d2", Password: "pw2"})

	bad := next
	bad.Users = []User{{Name: "d3", PasswordHash: "not-bcrypt"}}
	if err := b.ReloadAuth(bad); err == nil || !strings.Contains(err.Error(), "users[0].password_hash") {
		t.Fatalf("bad reload: %v", err)
	}
	mqtttest.ConnectV5(t, a, mqtttest.V5Options{ClientID: "d2b", Username: "d2", Password: "pw2"}) // old state kept
}

// The verified-password cache: a fleet reconnecting costs one bcrypt per
// user; a different password is still checked (and refused).
func TestVerifiedPasswordCache(t *testing.T) {
	st, err := compileAuth(AuthConfig{Anonymous: AnonymousNever, Users: []User{{Name: "u", PasswordHash: hashPassword(t, "pw")}}}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	u := st.users["u"]
	for i := 0; i < 3; i++ {
		if !st.checkPassword(u, []byte("pw")) {
			t.Fatal("right password refused")
		}
	}
	if st.checkPassword(u, []byte("pw2")) || st.checkPassword(u, []byte("")) {
		t.Fatal("a wrong password passed the cache")
	}
	if _, ok := st.verified.Load("u"); !ok {
		t.Fatal("a success is remembered")
	}
}

func BenchmarkLoginCached(b *testing.B) {
	st, err := compileAuth(AuthConfig{Anonymous: AnonymousNever, Users: []User{{Name: "u", PasswordHash: hashPassword(b, "pw")}}}.withDefaults())
	if err != nil {
		b.Fatal(err)
	}
	u := st.users["u"]
	st.checkPassword(u, []byte("pw"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.checkPassword(u, []byte("pw"))
	}
}
