package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStatus is a fixed gateway status for the handler tests.
func fakeStatus() Status {
	return Status{
		Gateway: GatewayStatus{ID: "gw1", Version: "test", UptimeSeconds: 12},
		MQTT: MQTTStatus{Listening: true, ClientsConnected: 3,
			PublishesReceived: QoSCounts{QoS0: 4, QoS1: 5, QoS2: 6}, PublishesSent: QoSCounts{QoS1: 7},
			Logins: map[string]uint64{"password": 8}, AuthFailures: map[string]uint64{"bad_password": 2},
			ACLDenied: ACLDenied{Publish: 1, Delivery: 3}},
		Ingest: IngestStatus{Accepted: 15, Rejected: map[string]uint64{"buffer_full": 2, "acl_denied": 1, "future_reason": 4}, Unrouted: 1},
		Buffer: BufferStatus{Open: true, Records: 9, Bytes: 900, MaxBytes: 1 << 20, Syncs: 11,
			Streams: map[string]BufferStream{"telemetry": {Records: 9, Bytes: 900, OldestAgeSeconds: 1.5, Appended: 15, Acked: 6, DroppedOldest: 1, Expired: 2}}},
		Uplink: UplinkStatus{Endpoint: "http://127.0.0.1:9180", Streams: map[string]UplinkStream{
			"telemetry": {State: StateDegraded, Sent: 6, Retried: 2, DeadLettered: 1, Requests: 4, FailedRequests: 1}}},
		Downlink: &DownlinkStatus{State: "running", Delivered: 9, ReadErrors: 2,
			Partitions: []DownlinkPartition{{Stream: "cmd", Partition: "shardId-0000000000", Lag: 42}}},
		Schemas:     []SchemaStream{{Stream: "telemetry", Source: "config", Known: true, Passed: 10, Rejected: map[string]uint64{"type": 3}}},
		DeadLetters: DeadLetterStatus{Total: 3, BySource: map[string]uint64{"router": 2, "dis": 1}},
		Reload:      ReloadStatus{Succeeded: 2, Failed: 1},
	}
}

