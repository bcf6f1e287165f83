package buffer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentAppendReadAckDeliversEveryRecordOnce runs publishers and one
// uplink per stream at the same time, the way the gateway does, and checks
// that the uplinks see every acknowledged append exactly once, in Seq order.
func TestConcurrentAppendReadAckDeliversEveryRecordOnce(t *testing.T) {
	b := openT(t, Options{})
	const streams, publishers, each = 3, 12, 150
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			stream := fmt.Sprintf("s%d", p%streams)
			for i := range each {
				r := Record{Stream: stream, PartitionKey: fmt.Sprint(p), Data: fmt.Appendf(nil, "%d-%d", p, i)}
				var err error
				if i%5 == 0 {
					err = b.AppendAsync(r) // QoS 0
				} else {
					_, err = b.Append(context.Background(), r)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	published := make(chan struct{})
	go func() { pubs.Wait(); close(published) }()

	want := publishers / streams * each
	got := make([]map[string]bool, streams)
	var readers sync.WaitGroup
	for s := range streams {
		got[s] = map[string]bool{}
		readers.Add(1)
		go func() {
			defer readers.Done()
			stream := fmt.Sprintf("s%d", s)
			notify := b.Notify(stream)
			var last uint64
			deadline := time.After(60 * time.Second)
			for len(got[s]) < want {
				rs, err := b.Read(stream, 0, 50, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if len(rs) == 0 {
					select {
					case <-notify:
					case <-deadline:
						t.Errorf("%s: %d of %d records after 60s", stream, len(got[s]), want)
						return
					}
					continue
				}
				for _, r := range rs {
					if r.Seq <= last {
						t.Errorf("%s: seq %d after %d", stream, r.Seq, last)
					}
					last = r.Seq
					if got[s][string(r.Data)] {
						t.Errorf("%s: %s delivered twice", stream, r.Data)
					}
					got[s][string(r.Data)] = true
				}
				if err := b.Ack(stream, seqsOf(rs)...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	<-published
	readers.Wait()
	st := b.Stats()
	if st.Records != 0 || st.Bytes != 0 || st.Acked != uint64(publishers*each) {
		t.Fatalf("end state: records=%d bytes=%d acked=%d", st.Records, st.Bytes, st.Acked)
	}
}

func TestReadOnlyOpenForInspection(t *testing.T) {
	dir := t.TempDir()
	b := openT(t, Options{Dir: dir})
	for i := range 10 {
		mustAppend(t, b, rec("s", i))
	}
	if err := b.Ack("s", 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openT(t, Options{Dir: dir, ReadOnly: true})
	st := ro.Stats()
	if st.Streams["s"].Records != 8 || st.Streams["s"].Head != 3 || st.Streams["s"].Next != 11 {
		t.Fatalf("read-only stats %+v", st.Streams["s"])
	}
	if _, err := ro.Append(context.Background(), rec("s", 0)); err != ErrReadOnly {
		t.Fatalf("Append read-only: %v", err)
	}
	if err := ro.Ack("s", 3); err != ErrReadOnly {
		t.Fatalf("Ack read-only: %v", err)
	}
	if n := len(readAll(t, ro, "s")); n != 8 {
		t.Fatalf("read %d", n)
	}
}
