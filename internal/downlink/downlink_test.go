package downlink

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/distest"
)

// seqOf maps each payload written by disEnv.put to (partition, sequence).
type placed struct {
	partition int
	seq       int64
}

func placements(t *testing.T, prefix string, first int, res []dis.PutRecordsResultEntry, into map[string]placed) {
	t.Helper()
	for i, r := range res {
		idx, err := dis.ParsePartitionID(r.PartitionID)
		if err != nil {
			t.Fatal(err)
		}
		seq, _ := strconv.ParseInt(r.SequenceNumber, 10, 64)
		into[fmt.Sprintf("%s%d", prefix, first+i)] = placed{idx, seq}
	}
}

// checkOrder fails unless, within each partition, payloads were delivered
// in sequence order.
func checkOrder(t *testing.T, got []string, where map[string]placed) {
	t.Helper()
	last := map[int]int64{}
	for _, p := range got {
		w, ok := where[p]
		if !ok {
			t.Fatalf("delivered %q, which was never put", p)
		}
		if prev, ok := last[w.partition]; ok && w.seq <= prev {
			t.Fatalf("partition %d: %q (seq %d) delivered after seq %d", w.partition, p, w.seq, prev)
		}
		last[w.partition] = w.seq
	}
}

func keys(n, distinct int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("d%d", i%distinct)
	}
	return out
}

func TestDeliversInOrderOnTemplatedTopicsAndCommits(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("commands", 3)
	rec := &recorder{}
	opts := testOptions(t, rec, Route{Stream: "commands", Topic: "devices/{partition_key}/commands", QoS: 1, Retain: true})
	r := run(t, e.client, opts)

	where := map[string]placed{}
	for i := 0; i < 300; i += 100 {
		placements(t, "c", i, e.put("commands", "c", i, keys(100, 10)...), where)
	}
	waitFor(t, "300 records delivered", func() bool { return len(rec.all()) >= 300 })
	msgs := rec.all()
	if len(msgs) != 300 {
		t.Fatalf("delivered %d, want 300", len(msgs))
	}
	for _, m := range msgs {
		i, _ := strconv.Atoi(strings.TrimPrefix(m.payload, "c"))
		if want := fmt.Sprintf("devices/d%d/commands", i%10); m.topic != want || m.qos != 1 || !m.retain {
			t.Fatalf("%+v: want topic %s, QoS 1, retained", m, want)
		}
	}
	checkOrder(t, rec.payloads(), where)
	// Once idle, every partition's checkpoint is the next sequence to read.
	for p := 0; p < 3; p++ {
		end := int64(0)
		for _, w := range where {
			if w.partition == p && w.seq+1 > end {
				end = w.seq + 1
			}
		}
		waitFor(t, fmt.Sprintf("checkpoint of partition %d at %d", p, end), func() bool {
			return e.checkpoint("test-downlink", "commands", p) == strconv.FormatInt(end, 10)
		})
	}
	waitFor(t, "stats of idle, caught-up, committed partitions", func() bool {
		st := r.d.Stats()
		if st.Delivered != 300 || st.State != StateRunning || len(st.Partitions) != 3 {
			return false
		}
		for _, p := range st.Partitions {
			if p.Lag != 0 || p.Position != p.Checkpoint || p.State != "idle" || p.Delivered == 0 {
				return false
			}
		}
		return true
	})
}

