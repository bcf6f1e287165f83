package buffer

// window is the in-memory image of one stream's queue between its head and its
// tail: for every Seq in [base, base+len) it holds the stored size of the record
// (its badger value length), or 0 once the record was removed (acked, dropped or
// expired). Stored sizes are never 0 (a record value has a header), so 0 is free
// to mean "removed".
//
// It costs 4 bytes per buffered record (4 MiB for a 1,000,000-record backlog) and
// lets Ack, drop_oldest and the byte bound work without touching the disk.
// Storage is a list of fixed-size chunks so that the head end is released as the
// queue drains and the tail end grows without copying the whole backlog.
//
// Not safe for concurrent use; Buffer.mu guards it.
type window struct {
	base   uint64     // Seq of chunks[0][0]
	n      uint64     // number of slots in use, from base
	chunks [][]uint32 // each of chunkLen slots
}

// chunkLen slots per chunk: 16 KiB per chunk, small enough that an idle stream
// holds little, large enough that a 1M backlog is ~250 chunk headers.
const chunkLen = 4096

func newWindow(base uint64) window { return window{base: base} }

// end returns the first Seq past the window.
func (w *window) end() uint64 { return w.base + w.n }

// push appends the size of the record with Seq w.end().
func (w *window) push(size uint32) {
	off := w.n + uint64(w.base%chunkLen)
	ci := int(off / chunkLen)
	if ci == len(w.chunks) {
		w.chunks = append(w.chunks, make([]uint32, chunkLen))
	}
	w.chunks[ci][off%chunkLen] = size
	w.n++
}

// slot returns a pointer to the slot of seq, or nil when seq is outside the window.
func (w *window) slot(seq uint64) *uint32 {
	if seq < w.base || seq >= w.end() {
		return nil
	}
	off := seq - w.base + uint64(w.base%chunkLen)
	return &w.chunks[off/chunkLen][off%chunkLen]
}

// get returns the size stored for seq, 0 when removed or outside the window.
func (w *window) get(seq uint64) uint32 {
	if p := w.slot(seq); p != nil {
		return *p
	}
	return 0
}

// dropFront forgets every slot below seq (which must be <= end()), releasing
// chunks that fall entirely below it.
func (w *window) dropFront(seq uint64) {
	if seq <= w.base {
		return
	}
	if seq > w.end() {
		seq = w.end()
	}
	startOff := uint64(w.base % chunkLen)
	newOff := seq - w.base + startOff
	drop := int(newOff / chunkLen)
	if drop > 0 {
		clear(w.chunks[:drop]) // let the GC take them
		w.chunks = w.chunks[drop:]
	}
	w.n -= seq - w.base
	w.base = seq
	if w.n == 0 && len(w.chunks) > 0 && w.base%chunkLen == 0 {
		w.chunks = w.chunks[:0]
	}
}

// truncate forgets every slot at or above seq (rollback of a failed commit).
func (w *window) truncate(seq uint64) {
	if seq >= w.end() {
		return
	}
	if seq < w.base {
		seq = w.base
	}
	for s := seq; s < w.end(); s++ {
		*w.slot(s) = 0
	}
	w.n = seq - w.base
	keep := int((w.n + uint64(w.base%chunkLen) + chunkLen - 1) / chunkLen)
	clear(w.chunks[keep:])
	w.chunks = w.chunks[:keep]
}
