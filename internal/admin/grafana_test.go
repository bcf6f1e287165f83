package admin

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The Grafana dashboard in deploy/grafana queries only metrics /metrics
// exposes, so renaming one without the dashboard fails here.
func TestGrafanaDashboardUsesExposedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/edgegw.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	s := newTestServer(t, "", fakeStatus)
	s.ObservePutRecords("telemetry", nil, time.Millisecond)
	_, body := get(t, s.Handler(), "GET", "/metrics", nil)
	exposed := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok {
			exposed[strings.Fields(name)[0]] = true
		}
	}

	metric := regexp.MustCompile(`\b(edgegw|go|process)_[a-z_]+\b`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && exposed[b] {
						base = b
					}
				}
				if !exposed[base] {
					t.Errorf("panel %q queries %s, which /metrics does not expose", p.Title, m)
				}
			}
		}
	}
	if queries < 10 {
		t.Fatalf("only %d queries found; is the dashboard complete?", queries)
	}
}
