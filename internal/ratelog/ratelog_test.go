package ratelog

import (
	"testing"
	"time"
)

func TestFirstEventThenOncePerInterval(t *testing.T) {
	l := New(time.Minute, 0)
	now := time.Unix(1000, 0)
	l.SetClock(func() time.Time { return now })

	if ok, n := l.Allow("c1"); !ok || n != 0 {
		t.Fatalf("first event: got %v %d, want logged with nothing suppressed", ok, n)
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("c1"); ok {
			t.Fatalf("event %d within the interval was allowed", i)
		}
	}
	if ok, _ := l.Allow("c2"); !ok {
		t.Fatal("another key is independent and must be logged")
	}
	now = now.Add(time.Minute)
	if ok, n := l.Allow("c1"); !ok || n != 5 {
		t.Fatalf("after the interval: got %v %d, want logged with 5 suppressed", ok, n)
	}
	if ok, _ := l.Allow("c1"); ok {
		t.Fatal("the interval restarts at the last logged event")
	}
}

func TestFullLimiterForgetsInsteadOfGrowing(t *testing.T) {
	l := New(time.Hour, 2)
	l.Allow("a")
	l.Allow("b")
	l.Allow("c") // full: forgets a and b
	if len(l.keys) != 1 {
		t.Fatalf("keys = %d, want 1 after the reset", len(l.keys))
	}
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("a forgotten key is logged again")
	}
}
