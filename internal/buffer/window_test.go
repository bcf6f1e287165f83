package buffer

import (
	"math/rand/v2"
	"testing"
)

// TestWindowMatchesAMapModel drives the window through random pushes,
// removals, head drops and truncations across chunk boundaries and compares
// it with a plain map.
func TestWindowMatchesAMapModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for _, base := range []uint64{1, chunkLen - 3, 5 * chunkLen} {
		w := newWindow(base)
		model := map[uint64]uint32{}
		lo, hi := base, base // model covers [lo, hi)
		for step := range 200_000 {
			switch op := rng.IntN(100); {
			case op < 60: // push
				size := uint32(rng.IntN(1000) + 1)
				w.push(size)
				model[hi] = size
				hi++
			case op < 85 && hi > lo: // remove one
				s := lo + uint64(rng.IntN(int(hi-lo)))
				if p := w.slot(s); p != nil {
					*p = 0
				}
				model[s] = 0
			case op < 97 && hi > lo: // drop the front
				to := lo + uint64(rng.IntN(int(hi-lo)+1))
				w.dropFront(to)
				for s := lo; s < to; s++ {
					delete(model, s)
				}
				lo = to
			case hi > lo: // truncate the tail (a failed commit)
				from := hi - uint64(rng.IntN(int(min(hi-lo, 3*chunkLen))+1))
				w.truncate(from)
				for s := from; s < hi; s++ {
					delete(model, s)
				}
				hi = from
			}
			if w.base != lo || w.end() != hi {
				t.Fatalf("step %d: window [%d,%d), model [%d,%d)", step, w.base, w.end(), lo, hi)
			}
			if step%997 == 0 {
				for s := lo; s < hi; s++ {
					if w.get(s) != model[s] {
						t.Fatalf("step %d: seq %d = %d, model %d", step, s, w.get(s), model[s])
					}
				}
				if w.get(lo-1) != 0 || w.get(hi) != 0 || w.slot(hi) != nil {
					t.Fatalf("step %d: slots outside the window", step)
				}
				if max := int((hi-lo)/chunkLen) + 2; len(w.chunks) > max {
					t.Fatalf("step %d: %d chunks for %d slots", step, len(w.chunks), hi-lo)
				}
			}
		}
	}
}
