package admin

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Every metric /metrics exposes follows the Prometheus naming rules, as
// promtool check metrics applies them (the same linter, promlint): counters
// end in _total, base units (seconds, bytes), no camelCase, help on every
// metric. A status with every part filled makes every family appear.
// (testutil.GatherAndLint is this same call; testutil would add a module to
// go.mod for nothing.)
func TestMetricNamesPassPromlint(t *testing.T) {
	s := newTestServer(t, "", fakeStatus)
	s.ObservePutRecords("telemetry", nil, 30*time.Millisecond)
	s.ObservePutRecords("telemetry", io.EOF, time.Second)
	mfs, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}

	// The linter itself finds what it should here, so the test above cannot
	// pass by linting nothing.
	bad := "# HELP edgegw_requestCount requests\n# TYPE edgegw_requestCount counter\nedgegw_requestCount 1\n"
	got, err := promlint.New(strings.NewReader(bad)).Lint()
	if err != nil || len(got) == 0 {
		t.Fatalf("promlint found nothing in a camelCase counter without _total: %v %v", got, err)
	}
	code, body := get(t, s.Handler(), "GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	problems, err = promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("lint the exposition /metrics served: %v", err)
	}
	for _, p := range problems {
		t.Errorf("served /metrics: %s: %s", p.Metric, p.Text)
	}
	if !strings.Contains(body, "edgegw_downlink_lag_records{") || !strings.Contains(body, "go_goroutines") {
		t.Fatal("the linted exposition lacks the downlink or the Go runtime metrics")
	}
}
