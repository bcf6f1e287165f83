package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/admin"
	"github.com/edgegw/edgegw/internal/downlink"
	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/router"
)

// adminGet fetches path from the running gateway's admin server with token.
func adminGet(t testing.TB, r *running, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+r.gw.AdminAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// scrape returns every sample of /metrics keyed by its series as exposed,
// e.g. `edgegw_uplink_records_sent_total{stream="telemetry"}`.
func scrape(t testing.TB, r *running, token string) map[string]float64 {
	t.Helper()
	code, body := adminGet(t, r, "/metrics", token)
	if code != 200 {
		t.Fatalf("/metrics = %d: %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func statusOf(t testing.TB, r *running, token string) admin.Status {
	t.Helper()
	code, body := adminGet(t, r, "/api/v1/status", token)
	if code != 200 {
		t.Fatalf("/api/v1/status = %d: %s", code, body)
	}
	var st admin.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// After a known load, /metrics reports exactly that load: publishes in and out
// by QoS, records accepted, refused and unrouted, the buffer's and the
// uplink's counts, and one latency observation per PutRecords request.
func TestMetricsAfterKnownLoad(t *testing.T) {
	const token = "metrics-test-token"
	cfg := testConfig(t, t.TempDir())
	cfg.Admin.Token = token
	cfg.Routing.Routes = append(cfg.Routing.Routes, router.Route{Topic: "keyed/+", Stream: "telemetry", PartitionKey: "{payload.id}"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)

	var delivered atomic.Int64
	sub := mqtttest.Connect(t, gw.mqttAddr(), "sub", func(o *paho.ClientOptions) {
		o.SetDefaultPublishHandler(func(paho.Client, paho.Message) { delivered.Add(1) })
	})
	if tok := sub.Subscribe("devices/#", 2, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	pub := mqtttest.Connect(t, gw.mqttAddr(), "pub")
	send := func(topic string, qos byte, n int, body func(i int) []byte) {
		t.Helper()
		payloads := make([][]byte, n)
		for i := range payloads {
			payloads[i] = body(i)
		}
		rs := mqtttest.PublishAll(pub, []string{topic}, payloads, qos, 16, time.Minute)
		if err := mqtttest.FirstError(rs); err != nil {
			t.Fatalf("publish to %s at QoS %d: %v", topic, qos, err)
		}
	}
	// QoS 0 first: the same connection's later QoS 1 acks prove they were handled.
	send("devices/d2/telemetry", 0, 20, func(i int) []byte { return payload("d2", i) })
	send("devices/d1/telemetry", 1, 30, func(i int) []byte { return payload("d1", i) })
	send("devices/d3/telemetry", 2, 10, func(i int) []byte { return payload("d3", i) })
	send("keyed/x", 1, 1, func(int) []byte { return []byte(`{"no_id":1}`) }) // no key: refused, dead-lettered
	send("elsewhere/x", 1, 3, func(int) []byte { return []byte("not for DIS") })

	waitFor(t, "60 records in DIS and 60 deliveries", time.Minute, func() bool {
		return statusOf(t, gw, token).Uplink.Streams["telemetry"].Sent == 60 && delivered.Load() == 60
	})
	m := scrape(t, gw, token)
	requests := m[`edgegw_uplink_requests_total{stream="telemetry"}`]
	for series, want := range map[string]float64{
		`edgegw_mqtt_clients_connected`:                                       2,
		`edgegw_mqtt_logins_total{method="anonymous"}`:                        2,
		`edgegw_mqtt_login_failures_total{reason="bad_password"}`:             0,
		`edgegw_mqtt_acl_denied_total{action="publish"}`:                      0,
		`edgegw_mqtt_publishes_received_total{qos="0"}`:                       20,
		`edgegw_mqtt_publishes_received_total{qos="1"}`:                       34,
		`edgegw_mqtt_publishes_received_total{qos="2"}`:                       10,
		`edgegw_mqtt_publishes_sent_total{qos="0"}`:                           20,
		`edgegw_mqtt_publishes_sent_total{qos="1"}`:                           30,
		`edgegw_mqtt_publishes_sent_total{qos="2"}`:                           10,
		`edgegw_ingest_records_accepted_total`:                                60,
		`edgegw_ingest_publishes_rejected_total{reason="unroutable"}`:         1,
		`edgegw_ingest_publishes_rejected_total{reason="buffer_full"}`:        0,
		`edgegw_ingest_publishes_rejected_total{reason="acl_denied"}`:         0,
		`edgegw_schema_validations_total{result="passed",stream="telemetry"}`: 60,
		`edgegw_router_unmatched_total`:                                       3,
		`edgegw_dead_letters_total{source="router"}`:                          1,
		`edgegw_dead_letters_total{source="dis"}`:                             0,
		`edgegw_buffer_records_appended_total{stream="telemetry"}`:            60,
		`edgegw_buffer_records_acked_total{stream="telemetry"}`:               60,
		`edgegw_buffer_records{stream="telemetry"}`:                           0,
		`edgegw_buffer_bytes{stream="telemetry"}`:                             0,
		`edgegw_uplink_records_sent_total{stream="telemetry"}`:                60,
		`edgegw_uplink_records_dead_lettered_total{stream="telemetry"}`:       0,
		`edgegw_uplink_requests_failed_total{stream="telemetry"}`:             0,
		`edgegw_uplink_state{state="online",stream="telemetry"}`:              1,
		`edgegw_ready`: 1,
		// One latency observation per request, all answered.
		`edgegw_dis_put_records_duration_seconds_count{outcome="ok",stream="telemetry"}`: requests,
	} {
		got, ok := m[series]
		if !ok {
			t.Errorf("%s missing", series)
		} else if got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if requests < 1 {
		t.Errorf("edgegw_uplink_requests_total = %v, want at least 1", requests)
	}

	st := statusOf(t, gw, token)
	if n := len(st.DeadLetters.Recent); n != 1 || st.DeadLetters.Recent[0].Source != "router" || st.DeadLetters.Recent[0].Preview != `{"no_id":1}` {
		t.Errorf("recent dead letters = %+v", st.DeadLetters.Recent)
	}
	if code, _ := adminGet(t, gw, "/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token = %d, want 401", code)
	}
	if code, body := adminGet(t, gw, "/readyz", ""); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
}

// The downlink's snapshot reaches the admin API field by field.
func TestDownlinkStatusConversion(t *testing.T) {
	got := downlinkStatus(downlink.Stats{App: "gw-downlink", State: downlink.StateRunning, Delivered: 5, Filtered: 1,
		Dropped: 2, DeadLettered: 3, ReadErrors: 4, CommitErrors: 6, TrimHorizonJumps: 7,
		Partitions: []downlink.PartitionStats{{Stream: "cmd", PartitionID: "shardId-0000000001", State: "idle", Lag: 8, Delivered: 5, LastError: "x"}}})
	want := &admin.DownlinkStatus{App: "gw-downlink", State: "running", Delivered: 5, Filtered: 1, Dropped: 2,
		DeadLettered: 3, ReadErrors: 4, CommitErrors: 6, TrimHorizonJumps: 7,
		Partitions: []admin.DownlinkPartition{{Stream: "cmd", Partition: "shardId-0000000001", State: "idle", Lag: 8, Delivered: 5, LastError: "x"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// A running downlink shows in the status API and the metrics: its state,
// the records it delivered, and each partition's lag.
func TestDownlinkInStatusAndMetrics(t *testing.T) {
	const token = "downlink-status-token"
	cfg := downlinkConfig(t)
	cfg.Admin.Token = token
	gw := startGateway(t, cfg)
	var got atomic.Int64
	mqtttest.Connect(t, gw.mqttAddr(), "d1", func(o *paho.ClientOptions) {
		o.SetDefaultPublishHandler(func(paho.Client, paho.Message) { got.Add(1) })
		o.SetOnConnectHandler(func(c paho.Client) { c.Subscribe("devices/d1/commands", 1, nil) })
	})
	c := disClient(t, gw.gw.DISEndpoint())
	createStream(t, c, "commands", 1)
	putCommands(t, c, "cmd-", 0, 20, func(int) string { return "d1" })

	waitFor(t, "20 commands delivered and the lag at 0", time.Minute, func() bool {
		d := statusOf(t, gw, token).Downlink
		return got.Load() == 20 && d != nil && d.Delivered == 20 && len(d.Partitions) == 1 && d.Partitions[0].Lag == 0
	})
	m := scrape(t, gw, token)
	for series, want := range map[string]float64{
		`edgegw_downlink_running`:                                                       1,
		`edgegw_downlink_records_delivered_total`:                                       20,
		`edgegw_downlink_records_dead_lettered_total`:                                   0,
		`edgegw_downlink_lag_records{partition="shardId-0000000000",stream="commands"}`: 0,
	} {
		if v, ok := m[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
}
