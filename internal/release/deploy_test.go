package release

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// stopMargin is the least time a service manager must allow past
// uplink.flush_timeout for the rest of a graceful stop: the built-in DIS
// server's shutdown is bounded at 5 s, and closing Badger (buffer and DIS
// data) syncs and flushes memtables, seconds on slow flash.
const stopMargin = 15 * time.Second

// The deploy files this package checks.
var (
	unitFile       = "deploy/systemd/edgegw.service"
	packagedConfig = "deploy/package/edgegw.yaml"
	prodConfig     = "deploy/edgegw.production.yaml"
	imageConfig    = "deploy/docker/edgegw.yaml"
	dockerfile     = "deploy/Dockerfile"
	kubeManifest   = "deploy/kubernetes/edgegw.yaml"
)

func repoPath(p string) string { return filepath.Join(repoRoot, p) }

// adminToken satisfies the admin.listen check of configs whose admin API
// listens beyond loopback (in production the token comes from the
// environment too); TestMain puts it into the environment of the whole
// package, where config.Load and every edgegw started see it.
const adminToken = "release-test-token"

// Every config we ship passes `edgegw config check` with the release binary,
// and keeps its data where the service (or the image's volume) may write.
func TestShippedConfigsAreValid(t *testing.T) {
	t.Parallel()
	a := release(t)
	for _, c := range []struct{ name, text string }{
		{"package", readFile(t, repoPath(packagedConfig))},
		{"production example", readFile(t, repoPath(prodConfig))},
		{"container image", readFile(t, repoPath(imageConfig))},
		{"kubernetes ConfigMap", kubeConfigMap(t)},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := stageConfig(t, c.text)
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(a.dist, "edgegw-linux-amd64"), "config", "check", "-c", path)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("edgegw config check: %v\n%s", err, out)
			}
			cfg := loadConfig(t, c.text)
			dirs := []string{cfg.Buffer.Dir}
			if cfg.DIS.Builtin.Enabled {
				dirs = append(dirs, cfg.DIS.Builtin.Server.DataDir)
			}
			for _, d := range dirs {
				if !strings.HasPrefix(d, "/var/lib/edgegw/") {
					t.Errorf("data dir %s is outside /var/lib/edgegw, the only writable place of the service and the image's volume", d)
				}
			}
		})
	}
}

