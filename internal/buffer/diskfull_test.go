package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const diskFullEnv = "EDGEGW_BUFFER_DISKFULL_DIR"

// TestDiskFullChild runs in a child process on a small tmpfs: if badger ever
// touched a page the filesystem cannot back, the kernel would kill it with
// SIGBUS, and the parent reports that instead of dying itself.
func TestDiskFullChild(t *testing.T) {
	mnt := os.Getenv(diskFullEnv)
	if mnt == "" {
		t.Skip("helper process for TestRealFullFilesystem")
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(3)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 16<<20), 0o600); err != nil {
		fail("ballast: %v", err)
	}
	b, err := Open(Options{Dir: filepath.Join(mnt, "buf"), MinFreeDisk: 24 << 20,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		fail("open: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := func() []byte { // incompressible, so snappy does not stretch the fill
		d := make([]byte, 4096)
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		return d
	}
	ok := 0
	var full error
	for full == nil {
		_, err := b.Append(context.Background(), Record{Stream: "s", Data: data()})
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrDiskFull):
			full = err
		default:
			fail("append %d: unexpected error %v", ok, err)
		}
		if ok > 100000 {
			fail("never filled up")
		}
	}
	fmt.Printf("full-after %d\nerror %s\n", ok, full)
	// Still full: refused again, nothing written.
	if _, err := b.Append(context.Background(), Record{Stream: "s", Data: data()}); !errors.Is(err, ErrDiskFull) {
		fail("second append on the full disk: %v", err)
	}
	// Space returns: appends succeed again without a restart.
	if err := os.Remove(ballast); err != nil {
		fail("remove ballast: %v", err)
	}
	for range 10 {
		if _, err := b.Append(context.Background(), Record{Stream: "s", Data: data()}); err != nil {
			fail("append after space returned: %v", err)
		}
		ok++
	}
	if err := b.Close(); err != nil {
		fail("close: %v", err)
	}
	fmt.Printf("total %d\n", ok)
}

func TestRealFullFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a size-limited tmpfs; TestDiskFullFailsAppendsWithoutDamageAndRecovers covers the logic with an injected ENOSPC")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the injected-ENOSPC test covers the logic", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})

	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+mnt)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("child killed by %v on the full filesystem (SIGBUS: badger faulted on an mmap page the disk could not back)\n%s", ws.Signal(), stderr.String())
	}
	if strings.Contains(stderr.String(), "SIGBUS") {
		t.Fatalf("child crashed with SIGBUS on the full filesystem: badger faulted on an mmap page the disk could not back; the free-space reserve did not hold\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var fullAfter, total int
	var reason string
	for _, line := range strings.Split(stdout.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "full-after "):
			fmt.Sscan(strings.TrimPrefix(line, "full-after "), &fullAfter)
		case strings.HasPrefix(line, "total "):
			fmt.Sscan(strings.TrimPrefix(line, "total "), &total)
		case strings.HasPrefix(line, "error "):
			reason = strings.TrimPrefix(line, "error ")
		}
	}
	t.Logf("filled after %d records of 4 KiB; refused with: %s; %d records in total", fullAfter, reason, total)
	if fullAfter == 0 || total != fullAfter+10 || !strings.Contains(reason, "free") {
		t.Fatalf("child report: %q", stdout.String())
	}

	// Everything acknowledged survived, in order.
	b := openT(t, Options{Dir: filepath.Join(mnt, "buf"), MinFreeDisk: -1})
	rs := readAll(t, b, "s")
	if len(rs) != total || rs[0].Seq != 1 || rs[len(rs)-1].Seq != uint64(total) {
		t.Fatalf("after reopen: %d records (want %d)", len(rs), total)
	}
}
