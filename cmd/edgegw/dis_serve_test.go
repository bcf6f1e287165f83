package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

var readyAddrRe = regexp.MustCompile(`DIS-compatible server ready.* addr=(127\.0\.0\.1:\d+)`)

// startDISServe runs `edgegw dis serve` as a process and returns its base
// URL and a stop function (SIGTERM, then exit status 0 expected).
func startDISServe(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := edgegw(ctx, append([]string{"dis", "serve"}, args...)...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		defer cancel()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; exitCode(err) != 0 {
			t.Errorf("dis serve exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := readyAddrRe.FindStringSubmatch(stderr.String()); m != nil {
			return "http://" + m[1], stop
		}
		select {
		case err := <-exited:
			cancel()
			t.Fatalf("dis serve exited with %v before it was ready:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("dis serve did not report its address within 30 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for the ready line, not a correctness wait
	}
}

// TestDISServeCommand runs the standalone server as the issue names it,
// `edgegw dis serve --listen ADDR --data-dir DIR -c FILE`: the flags override
// the file's dis.builtin listen and data_dir, the file's auth applies, and the
// data survives a SIGTERM and restart.
func TestDISServeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	server := `listen: 127.0.0.1:1
data_dir: %s
auth:
  mode: aksk
  keys:
    - {access_key: AKSERVE, secret_key: SKSERVE, projects: [proj1]}
`
	forms := []struct{ name, text string }{
		{"standalone server file", server},
		{"gateway file with dis.builtin", "streams:\n  - name: raw\nunmatched:\n  stream: raw\ndis:\n  builtin:\n    enabled: true\n" + indent(server, "    ")},
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	do := func(base, method, path, body string, sign bool) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if sign {
			if err := dis.SignRequest(req, []byte(body), "AKSERVE", "SKSERVE", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, form := range forms {
		t.Run(form.name, func(t *testing.T) {
			dir := t.TempDir()
			notThis := filepath.Join(dir, "not-this-one")
			cfgPath := filepath.Join(dir, "edgegw.yaml")
			if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(form.text, notThis)), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "-c", cfgPath}

			base, stop := startDISServe(t, args...)
			if st, body := do(base, "GET", "/v2/proj1/streams", "", false); st != 401 {
				t.Fatalf("unsigned request: %d %s (the file's auth.mode aksk must apply)", st, body)
			}
			if st, body := do(base, "POST", "/v2/proj1/streams", `{"stream_name":"s","partition_count":1}`, true); st != 201 {
				t.Fatalf("create stream: %d %s", st, body)
			}
			if st, body := do(base, "GET", "/v2/other/streams", "", true); st != 403 {
				t.Fatalf("project outside the key: %d %s", st, body)
			}
			stop()
			if _, err := os.Stat(notThis); err == nil {
				t.Fatal("--data-dir did not override the file's data_dir")
			}

			base, stop = startDISServe(t, args...)
			defer stop()
			if st, body := do(base, "GET", "/v2/proj1/streams/s", "", true); st != 200 || !strings.Contains(body, `"stream_name":"s"`) {
				t.Fatalf("stream after restart: %d %s", st, body)
			}
		})
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestDISServeConfigForm(t *testing.T) {
	for text, gateway := range map[string]bool{
		"":                                false,
		"listen: 127.0.0.1:1\nauth: {}\n": false,
		"dis:\n  builtin: {}\n":           true,
		"mqtt: {}\n":                      true,
		"routes: []\n":                    true, // an inline key of the gateway file
		"unmatched:\n  stream: raw\n":     true,
		"not yaml: [":                     false,
		"- a list\n":                      false,
	} {
		if got := hasGatewayKey([]byte(text)); got != gateway {
			t.Errorf("hasGatewayKey(%q) = %v, want %v", text, got, gateway)
		}
	}
}
