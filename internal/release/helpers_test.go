package release

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// Stamped into every binary by make (-ldflags -X), and expected back from
// `edgegw version`.
const (
	stampVersion = "v0.0.0-release-test"
	stampCommit  = "feedc0de"
	stampDate    = "2026-01-02T03:04:05Z"
)

// Timeouts. Each bounds one step so a hung step fails the test with its
// output instead of running into go test's package timeout.
const (
	// buildTimeout: make packages builds four platforms; from a cold cache on
	// two cores shared with the rest of the suite it took up to 5 minutes.
	buildTimeout = 8 * time.Minute
	// commandTimeout: one CLI command (dis tail, config check, dpkg -i).
	commandTimeout = 2 * time.Minute
	// readyTimeout: from start to ready. Under qemu the gateway is ready in
	// about a second; a booting container takes a few.
	readyTimeout = 90 * time.Second
	// stopTimeout: SIGTERM to exit. The test configs flush for at most 5 s.
	stopTimeout = time.Minute
)

var (
	repoRoot string // the repository this package belongs to
	scratch  string // artifacts shared by this package's tests; removed by TestMain
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repoRoot = root
	os.Setenv(config.EnvAdminToken, adminToken)
	scratch, err = os.MkdirTemp("", "edgegw-release-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// requireTool returns the path of a program the test needs. Without it the
// test skips, or fails when EDGEGW_REQUIRE_TOOLS is set (CI installs them).
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("EDGEGW_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (EDGEGW_REQUIRE_TOOLS is set) but not installed; apt-get install %s", name, debianPackage)
		}
		t.Skipf("%s not installed (apt-get install %s)", name, debianPackage)
	}
	return p
}

// requireRoot skips (or fails, in CI) a test that needs chroot or containers.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("EDGEGW_REQUIRE_TOOLS") != "" {
			t.Fatal("this test needs root (chroot, systemd-nspawn); .ci/run runs as root")
		}
		t.Skip("needs root (chroot, systemd-nspawn)")
	}
}

// ---- the artifacts, built once per test binary ----

// artifacts are what `make packages` produced, plus the same binaries packaged
// again at a higher version for the upgrade tests.
type artifacts struct {
	dist           string // binaries, packages and SHA256SUMS
	makeOutput     string // what make printed (the sizes among it)
	pkgVersion     string // the package version make computed from git
	upgrade        string // packages of the same binaries at upgradeVersion
	upgradeVersion string
}

var built struct {
	once sync.Once
	a    artifacts
	err  error
}

// release builds the artifacts on first use; every test that needs them
// shares one build.
func release(t *testing.T) artifacts {
	t.Helper()
	requireTool(t, "make", "make")
	requireTool(t, "git", "git")
	built.once.Do(func() { built.a, built.err = buildArtifacts() })
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.a
}

func buildArtifacts() (artifacts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	a := artifacts{dist: filepath.Join(scratch, "dist"), upgrade: filepath.Join(scratch, "upgrade")}
	nfpm := "NFPM=" + filepath.Join(scratch, "nfpm")
	out, err := runMake(ctx, "packages", "DIST="+a.dist, nfpm,
		"VERSION="+stampVersion, "COMMIT="+stampCommit, "DATE="+stampDate)
	a.makeOutput = out
	if err != nil {
		return a, fmt.Errorf("make packages: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(a.dist, "edgegw_*_amd64.deb"))
	if len(debs) != 1 {
		return a, fmt.Errorf("make packages made %d amd64 .debs, want 1:\n%s", len(debs), out)
	}
	a.pkgVersion = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(debs[0]), "edgegw_"), "_amd64.deb")
	if a.upgradeVersion, err = nextPatch(a.pkgVersion); err != nil {
		return a, err
	}
	if err := os.MkdirAll(a.upgrade, 0o755); err != nil {
		return a, err
	}
	bins, _ := filepath.Glob(filepath.Join(a.dist, "edgegw-linux-*"))
	for _, b := range bins {
		if err := copyFile(b, filepath.Join(a.upgrade, filepath.Base(b)), 0o755); err != nil {
			return a, err
		}
	}
	if out, err := runMake(ctx, "pkg", "DIST="+a.upgrade, nfpm, "PKG_VERSION="+a.upgradeVersion); err != nil {
		return a, fmt.Errorf("make pkg PKG_VERSION=%s: %v\n%s", a.upgradeVersion, err, out)
	}
	return a, nil
}

// nextPatch returns a version that dpkg and rpm order after v: X.Y.Z+1.
func nextPatch(v string) (string, error) {
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("package version %q does not start with X.Y.Z", v)
	}
	z, _ := strconv.Atoi(m[3])
	return fmt.Sprintf("%s.%s.%d", m[1], m[2], z+1), nil
}

// runMake runs a make target of the repository with variables.
func runMake(ctx context.Context, target string, vars ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "make", append([]string{"--no-print-directory", "-C", repoRoot, target}, vars...)...)
	// A make test above us exports its jobserver; this make is independent.
	cmd.Env = withoutEnv(os.Environ(), "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
outer:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ---- running edgegw ----

// runner makes the command that runs an edgegw under test (natively, under
// qemu, or chrooted into an image) with args.
type runner func(ctx context.Context, args ...string) *exec.Cmd

// hostRunner runs the binary at path directly.
func hostRunner(path string) runner {
	return func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, path, args...)
	}
}

// process is a running edgegw (or container) whose output is collected.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // set when done is closed
}

