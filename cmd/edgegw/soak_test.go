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
func TestSoakMemoryMillionRecordBacklog(t *testing.T) {
	memoryTest(t, 1_000_000)
}
