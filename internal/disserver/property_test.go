package disserver

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// Property tests: random workloads from fixed seeds (reproducible), checked
// against invariants rather than fixed answers.

// TestPropertySequencesDenseAndTrimHorizonExact: with concurrent producers,
// every partition's sequence numbers are exactly 0..n-1, and reading from
// TRIM_HORIZON returns exactly what was put, in sequence order, with each
// producer's records of one key in the order it sent them.
func TestPropertySequencesDenseAndTrimHorizonExact(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			e := startEnv(t, nil)
			const partitions = 4
			e.createStream("s", partitions)
			type sent struct {
				data string
				key  string
			}
			var mu sync.Mutex
			got := map[string]map[int64]sent{} // partition → seq → record
			var wg sync.WaitGroup
			const producers, requests = 6, 15 // bounded load: at most 6×15×40 records
			for g := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(seed, uint64(g)))
					for r := range requests {
						n := 1 + rng.IntN(40)
						var entries []putEntry
						for i := range n {
							en := putEntry{Data: b64(fmt.Sprintf("g%d-r%d-i%d", g, r, i))}
							switch rng.IntN(3) {
							case 0:
								en.PartitionKey = fmt.Sprintf("key-%d-%d", g, rng.IntN(5))
							case 1:
								en.PartitionID = strconv.Itoa(rng.IntN(partitions))
							}
							entries = append(entries, en)
						}
						resp := e.put("s", entries...)
						mu.Lock()
						for i, res := range resp.Records {
							if res.Failed() {
								t.Errorf("record failed: %+v", res)
								continue
							}
							m := got[res.PartitionID]
							if m == nil {
								m = map[int64]sent{}
								got[res.PartitionID] = m
							}
							seq := seqOf(t, res.SequenceNumber)
							if _, dup := m[seq]; dup {
								t.Errorf("sequence %d of %s assigned twice", seq, res.PartitionID)
							}
							m[seq] = sent{data: entries[i].Data, key: entries[i].PartitionKey}
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for p := range partitions {
				pid := dis.ShardID(p)
				want := got[pid]
				recs := e.readAll("s", strconv.Itoa(p))
				if len(recs) != len(want) {
					t.Fatalf("%s: read %d records, put %d", pid, len(recs), len(want))
				}
				lastByKey := map[string]string{}
				for i, r := range recs {
					if seqOf(t, r.SequenceNumber) != int64(i) {
						t.Fatalf("%s: record %d has sequence %s: not dense from 0", pid, i, r.SequenceNumber)
					}
					w, ok := want[int64(i)]
					if !ok || b64(string(r.Data)) != w.data || r.PartitionKey != w.key {
						t.Fatalf("%s seq %d: read %q, put %+v", pid, i, r.Data, w)
					}
					// Per producer and key, the request index must not go backwards.
					if w.key != "" {
						if prev, ok := lastByKey[w.key]; ok && orderKey(prev) > orderKey(string(r.Data)) {
							t.Fatalf("key %s: %s read after %s", w.key, r.Data, prev)
						}
						lastByKey[w.key] = string(r.Data)
					}
				}
			}
		})
	}
}

// orderKey turns "gG-rR-iI" into a number that grows with send order of one producer.
func orderKey(s string) int {
	var g, r, i int
	fmt.Sscanf(s, "g%d-r%d-i%d", &g, &r, &i)
	return r*1000 + i
}

// TestPropertyCursorsLandOnTheRightRecord checks AT_/AFTER_SEQUENCE_NUMBER
// and AT_TIMESTAMP against a model of the partition.
func TestPropertyCursorsLandOnTheRightRecord(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 200
	var ts []int64 // each record's timestamp as returned
	for i := range n {
		e.clock.Advance(time.Duration(rng.IntN(50)) * time.Millisecond) // ties happen
		en := putEntry{Data: b64(strconv.Itoa(i)), PartitionID: "0"}
		if rng.IntN(4) == 0 {
			// Producer timestamps need not be monotonic.
			en.Timestamp = e.clock.Now().UnixMilli() - int64(rng.IntN(300))
		}
		resp := e.put("s", en)
		if resp.Records[0].SequenceNumber != strconv.Itoa(i) {
			t.Fatalf("record %d got %s", i, resp.Records[0].SequenceNumber)
		}
	}
	for _, r := range e.readAll("s", "0") {
		ts = append(ts, r.Timestamp)
	}
	first := func(cur string) (string, bool) {
		g := e.getRecords(cur, "limit", "1")
		if len(g.Records) == 0 {
			return "", false
		}
		return g.Records[0].SequenceNumber, true
	}
	for range 60 {
		k := rng.IntN(n + 1)
		at, ok := first(e.cursor("s", "0", dis.CursorAtSequenceNumber, "starting-sequence-number", strconv.Itoa(k)))
		if k == n && ok || k < n && at != strconv.Itoa(k) {
			t.Fatalf("AT_SEQUENCE_NUMBER %d read %q (%v)", k, at, ok)
		}
		if k < n {
			after, ok := first(e.cursor("s", "0", dis.CursorAfterSequenceNumber, "starting-sequence-number", strconv.Itoa(k)))
			if k == n-1 && ok || k < n-1 && after != strconv.Itoa(k+1) {
				t.Fatalf("AFTER_SEQUENCE_NUMBER %d read %q (%v)", k, after, ok)
			}
		}
	}
	// AT_TIMESTAMP lands on the first record whose running-maximum timestamp
	// reaches T (Kafka's time-index rule for out-of-order producer timestamps).
	lo, hi := ts[0]-100, e.clock.Now().UnixMilli()+100
	for range 80 {
		T := lo + rng.Int64N(hi-lo)
		want, runMax := n, int64(0)
		for i, v := range ts {
			runMax = max(runMax, v)
			if runMax >= T {
				want = i
				break
			}
		}
		got, ok := first(e.cursor("s", "0", dis.CursorAtTimestamp, "timestamp", strconv.FormatInt(T, 10)))
		if want == n && ok || want < n && got != strconv.Itoa(want) {
			t.Fatalf("AT_TIMESTAMP %d read %q, want sequence %d (timestamps %v)", T, got, want, ts[:min(len(ts), 20)])
		}
	}
	_ = slices.Max(ts)
}

// TestPropertyCursorValidForExactlyFiveMinutes checks the lifetime of
// cursors from GetCursor and from GetRecords at random ages.
func TestPropertyCursorValidForExactlyFiveMinutes(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	e.put("s", putEntry{Data: b64("x")})
	rng := rand.New(rand.NewPCG(9, 9))
	for range 30 {
		cur := e.cursor("s", "0", dis.CursorTrimHorizon)
		if rng.IntN(2) == 0 {
			cur = e.getRecords(cur).NextPartitionCursor
		}
		age := time.Duration(rng.Int64N(int64(10 * time.Minute)))
		age = age.Truncate(time.Millisecond)
		e.clock.Advance(age)
		r := e.getRecordsReply(cur)
		valid := age <= 5*time.Minute
		if valid && r.status != 200 || !valid && (r.status != 400 || r.errCode(t) != "DIS.4225") {
			t.Fatalf("cursor aged %s: %d %s", age, r.status, r.body)
		}
	}
}
