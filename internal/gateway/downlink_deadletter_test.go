package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// A command the downlink cannot address (its JSON lacks the field the topic
// needs) is dead-lettered: the dead-letter document reaches
// $edgegw/deadletter/<stream> with source downlink, the status API lists it,
// /metrics counts it under edgegw_dead_letters_total{source="downlink"}, and
// the commands after it are delivered.
func TestDownlinkDeadLetterReachesTopicStatusAndMetrics(t *testing.T) {
	const token = "downlink-dead-letter-token"
	cfg := downlinkConfig(t)
	cfg.Admin.Token = token
	cfg.Downlink.Routes = []config.DownlinkRoute{{Stream: "commands", Topic: "devices/{payload.device}/commands", QoS: 1, Transform: "raw"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := startGateway(t, cfg)
	dead, cmds := &inbox{}, &inbox{}
	sub := mqtttest.Connect(t, r.mqttAddr(), "ops")
	subscribe(t, sub, DeadLetterTopicPrefix+"#", 1, dead.handler)
	subscribe(t, sub, "devices/+/commands", 1, cmds.handler)

	client := disClient(t, r.gw.DISEndpoint())
	createStream(t, client, "commands", 1)
	req := &dis.PutRecordsRequest{StreamName: "commands"}
	for _, body := range []string{`{"device":"d1","op":"reboot"}`, `{"op":"no device"}`, `{"device":"d2","op":"reboot"}`} {
		req.Records = append(req.Records, dis.PutRecordsRequestEntry{Data: []byte(body), PartitionKey: "k"})
	}
	if resp, err := client.PutRecords(context.Background(), req); err != nil || resp.FailedRecordCount > 0 {
		t.Fatalf("PutRecords: %v %+v", err, resp)
	}
	waitUntil(t, "one dead letter and two commands", 30*time.Second, func() bool { return dead.len() == 1 && cmds.len() == 2 })

	var doc struct {
		Stream, Source, Code, Reason, Data string
		Key                                string `json:"partition_key"`
	}
	m := dead.all()[0]
	if err := json.Unmarshal(m.Payload(), &doc); err != nil {
		t.Fatal(err)
	}
	if m.Topic() != DeadLetterTopicPrefix+"commands" || doc.Source != "downlink" || doc.Code != "topic" || doc.Stream != "commands" ||
		doc.Key != "k" || doc.Data != `{"op":"no device"}` || !strings.Contains(doc.Reason, "{payload.device}") {
		t.Fatalf("dead letter on %s: %s", m.Topic(), m.Payload())
	}
	if got := cmds.all(); got[0].Topic() != "devices/d1/commands" || got[1].Topic() != "devices/d2/commands" {
		t.Fatalf("commands on %s and %s", got[0].Topic(), got[1].Topic())
	}

	st := statusOf(t, r, token)
	if st.DeadLetters.BySource["downlink"] != 1 || len(st.DeadLetters.Recent) != 1 || st.DeadLetters.Recent[0].Source != "downlink" {
		t.Fatalf("status dead letters %+v", st.DeadLetters)
	}
	mm := scrape(t, r, token)
	for series, want := range map[string]float64{
		`edgegw_dead_letters_total{source="downlink"}`: 1,
		`edgegw_dead_letters_total{source="router"}`:   0,
		`edgegw_downlink_records_dead_lettered_total`:  1,
		`edgegw_downlink_records_delivered_total`:      2,
	} {
		if v, ok := mm[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
}
