package main

import (
	"os"
	"testing"
)

// openTTY opens the follower side of a new pseudo-terminal.
func openTTY(t *testing.T) *os.File {
	t.Helper()
	_, tty := openPTY(t)
	return tty
}
