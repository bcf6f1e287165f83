//go:build soak

package buffer

import "testing"

// TestSoakMillionRecords: go test -tags soak -run Soak -v ./internal/buffer/
// (without -race, to measure the real RSS).
func TestSoakMillionRecords(t *testing.T) {
	const n = 1_000_000
	withMemoryLimit(t, 64<<20)
	r := soak(t, n, 300)
	r.report(t, n)
	// RssAnon is the process's own memory; RssFile (the mmap'd tables) is
	// page cache the kernel reclaims under pressure.
	if r.anonPeak > 128<<20 {
		t.Errorf("peak RssAnon %.1f MiB above the 128 MiB target for the whole gateway", mib(r.anonPeak))
	}
	if r.diskReclaimed > 64<<20 {
		t.Errorf("%.1f MiB still on disk after draining and reclaiming", mib(r.diskReclaimed))
	}
}
