package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// previousRelease is the build whose buffer this build must drain after an
// upgrade. No release is tagged yet, so it is the last commit before the
// release work (the gateway as first shipped); when a release is tagged, set
// this to the tag before it. EDGEGW_UPGRADE_FROM overrides it.
const previousRelease = "adef60b364ede34e1d1de78dbcf91e6ee178b2fe"

// Upgrade in place: the previous release accepts records while DIS is
// unreachable, so they stay in its buffer, and stops; this build then opens
// the same buffer and drains every record, in order per device, into a DIS
// that nothing else wrote to.
func TestUpgradeDrainsPreviousBuildsBuffer(t *testing.T) {
	t.Parallel()
	git := requireTool(t, "git", "git")
	a := release(t)
	ref := previousRelease
	if v := os.Getenv("EDGEGW_UPGRADE_FROM"); v != "" {
		ref = v
	}
	old := buildAt(t, git, ref)

	dir := t.TempDir()
	mqttPort := freePort(t)
	// Nothing listens on deadPort: every PutRecords of the old build fails.
	deadPort := freePort(t)
	oldCfg := filepath.Join(dir, "old.yaml")
	writeFile(t, oldCfg, fmt.Sprintf(`gateway:
  id: release-upgrade
mqtt:
  anonymous: loopback
  listeners:
    - {name: tcp, type: tcp, address: "127.0.0.1:%d"}
buffer:
  dir: %s/buffer
uplink:
  flush_timeout: 1s
dis:
  endpoint: http://127.0.0.1:%d
  builtin:
    enabled: false
streams:
  - {name: telemetry, partition_count: 1}
routes:
  - {topic: devices/+/telemetry, stream: telemetry, partition_key: "{topic.2}"}
`, mqttPort, dir, deadPort))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gw := start(t, exec.CommandContext(ctx, old, "run", "-c", oldCfg))
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", mqttPort)
	waitListening(t, gw, mqttAddr)
	// 20 records from two devices, interleaved: enough to see order per key
	// kept across the upgrade, few enough to read back in one call.
	const n = 20
	var topics, payloads []string
	for i := range n {
		dev := fmt.Sprintf("d%d", i%2+1)
		topics = append(topics, "devices/"+dev+"/telemetry")
		payloads = append(payloads, fmt.Sprintf(`{"dev":"%s","n":%d}`, dev, i))
	}
	publish(t, mqttAddr, "release-upgrade", topics, payloads)
	gw.stop(t)
	if entries, _ := os.ReadDir(filepath.Join(dir, "buffer")); len(entries) == 0 {
		t.Fatal("the previous build left no buffer")
	}

	// The current release binary, on the same buffer, with a fresh built-in DIS
	// (the old build had none, so dir/dis is new).
	newCfg := filepath.Join(dir, "new.yaml")
	disPort, adminPort := freePort(t), freePort(t)
	writeFile(t, newCfg, gatewayConfig(dir, mqttPort, disPort, adminPort))
	current := hostRunner(filepath.Join(a.dist, "edgegw-linux-amd64"))
	gw = start(t, current(ctx, "run", "-c", newCfg))
	waitReady(t, gw, fmt.Sprintf("127.0.0.1:%d", adminPort))

	// The uplink keeps order per partition key (device), not across keys.
	want, got := map[string][]string{}, map[string][]string{}
	for i, p := range payloads {
		dev := strings.Split(topics[i], "/")[1]
		want[dev] = append(want[dev], p)
	}
	for _, r := range tail(t, current, newCfg, n) {
		got[r.Key] = append(got[r.Key], r.Data)
	}
	for dev := range want {
		if strings.Join(got[dev], "\n") != strings.Join(want[dev], "\n") {
			t.Errorf("device %s: the new build drained\n%s\nwant, in this order:\n%s", dev, strings.Join(got[dev], "\n"), strings.Join(want[dev], "\n"))
		}
	}
	gw.stop(t)
}

// buildAt builds cmd/edgegw as it was at ref, from `git archive`, without
// touching the working tree.
func buildAt(t *testing.T, git, ref string) string {
	t.Helper()
	if out, err := exec.Command(git, "-C", repoRoot, "rev-parse", "--verify", "--quiet", ref+"^{commit}").CombinedOutput(); err != nil {
		shallow, _ := exec.Command(git, "-C", repoRoot, "rev-parse", "--is-shallow-repository").Output()
		t.Fatalf("%s is not a commit of this clone (%v %s; shallow: %s); fetch the full history (git fetch --unshallow) or set EDGEGW_UPGRADE_FROM",
			ref, err, out, strings.TrimSpace(string(shallow)))
	}
	src := t.TempDir()
	tarball := filepath.Join(src, "src.tar")
	if out, err := exec.Command(git, "-C", repoRoot, "archive", "--format=tar", "-o", tarball, ref).CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", ref, err, out)
	}
	if out, err := exec.Command("tar", "-xf", tarball, "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v\n%s", ref, err, out)
	}
	bin := filepath.Join(t.TempDir(), "edgegw-"+ref)
	// 5 minutes: that commit's dependency versions may not be in the build
	// cache; compiling them took about a minute here.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/edgegw")
	cmd.Dir = src
	cmd.Env = append(withoutEnv(os.Environ(), "GOFLAGS", "GOOS", "GOARCH", "GOARM"),
		"CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", ref, err, out)
	}
	return bin
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
