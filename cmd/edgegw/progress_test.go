//go:build linux

package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProgressLineRedrawsAtMostEveryInterval(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	p := &progress{w: &out, label: "dis tail s", start: now, now: func() time.Time { return now }}
	p.add(1, 100)
	now = now.Add(progressEvery / 2)
	p.add(1, 100) // too soon: counted, not drawn
	now = now.Add(progressEvery)
	p.add(1, 100)
	lines := strings.Split(out.String(), "\r\x1b[K")
	if len(lines) != 3 || lines[1] != "dis tail s: 1 records, 100 B, 0 records/s" || !strings.HasPrefix(lines[2], "dis tail s: 3 records, 300 B, 10 records/s") {
		t.Fatalf("drawn %q", out.String())
	}
	p.clear()
	if !strings.HasSuffix(out.String(), "\r\x1b[K") {
		t.Fatal("clear did not erase the line")
	}
}

func TestNoProgressLineUnlessOnlyStderrIsATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(&bytes.Buffer{}) {
		t.Fatal("a file or a buffer taken for a terminal")
	}
	p := newProgress("x", f, f)
	p.add(5, 5)
	p.clear()
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Fatal("progress written to a file")
	}
	tty := openTTY(t)
	if !isTerminal(tty) {
		t.Fatal("a pseudo-terminal not recognised")
	}
	if newProgress("x", f, tty).w == nil {
		t.Fatal("no progress line on a terminal stderr with stdout to a file")
	}
	if newProgress("x", tty, tty).w != nil {
		t.Fatal("a progress line although the records go to the same terminal")
	}
}
