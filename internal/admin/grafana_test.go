package admin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// grafanaQueries returns every PromQL text in a Grafana dashboard, wherever
// it sits: panel targets (also inside collapsed rows), template variables,
// annotations.
func grafanaQueries(v any, key string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			grafanaQueries(c, k, out)
		}
	case []any:
		for _, c := range v {
			grafanaQueries(c, key, out)
		}
	case string:
		switch key {
		case "expr", "query", "definition":
			*out = append(*out, v)
		}
	}
}

// exposedLabels scrapes /metrics of a full fake status and returns each
// metric family's label names (a histogram's under its base name, with le).
func exposedLabels(t *testing.T) map[string]map[string]bool {
	t.Helper()
	s := newTestServer(t, "", fakeStatus)
	s.ObservePutRecords("telemetry", nil, time.Millisecond)
	_, body := get(t, s.Handler(), "GET", "/metrics", nil)
	families := map[string]map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok {
			families[strings.Fields(name)[0]] = map[string]bool{}
		}
	}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, l := range strings.Split(body, "\n") {
		m := sample.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		name := m[1]
		if families[name] == nil {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && families[b] != nil {
					name = b
				}
			}
		}
		if families[name] == nil {
			t.Fatalf("sample %q of no declared family", l)
		}
		for _, lm := range label.FindAllStringSubmatch(m[2], -1) {
			families[name][lm[1]] = true
		}
	}
	return families
}

// The Grafana dashboards in deploy/grafana query only metrics /metrics
// exposes, with labels those metrics have, so renaming a metric or a label
// without the dashboard fails here.
func TestGrafanaDashboardUsesExposedMetrics(t *testing.T) {
	files, err := filepath.Glob("../../deploy/grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deploy/grafana: %v", err)
	}
	exposed := exposedLabels(t)
	// Labels Prometheus adds when it scrapes.
	scrapeLabels := map[string]bool{"instance": true, "job": true}

	metric := regexp.MustCompile(`\b((?:edgegw|go|process)_[a-zA-Z0-9_]+)\b(\{[^}]*\})?`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var dash map[string]any
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var queries []string
		grafanaQueries(dash, "", &queries)
		if len(queries) < 10 {
			t.Fatalf("%s: only %d queries found; is the dashboard complete?", file, len(queries))
		}
		for _, q := range queries {
			labelsInQuery := map[string]bool{}
			for _, m := range metric.FindAllStringSubmatch(q, -1) {
				name := m[1]
				if exposed[name] == nil {
					for _, suffix := range []string{"_bucket", "_count", "_sum"} {
						if b, ok := strings.CutSuffix(name, suffix); ok && exposed[b] != nil {
							name = b
						}
					}
				}
				labels := exposed[name]
				if labels == nil {
					t.Errorf("%s: %q queries %s, which /metrics does not expose", file, q, m[1])
					continue
				}
				for l := range labels {
					labelsInQuery[l] = true
				}
				for _, lm := range matcher.FindAllStringSubmatch(m[2], -1) {
					if !labels[lm[1]] && !scrapeLabels[lm[1]] {
						t.Errorf("%s: %q selects %s by label %q, which it does not have", file, q, m[1], lm[1])
					}
				}
			}
			for _, g := range grouping.FindAllStringSubmatch(q, -1) {
				for _, l := range strings.Split(g[1], ",") {
					if l = strings.TrimSpace(l); l != "" && !labelsInQuery[l] && !scrapeLabels[l] {
						t.Errorf("%s: %q groups by label %q, which none of its metrics has", file, q, l)
					}
				}
			}
		}
	}
}
