package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnsetBuiltinAuthModeIsRefused: both config forms of `edgegw dis serve`
// and the gateway's own check refuse a built-in server with neither an auth
// mode nor credentials, naming the key and the fix.
func TestUnsetBuiltinAuthModeIsRefused(t *testing.T) {
	t.Setenv("EDGEGW_DIS_ACCESS_KEY", "")
	t.Setenv("EDGEGW_DIS_SECRET_KEY", "")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	standalone := write("server.yaml", "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "d1")+"\n")
	gatewayFile := write("gateway.yaml", "streams: [{name: raw}]\nunmatched: {stream: raw}\ndis:\n  builtin:\n    enabled: true\n    listen: 127.0.0.1:0\n")
	const fix = "not set and no credentials configured; set mode: none for local development"
	for _, tc := range []struct {
		name string
		args []string
		key  string
	}{
		{"dis serve, standalone file", []string{"dis", "serve", "--data-dir", filepath.Join(dir, "d2"), "-c", standalone}, "auth.mode: " + fix},
		{"dis serve, gateway file", []string{"dis", "serve", "--data-dir", filepath.Join(dir, "d3"), "-c", gatewayFile}, "dis.builtin.auth.mode: " + fix},
		{"run --check-config", []string{"run", "--check-config", "-c", gatewayFile}, "dis.builtin.auth.mode: " + fix},
		// No -c and no configs/edgegw.yaml where it runs (the test's
		// working directory is cmd/edgegw).
		{"dis serve, no config file", []string{"dis", "serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "d4")}, "does not run without authentication unless a file says auth.mode: none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Bounded: a server that wrongly starts is killed, not waited for.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := edgegw(ctx, tc.args...).CombinedOutput()
			if code := exitCode(err); code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			if !strings.Contains(string(out), tc.key) {
				t.Fatalf("output lacks %q:\n%s", tc.key, out)
			}
		})
	}
}
