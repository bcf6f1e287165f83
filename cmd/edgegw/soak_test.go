//go:build soak

package main

import (
	"testing"
	"time"
)

// The long form of the crash test: 10 SIGKILLs after 2-10 s of load each from
// 8 devices. make soak (go test -tags soak -run Soak -v ./cmd/edgegw/).
func TestSoakSIGKILLUnderHeavyLoad(t *testing.T) {
	crashTest(t, crashPlan{kills: 10, devices: 8, window: 64, minRun: 2 * time.Second, maxRun: 10 * time.Second})
}

// The memory test with a backlog of 1,000,000 records of ~300 bytes.
// Measured (2 shared cores under heavy load from other work, default
// gateway.memory_limit 96MiB): fill 11m10s, drain 2m25s; peak RssAnon 88.2 MiB
// during the fill, 97.4 MiB overall, against the 128 MiB bound; RssFile (the
// mmap'd tables, reclaimable page cache) peaked at 486 MiB, VmHWM 568 MiB.
// The test takes ~14 minutes on such a box.
func TestSoakMemoryMillionRecordBacklog(t *testing.T) {
	memoryTest(t, 1_000_000)
}
