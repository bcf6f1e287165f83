package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress draws one self-overwriting status line on a terminal for long
// `dis tail` reads whose records go to a file or a pipe. It is used by one
// goroutine. A progress with w == nil draws nothing.
type progress struct {
	w       io.Writer
	label   string
	start   time.Time
	last    time.Time
	records int
	bytes   int64
	drawn   bool
	now     func() time.Time
}

// progressEvery limits redraws: smooth to the eye, negligible cost.
const progressEvery = 200 * time.Millisecond

// newProgress returns a progress line on stderr when stderr is a terminal and
// stdout is not (on a terminal the records themselves show the progress).
func newProgress(label string, stdout, stderr io.Writer) *progress {
	p := &progress{label: label, now: time.Now}
	if isTerminal(stderr) && !isTerminal(stdout) {
		p.w = stderr
	}
	p.start = p.now()
	return p
}

// add counts records just written and redraws if it is time.
func (p *progress) add(records int, bytes int64) {
	if p.w == nil {
		return
	}
	p.records += records
	p.bytes += bytes
	now := p.now()
	if p.drawn && now.Sub(p.last) < progressEvery {
		return
	}
	p.last, p.drawn = now, true
	rate := 0.0
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		rate = float64(p.records) / secs
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s: %d records, %s, %.0f records/s", p.label, p.records, humanBytes(p.bytes), rate)
}

// clear removes the line so the shell prompt starts clean.
func (p *progress) clear() {
	if p.w != nil && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && fileIsTerminal(f)
}