// start starts cmd; the test's cleanup kills it if the test did not stop it.
func start(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and requires a clean exit within stopTimeout.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Fatalf("still running %s after SIGTERM; output:\n%s", stopTimeout, p.out)
	}
	if p.err != nil {
		t.Fatalf("exit after SIGTERM: %v; output:\n%s", p.err, p.out)
	}
}

// waitFor polls cond until it returns nil, the process exits, or
// readyTimeout passes.
func waitFor(t *testing.T, p *process, what string, cond func() error) {
	t.Helper()
	if err := poll(p, cond); err != nil {
		t.Fatalf("not %s: %v; output:\n%s", what, err, p.out)
	}
}

// poll is waitFor returning the failure instead of ending the test.
func poll(p *process, cond func() error) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("exited (%v): %w", p.err, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until the admin API's /readyz answers 200.
func waitReady(t *testing.T, p *process, adminAddr string) {
	t.Helper()
	waitFor(t, p, "ready", readyz(adminAddr))
}

func readyz(adminAddr string) func() error {
	return func() error {
		_, err := httpGet("http://" + adminAddr + "/readyz")
		return err
	}
}

// httpGet returns the body of a 200 answer.
func httpGet(url string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return string(body), nil
}

// waitListening waits until addr accepts MQTT connections (for builds
// without the admin API).
func waitListening(t *testing.T, p *process, addr string) {
	t.Helper()
	waitFor(t, p, "accepting MQTT on "+addr, func() error {
		c, err := mqtttest.Dial(addr, "release-probe")
		if err != nil {
			return err
		}
		c.Disconnect(100)
		return nil
	})
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

// publish sends payloads in order with QoS 1, each acknowledged (so
// persisted in the gateway's buffer) before the next.
func publish(t *testing.T, addr, clientID string, topics []string, payloads []string) {
	t.Helper()
	c := mqtttest.Connect(t, addr, clientID)
	ps := make([][]byte, len(payloads))
	for i, p := range payloads {
		ps[i] = []byte(p)
	}
	if err := mqtttest.FirstError(mqtttest.PublishAll(c, topics, ps, 1, 1, time.Minute)); err != nil {
		t.Fatalf("publish to %s: %v", addr, err)
	}
}

// record is one line of `edgegw dis tail -o json`.
type record struct {
	Partition string `json:"partition_id"`
	Sequence  string `json:"sequence_number"`
	Key       string `json:"partition_key"`
	Data      string `json:"data"`
}

// tail reads the first n records of stream telemetry with `edgegw dis tail`.
func tail(t *testing.T, run runner, cfgPath string, n int) []record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := run(ctx, "dis", "tail", "telemetry", "-c", cfgPath, "-n", strconv.Itoa(n), "-o", "json", "--poll", "100ms")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dis tail: %v\n%s%s", err, out, stderr.String())
	}
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("dis tail printed %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != n {
		t.Fatalf("dis tail -n %d printed %d records:\n%s", n, len(recs), out)
	}
	return recs
}

// gatewayConfig is a config for one test gateway: everything on free loopback
// ports, data under dataDir (as the gateway sees it). adminPort 0 leaves the
// admin key out, for builds that predate it.
func gatewayConfig(dataDir string, mqttPort, disPort, adminPort int) string {
	admin := ""
	if adminPort != 0 {
		admin = fmt.Sprintf("admin:\n  listen: 127.0.0.1:%d\n", adminPort)
	}
	return fmt.Sprintf(`gateway:
  id: release-test
mqtt:
  anonymous: loopback
  listeners:
    - {name: tcp, type: tcp, address: "127.0.0.1:%d"}
buffer:
  dir: %s/buffer
uplink:
  flush_timeout: 5s
dis:
  builtin:
    enabled: true
    listen: "127.0.0.1:%d"
    data_dir: %s/dis
    auth: {mode: none}  # local development, loopback only
%sstreams:
  - {name: telemetry, partition_count: 1}
routes:
  - {topic: devices/+/telemetry, stream: telemetry, partition_key: "{topic.2}"}
`, mqttPort, dataDir, disPort, dataDir, admin)
}

// endToEnd runs the gateway through run with a config written to
// hostDir/edgegw.yaml (seen by the gateway as gwDir/edgegw.yaml): it waits
// for /readyz, publishes one record over MQTT, reads it back from the
// built-in DIS with `edgegw dis tail`, and stops the gateway with SIGTERM.
func endToEnd(t *testing.T, run runner, hostDir, gwDir string) {
	t.Helper()
	mqttPort, disPort, adminPort := freePort(t), freePort(t), freePort(t)
	if err := os.WriteFile(filepath.Join(hostDir, "edgegw.yaml"), []byte(gatewayConfig(gwDir, mqttPort, disPort, adminPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := gwDir + "/edgegw.yaml"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gw := start(t, run(ctx, "run", "-c", cfg))
	waitReady(t, gw, fmt.Sprintf("127.0.0.1:%d", adminPort))

	payload := `{"temp":21.5}`
	publish(t, fmt.Sprintf("127.0.0.1:%d", mqttPort), "release-e2e", []string{"devices/d1/telemetry"}, []string{payload})
	got := tail(t, run, cfg, 1)[0]
	if got.Data != payload || got.Key != "d1" || got.Sequence != "0" {
		t.Fatalf("dis tail: %+v, want data %s, key d1, sequence 0", got, payload)
	}
	gw.stop(t)
	if !strings.Contains(gw.out.String(), "shutting down") {
		t.Errorf("no orderly shutdown in the log:\n%s", gw.out)
	}
}

// syncBuffer collects a child process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