// stageConfig writes a config to a temporary config/edgegw.yaml and creates
// the TLS files its listeners name, from a throwaway CA: cert_file and
// key_file a server certificate and key, client_ca_file the CA. Shipped
// configs name them relative to their own folder, as installed.
func stageConfig(t *testing.T, text string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "edgegw.yaml")
	writeFile(t, path, text)
	var pki *mqtttest.PKI
	for _, f := range tlsFiles(t, text) {
		if filepath.IsAbs(f.path) {
			t.Fatalf("TLS file %s: shipped configs name TLS files relative to their folder, so they can be checked here", f.path)
		}
		if pki == nil {
			pki = mqtttest.NewPKI(t, "release")
		}
		src := map[string]string{"cert_file": pki.ServerCert, "key_file": pki.ServerKey, "client_ca_file": pki.CAFile}[f.key]
		dst := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(src, dst, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

type tlsFile struct{ key, path string }

// tlsFiles lists the files named in the mqtt listeners' tls sections.
func tlsFiles(t *testing.T, text string) []tlsFile {
	t.Helper()
	var doc struct {
		MQTT struct {
			Listeners []struct {
				TLS map[string]any `yaml:"tls"`
			} `yaml:"listeners"`
		} `yaml:"mqtt"`
	}
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var files []tlsFile
	for _, l := range doc.MQTT.Listeners {
		for _, k := range []string{"cert_file", "key_file", "client_ca_file"} {
			if p, _ := l.TLS[k].(string); p != "" {
				files = append(files, tlsFile{k, p})
			}
		}
	}
	return files
}

// loadConfig parses a config (staged with its TLS files) in-process.
func loadConfig(t *testing.T, text string) config.Config {
	t.Helper()
	cfg, err := config.Load(stageConfig(t, text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The systemd unit: hardened, restarting on failure, with a stop timeout
// that covers the uplink's flush deadline of every config it runs.
func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(t, repoPath(unitFile))
	for _, d := range []struct{ key, value string }{
		{"Service.User", "edgegw"},
		{"Service.ExecStart", "/usr/bin/edgegw run -c /etc/edgegw/edgegw.yaml"},
		{"Service.StateDirectory", "edgegw"},
		{"Service.Restart", "on-failure"},
		{"Service.RestartPreventExitStatus", "2"},
		{"Service.NoNewPrivileges", "yes"},
		{"Service.ProtectSystem", "strict"},
		{"Service.ProtectHome", "yes"},
		{"Service.PrivateTmp", "yes"},
		{"Service.CapabilityBoundingSet", ""},
		{"Install.WantedBy", "multi-user.target"},
	} {
		if got, ok := unit[d.key]; !ok || got[len(got)-1] != d.value {
			t.Errorf("%s=%v, want %q", d.key, got, d.value)
		}
	}

	stop, err := time.ParseDuration(unit["Service.TimeoutStopSec"][0])
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	for _, c := range []string{packagedConfig, prodConfig} {
		if flush := loadConfig(t, readFile(t, repoPath(c))).Uplink.FlushTimeout.D(); stop < flush+stopMargin {
			t.Errorf("TimeoutStopSec=%s is less than %s's uplink.flush_timeout %s + %s", stop, c, flush, stopMargin)
		}
	}

	// The installed paths are the package's.
	var pkg struct {
		Contents []struct{ Dst string } `yaml:"contents"`
	}
	b, err := os.ReadFile(repoPath("deploy/nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	installed := map[string]bool{}
	for _, c := range pkg.Contents {
		installed[c.Dst] = true
	}
	for _, p := range []string{"/usr/bin/edgegw", "/etc/edgegw/edgegw.yaml", "/etc/edgegw/edgegw.env", "/usr/lib/systemd/system/edgegw.service", "/usr/share/doc/edgegw/README.md"} {
		if !installed[p] {
			t.Errorf("the unit uses %s but deploy/nfpm.yaml does not install it", p)
		}
	}

	// systemd's own rating of the sandbox: an unhardened service scores 9.6
	// (UNSAFE); this unit 1.2. 2.0 leaves room for one deliberate relaxation
	// and fails when the sandbox is dropped.
	analyze := requireTool(t, "systemd-analyze", "systemd")
	cmd := exec.Command(analyze, "security", "--offline=true", "--threshold=20", repoPath(unitFile))
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v (over 2.0?)\n%s", err, out)
	}
	if m := regexp.MustCompile(`Overall exposure level for edgegw.service: ([0-9.]+)`).FindSubmatch(out); m == nil {
		t.Errorf("no exposure level in:\n%s", out)
	} else {
		t.Logf("systemd-analyze security: exposure %s", m[1])
	}
}

// parseUnit reads a unit file into "Section.Key" → values (in order).
func parseUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, line)
			}
			unit[section+"."+k] = append(unit[section+"."+k], v)
		}
	}
	return unit
}

// ---- the container image ----

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, path string) (preamble []instruction, stages [][]instruction) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cur string
	for _, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimSpace(raw)
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		cur += line
		cmd, args, _ := strings.Cut(cur, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		cur = ""
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			preamble = append(preamble, in)
		} else {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	return preamble, stages
}

