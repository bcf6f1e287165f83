package downlink

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// memDIS is an in-memory DIS with one ACTIVE partition, for tests that run in
// a synctest bubble (no sockets there). It records when GetRecords is called.
type memDIS struct {
	mu      sync.Mutex
	apps    []string
	created []string
	records []dis.Record
	reads   []time.Time
}

func (m *memDIS) DescribeApp(_ context.Context, name string) (*dis.App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.apps, name) {
		return nil, &dis.Error{Status: 400, Code: dis.CodeAppNotFound, Message: "app not found"}
	}
	return &dis.App{AppName: name}, nil
}

func (m *memDIS) CreateApp(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.apps = append(m.apps, name)
	m.created = append(m.created, name)
	return nil
}

func (m *memDIS) DescribeStreamAll(context.Context, string) (*dis.DescribeStreamResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &dis.DescribeStreamResponse{Partitions: []dis.PartitionResult{{
		PartitionID: dis.ShardID(0), Status: dis.PartitionActive, SequenceNumberRange: fmt.Sprintf("[0 : %d]", len(m.records)),
	}}}, nil
}

func (m *memDIS) GetCheckpoint(context.Context, string, string, string) (*dis.GetCheckpointResponse, error) {
	return &dis.GetCheckpointResponse{SequenceNumber: "-1"}, nil
}

func (m *memDIS) CommitCheckpoint(context.Context, *dis.CommitCheckpointRequest) error { return nil }

// Cursors are the decimal position to read next.
func (m *memDIS) GetCursor(_ context.Context, r dis.CursorRequest) (string, error) {
	if r.CursorType == dis.CursorAtSequenceNumber {
		return r.StartingSequenceNumber, nil
	}
	return "0", nil
}

func (m *memDIS) GetRecords(_ context.Context, cursor string, _ int) (*dis.GetRecordsResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads = append(m.reads, time.Now())
	from, _ := strconv.Atoi(cursor)
	return &dis.GetRecordsResponse{Records: slices.Clone(m.records[from:]), NextPartitionCursor: strconv.Itoa(len(m.records))}, nil
}

func (m *memDIS) put(data ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range data {
		m.records = append(m.records, dis.Record{SequenceNumber: strconv.Itoa(len(m.records)), Data: []byte(d), PartitionKey: "k"})
	}
}

// gaps returns the waits before each GetRecords call from the from-th (0-based) on.
func (m *memDIS) gaps(from int) []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []time.Duration
	for i := max(from, 1); i < len(m.reads); i++ {
		out = append(out, m.reads[i].Sub(m.reads[i-1]))
	}
	return out
}

func (m *memDIS) readCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reads)
}

// Adaptive polling, on synctest's clock: an idle partition is read after
// PollMin, then doubling waits up to PollMax; a page with records is
// followed by the next read at once, and the wait starts again from PollMin.
// The consumer app is created when it does not exist.
func TestAdaptivePolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memDIS{}
		rec := &recorder{}
		opts := testOptions(t, rec, Route{Stream: "s", Topic: "t"})
		opts.App = "gw7-downlink"
		opts.PollMin, opts.PollMax = 100*time.Millisecond, time.Second
		opts.CommitInterval = time.Hour // no commit deadline shortens a wait
		opts.DiscoveryInterval = time.Hour
		ctx, cancel := context.WithCancel(context.Background())
		d, err := New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }() // every goroutine of the bubble ends, even on a failure

		time.Sleep(3500 * time.Millisecond) // idle: 0, 100, 300, 700, 1500, 2500, 3500 ms
		synctest.Wait()
		ms := time.Millisecond
		if got, want := m.gaps(0), []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}; !slices.Equal(got, want) {
			t.Fatalf("idle reads %v apart, want %v", got, want)
		}
		if !slices.Equal(m.created, []string{"gw7-downlink"}) {
			t.Fatalf("apps created: %q, want the missing app gw7-downlink", m.created)
		}

		// Records flowing: put between two idle reads (at most PollMax
		// waiting), then read back to back until a read comes back empty.
		time.Sleep(200 * time.Millisecond)
		m.put("a", "b")
		before := m.readCount()
		time.Sleep(800 * time.Millisecond) // the next idle read, at 4500 ms
		synctest.Wait()
		if got := rec.payloads(); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("delivered %q", got)
		}
		m.put("c")
		time.Sleep(100 * time.Millisecond) // the empty read after the page was at once: PollMin from there
		synctest.Wait()
		// 3500 ms → 4500 ms (a, b) → at once (empty) → 100 ms later (c) → at once (empty).
		if got, want := m.gaps(before), []time.Duration{time.Second, 0, 100 * ms, 0}; !slices.Equal(got, want) {
			t.Fatalf("reads around records %v apart, want %v", got, want)
		}
		if got := rec.payloads(); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("delivered %q", got)
		}
	})
}

// An app that exists is used as it is, not created again.
func TestExistingAppIsUsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memDIS{apps: []string{"shared-app"}}
		m.put("x")
		rec := &recorder{}
		opts := testOptions(t, rec, Route{Stream: "s", Topic: "t"})
		opts.App = "shared-app"
		ctx, cancel := context.WithCancel(context.Background())
		d, err := New(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Second)
		synctest.Wait()
		if len(m.created) != 0 || !slices.Equal(rec.payloads(), []string{"x"}) || d.Stats().State != StateRunning {
			t.Fatalf("created %q, delivered %q, state %s", m.created, rec.payloads(), d.Stats().State)
		}
	})
}