func TestStartPositions(t *testing.T) {
	t.Run("latest skips what was there and keeps its start across a restart", func(t *testing.T) {
		e := startDIS(t, nil)
		e.createStream("s", 1)
		e.putData("s", "k", "old1", "old2")
		rec := &recorder{}
		opts := testOptions(t, rec, Route{Stream: "s", Topic: "t"})
		opts.Start = StartLatest
		r := run(t, e.client, opts)
		waitFor(t, "the start position committed", func() bool { return e.checkpoint(opts.App, "s", 0) == "2" })
		r.stop()
		e.putData("s", "k", "new1") // while stopped: after the start, so it is delivered
		run(t, e.client, opts)
		e.putData("s", "k", "new2")
		waitFor(t, "new records", func() bool { return len(rec.all()) >= 2 })
		if got := rec.payloads(); !slices.Equal(got, []string{"new1", "new2"}) {
			t.Fatalf("delivered %q", got)
		}
	})
	t.Run("trim horizon reads everything", func(t *testing.T) {
		e := startDIS(t, nil)
		e.createStream("s", 1)
		e.putData("s", "k", "a", "b")
		rec := &recorder{}
		run(t, e.client, testOptions(t, rec, Route{Stream: "s", Topic: "t"}))
		waitFor(t, "both records", func() bool { return len(rec.all()) == 2 })
	})
	t.Run("timestamp starts at the first record at or after it", func(t *testing.T) {
		e := startDIS(t, nil)
		e.createStream("s", 1)
		t0 := time.Now().Add(-time.Hour)
		req := &dis.PutRecordsRequest{StreamName: "s"}
		for i, ts := range []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)} {
			req.Records = append(req.Records, dis.PutRecordsRequestEntry{Data: []byte(strconv.Itoa(i)), PartitionKey: "k", Timestamp: ts.UnixMilli()})
		}
		if _, err := e.client.PutRecords(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		opts := testOptions(t, rec, Route{Stream: "s", Topic: "t"})
		opts.Start, opts.StartTime = StartTimestamp, t0.Add(30*time.Second)
		run(t, e.client, opts)
		waitFor(t, "two records", func() bool { return len(rec.all()) == 2 })
		if got := rec.payloads(); !slices.Equal(got, []string{"1", "2"}) {
			t.Fatalf("delivered %q", got)
		}
	})
}

func TestGracefulRestartResumesWithoutDuplicates(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 2)
	rec := &recorder{}
	opts := testOptions(t, rec, Route{Stream: "s", Topic: "t/{partition_key}"})
	opts.CommitEvery, opts.CommitInterval = 1000, time.Hour // only the final commit at stop
	r := run(t, e.client, opts)
	e.put("s", "a", 0, keys(50, 5)...)
	waitFor(t, "first 50", func() bool { return len(rec.all()) == 50 })
	r.stop()
	e.put("s", "b", 0, keys(50, 5)...)
	run(t, e.client, opts)
	waitFor(t, "next 50", func() bool { return len(rec.all()) >= 100 })
	seen := map[string]bool{}
	for _, p := range rec.payloads() {
		if seen[p] {
			t.Fatalf("%q delivered twice across a graceful restart", p)
		}
		seen[p] = true
	}
}

// A record mochi dropped for some subscriber is published again, and the
// checkpoint does not pass it while it is being retried.
func TestDroppedRecordIsRetriedAndHoldsTheCheckpoint(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 1)
	rec := &recorder{drops: map[string]int{"x3": 1 << 30}}
	r := run(t, e.client, testOptions(t, rec, Route{Stream: "s", Topic: "t"}))
	e.put("s", "x", 0, keys(10, 1)...)
	waitFor(t, "retries of x3", func() bool { return r.d.Stats().Retries >= 5 })
	waitFor(t, "a time-based commit", func() bool { return e.checkpoint("test-downlink", "s", 0) == "3" })
	if got := rec.payloads(); !slices.Equal(got, []string{"x0", "x1", "x2"}) {
		t.Fatalf("delivered %q while x3 is retried", got)
	}
	rec.mu.Lock()
	rec.drops["x3"] = 0
	rec.mu.Unlock()
	waitFor(t, "all ten", func() bool { return len(rec.all()) == 10 })
	checkOrder(t, rec.payloads(), nil2placed(rec.payloads()))
	if st := r.d.Stats(); st.Dropped < 5 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// nil2placed: payloads x0..x9 were put in order to partition 0.
func nil2placed(ps []string) map[string]placed {
	m := map[string]placed{}
	for _, p := range ps {
		i, _ := strconv.Atoi(p[1:])
		m[p] = placed{0, int64(i)}
	}
	return m
}