// The image without a Docker engine: the Dockerfile's build stage runs
// `make image-rootfs`, so the test runs that target, applies the final
// stage's instructions to the tree (COPY with its --chown, USER, WORKDIR,
// ENTRYPOINT, CMD), and runs the result chrooted as the image's user.
func TestContainerImage(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTool(t, "make", "make")
	preamble, stages := parseDockerfile(t, repoPath(dockerfile))

	// The build stage: Go of go.mod's go line, cross-compiling via make.
	goMod, err := os.ReadFile(repoPath("go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(goMod)
	if goLine == nil || !contains(preamble, "ARG", "GO_VERSION="+string(goLine[1])) {
		t.Errorf("the Dockerfile's ARG GO_VERSION is not go.mod's go %s: %v", goLine[1], preamble)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build := stages[0]
	if !strings.Contains(build[0].args, "golang:${GO_VERSION}") || !strings.HasSuffix(build[0].args, " AS build") {
		t.Errorf("build stage %q: want golang:${GO_VERSION} ... AS build", build[0].args)
	}
	if !contains(build, "RUN", "make image-rootfs ROOTFS=/rootfs") {
		t.Errorf("the build stage does not run make image-rootfs ROOTFS=/rootfs")
	}
	for _, need := range []string{"Makefile", "go.mod", "go.sum", "cmd/edgegw/main.go", "internal/gateway/gateway.go", imageConfig} {
		if pattern := dockerIgnored(t, need); pattern != "" {
			t.Errorf("deploy/Dockerfile.dockerignore pattern %q leaves %s out of the build context", pattern, need)
		}
	}

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if out, err := runMake(ctx, "image-rootfs", "ROOTFS="+rootfs, "VERSION="+stampVersion, "COMMIT="+stampCommit, "DATE="+stampDate); err != nil {
		t.Fatalf("make image-rootfs: %v\n%s", err, out)
	}

	// The final stage, applied to an empty tree.
	image := filepath.Join(t.TempDir(), "image")
	var (
		uid, gid            = -1, -1
		workdir             = "/"
		entrypoint, cmdArgs []string
		volumes, exposed    []string
		base                string
	)
	for _, in := range stages[len(stages)-1] {
		switch in.cmd {
		case "FROM":
			base = in.args
		case "COPY":
			applyCopy(t, in.args, rootfs, image)
		case "USER":
			u, g, _ := strings.Cut(in.args, ":")
			uid, _ = strconv.Atoi(u)
			gid, _ = strconv.Atoi(g)
			if uid <= 0 || gid <= 0 {
				t.Fatalf("USER %s: want numeric, non-root uid:gid (Kubernetes runAsNonRoot checks numbers)", in.args)
			}
		case "WORKDIR":
			workdir = in.args
		case "VOLUME":
			volumes = jsonArray(t, in)
		case "ENTRYPOINT":
			entrypoint = jsonArray(t, in)
		case "CMD":
			cmdArgs = jsonArray(t, in)
		case "EXPOSE":
			exposed = strings.Fields(in.args)
		case "STOPSIGNAL":
			if in.args != "SIGTERM" {
				t.Errorf("STOPSIGNAL %s: the gateway shuts down in order on SIGTERM", in.args)
			}
		default:
			t.Fatalf("final stage: %s %s: this test does not know what it does to the image; teach it", in.cmd, in.args)
		}
	}
	if base != "scratch" {
		t.Errorf("runtime base %q, want scratch: the binary is static", base)
	}
	if len(entrypoint) == 0 || uid < 0 {
		t.Fatalf("the final stage needs ENTRYPOINT and USER: entrypoint %v, uid %d", entrypoint, uid)
	}
	if !slices.Contains(volumes, "/var/lib/edgegw") {
		t.Errorf("VOLUME %v: the buffer (/var/lib/edgegw) must be a volume", volumes)
	}
	if fi, err := os.Stat(filepath.Join(image, "var/lib/edgegw")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("/var/lib/edgegw in the image is not owned by the image's user %d: %v", uid, err)
	}
	if !strings.Contains(readFile(t, filepath.Join(image, "etc/passwd")), fmt.Sprintf(":%d:%d:", uid, gid)) {
		t.Errorf("the image's /etc/passwd has no entry for %d:%d", uid, gid)
	}
	if _, err := os.Stat(filepath.Join(image, "etc/ssl/certs/ca-certificates.crt")); err != nil {
		t.Errorf("no CA certificates for HTTPS to DIS: %v", err)
	}
	imageCfg := loadConfig(t, readFile(t, repoPath(imageConfig)))
	if _, port, _ := net.SplitHostPort(imageCfg.MQTT.Listeners[0].Address); !slices.Contains(exposed, port) {
		t.Errorf("EXPOSE %v lacks the MQTT port %s of the image's config", exposed, port)
	}

	run := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, entrypoint[0], append(append([]string(nil), entrypoint[1:]...), args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: image, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = workdir
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/var/lib/edgegw"}
		return cmd
	}
	out, err := run(ctx, "version").CombinedOutput()
	if want := fmt.Sprintf("edgegw %s (commit %s, built %s)\n", stampVersion, stampCommit, stampDate); err != nil || string(out) != want {
		t.Errorf("version in the image: %v %q, want %q", err, out, want)
	}
	// CMD is "run -c FILE": that file, as the image's user reads it, is valid.
	if len(cmdArgs) != 3 || cmdArgs[0] != "run" || cmdArgs[1] != "-c" {
		t.Fatalf("CMD %v, want [run -c FILE]", cmdArgs)
	}
	if out, err := run(ctx, "config", "check", "-c", cmdArgs[2]).CombinedOutput(); err != nil {
		t.Errorf("config check -c %s in the image: %v\n%s", cmdArgs[2], err, out)
	}
	// A publish through the image's binary as its user, data on the volume.
	e2e := filepath.Join(image, "var/lib/edgegw/e2e")
	if err := os.Mkdir(e2e, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(e2e, uid, gid); err != nil {
		t.Fatal(err)
	}
	endToEnd(t, run, e2e, "/var/lib/edgegw/e2e")
}

// applyCopy does what `COPY --from=build [--chown=u:g] SRC DST` does, with
// the build stage's /rootfs being the tree make image-rootfs laid out.
func applyCopy(t *testing.T, args, rootfs, image string) {
	t.Helper()
	fields := strings.Fields(args)
	uid, gid, from := 0, 0, ""
	var paths []string
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f, "--from="):
			from = strings.TrimPrefix(f, "--from=")
		case strings.HasPrefix(f, "--chown="):
			u, g, _ := strings.Cut(strings.TrimPrefix(f, "--chown="), ":")
			uid, _ = strconv.Atoi(u)
			gid, _ = strconv.Atoi(g)
		case strings.HasPrefix(f, "--"):
			t.Fatalf("COPY %s: flag %s unknown to this test", args, f)
		default:
			paths = append(paths, f)
		}
	}
	if from != "build" || len(paths) != 2 || !strings.HasPrefix(paths[0], "/rootfs") {
		t.Fatalf("COPY %s: want COPY --from=build /rootfs/... DST", args)
	}
	src := filepath.Join(rootfs, strings.TrimPrefix(paths[0], "/rootfs"))
	dst := filepath.Join(image, paths[1])
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode()&(fs.ModePerm|fs.ModeSticky)); err != nil {
				return err
			}
		} else if err := copyFile(p, target, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Lchown(target, uid, gid)
	})
	if err != nil {
		t.Fatalf("COPY %s: %v", args, err)
	}
}