func newTestServer(t *testing.T, token string, src func() Status) *Server {
	t.Helper()
	s, err := New(Options{Listen: "127.0.0.1:0", Token: token, Source: src, Version: "v-test",
		Logger: slog.New(slog.DiscardHandler),
		Reload: func(context.Context) ReloadResult {
			return ReloadResult{Errors: []string{"routes[0].topic: bad"}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestNewRefusesNonLoopbackWithoutToken(t *testing.T) {
	src := func() Status { return Status{} }
	for _, addr := range []string{":9181", "0.0.0.0:9181", "192.0.2.1:9181", "[::]:9181"} {
		if _, err := New(Options{Listen: addr, Source: src}); err == nil || !strings.Contains(err.Error(), "bearer token") {
			t.Errorf("New(%s) without token = %v, want a refusal naming the token", addr, err)
		}
		if _, err := New(Options{Listen: addr, Token: "t", Source: src}); err != nil {
			t.Errorf("New(%s) with token: %v", addr, err)
		}
	}
	if _, err := New(Options{Listen: "127.0.0.1:9181", Source: src}); err != nil {
		t.Errorf("loopback without token: %v", err)
	}
}

func TestTokenGuardsEverythingButProbesAndStaticFiles(t *testing.T) {
	h := newTestServer(t, "s3cret", fakeStatus).Handler()
	good := map[string]string{"Authorization": "Bearer s3cret"}
	bad := map[string]string{"Authorization": "Bearer nope"}
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		want         int
	}{
		{"GET", "/healthz", nil, 200},
		{"GET", "/readyz", nil, 200},
		{"GET", "/", nil, 200},
		{"GET", "/app.js", nil, 200},
		{"GET", "/metrics", nil, 401},
		{"GET", "/metrics", bad, 401},
		{"GET", "/metrics", good, 200},
		{"GET", "/api/v1/status", nil, 401},
		{"GET", "/api/v1/status", map[string]string{"Authorization": "s3cret"}, 401},
		{"GET", "/api/v1/status", good, 200},
		{"GET", "/api/v1/history", good, 200},
		{"GET", "/api/v1/history?since=x", good, 400},
		{"POST", "/api/v1/reload", nil, 401},
		{"POST", "/api/v1/reload", good, 422},
		{"GET", "/api/v1/reload", good, 405},
		{"GET", "/api/v1/status", map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://evil.example"}, 403},
		{"GET", "/nope", nil, 404},
	} {
		if code, body := get(t, h, tc.method, tc.path, tc.hdr); code != tc.want {
			t.Errorf("%s %s %v = %d, want %d: %s", tc.method, tc.path, tc.hdr, code, tc.want, body)
		}
	}
}

func TestReloadRefusalCarriesReasons(t *testing.T) {
	h := newTestServer(t, "", fakeStatus).Handler()
	code, body := get(t, h, "POST", "/api/v1/reload", nil)
	var res ReloadResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 422 || len(res.Errors) != 1 || res.Errors[0] != "routes[0].topic: bad" {
		t.Fatalf("reload = %d %s (%v)", code, body, err)
	}
}

func TestReadiness(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Status)
		ready  bool
		reason string
	}{
		{"all up", func(*Status) {}, true, ""},
		{"offline but buffer has room", func(s *Status) { s.Uplink.Streams["telemetry"] = UplinkStream{State: StateOffline} }, true, ""},
		{"offline and buffer nearly full", func(s *Status) {
			s.Uplink.Streams["telemetry"] = UplinkStream{State: StateOffline}
			s.Buffer.Bytes = s.Buffer.MaxBytes * 95 / 100
		}, false, "DIS is unreachable for stream(s) [telemetry]"},
		{"online and buffer nearly full drains", func(s *Status) { s.Buffer.Bytes = s.Buffer.MaxBytes }, true, ""},
		{"broker not listening", func(s *Status) { s.MQTT.Listening = false }, false, "MQTT broker is not listening"},
		{"buffer closed", func(s *Status) { s.Buffer.Open = false }, false, "buffer is not open"},
		{"shutting down", func(s *Status) { s.Gateway.ShuttingDown = true }, false, "shutting down"},
		{"starting", func(s *Status) { s.Gateway.Starting = true }, false, "the gateway is starting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := fakeStatus()
			tc.mutate(&st)
			h := newTestServer(t, "", func() Status { return st }).Handler()
			code, body := get(t, h, "GET", "/readyz", nil)
			var r Readiness
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			wantCode := 200
			if !tc.ready {
				wantCode = 503
			}
			if code != wantCode || r.Ready != tc.ready {
				t.Fatalf("readyz = %d %s, want %d", code, body, wantCode)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(r.Reasons, "\n"), tc.reason) {
				t.Fatalf("reasons %q lack %q", r.Reasons, tc.reason)
			}
		})
	}
}

// TestMetricsExposeStatus checks names, labels and values exactly, so a
// renamed metric (which breaks dashboards and alerts) fails here.
func TestMetricsExposeStatus(t *testing.T) {
	s := newTestServer(t, "", fakeStatus)
	s.ObservePutRecords("telemetry", nil, 30*time.Millisecond)
	s.ObservePutRecords("telemetry", io.EOF, 2*time.Second)
	code, body := get(t, s.Handler(), "GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("metrics = %d", code)
	}
	for _, want := range []string{
		`edgegw_build_info{gateway="gw1",version="v-test"} 1`,
		`edgegw_ready 1`,
		`edgegw_mqtt_clients_connected 3`,
		`edgegw_mqtt_publishes_received_total{qos="0"} 4`,
		`edgegw_mqtt_publishes_received_total{qos="2"} 6`,
		`edgegw_mqtt_publishes_sent_total{qos="1"} 7`,
		`edgegw_mqtt_logins_total{method="password"} 8`,
		`edgegw_mqtt_login_failures_total{reason="bad_password"} 2`,
		`edgegw_mqtt_acl_denied_total{action="publish"} 1`,
		`edgegw_mqtt_acl_denied_total{action="subscribe"} 0`,
		`edgegw_mqtt_acl_denied_total{action="delivery"} 3`,
		`edgegw_ingest_records_accepted_total 15`,
		`edgegw_ingest_publishes_rejected_total{reason="buffer_full"} 2`,
		`edgegw_ingest_publishes_rejected_total{reason="invalid_payload"} 0`,
		`edgegw_ingest_publishes_rejected_total{reason="acl_denied"} 1`,
		`edgegw_ingest_publishes_rejected_total{reason="future_reason"} 4`,
		`edgegw_schema_known{source="config",stream="telemetry"} 1`,
		`edgegw_schema_validations_total{result="passed",stream="telemetry"} 10`,
		`edgegw_schema_rejected_total{code="type",stream="telemetry"} 3`,
		`edgegw_router_unmatched_total 1`,
		`edgegw_dead_letters_total{source="router"} 2`,
		`edgegw_dead_letters_total{source="schema"} 0`,
		`edgegw_dead_letters_total{source="downlink"} 0`,
		`edgegw_buffer_records{stream="telemetry"} 9`,
		`edgegw_buffer_bytes{stream="telemetry"} 900`,
		`edgegw_buffer_oldest_record_age_seconds{stream="telemetry"} 1.5`,
		`edgegw_buffer_max_bytes 1.048576e+06`,
		`edgegw_buffer_records_dropped_total{reason="overflow",stream="telemetry"} 1`,
		`edgegw_buffer_records_dropped_total{reason="expired",stream="telemetry"} 2`,
		`edgegw_buffer_syncs_total 11`,
		`edgegw_uplink_state{state="degraded",stream="telemetry"} 1`,
		`edgegw_uplink_state{state="online",stream="telemetry"} 0`,
		`edgegw_uplink_records_sent_total{stream="telemetry"} 6`,
		`edgegw_uplink_records_retried_total{stream="telemetry"} 2`,
		`edgegw_uplink_records_dead_lettered_total{stream="telemetry"} 1`,
		`edgegw_uplink_requests_total{stream="telemetry"} 4`,
		`edgegw_uplink_requests_failed_total{stream="telemetry"} 1`,
		`edgegw_downlink_lag_records{partition="shardId-0000000000",stream="cmd"} 42`,
		`edgegw_downlink_running 1`,
		`edgegw_downlink_records_delivered_total 9`,
		`edgegw_downlink_errors_total{kind="read"} 2`,
		`edgegw_config_reloads_total{result="success"} 2`,
		`edgegw_config_reloads_total{result="failure"} 1`,
		`edgegw_dis_put_records_duration_seconds_count{outcome="ok",stream="telemetry"} 1`,
		`edgegw_dis_put_records_duration_seconds_bucket{outcome="ok",stream="telemetry",le="0.05"} 1`,
		`edgegw_dis_put_records_duration_seconds_bucket{outcome="error",stream="telemetry",le="1"} 0`,
		`edgegw_dis_put_records_duration_seconds_count{outcome="error",stream="telemetry"} 1`,
	} {
		if !hasLine(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, family := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if !strings.Contains(body, "\n"+family+" ") {
			t.Errorf("metrics lack %s", family)
		}
	}
}

func hasLine(body, want string) bool {
	for _, l := range strings.Split(body, "\n") {
		if l == want {
			return true
		}
	}
	return false
}

func TestHistoryKeepsTheLastSamples(t *testing.T) {
	h := &history{max: 3}
	for i := range 5 {
		h.add(Sample{T: int64(i + 1)})
	}
	got := h.since(0)
	if len(got) != 3 || got[0].T != 3 || got[2].T != 5 {
		t.Fatalf("since(0) = %+v", got)
	}
	if got := h.since(4); len(got) != 1 || got[0].T != 5 {
		t.Fatalf("since(4) = %+v", got)
	}
	if got := h.since(5); len(got) != 0 {
		t.Fatalf("since(5) = %+v", got)
	}
}

func TestServerServesAndSamples(t *testing.T) {
	var mu sync.Mutex
	n := uint64(0)
	src := func() Status {
		mu.Lock()
		defer mu.Unlock()
		n++
		st := fakeStatus()
		st.Ingest.Accepted = n
		return st
	}
	s, err := New(Options{Listen: "127.0.0.1:0", Source: src, SampleEvery: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	url := "http://" + s.Addr().String()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/api/v1/history")
		if err != nil {
			t.Fatal(err)
		}
		var h struct{ Samples []Sample }
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Samples) >= 3 {
			if h.Samples[0].Accepted >= h.Samples[2].Accepted {
				t.Fatalf("samples do not follow the source: %+v", h.Samples)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d samples after 10s", len(h.Samples))
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a correctness wait
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("server still answers after Shutdown")
	}
}

func TestRecentErrorsKeepWarningsWithAttributes(t *testing.T) {
	var out bytes.Buffer
	re := NewRecentErrors()
	log := slog.New(re.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log = log.With("component", "uplink")
	log.Info("fine")
	log.WithGroup("g").Warn("slow", "stream", "telemetry")
	log.Error("broken", "err", io.EOF)
	got := re.List()
	if len(got) != 2 || got[0].Message != "slow" || got[0].Attrs != `component="uplink" g.stream="telemetry"` ||
		got[1].Level != "ERROR" || got[1].Attrs != `component="uplink" err="EOF"` {
		t.Fatalf("kept %+v", got)
	}
	if !strings.Contains(out.String(), "msg=fine") || !strings.Contains(out.String(), "msg=broken") {
		t.Fatalf("records not passed on: %s", out.String())
	}
	for range recentErrorsKept + 5 {
		log.Warn("again")
	}
	if n := len(re.List()); n != recentErrorsKept {
		t.Fatalf("kept %d, want %d", n, recentErrorsKept)
	}
}

func TestDeadLettersCountAndPreview(t *testing.T) {
	d := NewDeadLetters()
	d.Add("$edgegw/deadletter/telemetry", []byte(`{"stream":"telemetry","source":"router","reason":"no key","data":"`+strings.Repeat("é", 300)+`"}`))
	d.Add("$edgegw/deadletter/telemetry", []byte(`{"stream":"telemetry","source":"dis","code":"DIS.4226","reason":"bad","data_base64":"AAEC"}`))
	d.Add("$edgegw/deadletter/x", []byte(`not json`))
	st := d.Status()
	if st.Total != 3 || st.BySource["router"] != 1 || st.BySource["dis"] != 1 || st.BySource["unknown"] != 1 {
		t.Fatalf("counts %+v", st)
	}
	if p := st.Recent[0].Preview; len(p) > previewBytes+len("…") || !strings.HasSuffix(p, "…") {
		t.Fatalf("preview not cut: %d bytes %q", len(p), p)
	}
	if st.Recent[1].Preview != "(3 bytes of binary data)" || st.Recent[1].Code != "DIS.4226" {
		t.Fatalf("binary preview %+v", st.Recent[1])
	}
}