func TestDeadLetters(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 1)
	rec := &recorder{drops: map[string]int{"keeps dropping": 1 << 30}}
	var mu sync.Mutex
	var dead []DeadLetter
	opts := testOptions(t, rec, Route{Stream: "s", Topic: "devices/{payload.d}/cmd", Transform: TransformUnwrap, UnwrapField: "p"})
	opts.OnDrop, opts.MaxAttempts = DropDeadLetter, 3
	opts.DeadLetter = func(dl DeadLetter) { mu.Lock(); dead = append(dead, dl); mu.Unlock() }
	r := run(t, e.client, opts)
	e.putData("s", "k",
		`{"d":"d1","p":"ok"}`,
		`{"p":"no device"}`,
		`{"d":"a/b","p":"slash"}`,
		`{"d":"d2"}`,
		`{"d":"d3","p":"keeps dropping"}`,
		`{"d":"d4","p":"after"}`)
	waitFor(t, "the last record", func() bool { return len(rec.all()) == 2 })
	if got := rec.all(); got[0] != (message{"devices/d1/cmd", "ok", false, 0}) || got[1].payload != "after" {
		t.Fatalf("delivered %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	var codes []string
	for _, dl := range dead {
		codes = append(codes, dl.Code+":"+dl.SequenceNumber)
	}
	if want := []string{"topic:1", "topic:2", "transform:3", "dropped:4"}; !slices.Equal(codes, want) {
		t.Fatalf("dead letters %q, want %q", codes, want)
	}
	if dead[3].Topic != "devices/d3/cmd" || !strings.Contains(dead[3].Reason, "3 attempts") || string(dead[3].Data) != `{"d":"d3","p":"keeps dropping"}` {
		t.Fatalf("dead letter %+v", dead[3])
	}
	if st := r.d.Stats(); st.DeadLettered != 4 || st.Retries != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// The fleet pattern: gateways share a command stream and each forwards only
// its own devices' records, by key prefix, by a JSON field, or by owning
// partitions.
func TestFleetFilters(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("fleet", 2)
	gw := func(name string, route Route) *recorder {
		rec := &recorder{}
		route.Stream, route.Topic = "fleet", "devices/{key_suffix}/cmd"
		opts := testOptions(t, rec, route)
		opts.App = name + "-downlink"
		run(t, e.client, opts)
		return rec
	}
	byPrefix := gw("gw1", Route{KeyPrefix: "gw1."})
	byField := gw("gw2", Route{KeyPrefix: "", MatchField: "gateway", MatchValue: "gw2"})
	byPartition := gw("gw3", Route{Partitions: []string{"1"}})
	req := &dis.PutRecordsRequest{StreamName: "fleet", Records: []dis.PutRecordsRequestEntry{
		{PartitionKey: "gw1.a", Data: []byte(`{"gateway":"gw1"}`), PartitionID: "0"},
		{PartitionKey: "gw2.b", Data: []byte(`{"gateway":"gw2"}`), PartitionID: "0"},
		{PartitionKey: "gw1.c", Data: []byte(`{"gateway":"gw1"}`), PartitionID: "1"},
	}}
	if _, err := e.client.PutRecords(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every gateway's records", func() bool {
		return len(byPrefix.all()) == 2 && len(byField.all()) == 1 && len(byPartition.all()) == 1
	})
	if m := byPrefix.all(); m[0].topic != "devices/a/cmd" && m[1].topic != "devices/a/cmd" {
		t.Fatalf("gw1 got %+v", m)
	}
	if m := byField.all(); m[0].topic != "devices/gw2.b/cmd" {
		t.Fatalf("gw2 got %+v", m)
	}
	if m := byPartition.all(); m[0].topic != "devices/gw1.c/cmd" {
		t.Fatalf("gw3 got %+v", m)
	}
}

func TestExpiredCursorIsRenewed(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 1)
	rec := &recorder{}
	r := run(t, e.client, testOptions(t, rec, Route{Stream: "s", Topic: "t"}))
	e.put("s", "a", 0, keys(5, 1)...)
	waitFor(t, "first records", func() bool { return len(rec.all()) == 5 })
	e.advance(6 * time.Minute) // cursors live 5 minutes
	e.put("s", "b", 0, keys(5, 1)...)
	waitFor(t, "records after the renewal", func() bool { return len(rec.all()) == 10 })
	if st := r.d.Stats(); st.CursorRenewals == 0 || st.TrimHorizonJumps != 0 {
		t.Fatalf("stats %+v: want a cursor renewal", st)
	}
}

