package gateway

import (
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/router"
)

// The gateway's own publishes (downlink commands, dead letters) never enter
// the uplink path, even when an uplink route would take their topics: here
// the unmatched catch-all stream takes every device topic, and after
// commands were delivered and a dead letter published, it holds only the
// one device publish and no publish was counted as routed or unrouted.
func TestGatewayPublishesNeverReenterTheUplink(t *testing.T) {
	cfg := downlinkConfig(t)
	cfg.Streams = append(cfg.Streams, stream("everything"))
	cfg.Routing.Unmatched = router.Unmatched{Stream: "everything"}
	cfg.Routing.Routes = append(cfg.Routing.Routes, router.Route{Topic: "bad/#", Stream: "telemetry", PartitionKey: "{payload.id}"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := startGateway(t, cfg)
	client := disClient(t, r.gw.DISEndpoint())
	createStream(t, client, "commands", 1)

	in := &inbox{}
	sub := mqtttest.Connect(t, r.mqttAddr(), "fleet-app")
	subscribe(t, sub, "devices/+/commands", 1, in.handler)
	dead := &inbox{}
	subscribe(t, sub, config.DefaultDeadLetterPrefix+"#", 1, dead.handler)

	putCommands(t, client, "cmd", 0, 3, func(int) string { return "d1" })
	waitUntil(t, "3 commands", 30*time.Second, func() bool { return in.len() >= 3 })

	dev := mqtttest.Connect(t, r.mqttAddr(), "dev")
	for _, p := range []struct{ topic, body string }{{"bad/1", "no id"}, {"somewhere/else", "device data"}} {
		if tok := dev.Publish(p.topic, 1, false, p.body); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", p.topic, tok.Error())
		}
	}
	waitUntil(t, "the dead letter", 15*time.Second, func() bool { return dead.len() >= 1 })

	recs := readAll(t, r, "everything", 1)
	if len(recs) != 1 || string(recs[0].Data) != "device data" {
		var got []string
		for _, rec := range recs {
			got = append(got, string(rec.Data))
		}
		t.Fatalf("catch-all stream holds %q, want only the device publish", got)
	}
	st := r.gw.IngestStats()
	if st.Accepted != 1 || r.gw.router.Dropped() != 0 || st.Refused[RefusedUnroutable] != 1 {
		t.Fatalf("ingest %+v, unrouted %d: want 1 accepted, 1 unroutable (the device's), 0 unrouted",
			st, r.gw.router.Dropped())
	}
	if m := dead.all()[0]; m.Topic() != config.DefaultDeadLetterPrefix+"telemetry" {
		t.Fatalf("dead letter on %s", m.Topic())
	}
}
