package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the edgegw binary: with EDGEGW_RUN_MAIN=1 it runs
// main() with its arguments, so the tests exercise the real command line,
// signals and exit codes of a separate process.
func TestMain(m *testing.M) {
	if os.Getenv("EDGEGW_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// edgegw returns a command running this binary as edgegw with args.
func edgegw(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EDGEGW_RUN_MAIN=1")
	return cmd
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func TestVersion(t *testing.T) {
	out, err := edgegw(context.Background(), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "edgegw ") {
		t.Fatalf("version: %v %q", err, out)
	}
}

func TestCheckConfigExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("buffer:\n  sync: sometimes\nmqtt:\n  listners: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"shipped config is valid", []string{"run", "-c", "../../configs/edgegw.yaml", "--check-config"}, 0, "valid"},
		{"config check alias", []string{"config", "check", "-c", "../../configs/edgegw.yaml"}, 0, "valid"},
		{"bad config exits 2 naming the key", []string{"run", "--check-config", "-c", bad}, 2, `mqtt.listners: unknown key (line 4); did you mean "listeners"?`},
		{"missing config exits 2", []string{"run", "-c", filepath.Join(dir, "nope.yaml")}, 2, "not found"},
		{"unknown command exits 2", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"bad flag exits 2", []string{"run", "--frob"}, 2, "flag provided but not defined"},
		{"tail without stream exits 2", []string{"dis", "tail"}, 2, "exactly one STREAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := edgegw(context.Background(), tc.args...).CombinedOutput()
			if code := exitCode(err); code != tc.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("EDGEGW_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (EDGEGW_REQUIRE_TOOLS is set) but not installed", name)
		}
		t.Skipf("%s not installed (apt-get install mosquitto-clients)", name)
	}
	return p
}

// The README's quickstart, by hand: run the gateway on the shipped config,
// publish with Debian's mosquitto_pub, see the record with `edgegw dis tail`,
// stop with SIGTERM.
func TestQuickstartWithMosquittoPub(t *testing.T) {
	mosquittoPub := requireTool(t, "mosquitto_pub")
	dir := t.TempDir()
	mqttPort, disPort := freePort(t), freePort(t)
	shipped, err := os.ReadFile("../../configs/edgegw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgText := strings.NewReplacer(
		"127.0.0.1:1883", fmt.Sprintf("127.0.0.1:%d", mqttPort),
		"127.0.0.1:9180", fmt.Sprintf("127.0.0.1:%d", disPort),
		"127.0.0.1:9181", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"dir: data/buffer", "dir: "+filepath.Join(dir, "buffer"),
		"data_dir: data/dis", "data_dir: "+filepath.Join(dir, "dis"),
	).Replace(string(shipped))
	cfgPath := filepath.Join(dir, "edgegw.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &lockedBuffer{}
	gw := edgegw(ctx, "run", "-c", cfgPath)
	gw.Stdout, gw.Stderr = logs, logs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Process.Kill()
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", mqttPort), logs)

	pub := exec.CommandContext(ctx, mosquittoPub, "-h", "127.0.0.1", "-p", fmt.Sprint(mqttPort),
		"-q", "1", "-t", "devices/d1/telemetry", "-m", `{"temp":21.5}`)
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s\ngateway log:\n%s", err, out, logs.String())
	}

	tail := edgegw(ctx, "dis", "tail", "telemetry", "-c", cfgPath, "-n", "1", "-o", "json")
	out, err := tail.Output()
	if err != nil {
		t.Fatalf("dis tail: %v\n%s", err, out)
	}
	var rec struct {
		Data         string `json:"data"`
		PartitionKey string `json:"partition_key"`
		Sequence     string `json:"sequence_number"`
		Partition    string `json:"partition_id"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &rec); err != nil {
		t.Fatalf("tail output %q: %v", out, err)
	}
	if rec.Data != `{"temp":21.5}` || rec.PartitionKey != "d1" || rec.Sequence != "0" || !strings.HasPrefix(rec.Partition, "shardId-") {
		t.Fatalf("tail printed %+v", rec)
	}

	// The text form a person reads.
	text, err := edgegw(ctx, "dis", "tail", "telemetry", "-c", cfgPath, "-n", "1").Output()
	if err != nil || !strings.Contains(string(text), `seq=0 key=d1 {"temp":21.5}`) {
		t.Fatalf("text tail: %v %q", err, text)
	}

	if err := gw.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := gw.Wait(); err != nil {
		t.Fatalf("gateway exit after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no orderly shutdown in the log:\n%s", logs.String())
	}
}

func waitListening(t *testing.T, addr string, logs *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s after 30s; log:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