func TestCheckpointBelowRetentionJumpsToTrimHorizon(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 1)
	rec := &recorder{}
	opts := testOptions(t, rec, Route{Stream: "s", Topic: "t"})
	r := run(t, e.client, opts)
	e.put("s", "a", 0, keys(5, 1)...)
	waitFor(t, "first records", func() bool { return len(rec.all()) == 5 })
	r.stop()
	e.put("s", "b", 0, keys(5, 1)...) // never delivered: they expire while the gateway is off
	e.advance(25 * time.Hour)         // beyond the 24 h retention
	waitFor(t, "the janitor to expire the records", func() bool {
		d, err := e.client.DescribeStreamAll(context.Background(), "s")
		return err == nil && d.Partitions[0].SequenceNumberRange == "[10 : 10]"
	})
	e.put("s", "c", 0, keys(3, 1)...)
	r2 := run(t, e.client, opts)
	waitFor(t, "records after the jump", func() bool { return len(rec.all()) == 8 })
	if got := rec.payloads()[5:]; !slices.Equal(got, []string{"c0", "c1", "c2"}) {
		t.Fatalf("delivered %q after the jump", got)
	}
	if st := r2.d.Stats(); st.TrimHorizonJumps != 1 {
		t.Fatalf("stats %+v: want one jump", st)
	}
}

// Scale-up and scale-down while consuming: new partitions are read from
// their first record, DELETED ones until drained; nothing is lost or
// delivered twice.
func TestScalingWhileConsuming(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 2)
	rec := &recorder{}
	opts := testOptions(t, rec, Route{Stream: "s", Topic: "t/{partition_key}"})
	opts.Start = StartLatest // new partitions must still be read from their start
	r := run(t, e.client, opts)
	waitFor(t, "readers on both partitions", func() bool {
		st := r.d.Stats()
		return len(st.Partitions) == 2 && st.Partitions[0].Position >= 0 && st.Partitions[1].Position >= 0
	})
	where := map[string]placed{}
	total := 0
	put := func(n int) {
		placements(t, "r", total, e.put("s", "r", total, keys(n, 20)...), where)
		total += n
	}
	put(100)
	if err := e.client.UpdatePartitionCount(context.Background(), "s", 4); err != nil {
		t.Fatal(err)
	}
	put(100) // lands on 4 partitions at once, before discovery sees them
	waitFor(t, "200 records", func() bool { return len(rec.all()) >= 200 })
	if err := e.client.UpdatePartitionCount(context.Background(), "s", 1); err != nil {
		t.Fatal(err)
	}
	put(100)
	waitFor(t, "300 records", func() bool { return len(rec.all()) >= 300 })
	waitFor(t, "deleted partitions drained", func() bool {
		n := 0
		for _, p := range r.d.Stats().Partitions {
			if p.State == "drained" {
				n++
			}
		}
		return n == 3
	})
	got := rec.payloads()
	if len(got) != 300 {
		t.Fatalf("delivered %d, want 300", len(got))
	}
	checkOrder(t, got, where)
	parts := map[int]bool{}
	for _, w := range where {
		parts[w.partition] = true
	}
	if len(parts) != 4 {
		t.Fatalf("records landed on %d partitions; the test needs all 4", len(parts))
	}
}

