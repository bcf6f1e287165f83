package buffer

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Badger v4's write-ahead-log entry format (memtable.go, structs.go,
// value.go), read here only to tell whether a crash left a torn write that
// Open will drop: badger truncates it silently.
const (
	walHeaderSize = 20     // vlogHeaderSize: key id and base IV at the start of a .mem file
	walBitTxn     = 1 << 6 // bitTxn: the entry belongs to a transaction
	walBitFinTxn  = 1 << 7 // bitFinTxn: the transaction's commit marker
	walMaxKey     = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// tornWAL is a write-ahead log whose end badger will drop at Open.
type tornWAL struct {
	file    string
	dropped int64 // bytes from the end of the last complete transaction to the last non-zero byte
}

// tornWALs inspects the memtable logs (*.mem) in dir before badger opens
// them. Badger replays each log up to the end of its last complete
// transaction and truncates the rest (logFile.iterate); a cleanly written log
// has only zeros there (badger zeroes the next header before each write), so
// non-zero bytes after that point are a write a crash cut short, or
// corruption. Files it cannot read are skipped: this only reports.
func tornWALs(dir string) []tornWAL {
	names, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	sort.Strings(names)
	var out []tornWAL
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil || len(data) < walHeaderSize {
			continue
		}
		end := walValidEnd(data)
		last := len(data) - 1
		for last >= end && data[last] == 0 {
			last--
		}
		if last >= end {
			out = append(out, tornWAL{file: filepath.Base(name), dropped: int64(last + 1 - end)})
		}
	}
	return out
}

// walValidEnd mirrors badger's replay: the offset after the last complete
// transaction (or stand-alone entry) of a memtable log.
func walValidEnd(d []byte) int {
	off, valid := walHeaderSize, walHeaderSize
	var open uint64 // the timestamp of the transaction being read; 0: none
	for {
		p := off + 2
		if p > len(d) {
			return valid
		}
		meta := d[off]
		klen, n := binary.Uvarint(d[p:])
		if n <= 0 {
			return valid
		}
		p += n
		vlen, n := binary.Uvarint(d[p:])
		if n <= 0 {
			return valid
		}
		p += n
		if _, n = binary.Uvarint(d[p:]); n <= 0 { // expiresAt
			return valid
		}
		p += n
		if klen == 0 || klen > walMaxKey || vlen > uint64(len(d)) {
			return valid
		}
		kvEnd := p + int(klen) + int(vlen)
		if kvEnd+crc32.Size > len(d) || crc32.Checksum(d[off:kvEnd], castagnoli) != binary.BigEndian.Uint32(d[kvEnd:]) {
			return valid
		}
		key, val := d[p:p+int(klen)], d[p+int(klen):kvEnd]
		off = kvEnd + crc32.Size
		switch {
		case meta&walBitTxn != 0:
			if len(key) < 8 {
				return valid
			}
			ts := math.MaxUint64 - binary.BigEndian.Uint64(key[len(key)-8:]) // y.ParseTs
			if open == 0 {
				open = ts
			}
			if open != ts {
				return valid
			}
		case meta&walBitFinTxn != 0:
			ts, err := strconv.ParseUint(string(val), 10, 64)
			if err != nil || ts != open {
				return valid
			}
			open, valid = 0, off
		default:
			if open != 0 {
				return valid
			}
			valid = off
		}
	}
}
