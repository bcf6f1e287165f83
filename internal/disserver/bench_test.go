package disserver

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// Benchmarks of the server over HTTP on loopback, with the shape the issue
// asks for: 1 KiB records, 500 per request. They report records/s and MB/s
// of record data (not of the base64 JSON on the wire).

const (
	benchRecordBytes = 1024
	benchBatch       = 500
)

func benchBody(b *testing.B, stream string, partitions int) []byte {
	b.Helper()
	var entries []putEntry
	for i := range benchBatch {
		data := make([]byte, benchRecordBytes)
		_, _ = rand.Read(data)
		entries = append(entries, putEntry{Data: b64(string(data)), PartitionID: fmt.Sprint(i % partitions)})
	}
	body, err := json.Marshal(putBody(stream, entries...))
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func reportThroughput(b *testing.B, records int, elapsed time.Duration) {
	secs := elapsed.Seconds()
	b.ReportMetric(float64(records)/secs, "records/s")
	b.ReportMetric(float64(records)*benchRecordBytes/secs/1e6, "MB/s")
}

func BenchmarkPutRecords(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			e := startEnv(b, nil)
			e.t = b
			e.createStream("bench", 4)
			body := benchBody(b, "bench", 4)
			ok := []byte(`"failed_record_count":0`)
			b.SetParallelism(clients) // × GOMAXPROCS goroutines; group commit shares their fsyncs
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := e.do("POST", recordsPath, body)
					if r.status != 200 || !bytes.Contains(r.body, ok) {
						b.Errorf("PutRecords: %d %.200s", r.status, r.body)
						return
					}
				}
			})
			b.StopTimer()
			reportThroughput(b, b.N*benchBatch, time.Since(start))
		})
	}
}

func BenchmarkGetRecords(b *testing.B) {
	e := startEnv(b, nil)
	e.createStream("bench", 1)
	body := benchBody(b, "bench", 1)
	const stored = 40 // requests of 500: 20 000 records, 20 MB
	for range stored {
		e.mustStatus(200, e.do("POST", recordsPath, body))
	}
	start := e.cursor("bench", "0", dis.CursorTrimHorizon)
	cur := start
	t0 := time.Now()
	b.ResetTimer()
	records := 0
	for range b.N {
		r := e.getRecordsReply(cur, "limit", fmt.Sprint(benchBatch))
		if r.status != 200 {
			b.Fatalf("GetRecords: %d %s", r.status, r.body)
		}
		var g dis.GetRecordsResponse
		if err := fastJSON.Unmarshal(r.body, &g); err != nil { // a fast client, to measure the server
			b.Fatal(err)
		}
		records += len(g.Records)
		cur = g.NextPartitionCursor
		if len(g.Records) < benchBatch {
			cur = start // wrap around to the beginning
		}
	}
	b.StopTimer()
	reportThroughput(b, records, time.Since(t0))
}
