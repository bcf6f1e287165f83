package release

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// maxBinaryBytes is the Makefile's MAX_BINARY_BYTES: issue 8's 30 MB budget.
const maxBinaryBytes = 30_000_000

// platform is one release binary and how to run it here.
type platform struct {
	suffix  string // dist/edgegw-linux-<suffix>
	machine elf.Machine
	class   elf.Class
	// qemu is the user-mode emulator ("" runs natively) and cpu the CPU it
	// emulates: the oldest core of the boards each binary is for.
	qemu, cpu string
}

var platforms = []platform{
	{"amd64", elf.EM_X86_64, elf.ELFCLASS64, "", ""},
	// Cortex-A53: Raspberry Pi 3 and most 64-bit ARM edge boxes.
	{"arm64", elf.EM_AARCH64, elf.ELFCLASS64, "qemu-aarch64-static", "cortex-a53"},
	// Cortex-A7: Raspberry Pi 2 and common ARMv7 boards.
	{"armv7", elf.EM_ARM, elf.ELFCLASS32, "qemu-arm-static", "cortex-a7"},
	// ARM1176: Raspberry Pi Zero and 1, where a GOARM=7 binary dies with SIGILL.
	{"armv6", elf.EM_ARM, elf.ELFCLASS32, "qemu-arm-static", "arm1176"},
}

func (p platform) runner(t *testing.T, path string) runner {
	if p.qemu == "" {
		return hostRunner(path)
	}
	qemu := requireTool(t, p.qemu, "qemu-user-static")
	return func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, qemu, append([]string{"-cpu", p.cpu, path}, args...)...)
	}
}

// make dist: one static, stripped, path-free binary per platform, within the
// size budget, each size printed, and SHA256SUMS matching every artifact.
func TestDistBinaries(t *testing.T) {
	t.Parallel()
	a := release(t)
	goroot := runtime.GOROOT()
	for _, p := range platforms {
		t.Run(p.suffix, func(t *testing.T) {
			path := filepath.Join(a.dist, "edgegw-linux-"+p.suffix)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) > maxBinaryBytes {
				t.Errorf("%d bytes, over the %d byte budget", len(data), maxBinaryBytes)
			}
			m := regexp.MustCompile(regexp.QuoteMeta(path) + `\s+(\d+) bytes`).FindStringSubmatch(a.makeOutput)
			if m == nil || m[1] != strconv.Itoa(len(data)) {
				t.Errorf("make did not print the size %d of %s:\n%s", len(data), path, a.makeOutput)
			}

			f, err := elf.NewFile(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != p.machine || f.Class != p.class {
				t.Errorf("ELF %s %s, want %s %s", f.Class, f.Machine, p.class, p.machine)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
					t.Errorf("dynamically linked (%s): CGO_ENABLED=0 makes it static", prog.Type)
				}
			}
			for _, s := range f.Sections {
				if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug") || strings.HasPrefix(s.Name, ".zdebug") {
					t.Errorf("section %s: not stripped (-ldflags -s -w)", s.Name)
				}
			}
			for _, dir := range []string{repoRoot, goroot} {
				if dir != "" && bytes.Contains(data, []byte(dir+"/")) {
					t.Errorf("contains the build path %s: not built with -trimpath", dir)
				}
			}
		})
	}

	t.Run("SHA256SUMS", func(t *testing.T) {
		sums, err := os.ReadFile(filepath.Join(a.dist, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(sums))
		for sc.Scan() {
			sum, name, ok := strings.Cut(sc.Text(), "  ")
			if !ok {
				t.Fatalf("SHA256SUMS line %q is not \"<sha256>  <file>\"", sc.Text())
			}
			data, err := os.ReadFile(filepath.Join(a.dist, name))
			if err != nil {
				t.Fatal(err)
			}
			if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
				t.Errorf("%s: SHA256SUMS says %s, the file hashes to %x", name, sum, h)
			}
			listed[name] = true
		}
		files, _ := filepath.Glob(filepath.Join(a.dist, "edgegw*"))
		if len(files) != len(platforms)+6 { // 4 binaries, 3 .deb, 3 .rpm
			t.Errorf("dist holds %d artifacts, want %d: %v", len(files), len(platforms)+6, files)
		}
		for _, f := range files {
			if !listed[filepath.Base(f)] {
				t.Errorf("%s is not in SHA256SUMS", filepath.Base(f))
			}
		}
	})
}

// The budget is enforced: with a budget smaller than every binary,
// make dist-check fails and names each one.
func TestDistSizeBudgetFailsTheBuild(t *testing.T) {
	t.Parallel()
	a := release(t)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if out, err := runMake(ctx, "dist-check", "DIST="+a.dist); err != nil {
		t.Fatalf("dist-check with the real budget failed: %v\n%s", err, out)
	}
	const tiny = 1_000_000 // 1 MB: every edgegw binary is larger
	out, err := runMake(ctx, "dist-check", "DIST="+a.dist, fmt.Sprintf("MAX_BINARY_BYTES=%d", tiny))
	if err == nil {
		t.Fatalf("dist-check passed with a %d byte budget:\n%s", tiny, out)
	}
	for _, p := range platforms {
		if !strings.Contains(out, fmt.Sprintf("edgegw-linux-%s is ", p.suffix)) || !strings.Contains(out, fmt.Sprintf("over the budget of %d bytes", tiny)) {
			t.Errorf("dist-check output does not name edgegw-linux-%s as over budget:\n%s", p.suffix, out)
		}
	}
}

// Every release binary runs on its platform's oldest CPU: `edgegw version`
// prints what make stamped, and a publish reaches the built-in DIS.
func TestBinariesRunOnTheirCPUs(t *testing.T) {
	t.Parallel()
	a := release(t)
	for _, p := range platforms {
		t.Run(p.suffix, func(t *testing.T) {
			t.Parallel()
			run := p.runner(t, filepath.Join(a.dist, "edgegw-linux-"+p.suffix))
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			out, err := run(ctx, "version").CombinedOutput()
			want := fmt.Sprintf("edgegw %s (commit %s, built %s)\n", stampVersion, stampCommit, stampDate)
			if err != nil || string(out) != want {
				t.Fatalf("version: %v %q, want %q", err, out, want)
			}
			dir := t.TempDir()
			endToEnd(t, run, dir, dir)
		})
	}
}
