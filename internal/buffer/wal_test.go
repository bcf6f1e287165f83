package buffer

import (
	"bytes"
	"testing"
)

// walValidEnd reads whatever a crash or a damaged disk left in a log file:
// it never panics and never points outside the data.
func FuzzWALValidEnd(f *testing.F) {
	f.Add(make([]byte, walHeaderSize))
	f.Add(append(make([]byte, walHeaderSize), 0x40, 0, 9, 1, 0, 'q', 's', 0, 0, 0, 0, 0, 0, 0, 1, 'x', 1, 2, 3, 4))
	f.Add(append(make([]byte, walHeaderSize), bytes.Repeat([]byte{0xff}, 40)...))
	f.Fuzz(func(t *testing.T, d []byte) {
		if len(d) < walHeaderSize {
			return
		}
		if end := walValidEnd(d); end < walHeaderSize || end > len(d) {
			t.Fatalf("valid end %d outside [%d, %d]", end, walHeaderSize, len(d))
		}
	})
}
