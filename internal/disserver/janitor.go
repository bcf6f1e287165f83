package disserver

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgegw/edgegw/internal/dis"
)

// janitorChunk bounds one delete transaction: 1000 keys of ~21 bytes stay far
// below Badger's per-transaction limit (15% of the memtable).
const janitorChunk = 1000

// janitor runs retention, partition expiry and stream purges every
// janitor_interval, and on kickJanitor. It owns no state but the store.
func (s *Server) janitor() {
	defer close(s.janitorDone)
	t := time.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.janitorStop:
			return
		case <-t.C:
		case <-s.janitorKick:
		}
		if err := s.runJanitor(); err != nil {
			s.log.Warn("DIS janitor pass failed", "err", err)
		}
	}
}

func (s *Server) kickJanitor() {
	select {
	case s.janitorKick <- struct{}{}:
	default:
	}
}

// runJanitor does one pass. Exported to tests through the package.
func (s *Server) runJanitor() error {
	var errs []error
	if err := s.purgeDeletedStreams(); err != nil {
		errs = append(errs, err)
	}
	s.mu.RLock()
	var streams []*stream
	for _, p := range s.projects {
		for _, st := range p.streams {
			streams = append(streams, st)
		}
	}
	s.mu.RUnlock()
	for _, st := range streams {
		if err := s.expireStream(st); err != nil {
			errs = append(errs, err)
		}
	}
	// Reclaim value-log space (only ~1 MiB records live there); loop while
	// it rewrites, as the Badger docs advise.
	for range 10 {
		if s.db.RunValueLogGC(0.5) != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// expireStream removes the records of each partition that are older than
// the stream's retention, and turns DELETED partitions whose data has all
// aged out EXPIRED.
func (s *Server) expireStream(st *stream) error {
	now := ms(s.now())
	st.mu.RLock()
	if st.deleted {
		st.mu.RUnlock()
		return nil
	}
	horizon := now - st.meta.retentionMillis()
	sid := st.sid
	parts := append([]*partition(nil), st.parts...)
	var toExpire []int
	for i, pm := range st.meta.Partitions {
		if pm.Status == dis.PartitionDeleted && pm.DeletedAt <= horizon {
			toExpire = append(toExpire, i)
		}
	}
	st.mu.RUnlock()
	for _, p := range parts {
		if err := s.trimPartition(sid, p, horizon); err != nil {
			return err
		}
	}
	if len(toExpire) == 0 {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return nil
	}
	next := st.meta
	next.Partitions = append([]partMeta(nil), st.meta.Partitions...)
	for _, i := range toExpire {
		if next.Partitions[i].Status == dis.PartitionDeleted {
			next.Partitions[i].Status = dis.PartitionExpired
		}
	}
	if err := s.syncUpdate(func(txn *badger.Txn) error { return s.persistStream(txn, &next) }); err != nil {
		return err
	}
	st.meta = next
	return nil
}

// trimPartition deletes records whose arrival time is before horizon, from
// the head, in chunks; each chunk also moves the persisted first-sequence
// marker, so a restart never finds a marker behind deleted records or ahead
// of kept ones.
func (s *Server) trimPartition(sid uint64, p *partition, horizon int64) error {
	for {
		first := p.first.Load()
		end := p.committed.Load()
		newFirst := first
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: partPrefix(pfxRecord, sid, p.idx)})
			defer it.Close()
			for it.Seek(recordKey(sid, p.idx, first)); it.Valid() && newFirst-first < janitorChunk; it.Next() {
				seq := recordSeq(it.Item().Key())
				if seq >= end {
					break
				}
				var arrival int64
				err := it.Item().Value(func(v []byte) error {
					rec, err := decodeRecord(v)
					arrival = rec.Arrival
					return err
				})
				if err != nil {
					return err
				}
				if arrival >= horizon {
					break
				}
				newFirst = seq + 1
			}
			return nil
		})
		if err != nil || newFirst == first {
			return err
		}
		err = s.db.Update(func(txn *badger.Txn) error {
			for seq := first; seq < newFirst; seq++ {
				if err := txn.Delete(recordKey(sid, p.idx, seq)); err != nil {
					return err
				}
			}
			return txn.Set(firstKey(sid, p.idx), binary.BigEndian.AppendUint64(nil, uint64(newFirst)))
		})
		if err != nil {
			return err
		}
		p.first.Store(newFirst)
	}
}

// purgeDeletedStreams removes every key of streams deleted earlier.
func (s *Server) purgeDeletedStreams() error {
	type purge struct {
		key []byte
		sid uint64
	}
	var todo []purge
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxPurge)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if len(k) == len(pfxPurge)+8 {
				todo = append(todo, purge{k, binary.BigEndian.Uint64(k[len(pfxPurge):])})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range todo {
		prefixes := [][]byte{
			streamRecordPrefix(p.sid),
			binary.BigEndian.AppendUint64([]byte{pfxFirst}, p.sid),
		}
		for _, pre := range prefixes {
			if err := s.deleteAll(pre, nil); err != nil {
				return err
			}
		}
		// Checkpoints of the stream, across the apps of every project.
		if err := s.deleteAll([]byte{pfxCheckpoint}, func(k []byte) bool {
			sid, _, ok := checkpointKeySID(k)
			return ok && sid == p.sid
		}); err != nil {
			return err
		}
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(p.key) }); err != nil {
			return err
		}
	}
	return nil
}

// deleteAll deletes the keys under prefix that match keep (nil: all), in chunks.
func (s *Server) deleteAll(prefix []byte, match func([]byte) bool) error {
	for {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < janitorChunk; it.Next() {
				if match == nil || match(it.Item().Key()) {
					keys = append(keys, it.Item().KeyCopy(nil))
				}
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		err = s.db.Update(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(keys) < janitorChunk {
			return nil
		}
	}
}
