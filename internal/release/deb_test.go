package release

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debs maps each .deb architecture to the binary it must carry. armhf takes
// the ARMv6 build: Raspberry Pi OS's armhf also runs on ARMv6 Pis.
var debs = []struct{ arch, binary string }{
	{"amd64", "amd64"},
	{"arm64", "arm64"},
	{"armhf", "armv6"},
}

// What every package installs (the conffiles first).
var (
	conffiles = []string{"/etc/edgegw/edgegw.yaml", "/etc/edgegw/edgegw.env"}
	pkgFiles  = append([]string{"/usr/bin/edgegw", "/usr/lib/systemd/system/edgegw.service",
		"/usr/share/doc/edgegw/README.md", "/usr/share/doc/edgegw/edgegw.production.yaml"}, conffiles...)
)

// The .deb in a throwaway Debian root: install, verify, remove and purge in a
// chroot (maintainer scripts without a running systemd), then install again,
// boot the root with systemd-nspawn and use the service for real: the
// hardened unit starts at boot, takes a publish, survives an upgrade with its
// data and conffile edits, and stops on removal; purge deletes the data.
//
// Declared first among the parallel tests so it takes the first slot and
// bootstraps the root while another test builds the release.
func TestDebInstallUpgradeRemove(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	mmdebstrap := requireTool(t, "mmdebstrap", "mmdebstrap")
	nspawn := requireTool(t, "systemd-nspawn", "systemd-container")
	nsenter := requireTool(t, "nsenter", "util-linux")
	journalctl := requireTool(t, "journalctl", "systemd")
	chroot := requireTool(t, "chroot", "coreutils")

	// The root is made while the release builds: one is network and disk, the
	// other CPU.
	root := filepath.Join(t.TempDir(), "root")
	bootstrapped := make(chan error, 1)
	var bootstrapOut []byte
	go func() {
		// 5 minutes: measured 40-50 s from Debian's mirror.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// essential + passwd (useradd) + systemd: the smallest root that
		// boots; the host's own Debian release.
		var err error
		bootstrapOut, err = exec.CommandContext(ctx, mmdebstrap, "--variant=essential", "--include=passwd,systemd,systemd-sysv",
			"--quiet", hostSuite(t), root).CombinedOutput()
		bootstrapped <- err
	}()
	a := release(t)
	if err := <-bootstrapped; err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, bootstrapOut)
	}
	pkgDir := filepath.Join(root, "var/tmp/edgegw-test") // /tmp is a tmpfs once booted
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ src, dst string }{
		{filepath.Join(a.dist, fmt.Sprintf("edgegw_%s_amd64.deb", a.pkgVersion)), "v1.deb"},
		{filepath.Join(a.upgrade, fmt.Sprintf("edgegw_%s_amd64.deb", a.upgradeVersion)), "v2.deb"},
	} {
		if err := copyFile(f.src, filepath.Join(pkgDir, f.dst), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v1, v2 := "/var/tmp/edgegw-test/v1.deb", "/var/tmp/edgegw-test/v2.deb"
	inChroot := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, chroot, append([]string{root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("chroot: %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	host := func(p string) string { return filepath.Join(root, p) }
	const enableLink = "/etc/systemd/system/multi-user.target.wants/edgegw.service"

	// 1. Install in the chroot.
	noWarnings(t, inChroot("dpkg", "--install", v1))
	wantInstalled(t, inChroot, a.pkgVersion)
	for _, f := range pkgFiles {
		if _, err := os.Stat(host(f)); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	wantMode(t, host("/usr/bin/edgegw"), 0o755, "root", "root", root)
	wantMode(t, host("/etc/edgegw/edgegw.yaml"), 0o640, "root", "edgegw", root)
	wantMode(t, host("/etc/edgegw/edgegw.env"), 0o600, "root", "root", root)
	wantMode(t, host("/var/lib/edgegw"), 0o750|os.ModeDir, "edgegw", "edgegw", root)
	user := passwdEntry(t, root, "edgegw")
	if uid, _ := strconv.Atoi(user[2]); uid == 0 || uid >= 1000 || user[5] != "/var/lib/edgegw" || user[6] != "/usr/sbin/nologin" {
		t.Errorf("user edgegw %v: want a system user (uid 1-999) with home /var/lib/edgegw and no login shell", user)
	}
	if _, err := os.Lstat(host(enableLink)); err != nil {
		t.Errorf("the unit is not enabled after install in a chroot: %v", err)
	}
	if out := inChroot("systemd-analyze", "verify", "edgegw.service"); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify edgegw.service:\n%s", out)
	}
	inChroot("/usr/bin/edgegw", "config", "check", "-c", "/etc/edgegw/edgegw.yaml")

	// 2. Remove, then purge, in the chroot.
	noWarnings(t, inChroot("dpkg", "--remove", "edgegw"))
	for _, f := range []string{"/usr/bin/edgegw", "/usr/lib/systemd/system/edgegw.service", enableLink} {
		if _, err := os.Lstat(host(f)); err == nil {
			t.Errorf("%s is still there after remove", f)
		}
	}
	for _, f := range append([]string{"/var/lib/edgegw"}, conffiles...) {
		if _, err := os.Stat(host(f)); err != nil {
			t.Errorf("remove must keep the data and conffiles: %v", err)
		}
	}
	noWarnings(t, inChroot("dpkg", "--purge", "edgegw"))
	for _, f := range []string{"/etc/edgegw", "/var/lib/edgegw"} {
		if _, err := os.Stat(host(f)); err == nil {
			t.Errorf("%s is still there after purge", f)
		}
	}
	if out := inChroot("sh", "-c", "dpkg-query --show edgegw 2>&1 || true"); !strings.Contains(out, "no packages found") {
		t.Errorf("dpkg still knows edgegw after purge: %s", out)
	}

	// 3. Install again, point the conffile at free ports (a local edit the
	// upgrade must keep), and boot.
	noWarnings(t, inChroot("dpkg", "--install", v1))
	mqttPort, disPort, adminPort := freePort(t), freePort(t), freePort(t)
	cfgPath := host("/etc/edgegw/edgegw.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	moves := []string{
		"address: 127.0.0.1:1883", fmt.Sprintf("address: 127.0.0.1:%d", mqttPort),
		"listen: 127.0.0.1:9180", fmt.Sprintf("listen: 127.0.0.1:%d", disPort),
		"listen: 127.0.0.1:9181", fmt.Sprintf("listen: 127.0.0.1:%d", adminPort),
	}
	for i := 0; i < len(moves); i += 2 {
		if strings.Count(string(cfg), moves[i]) != 1 {
			t.Fatalf("the packaged config should have %q once, for this test to move it:\n%s", moves[i], cfg)
		}
	}
	edited := strings.NewReplacer(moves...).Replace(string(cfg))
	if err := os.WriteFile(cfgPath, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(host("/var/log/journal"), 0o755); err != nil { // keep the journal for the checks below
		t.Fatal(err)
	}
	mqttAddr, adminAddr := fmt.Sprintf("127.0.0.1:%d", mqttPort), fmt.Sprintf("127.0.0.1:%d", adminPort)
	hostEdgegw := hostRunner(filepath.Join(a.dist, "edgegw-linux-amd64"))

	boot := startContainer(t, exec.Command(nspawn, "--quiet", "--directory", root, "--boot",
		"--register=no", "--keep-unit", "--console=pipe"))
	leader := containerInit(t, boot)
	inside := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, nsenter, append([]string{"--target", strconv.Itoa(leader),
			"--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd", "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("in the container: %v: %v\n%s\ncontainer console:\n%s", args, err, out, boot.out)
		}
		return string(out)
	}
	service := func() (active, mainPID string) {
		t.Helper()
		props := map[string]string{}
		for _, line := range strings.Split(inside("systemctl", "show", "--property=ActiveState,MainPID", "edgegw.service"), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				props[k] = v
			}
		}
		return props["ActiveState"], props["MainPID"]
	}
	journal := func() string {
		out, err := exec.Command(journalctl, "--directory", host("/var/log/journal"), "--unit", "edgegw.service", "--output", "cat", "--no-pager").CombinedOutput()
		if err != nil {
			t.Fatalf("journalctl: %v\n%s", err, out)
		}
		return string(out)
	}
	// waitService fails with the service's journal.
	waitService := func(what string, cond func() error) {
		t.Helper()
		if err := poll(boot.process, cond); err != nil {
			t.Fatalf("edgegw.service not %s: %v\njournal:\n%s\ncontainer console:\n%s", what, err, journal(), boot.out)
		}
	}
	waitService("ready after boot (enabled in the chroot)", readyz(adminAddr))
	state, pid1 := service()
	if state != "active" {
		t.Fatalf("edgegw.service is %s after boot; journal:\n%s", state, journal())
	}
	// systemctl reload: SIGHUP through the sandbox, same process.
	inside("systemctl", "reload", "edgegw.service")
	waitService("reloaded", func() error {
		m, err := httpGet("http://" + adminAddr + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(m, `edgegw_config_reloads_total{result="success"} 1`) {
			return fmt.Errorf("no successful reload in /metrics")
		}
		return nil
	})
	if state, pid := service(); state != "active" || pid != pid1 {
		t.Fatalf("after systemctl reload: %s, pid %s (was %s); want the same process", state, pid, pid1)
	}
	publish(t, mqttAddr, "release-deb-1", []string{"devices/d1/telemetry"}, []string{`{"n":1}`})
	if r := tail(t, hostEdgegw, cfgPath, 1); r[0].Data != `{"n":1}` || r[0].Key != "d1" {
		t.Fatalf("record before the upgrade: %+v", r[0])
	}

	// 4. Upgrade while it runs: the postinst restarts it on the same data.
	noWarnings(t, inside("dpkg", "--install", v2))
	if got := inside("dpkg-query", "--show", "--showformat=${Version}", "edgegw"); got != a.upgradeVersion {
		t.Errorf("version after upgrade %q, want %q", got, a.upgradeVersion)
	}
	state, pid2 := service()
	if state != "active" || pid2 == pid1 {
		t.Fatalf("after the upgrade edgegw.service is %s with pid %s (was %s): want active and restarted; journal:\n%s", state, pid2, pid1, journal())
	}
	if b, _ := os.ReadFile(cfgPath); string(b) != edited {
		t.Errorf("the upgrade did not keep the edited conffile:\n%s", b)
	}
	waitService("ready after the upgrade", readyz(adminAddr))
	publish(t, mqttAddr, "release-deb-2", []string{"devices/d2/telemetry"}, []string{`{"n":2}`})
	got := map[string]string{}
	for _, r := range tail(t, hostEdgegw, cfgPath, 2) {
		got[r.Key] = r.Data
	}
	if got["d1"] != `{"n":1}` || got["d2"] != `{"n":2}` {
		t.Fatalf("records after the upgrade %v: want d1's from before it and d2's after", got)
	}
	j := journal()
	if !strings.Contains(j, "edgegw.service: Deactivated successfully") || strings.Contains(j, "timed out") || strings.Contains(j, "SIGKILL") {
		t.Errorf("the old version did not stop cleanly within TimeoutStopSec; journal:\n%s", j)
	}

	// 5. Remove (stops and disables; keeps the data), then purge (deletes it).
	noWarnings(t, inside("dpkg", "--remove", "edgegw"))
	if state, _ := service(); state != "inactive" {
		t.Errorf("edgegw.service is %s after remove, want inactive", state)
	}
	if c, err := net.DialTimeout("tcp", mqttAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("MQTT still accepts on %s after remove", mqttAddr)
	}
	if _, err := os.Stat(host("/var/lib/edgegw/buffer")); err != nil {
		t.Errorf("remove must keep the buffer: %v", err)
	}
	noWarnings(t, inside("dpkg", "--purge", "edgegw"))
	for _, f := range []string{"/etc/edgegw", "/var/lib/edgegw", enableLink} {
		if _, err := os.Lstat(host(f)); err == nil {
			t.Errorf("%s is still there after purge", f)
		}
	}
	if out := inside("sh", "-c", "dpkg-query --show edgegw 2>&1 || true"); !strings.Contains(out, "no packages found") {
		t.Errorf("dpkg still knows edgegw after purge: %s", out)
	}
	boot.halt(t)
}

// Each .deb has the right control fields, conffiles, files, and the binary of
// its architecture.
func TestDebContents(t *testing.T) {
	t.Parallel()
	a := release(t)
	dpkgDeb := requireTool(t, "dpkg-deb", "dpkg")
	for _, d := range debs {
		t.Run(d.arch, func(t *testing.T) {
			deb := filepath.Join(a.dist, fmt.Sprintf("edgegw_%s_%s.deb", a.pkgVersion, d.arch))
			out, err := exec.Command(dpkgDeb, "--field", deb, "Package", "Version", "Architecture", "Depends").Output()
			if err != nil {
				t.Fatalf("dpkg-deb --field %s: %v", deb, err)
			}
			want := fmt.Sprintf("Package: edgegw\nVersion: %s\nArchitecture: %s\nDepends: passwd\n", a.pkgVersion, d.arch)
			if string(out) != want {
				t.Errorf("control fields:\n%s\nwant:\n%s", out, want)
			}
			out, err = exec.Command(dpkgDeb, "--info", deb, "conffiles").Output()
			if err != nil || strings.Join(sorted(strings.Fields(string(out))), " ") != strings.Join(sorted(conffiles), " ") {
				t.Errorf("conffiles %q (%v), want %v", out, err, conffiles)
			}

			files := debFiles(t, dpkgDeb, deb)
			for _, f := range pkgFiles {
				if _, ok := files[f]; !ok {
					t.Errorf("%s is not in the package", f)
				}
			}
			bin, err := os.ReadFile(filepath.Join(a.dist, "edgegw-linux-"+d.binary))
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(bin); files["/usr/bin/edgegw"] != hex.EncodeToString(sum[:]) {
				t.Errorf("/usr/bin/edgegw is not dist/edgegw-linux-%s", d.binary)
			}
		})
	}
}

// debFiles returns the regular files of a .deb with their SHA-256.
func debFiles(t *testing.T, dpkgDeb, deb string) map[string]string {
	t.Helper()
	cmd := exec.Command(dpkgDeb, "--fsys-tarfile", deb)
	r, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", deb, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, ".")] = hex.EncodeToString(sum.Sum(nil))
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
	}
	return files
}

// The .rpm packages carry the same files, conffiles and binaries.
func TestRPMContents(t *testing.T) {
	t.Parallel()
	a := release(t)
	rpm := requireTool(t, "rpm", "rpm")
	for _, r := range []struct{ arch, binary string }{{"x86_64", "amd64"}, {"aarch64", "arm64"}, {"armv7hl", "armv7"}} {
		t.Run(r.arch, func(t *testing.T) {
			file := filepath.Join(a.dist, fmt.Sprintf("edgegw-%s-1.%s.rpm", a.pkgVersion, r.arch))
			query := func(args ...string) string {
				t.Helper()
				out, err := exec.Command(rpm, append(args, file)...).CombinedOutput()
				if err != nil {
					t.Fatalf("rpm %v: %v\n%s", args, err, out)
				}
				return string(out)
			}
			if got, want := query("-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}"), fmt.Sprintf("edgegw %s %s", a.pkgVersion, r.arch); got != want {
				t.Errorf("name version arch %q, want %q", got, want)
			}
			if got := strings.Fields(query("-qp", "--configfiles")); strings.Join(sorted(got), " ") != strings.Join(sorted(conffiles), " ") {
				t.Errorf("config files %v, want %v", got, conffiles)
			}
			if s := query("-qp", "--scripts"); !strings.Contains(s, "useradd --system") || !strings.Contains(s, "systemctl stop edgegw.service") {
				t.Errorf("scripts lack the user creation or the stop on erase:\n%s", s)
			}
			// File digests are SHA-256 (rpm's digest algorithm 8).
			digests := map[string]string{}
			for _, line := range strings.Split(query("-qp", "--qf", `[%{FILENAMES} %{FILEDIGESTS}\n]`), "\n") {
				if name, sum, ok := strings.Cut(line, " "); ok {
					digests[name] = sum
				}
			}
			for _, f := range pkgFiles {
				if _, ok := digests[f]; !ok {
					t.Errorf("%s is not in the package", f)
				}
			}
			bin, err := os.ReadFile(filepath.Join(a.dist, "edgegw-linux-"+r.binary))
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(bin); digests["/usr/bin/edgegw"] != hex.EncodeToString(sum[:]) {
				t.Errorf("/usr/bin/edgegw is not dist/edgegw-linux-%s", r.binary)
			}
			query("--checksig", "--nosignature")
		})
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// hostSuite is the Debian release this machine runs, for the throwaway root.
func hostSuite(t *testing.T) string {
	b, err := os.ReadFile("/etc/os-release")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok && v != "" {
				return strings.Trim(v, `"`)
			}
		}
	}
	t.Fatalf("no VERSION_CODENAME in /etc/os-release (%v): the .deb test needs a Debian host", err)
	return ""
}

// noWarnings fails on dpkg warnings and maintainer-script errors, which
// dpkg prints without failing.
func noWarnings(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"warning:", "error:", "edgegw: "} {
		if strings.Contains(out, bad) {
			t.Errorf("dpkg printed %q:\n%s", bad, out)
		}
	}
}

func wantInstalled(t *testing.T, inChroot func(...string) string, version string) {
	t.Helper()
	if got := inChroot("dpkg-query", "--show", "--showformat=${db:Status-Status} ${Version}", "edgegw"); got != "installed "+version {
		t.Errorf("dpkg-query: %q, want installed %s", got, version)
	}
}

// wantMode checks a file's mode and owners, names resolved in root.
func wantMode(t *testing.T, path string, mode os.FileMode, owner, group, root string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	gotOwner, gotGroup := nameOf(t, root, "passwd", st.Uid), nameOf(t, root, "group", st.Gid)
	if fi.Mode()&(os.ModeDir|os.ModePerm) != mode || gotOwner != owner || gotGroup != group {
		t.Errorf("%s: %s %s:%s, want %s %s:%s", path, fi.Mode(), gotOwner, gotGroup, mode, owner, group)
	}
}

func nameOf(t *testing.T, root, db string, id uint32) string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc", db))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 2 && fields[2] == strconv.Itoa(int(id)) {
			return fields[0]
		}
	}
	return strconv.Itoa(int(id))
}

