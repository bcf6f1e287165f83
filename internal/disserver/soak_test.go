//go:build soak

package disserver

import (
	"testing"
)

// The long form of the crash test (make soak): ten SIGKILL cycles on one
// data directory, each verifying everything acknowledged in every earlier
// cycle.
func TestSoakRepeatedSIGKILL(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, dir)
	setupCrashFixtures(t, c)
	var h crashHistory
	h.lastCheckpoint = -1
	for cycle := range 10 {
		c = crashCycle(t, dir, c, &h, cycle, 5000)
		h.verify(t, c)
		t.Logf("cycle %d: %d acknowledged records readable, checkpoint ≥ %d", cycle, len(h.acked), h.lastCheckpoint)
	}
}
