// Package ratelog decides when an event that may repeat per message (an ACL
// denial, an invalid payload) is worth a log line: the first time for a key
// (a client, a client and stream), then at most once per interval with the
// number of events not logged since. Counters elsewhere count every event;
// the log shows who and what, without one line per message.
//
// Concurrency: a Limiter is safe for concurrent use; Allow takes one mutex,
// and callers call it only on the refusal path, never per accepted message.
package ratelog

import (
	"sync"
	"time"
)

// Limiter remembers, per key, when it last allowed a log line.
type Limiter struct {
	every time.Duration
	max   int
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*state
}

type state struct {
	last       time.Time
	suppressed uint64
}

// DefaultMaxKeys bounds the memory a Limiter holds: a few hundred bytes per
// key, so about a megabyte at most, whatever clients and streams misbehave.
const DefaultMaxKeys = 4096

// New returns a Limiter that allows one line per key per every, remembering
// at most maxKeys keys (0 means DefaultMaxKeys). When it is full it forgets
// every key: the next event of each is logged again, a burst of at most
// maxKeys lines, not a leak.
func New(every time.Duration, maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{every: every, max: maxKeys, now: time.Now, keys: map[string]*state{}}
}

// Allow reports whether an event for key should be logged now and, if so,
// how many events for key were not logged since the last line.
func (l *Limiter) Allow(key string) (ok bool, suppressed uint64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.keys[key]
	if s == nil {
		if len(l.keys) >= l.max {
			clear(l.keys)
		}
		l.keys[key] = &state{last: now}
		return true, 0
	}
	if now.Sub(s.last) < l.every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}

// SetClock replaces time.Now, for tests.
func (l *Limiter) SetClock(now func() time.Time) { l.now = now }
