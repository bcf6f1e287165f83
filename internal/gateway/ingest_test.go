package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/distest"
	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/router"
	"github.com/edgegw/edgegw/internal/schema"
	"github.com/edgegw/edgegw/internal/schema/schematest"
)

// ingestConfig is testConfig with the given streams (created by the
// gateway, one partition) and routes.
func ingestConfig(t *testing.T, streams []config.Stream, routes router.Config) config.Config {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Streams = streams
	cfg.Routing = routes
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func stream(name string) config.Stream {
	return config.Stream{Name: name, Create: true, PartitionCount: 1, StreamType: "COMMON", DataType: "BLOB", DataDuration: 24}
}

// readAll reads a stream back from DIS once want records are there.
func readAll(t *testing.T, r *running, name string, want int) []dis.Record {
	t.Helper()
	prs, err := distest.WaitForCount(context.Background(), disClient(t, r.gw.DISEndpoint()), name, want, time.Minute)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	var out []dis.Record
	for _, p := range prs {
		out = append(out, p.Records...)
	}
	return out
}

// nextDeadLetter waits for the next dead letter on a subscribed client.
func nextDeadLetter(t *testing.T, c *mqtttest.V5) (string, deadLetter) {
	t.Helper()
	select {
	case m := <-c.Messages:
		var dl deadLetter
		if err := json.Unmarshal(m.Payload, &dl); err != nil {
			t.Fatalf("dead letter on %s is not JSON: %v: %s", m.Topic, err, m.Payload)
		}
		return m.Topic, dl
	case <-time.After(15 * time.Second):
		t.Fatal("no dead letter")
	}
	return "", deadLetter{}
}

// Every golden fixture set becomes a stream the gateway creates with the
// set's schema; each good payload is acknowledged and reaches DIS, each bad
// one gets PUBACK 0x99 with the fixture's detail as the reason string, is
// not buffered, and is dead-lettered with that detail.
func TestSchemaValidationWithGoldenFixtures(t *testing.T) {
	sets, err := schematest.Load(schematest.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var streams []config.Stream
	var routes router.Config
	for _, set := range sets {
		s := stream(set.Stream.Name)
		s.DataType = set.Stream.DataType
		s.DataSchema = set.Stream.DataSchema
		s.StreamSchema = config.StreamSchema{CSVDelimiter: set.Stream.CSVDelimiter, CSVHeader: set.Stream.CSVHeader,
			AllowUnknownFields: set.Stream.AllowUnknownFields, AvroBinary: set.Stream.AvroBinary}
		streams = append(streams, s)
		routes.Routes = append(routes.Routes, router.Route{Topic: "golden/" + set.Stream.Name + "/+", Stream: set.Stream.Name})
	}
	gw := startGateway(t, ingestConfig(t, streams, routes))
	addr := gw.mqttAddr()

	dead := mqtttest.ConnectV5(t, addr, mqtttest.V5Options{ClientID: "dead-letter-reader"})
	if code, err := dead.SubscribeOne(DeadLetterTopicPrefix+"#", 1); err != nil || code != 1 {
		t.Fatalf("subscribe to dead letters: 0x%02x %v", code, err)
	}
	dev := mqtttest.ConnectV5(t, addr, mqtttest.V5Options{ClientID: "dev-v5"})
	dev3 := mqtttest.Connect(t, addr, "dev-v311")

	wantRefused := map[string]uint64{}
	for _, set := range sets {
		name := set.Stream.Name
		t.Run(set.Name, func(t *testing.T) {
			for _, p := range set.Good {
				code, reason, err := dev.PublishQoS1("golden/"+name+"/x", p.Data)
				if err != nil || code != 0 {
					t.Errorf("good %s: PUBACK 0x%02x %q %v, want success", p.Name, code, reason, err)
				}
			}
			for _, p := range set.Bad {
				code, reason, err := dev.PublishQoS1("golden/"+name+"/x", p.Data)
				if err != nil || code != 0x99 || reason != p.Detail {
					t.Errorf("bad %s: PUBACK 0x%02x %q %v, want 0x99 %q", p.Name, code, reason, err, p.Detail)
				}
				topic, dl := nextDeadLetter(t, dead)
				if topic != DeadLetterTopicPrefix+name || dl.Stream != name || dl.Source != "schema" ||
					dl.Code != string(p.Code) || dl.Reason != p.Detail || dl.ClientID != "dev-v5" || dl.Topic != "golden/"+name+"/x" {
					t.Errorf("bad %s: dead letter on %s: %+v", p.Name, topic, dl)
				}
				got := []byte(nil)
				if dl.Data != nil {
					got = []byte(*dl.Data)
				} else {
					got = dl.DataBase64
				}
				if !bytes.Equal(got, p.Data) {
					t.Errorf("bad %s: dead letter carries %q, want the payload %q", p.Name, got, p.Data)
				}
				wantRefused[name]++
			}
			// MQTT 3.1.1 has no negative ack: a payload that can never pass is
			// acked (the device must not resend it forever) and dead-lettered.
			if len(set.Bad) > 0 {
				res := mqtttest.PublishAll(dev3, []string{"golden/" + name + "/v3"}, [][]byte{set.Bad[0].Data}, 1, 1, 15*time.Second)
				if err := mqtttest.FirstError(res); err != nil {
					t.Errorf("3.1.1 bad payload: %v, want acked", err)
				}
				if _, dl := nextDeadLetter(t, dead); dl.Reason != set.Bad[0].Detail || dl.ClientID != "dev-v311" {
					t.Errorf("3.1.1 dead letter %+v", dl)
				}
				wantRefused[name]++
			}
			recs := readAll(t, gw, name, len(set.Good))
			var data [][]byte
			for _, r := range recs {
				data = append(data, r.Data)
			}
			for _, p := range set.Good {
				if !slices.ContainsFunc(data, func(d []byte) bool { return bytes.Equal(d, p.Data) }) {
					t.Errorf("good %s is not in stream %s", p.Name, name)
				}
			}
			if len(recs) != len(set.Good) {
				t.Errorf("stream %s has %d records, want only the %d good payloads", name, len(recs), len(set.Good))
			}
		})
	}

	st := gw.gw.IngestStats()
	for name, n := range wantRefused {
		if got := st.Streams[name].Refused[RefusedInvalidPayload]; got != n {
			t.Errorf("stream %s: %d invalid payloads counted, want %d", name, got, n)
		}
	}
	byCode := map[schema.Code]uint64{}
	for _, s := range gw.gw.SchemaStatus() {
		if s.Source != schema.SourceConfig || !s.Known {
			t.Errorf("stream %s: schema source %s known %v, want config-sourced (create: true)", s.Stream, s.Source, s.Known)
		}
		for c, n := range s.Rejected {
			byCode[c] += n
		}
	}
	if byCode[schema.CodeRange] == 0 || byCode[schema.CodeSyntax] == 0 {
		t.Errorf("rejections by code %v: the fixtures have range and syntax errors", byCode)
	}
	if closed := dev.Lost(); isClosed(closed) {
		t.Fatalf("refusals cost the MQTT 5 client its connection: %v", dev.LostErr())
	}
	// One line per stream and client (two clients; blob has no bad payloads).
	if n, want := strings.Count(gw.logs.String(), "publish refused"), 2*(len(sets)-1); n != want {
		t.Errorf("logged %d refusals, want one per stream and client (%d)", n, want)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Each routing form, checked on the records DIS stores: a key from a topic
// level, the client id, the username, a JSON payload field; a fixed
// partition; no key (DIS spreads); an envelope; and the unmatched catch-all.
func TestRoutingFormsReachDIS(t *testing.T) {
	streams := []config.Stream{stream("by_key"), stream("by_partition"), stream("spread"), stream("enveloped"), stream("catch_all")}
	streams[1].PartitionCount = 3
	streams[2].PartitionCount = 3
	cfg := ingestConfig(t, streams, router.Config{
		Routes: []router.Route{
			{Topic: "level/+/x", Stream: "by_key", PartitionKey: "{topic.2}"},
			{Topic: "client/#", Stream: "by_key", PartitionKey: "c-{client_id}"},
			{Topic: "user/#", Stream: "by_key", PartitionKey: "u-{username}"},
			{Topic: "json/#", Stream: "by_key", PartitionKey: "{payload.device.id}"},
			{Topic: "pinned/#", Stream: "by_partition", PartitionID: "2"},
			{Topic: "spread/#", Stream: "spread"},
			{Topic: "env/#", Stream: "enveloped", Envelope: true, PartitionKey: "{client_id}"},
		},
		Unmatched: router.Unmatched{Stream: "catch_all"},
	})
	cfg.MQTT.Users = append(cfg.MQTT.Users, mustUser(t, "alice", "pw"))
	gw := startGateway(t, cfg)
	c := mqtttest.ConnectV5(t, gw.mqttAddr(), mqtttest.V5Options{ClientID: "dev-42", Username: "alice", Password: "pw"})
	pub := func(topic, body string, props ...paho.UserProperty) {
		t.Helper()
		if code, reason, err := c.PublishQoS1(topic, []byte(body), props...); err != nil || code != 0 {
			t.Fatalf("publish %s: 0x%02x %q %v", topic, code, reason, err)
		}
	}
	pub("level/sensor-9/x", "a")
	pub("client/t", "b")
	pub("user/t", "c")
	pub("json/t", `{"device":{"id":"dev-j"},"v":1}`)
	for i := 0; i < 3; i++ {
		pub("pinned/t", fmt.Sprint(i))
	}
	pub("spread/t", "s")
	pub("env/t", "raw-body", paho.UserProperty{Key: "site", Value: "berlin"})
	pub("nowhere/else", "n")

	keys := map[string]string{}
	for _, r := range readAll(t, gw, "by_key", 4) {
		keys[string(r.Data)] = r.PartitionKey
	}
	want := map[string]string{"a": "sensor-9", "b": "c-dev-42", "c": "u-alice", `{"device":{"id":"dev-j"},"v":1}`: "dev-j"}
	for data, key := range want {
		if keys[data] != key {
			t.Errorf("record %q: partition key %q, want %q", data, keys[data], key)
		}
	}
	prs, err := distest.WaitForCount(context.Background(), disClient(t, gw.gw.DISEndpoint()), "by_partition", 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prs {
		if len(p.Records) > 0 && p.PartitionID != "shardId-0000000002" {
			t.Errorf("partition_id 2 records landed in %s", p.PartitionID)
		}
	}
	readAll(t, gw, "spread", 1)
	env := readAll(t, gw, "enveloped", 1)[0]
	var e map[string]any
	if err := json.Unmarshal(env.Data, &e); err != nil {
		t.Fatalf("envelope is not JSON: %v: %s", err, env.Data)
	}
	if e["topic"] != "env/t" || e["client_id"] != "dev-42" || !strings.Contains(string(env.Data), "berlin") ||
		e["payload"] != base64.StdEncoding.EncodeToString([]byte("raw-body")) {
		t.Errorf("envelope %s", env.Data)
	}
	if r := readAll(t, gw, "catch_all", 1)[0]; string(r.Data) != "n" {
		t.Errorf("catch-all got %q", r.Data)
	}
	// A key template that cannot be filled: 0x99 and a dead letter from the router.
	if code, reason, _ := c.PublishQoS1("json/t", []byte(`{"other":1}`)); code != 0x99 || !strings.Contains(reason, "device") {
		t.Errorf("unfillable key: 0x%02x %q, want 0x99 naming the field", code, reason)
	}
	if n := gw.gw.IngestStats().Streams["by_key"].Refused[RefusedUnroutable]; n != 1 {
		t.Errorf("unroutable count %d, want 1", n)
	}
}

func mustUser(t *testing.T, name, pw string) broker.User {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return broker.User{Name: name, PasswordHash: string(h)}
}

// With dead_letter.stream set, dead letters are also records of that stream
// (through the buffer), and the topic prefix is configurable; a
// mosquitto_sub reads them from MQTT.
func TestDeadLettersToDISStreamAndConfiguredTopic(t *testing.T) {
	sub := mqtttest.Tool(t, "mosquitto_sub")
	streams := []config.Stream{stream("readings"), stream("rejects")}
	streams[0].DataType = "JSON"
	streams[0].DataSchema = `{"type":"record","name":"R","fields":[{"name":"temp","type":"int"}]}`
	cfg := ingestConfig(t, streams, router.Config{Routes: []router.Route{{Topic: "r/#", Stream: "readings"}}})
	cfg.DeadLetter = config.DeadLetter{TopicPrefix: "site7/dead/", Stream: "rejects"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	host, port, _ := strings.Cut(gw.mqttAddr(), ":")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-i", "dl-sub", "-t", "site7/dead/#", "-C", "1", "-v")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mosquitto_sub's subscription", 30*time.Second, func() bool { return gw.gw.broker.ClientsConnected() >= 1 })
	dev := mqtttest.ConnectV5(t, gw.mqttAddr(), mqtttest.V5Options{ClientID: "dev"})
	// Publish until the subscriber has it: its SUBSCRIBE may follow its CONNECT by a moment.
	var code byte
	var reason string
	deadline := time.Now().Add(30 * time.Second)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for sent := 0; ; sent++ {
		code, reason, _ = dev.PublishQoS1("r/1", []byte(`{"temp":"warm"}`))
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("mosquitto_sub: %v", err)
			}
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("mosquitto_sub got no dead letter")
			}
			continue
		}
		break
	}
	if code != 0x99 || reason != `$.temp: want int, got string "warm"` {
		t.Fatalf("PUBACK 0x%02x %q", code, reason)
	}
	topic, body, _ := strings.Cut(strings.TrimSpace(out.String()), " ")
	var dl deadLetter
	if err := json.Unmarshal([]byte(body), &dl); err != nil || topic != "site7/dead/readings" || dl.Reason != reason || dl.Code != "type" {
		t.Fatalf("mosquitto_sub printed %q: %v %+v", out.String(), err, dl)
	}
	n := gw.gw.IngestStats().Streams["readings"].Refused[RefusedInvalidPayload]
	recs := readAll(t, gw, "rejects", int(n))
	var fromDIS deadLetter
	if err := json.Unmarshal(recs[0].Data, &fromDIS); err != nil || fromDIS.Stream != "readings" || fromDIS.Reason != reason ||
		*fromDIS.Data != `{"temp":"warm"}` || recs[0].PartitionKey != "readings" {
		t.Fatalf("dead-letter record %s (key %s): %v", recs[0].Data, recs[0].PartitionKey, err)
	}
	if got := distest.Count(mustRead(t, gw, "readings")); got != 0 {
		t.Fatalf("the invalid payload reached its stream (%d records)", got)
	}
}

func mustRead(t *testing.T, r *running, name string) []distest.PartitionRecords {
	t.Helper()
	prs, err := distest.ReadStream(context.Background(), disClient(t, r.gw.DISEndpoint()), name)
	if err != nil {
		t.Fatal(err)
	}
	return prs
}

// Users and ACLs from the config reach the broker, and ReloadAuth swaps
// them on the running gateway without dropping connections.
func TestAuthAndACLFromConfig(t *testing.T) {
	cfg := ingestConfig(t, []config.Stream{stream("telemetry")}, router.Config{Routes: []router.Route{
		{Topic: "devices/+/telemetry", Stream: "telemetry", PartitionKey: "{username}"}}})
	cfg.MQTT.Anonymous = "never"
	cfg.MQTT.Users = []broker.User{mustUser(t, "d1", "pw1")}
	cfg.MQTT.ACL = broker.ACLConfig{Rules: []broker.ACLRule{{Users: []string{"*"}, Publish: []string{"devices/%u/#"}}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	if _, ca, err := mqtttest.DialV5(gw.mqttAddr(), mqtttest.V5Options{ClientID: "x", Username: "d1", Password: "nope"}); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("wrong password: %v %+v", err, ca)
	}
	if _, _, err := mqtttest.DialV5(gw.mqttAddr(), mqtttest.V5Options{ClientID: "anon"}); err == nil {
		t.Fatal("anonymous client connected with mqtt.anonymous: never")
	}
	d1 := mqtttest.ConnectV5(t, gw.mqttAddr(), mqtttest.V5Options{ClientID: "d1", Username: "d1", Password: "pw1"})
	if code, _, _ := d1.PublishQoS1("devices/d1/telemetry", []byte("ok")); code != 0 {
		t.Fatalf("own topic: 0x%02x", code)
	}
	if code, _, _ := d1.PublishQoS1("devices/d2/telemetry", []byte("no")); code != 0x87 {
		t.Fatalf("another device's topic: 0x%02x, want 0x87", code)
	}
	if r := readAll(t, gw, "telemetry", 1); string(r[0].Data) != "ok" || r[0].PartitionKey != "d1" {
		t.Fatalf("record %q key %q", r[0].Data, r[0].PartitionKey)
	}

	next := cfg
	next.MQTT.ACL = broker.ACLConfig{Rules: []broker.ACLRule{{Users: []string{"*"}, Publish: []string{"devices/+/telemetry"}}}}
	if err := gw.gw.ReloadAuth(next); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := d1.PublishQoS1("devices/d2/telemetry", []byte("now ok")); code != 0 {
		t.Fatalf("after the reload: 0x%02x", code)
	}
	if isClosed(d1.Lost()) {
		t.Fatal("the reload dropped the connection")
	}
	s := gw.gw.BrokerStats()
	if s.ACLDeniedPublish != 1 || s.AuthFailures[broker.FailBadPassword] != 1 || s.AuthFailures[broker.FailAnonymous] != 1 {
		t.Fatalf("broker stats %+v", s)
	}
}

// A stream whose schema comes from DIS and cannot be fetched (here it does
// not exist) under no_schema: reject: the publish is refused as "retry
// later" (0x80, or a disconnect for 3.1.1), not as an invalid payload, and
// is not dead-lettered.
func TestNoSchemaRejectAsksToRetry(t *testing.T) {
	ghost := stream("ghost")
	ghost.Create, ghost.DataType = false, ""
	cfg := ingestConfig(t, []config.Stream{stream("telemetry"), ghost}, router.Config{Routes: []router.Route{{Topic: "g/#", Stream: "ghost"}}})
	cfg.Schema.NoSchema = schema.NoSchemaReject
	gw := startGateway(t, cfg)
	c := mqtttest.ConnectV5(t, gw.mqttAddr(), mqtttest.V5Options{ClientID: "dev"})
	code, reason, err := c.PublishQoS1("g/1", []byte("x"))
	if err != nil || code != 0x80 || reason != "the schema of stream ghost is not known yet; retry later" {
		t.Fatalf("PUBACK 0x%02x %q %v", code, reason, err)
	}
	c3, lost := dial311(t, gw.mqttAddr(), "dev3")
	if err := mqtttest.FirstError(mqtttest.PublishAll(c3, []string{"g/1"}, [][]byte{[]byte("x")}, 1, 1, 15*time.Second)); err == nil {
		t.Fatal("a 3.1.1 publish without a known schema was acked")
	}
	waitFor(t, "the 3.1.1 disconnect", 15*time.Second, func() bool { return isClosed(lost) })
	st := gw.gw.IngestStats()
	if st.Streams["ghost"].Refused[RefusedNoSchema] != 2 || st.DeadLetters != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func dial311(t *testing.T, addr, id string) (paho3.Client, chan struct{}) {
	lost := make(chan struct{})
	var once sync.Once
	c := mqtttest.Connect(t, addr, id, func(o *paho3.ClientOptions) {
		o.SetConnectionLostHandler(func(paho3.Client, error) { once.Do(func() { close(lost) }) })
	})
	return c, lost
}