// DIS unreachable: the readers back off and resume where they were, in the
// same process, with nothing lost or repeated.
func TestDISOutageAndBack(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 2)
	px := distest.StartProxy(t, e.addr)
	rec := &recorder{}
	r := run(t, newClient(t, px.URL()), testOptions(t, rec, Route{Stream: "s", Topic: "t"}))
	e.put("s", "a", 0, keys(20, 4)...)
	waitFor(t, "records before the outage", func() bool { return len(rec.all()) == 20 })
	before := r.d.Stats().ReadErrors
	px.SetDown(true)
	e.put("s", "b", 0, keys(20, 4)...)
	waitFor(t, "the readers to notice", func() bool {
		st := r.d.Stats()
		return st.ReadErrors > before+4 && st.Partitions[0].State == "backoff" && st.Partitions[1].State == "backoff"
	})
	if len(rec.all()) != 20 {
		t.Fatalf("records delivered while DIS was unreachable")
	}
	px.SetDown(false)
	waitFor(t, "records after the outage", func() bool { return len(rec.all()) == 40 })
	if st := r.d.Stats(); st.Partitions[0].LastError != "" {
		t.Fatalf("stats %+v: error not cleared", st)
	}
	seen := map[string]bool{}
	for _, p := range rec.payloads() {
		if seen[p] {
			t.Fatalf("%q delivered twice", p)
		}
		seen[p] = true
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(nil, Options{App: "bad app", Start: "middle", OnDrop: "ignore", Routes: []Route{
		{Stream: "s", Topic: "a/+", QoS: 3, Transform: "gzip"},
	}})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, want := range []string{`app "bad app"`, `start position "middle"`, `on drop "ignore"`, "routes[0]: topic", "qos: 3", `transform: "gzip"`, "no Publish"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// The checkpoint does not pass a record a connected subscriber has not
// acknowledged: a crash then delivers it again instead of losing it.
func TestCheckpointWaitsForAcknowledgement(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 1)
	rec := &recorder{unacked: map[string]bool{"x4": true}}
	r := run(t, e.client, testOptions(t, rec, Route{Stream: "s", Topic: "t"}))
	e.put("s", "x", 0, keys(10, 1)...)
	waitFor(t, "all ten delivered", func() bool { return len(rec.all()) == 10 })
	waitFor(t, "a commit up to the unacknowledged record", func() bool { return e.checkpoint("test-downlink", "s", 0) == "4" })
	waitFor(t, "the reader caught up and idle", func() bool {
		p := r.d.Stats().Partitions[0]
		return p.Position == 10 && p.State == "idle"
	})
	if st := r.d.Stats(); st.Partitions[0].Checkpoint != 4 || e.checkpoint("test-downlink", "s", 0) != "4" {
		t.Fatalf("checkpoint %d passed the unacknowledged record 4", st.Partitions[0].Checkpoint)
	}
	rec.mu.Lock()
	rec.unacked["x4"] = false
	rec.mu.Unlock()
	waitFor(t, "the checkpoint after the acknowledgement", func() bool { return e.checkpoint("test-downlink", "s", 0) == "10" })
}

// At most CommitEvery delivered records of a partition wait for
// acknowledgement at once (the bound on duplicates after a crash), and a
// subscriber that never acknowledges holds the partition up for AckTimeout.
func TestUnacknowledgedWindow(t *testing.T) {
	e := startDIS(t, nil)
	e.createStream("s", 1)
	unacked := map[string]bool{}
	for i := range 30 {
		unacked["x"+strconv.Itoa(i)] = true
	}
	rec := &recorder{unacked: unacked}
	opts := testOptions(t, rec, Route{Stream: "s", Topic: "t"})
	opts.AckTimeout = time.Hour
	r := run(t, e.client, opts)
	e.put("s", "x", 0, keys(30, 1)...)
	waitFor(t, "a full window", func() bool { return len(rec.all()) >= 10 })
	if got := len(rec.all()); got != 10 {
		t.Fatalf("%d delivered with none acknowledged; the window is 10", got)
	}
	rec.mu.Lock()
	rec.unacked["x0"] = false
	rec.mu.Unlock()
	waitFor(t, "one more after one acknowledgement", func() bool { return len(rec.all()) >= 11 })
	if got := len(rec.all()); got != 11 {
		t.Fatalf("%d delivered after one acknowledgement, want 11", got)
	}
	r.stop()

	// A short ack timeout lets the partition go on without the acks.
	opts.AckTimeout = 50 * time.Millisecond
	opts.App = "impatient"
	rec2 := &recorder{unacked: unacked}
	opts.Publish = rec2.publish
	r2 := run(t, e.client, opts)
	waitFor(t, "all 30 despite no acknowledgement", func() bool { return len(rec2.all()) == 30 })
	if st := r2.d.Stats(); st.AckTimeouts < 19 { // 29 never acknowledged, the last 10 still in the window
		t.Fatalf("stats %+v: want at least 19 ack timeouts", st)
	}
}
