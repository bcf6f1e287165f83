package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// log.format and log.level: JSON or text lines, and nothing below the level.
func TestNewLoggerFormatAndLevel(t *testing.T) {
	var b bytes.Buffer
	log := NewLogger(config.Log{Level: "warn", Format: "json"}, &b)
	log.Info("not shown")
	log.Warn("shown", "k", "v")
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil {
		t.Fatalf("json format wrote %q: %v", b.String(), err)
	}
	if line["msg"] != "shown" || line["level"] != "WARN" || line["k"] != "v" {
		t.Fatalf("json line %v", line)
	}

	b.Reset()
	log = NewLogger(config.Log{Level: "debug", Format: "text"}, &b)
	log.Debug("dbg", "k", "v")
	if s := b.String(); !strings.Contains(s, "level=DEBUG msg=dbg k=v") || strings.HasPrefix(s, "{") {
		t.Fatalf("text format at debug wrote %q", s)
	}

	b.Reset()
	log = NewLogger(config.Log{Level: "error", Format: "text"}, &b)
	log.Warn("not shown")
	log.Error("shown")
	if s := b.String(); strings.Contains(s, "not shown") || !strings.Contains(s, "level=ERROR msg=shown") {
		t.Fatalf("level error wrote %q", s)
	}
}

// The one logger reaches every component, mochi included: a gateway run
// with log.format json writes only JSON lines, among them mochi's own
// (component mqtt) and the buffer's (whose logger Badger's warnings and
// errors go to, see buffer/badger.go).
func TestOneLoggerForEveryComponent(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log = config.Log{Level: "debug", Format: "json"}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	gw := New(cfg, NewLogger(cfg.Log, logs))
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	select {
	case <-gw.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("gateway failed to start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("gateway not ready within 30s")
	}
	c := mqtttest.Connect(t, gw.MQTTAddr("tcp").String(), "log-test")
	if err := mqtttest.FirstError(mqtttest.PublishAll(c, []string{"devices/d1/telemetry"}, [][]byte{payload("d1", 0)}, 1, 1, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(0)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("gateway Run: %v", err)
	}

	components := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("a line that is not JSON with log.format json: %q", l)
		}
		if line["time"] == nil || line["level"] == nil || line["msg"] == nil {
			t.Fatalf("line without time, level or msg: %q", l)
		}
		if c, ok := line["component"].(string); ok {
			components[c]++
		}
	}
	for _, want := range []string{"mqtt", "buffer", "dis-server", "admin"} {
		if components[want] == 0 {
			t.Errorf("no log line of component %q; components seen: %v", want, components)
		}
	}
}