func jsonArray(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Fatalf("%s %s: want the exec (JSON array) form, so signals reach edgegw: %v", in.cmd, in.args, err)
	}
	return v
}

func contains(ins []instruction, cmd, substr string) bool {
	for _, in := range ins {
		if in.cmd == cmd && strings.Contains(in.args, substr) {
			return true
		}
	}
	return false
}

// dockerIgnored returns the .dockerignore pattern that excludes path, or "".
func dockerIgnored(t *testing.T, path string) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, repoPath("deploy/Dockerfile.dockerignore")), "\n") {
		pattern := strings.TrimSpace(line)
		if pattern == "" || strings.HasPrefix(pattern, "#") {
			continue
		}
		for dir := path; dir != "."; dir = filepath.Dir(dir) {
			if ok, _ := filepath.Match(strings.TrimPrefix(pattern, "**/"), dir); ok {
				return pattern
			}
			if ok, _ := filepath.Match(strings.TrimPrefix(pattern, "**/"), filepath.Base(dir)); ok && strings.HasPrefix(pattern, "**/") {
				return pattern
			}
		}
	}
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---- Kubernetes ----

// kubeDocs decodes the manifest's documents by kind.
func kubeDocs(t *testing.T) map[string][]map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(readFile(t, repoPath(kubeManifest)))))
	docs := map[string][]map[string]any{}
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", kubeManifest, err)
		}
		kind, _ := doc["kind"].(string)
		docs[kind] = append(docs[kind], doc)
	}
	return docs
}

