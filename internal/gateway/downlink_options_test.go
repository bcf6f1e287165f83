package gateway

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/downlink"
)

// The downlink section becomes the downlink's options: the app name derived
// from gateway.id unless set, match.value defaulting to gateway.id (the
// fleet pattern: forward the records addressed to this gateway), the start
// timestamp, and every route field.
func TestDownlinkOptionsFromConfig(t *testing.T) {
	parse := func(yaml string) config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	const head = "gateway: {id: site7.gw-2}\nstreams: [{name: s1}]\nroutes: [{topic: a/+, stream: s1}]\ndis: {builtin: {auth: {mode: none}}}\n"
	cfg := parse(head + `downlink:
  start_position: timestamp
  start_timestamp: "2026-03-01T12:00:00Z"
  on_drop: retry
  routes:
    - {stream: fleet, topic: "devices/{key_suffix}/cmd", qos: 2, retain: true, key_prefix: "site7.", partitions: ["1", "shardId-0000000003"]}
    - {stream: fleet, topic: "devices/{payload.device}/cfg", transform: unwrap, unwrap_field: body.cfg, match: {field: gateway}}
    - {stream: fleet, topic: fixed/topic, match: {field: site, value: site7}}
`)
	g := &Gateway{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	opts, err := g.downlinkOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.App != "site7-gw-2-downlink" || opts.App != downlink.AppName(cfg.Gateway.ID) {
		t.Errorf("app %q, want the one derived from gateway.id", opts.App)
	}
	if opts.Start != downlink.StartTimestamp || !opts.StartTime.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("start %s at %s", opts.Start, opts.StartTime)
	}
	if opts.OnDrop != downlink.DropRetry || opts.CommitEvery != 100 || opts.CommitInterval != time.Second || opts.PollMin != 100*time.Millisecond || opts.PollMax != time.Second {
		t.Errorf("options %+v", opts)
	}
	want := []downlink.Route{
		{Stream: "fleet", Topic: "devices/{key_suffix}/cmd", QoS: 2, Retain: true, Transform: "raw", UnwrapField: "payload",
			KeyPrefix: "site7.", Partitions: []string{"1", "shardId-0000000003"}},
		{Stream: "fleet", Topic: "devices/{payload.device}/cfg", QoS: 1, Transform: "unwrap", UnwrapField: "body.cfg",
			MatchField: "gateway", MatchValue: "site7.gw-2"},
		{Stream: "fleet", Topic: "fixed/topic", QoS: 1, Transform: "raw", UnwrapField: "payload", MatchField: "site", MatchValue: "site7"},
	}
	if !reflect.DeepEqual(opts.Routes, want) {
		t.Errorf("routes\n%+v\nwant\n%+v", opts.Routes, want)
	}
	if _, err := downlink.New(nil, opts); err != nil {
		t.Errorf("the options do not make a downlink: %v", err)
	}

	cfg = parse(head + "downlink:\n  app: fleet-consumer\n  routes: [{stream: c, topic: t}]\n")
	g = &Gateway{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	if opts, err := g.downlinkOptions(); err != nil || opts.App != "fleet-consumer" || opts.Start != downlink.StartLatest {
		t.Errorf("configured app: %q start %q (%v)", opts.App, opts.Start, err)
	}
}
