package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key layout (all integers big-endian so that byte order is Seq order):
//
//	'q' stream 0x00 seq(8)  one record; the value is encodeValue(record)
//	'n' stream              the next Seq to assign (8 bytes), written in every
//	                        transaction that adds records, so a drained queue
//	                        never hands out a Seq twice after a restart
//	'h' stream              head hint (8 bytes): every Seq below it is removed;
//	                        Open seeks here instead of walking tombstones
//	'c'                     clean-close marker, present only while closed cleanly
//
// Stream names may not contain 0x00, which keeps "qa\x00" from being a prefix of
// any key of stream "ab".
const (
	pfxRecord = 'q'
	pfxNext   = 'n'
	pfxHint   = 'h'
)

var keyClean = []byte{'c'}

func recordPrefix(stream string) []byte {
	p := make([]byte, 0, len(stream)+2)
	p = append(p, pfxRecord)
	p = append(p, stream...)
	return append(p, 0)
}

func recordKey(prefix []byte, seq uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], seq)
	return k
}

func seqOfKey(prefix, key []byte) (uint64, bool) {
	if len(key) != len(prefix)+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), true
}

func metaKey(pfx byte, stream string) []byte {
	k := make([]byte, 0, len(stream)+1)
	k = append(k, pfx)
	return append(k, stream...)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Value layout, version 1:
//
//	0x01 timestamp(8, int64) uvarint(len pk) pk uvarint(len pid) pid data
const valueVersion = 1

func encodeValue(r *Record) []byte {
	n := 1 + 8 + binary.MaxVarintLen32*2 + len(r.PartitionKey) + len(r.PartitionID) + len(r.Data)
	v := make([]byte, 0, n)
	v = append(v, valueVersion)
	v = binary.BigEndian.AppendUint64(v, uint64(r.Timestamp))
	v = binary.AppendUvarint(v, uint64(len(r.PartitionKey)))
	v = append(v, r.PartitionKey...)
	v = binary.AppendUvarint(v, uint64(len(r.PartitionID)))
	v = append(v, r.PartitionID...)
	return append(v, r.Data...)
}

var errCorruptValue = errors.New("corrupt record value")

// decodeValue fills r from v. r.Data aliases v.
func decodeValue(v []byte, r *Record) error {
	if len(v) < 9 || v[0] != valueVersion {
		return fmt.Errorf("%w: version/length", errCorruptValue)
	}
	r.Timestamp = int64(binary.BigEndian.Uint64(v[1:9]))
	v = v[9:]
	str := func() (string, bool) {
		l, n := binary.Uvarint(v)
		if n <= 0 || l > uint64(len(v)-n) {
			return "", false
		}
		s := string(v[n : n+int(l)])
		v = v[n+int(l):]
		return s, true
	}
	var ok bool
	if r.PartitionKey, ok = str(); !ok {
		return fmt.Errorf("%w: partition key", errCorruptValue)
	}
	if r.PartitionID, ok = str(); !ok {
		return fmt.Errorf("%w: partition id", errCorruptValue)
	}
	r.Data = v
	return nil
}

// timestampOf returns the receive time stored in a record value without
// decoding the rest.
func timestampOf(v []byte) (int64, error) {
	if len(v) < 9 || v[0] != valueVersion {
		return 0, fmt.Errorf("%w: version/length", errCorruptValue)
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), nil
}