// get walks maps (string keys) and lists (int indexes).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func kubeConfigMap(t *testing.T) string {
	t.Helper()
	cms := kubeDocs(t)["ConfigMap"]
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps in %s, want 1", len(cms), kubeManifest)
	}
	s, _ := get(cms[0], "data", "edgegw.yaml").(string)
	if s == "" {
		t.Fatalf("the ConfigMap has no data key edgegw.yaml")
	}
	return s
}

// The StatefulSet agrees with the image and with the config it mounts: probes
// on the admin port at /healthz and /readyz, the buffer on the claimed
// volume, the image's non-root user, secrets from a Secret, and a grace period
// covering the flush deadline.
func TestKubernetesExample(t *testing.T) {
	docs := kubeDocs(t)
	if len(docs["StatefulSet"]) != 1 {
		t.Fatalf("%d StatefulSets, want 1", len(docs["StatefulSet"]))
	}
	sts := docs["StatefulSet"][0]
	pod := get(sts, "spec", "template", "spec")
	ctr := get(pod, "containers", 0)
	cfgText := kubeConfigMap(t)
	cfg := loadConfig(t, cfgText)

	ports := map[string]int{}
	for i := 0; get(ctr, "ports", i) != nil; i++ {
		ports[get(ctr, "ports", i, "name").(string)] = get(ctr, "ports", i, "containerPort").(int)
	}
	portOf := func(addr string) int {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(p)
		return n
	}
	if ports["admin"] != portOf(cfg.Admin.Listen) || strings.HasPrefix(cfg.Admin.Listen, "127.") {
		t.Errorf("admin port %d; the config's admin.listen is %s: the kubelet probes the pod IP on the same port", ports["admin"], cfg.Admin.Listen)
	}
	for _, l := range cfg.MQTT.Listeners {
		if ports["mqtts"] != portOf(l.Address) || l.Type != "tls" {
			t.Errorf("container port mqtts %d; the config's listener %s is %s on %s", ports["mqtts"], l.Name, l.Type, l.Address)
		}
	}
	for _, p := range []struct{ probe, path string }{
		{"livenessProbe", "/healthz"}, {"readinessProbe", "/readyz"}, {"startupProbe", "/healthz"},
	} {
		if get(ctr, p.probe, "httpGet", "path") != p.path || get(ctr, p.probe, "httpGet", "port") != "admin" {
			t.Errorf("%s: %v, want GET %s on port admin", p.probe, get(ctr, p.probe), p.path)
		}
	}

	// The config file and the data volume.
	args, _ := get(ctr, "args").([]any)
	if len(args) != 3 || args[0] != "run" || args[1] != "-c" {
		t.Fatalf("args %v, want [run -c FILE]", args)
	}
	mounts := map[string]string{}
	for i := 0; get(ctr, "volumeMounts", i) != nil; i++ {
		mounts[get(ctr, "volumeMounts", i, "name").(string)] = get(ctr, "volumeMounts", i, "mountPath").(string)
	}
	if filepath.Join(mounts["config"], "edgegw.yaml") != args[2] {
		t.Errorf("-c %v is not the ConfigMap's edgegw.yaml mounted at %s", args[2], mounts["config"])
	}
	for _, f := range tlsFiles(t, cfgText) {
		if p := filepath.Join(mounts["config"], f.path); !strings.HasPrefix(p, mounts["tls"]+"/") {
			t.Errorf("tls %s %s is %s in the pod, not on the TLS Secret's volume (%s)", f.key, f.path, p, mounts["tls"])
		}
	}
	if !strings.HasPrefix(cfg.Buffer.Dir, mounts["data"]+"/") {
		t.Errorf("buffer.dir %s is not on the data volume (%s); the root filesystem is read-only", cfg.Buffer.Dir, mounts["data"])
	}
	if cfg.DIS.Builtin.Enabled && !strings.HasPrefix(cfg.DIS.Builtin.Server.DataDir, mounts["data"]+"/") {
		t.Errorf("dis.builtin.data_dir %s is not on the data volume", cfg.DIS.Builtin.Server.DataDir)
	}
	claim := get(sts, "spec", "volumeClaimTemplates", 0)
	if get(claim, "metadata", "name") != "data" {
		t.Errorf("volumeClaimTemplates[0] is %v, want the data volume", get(claim, "metadata", "name"))
	}
	storage, _ := get(claim, "spec", "resources", "requests", "storage").(string)
	if gi, err := strconv.Atoi(strings.TrimSuffix(storage, "Gi")); err != nil || int64(gi)<<30 <= int64(cfg.Buffer.MaxBytes) {
		t.Errorf("the claim of %q does not hold buffer.max_bytes %s", storage, cfg.Buffer.MaxBytes)
	}

	// The image's user, and the secrets.
	_, stages := parseDockerfile(t, repoPath(dockerfile))
	user := ""
	for _, in := range stages[len(stages)-1] {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if want := fmt.Sprintf("%v:%v", get(pod, "securityContext", "runAsUser"), get(pod, "securityContext", "runAsGroup")); want != user {
		t.Errorf("runAsUser:runAsGroup %s, the image's USER %s", want, user)
	}
	if get(pod, "securityContext", "runAsNonRoot") != true || get(pod, "securityContext", "fsGroup") == nil ||
		get(ctr, "securityContext", "readOnlyRootFilesystem") != true || get(ctr, "securityContext", "allowPrivilegeEscalation") != false {
		t.Errorf("security contexts: pod %v, container %v", get(pod, "securityContext"), get(ctr, "securityContext"))
	}
	if get(ctr, "envFrom", 0, "secretRef", "name") == nil {
		t.Errorf("no Secret in envFrom: the AK/SK (%s) and the admin token must come from one", "EDGEGW_DIS_ACCESS_KEY/SECRET_KEY")
	}
	if cfg.DIS.Auth.Mode != "aksk" || cfg.DIS.Auth.AccessKey != "" || cfg.DIS.Auth.SecretKey != "" || cfg.Admin.Token != "" {
		t.Errorf("the ConfigMap must hold no secrets and use AK/SK from the environment")
	}

	grace, _ := get(pod, "terminationGracePeriodSeconds").(int)
	if time.Duration(grace)*time.Second < cfg.Uplink.FlushTimeout.D()+stopMargin {
		t.Errorf("terminationGracePeriodSeconds %d is less than uplink.flush_timeout %s + %s", grace, cfg.Uplink.FlushTimeout.D(), stopMargin)
	}
	if get(sts, "spec", "serviceName") == nil || len(docs["Service"]) == 0 {
		t.Errorf("the StatefulSet needs its governing Service")
	}
}
