package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"
)

// recorder is an Ingester that records every publish and answers with
// reply (nil: accept).
type recorder struct {
	mu    sync.Mutex
	pubs  []Publish
	reply func(*Publish) error
}

func (r *recorder) Ingest(_ context.Context, p *Publish) error {
	r.mu.Lock()
	cp := *p
	cp.Payload = bytes.Clone(p.Payload)
	r.pubs = append(r.pubs, cp)
	reply := r.reply
	r.mu.Unlock()
	if reply != nil {
		return reply(p)
	}
	return nil
}

func (r *recorder) all() []Publish {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Publish(nil), r.pubs...)
}

func (r *recorder) topics() []string {
	var out []string
	for _, p := range r.all() {
		out = append(out, p.Topic)
	}
	return out
}

// logBuf collects the broker's log for assertions on what is logged once.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), sub)
}

// startBroker starts a broker with opts; with no listeners, one TCP
// listener "tcp" on 127.0.0.1:0. It is closed at cleanup.
func startBroker(t *testing.T, opts Options) (*Broker, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	var w io.Writer = logs
	if os.Getenv("EDGEGW_TEST_LOGS") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if len(opts.Listeners) == 0 {
		opts.Listeners = []ListenerConfig{{Name: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"}}
	}
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = 256 << 10
	}
	if opts.Auth.Anonymous == "" {
		// Most tests connect without credentials from 127.0.0.1; the
		// broker's own default (never) is TestAnonymousNeverUnlessGranted's.
		opts.Auth.Anonymous = AnonymousLoopback
	}
	b, err := New(opts)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, logs
}

func addr(b *Broker, name string) string { return b.Addr(name).String() }

// hashPassword uses bcrypt's minimum cost: the tests check the logic, not
// the cost.
func hashPassword(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// dial3 connects a paho MQTT 3.1.1 client to url (tcp://, ssl://, ws://,
// wss://) without auto-reconnect; lost is closed when the connection drops.
func dial3(url, id, user, pass string, tlsCfg *tls.Config) (c paho3.Client, lost chan struct{}, err error) {
	lost = make(chan struct{})
	var once sync.Once
	o := paho3.NewClientOptions().AddBroker(url).SetClientID(id).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).
		SetConnectionLostHandler(func(paho3.Client, error) { once.Do(func() { close(lost) }) })
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	c = paho3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, nil, context.DeadlineExceeded
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	return c, lost, nil
}

func connect3(t *testing.T, url, id, user, pass string, tlsCfg *tls.Config) (paho3.Client, chan struct{}) {
	t.Helper()
	c, lost, err := dial3(url, id, user, pass, tlsCfg)
	if err != nil {
		t.Fatalf("MQTT 3.1.1 connect %s as %s: %v", url, id, err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, lost
}

func publish3(c paho3.Client, topic string, qos byte, payload string) error {
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(15 * time.Second) {
		return context.DeadlineExceeded
	}
	return tok.Error()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// runTool runs a command-line client with a deadline and returns its
// combined output.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