func passwdEntry(t *testing.T, root, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Split(line, ":"); len(fields) == 7 && fields[0] == name {
			return fields
		}
	}
	t.Fatalf("no user %s in %s/etc/passwd", name, root)
	return nil
}

// container is a booted systemd-nspawn container.
type container struct{ *process }

// startContainer boots a container; the test's cleanup halts it.
func startContainer(t *testing.T, cmd *exec.Cmd) container {
	t.Helper()
	c := container{start(t, cmd)}
	t.Cleanup(func() {
		if !c.exited() {
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(stopTimeout):
			}
		}
	})
	return c
}

// halt shuts the container down as systemd does on SIGTERM to nspawn.
func (c container) halt(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		t.Fatalf("the container did not halt within %s:\n%s", stopTimeout, c.out)
	}
}

// containerInit returns the host pid of the container's systemd: the child of
// systemd-nspawn.
func containerInit(t *testing.T, c container) int {
	t.Helper()
	pid := c.cmd.Process.Pid
	var init int
	waitFor(t, c.process, "running systemd", func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			child, _ := strconv.Atoi(f)
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
			if strings.TrimSpace(string(comm)) == "systemd" {
				init = child
				return nil
			}
		}
		return fmt.Errorf("no systemd among the children (%q) of systemd-nspawn %d", b, pid)
	})
	return init
}
