package buffer

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures durable Append throughput with 1, 8 and 64
// concurrent appenders (MQTT clients) for each sync mode, and reports how
// many records shared each sync.
//
//	go test -run '^$' -bench Append -benchtime 20000x ./internal/buffer/
func BenchmarkAppend(b *testing.B) {
	data := bytes.Repeat([]byte(`{"temp":21.5}`), 24)[:300]
	for _, mode := range []SyncMode{SyncBatch, SyncAlways, SyncNone} {
		for _, conc := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("sync=%s/appenders=%d", mode, conc), func(b *testing.B) {
				buf := openT(b, Options{Sync: mode, MaxBytes: 8 << 30})
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for w := range conc {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(b.N) {
							if _, err := buf.Append(context.Background(), Record{Stream: "s", PartitionKey: fmt.Sprint(w), Data: data}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				st := buf.Stats()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				if st.Syncs > 0 {
					b.ReportMetric(float64(st.Appended)/float64(st.Syncs), "records/sync")
				}
			})
		}
	}
}

// BenchmarkDrain measures the Read+Ack rate of an uplink draining a backlog
// in batches of 500 records (the DIS PutRecords limit).
func BenchmarkDrain(b *testing.B) {
	buf := openT(b, Options{MaxBytes: 8 << 30})
	fill(b, buf, "s", b.N, 300)
	b.ResetTimer()
	n := 0
	for {
		rs, err := buf.Read("s", 0, 500, 4<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		if err := buf.Ack("s", seqsOf(rs)...); err != nil {
			b.Fatal(err)
		}
		n += len(rs)
	}
	b.StopTimer()
	if n != b.N {
		b.Fatalf("drained %d of %d", n, b.N)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
