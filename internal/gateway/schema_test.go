package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/router"
	"github.com/edgegw/edgegw/internal/schema"
)

// A stream the gateway does not create takes its data_type, data_schema and
// CSV delimiter from DIS (describe stream). Here the operator creates it in
// DIS after the gateway started: the refresher picks it up, and publishes
// are then checked with DIS's schema and DIS's delimiter.
func TestSchemaFetchedFromDIS(t *testing.T) {
	rows := stream("rows")
	rows.Create, rows.DataType = false, "" // no schema in the config: DIS is the source
	cfg := ingestConfig(t, []config.Stream{stream("telemetry"), rows},
		router.Config{Routes: []router.Route{{Topic: "rows/#", Stream: "rows"}}})
	cfg.Schema.RefreshInterval = config.Duration(time.Second) // a failed fetch retries within this
	cfg.Schema.FetchTimeout = config.Duration(time.Second)
	cfg.Schema.NoSchema = schema.NoSchemaReject
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)

	const avsc = `{"type":"record","name":"Row","fields":[{"name":"id","type":"string"},{"name":"v","type":"int"}]}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := disClient(t, gw.gw.DISEndpoint()).CreateStream(ctx, &dis.CreateStreamRequest{
		StreamName: "rows", PartitionCount: 1, StreamType: "COMMON", DataType: "CSV",
		DataSchema: avsc, CSVProperties: &dis.CSVProperties{Delimiter: ";"},
	}); err != nil {
		t.Fatal(err)
	}
	status := func() schema.StreamStatus {
		for _, s := range gw.gw.SchemaStatus() {
			if s.Stream == "rows" {
				return s
			}
		}
		return schema.StreamStatus{}
	}
	waitFor(t, "the schema of rows fetched from DIS", 30*time.Second, func() bool { return status().Known })
	if s := status(); s.Source != schema.SourceDIS || s.DataType != schema.CSV {
		t.Fatalf("schema status %+v, want CSV from DIS", s)
	}

	dev := mqtttest.ConnectV5(t, gw.mqttAddr(), mqtttest.V5Options{ClientID: "dev"})
	for _, tc := range []struct {
		payload string
		code    byte
		reason  string // part of the reason string
	}{
		{"d1;21", 0x00, ""},
		{"d1,21", 0x99, "column"}, // DIS's delimiter is ";": one column
		{"d1;warm", 0x99, "int"},
	} {
		code, reason, err := dev.PublishQoS1("rows/1", []byte(tc.payload))
		if err != nil || code != tc.code || !strings.Contains(reason, tc.reason) {
			t.Errorf("%q: PUBACK 0x%02x %q %v, want 0x%02x with %q", tc.payload, code, reason, err, tc.code, tc.reason)
		}
	}
	// QoS 0 has no ack to refuse: the invalid row is dropped, counted and
	// dead-lettered all the same.
	dead := mqtttest.ConnectV5(t, gw.mqttAddr(), mqtttest.V5Options{ClientID: "dead-letters"})
	if code, err := dead.SubscribeOne(DeadLetterTopicPrefix+"rows", 1); err != nil || code != 1 {
		t.Fatalf("subscribe to dead letters: 0x%02x %v", code, err)
	}
	dev3 := mqtttest.Connect(t, gw.mqttAddr(), "dev-qos0")
	if tok := dev3.Publish("rows/1", 0, false, "d2;cold"); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("QoS 0 publish: %v", tok.Error())
	}
	if _, dl := nextDeadLetter(t, dead); dl.ClientID != "dev-qos0" || dl.Data == nil || *dl.Data != "d2;cold" || dl.Code != string(schema.CodeType) {
		t.Fatalf("dead letter of the QoS 0 row: %+v", dl)
	}
	if n := gw.gw.IngestStats().Streams["rows"].Refused[RefusedInvalidPayload]; n != 3 {
		t.Fatalf("%d invalid payloads counted for rows, want 3", n)
	}
	if recs := readAll(t, gw, "rows", 1); len(recs) != 1 || string(recs[0].Data) != "d1;21" {
		t.Fatalf("stream rows holds %d records (first %q), want only the valid row", len(recs), recs[0].Data)
	}
	if r := status().Rejected; r[schema.CodeColumns] != 1 || r[schema.CodeType] != 2 {
		t.Fatalf("rejections by code %v, want one columns and two type", r)
	}
}
