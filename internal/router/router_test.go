package router

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// naiveMatch is the MQTT filter rule written the obvious way, as an oracle
// for the trie.
func naiveMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f := strings.Split(filter, "/")
	t := strings.Split(topic, "/")
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(t) {
			return false
		}
		if level != "+" && level != t[i] {
			return false
		}
	}
	return len(f) == len(t)
}

func mustNew(t *testing.T, cfg Config) *Router {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func TestTopicFilterMatching(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		topic  string
		want   bool
	}{
		{"exact filter matches the same topic", "devices/d1/telemetry", "devices/d1/telemetry", true},
		{"exact filter does not match another level", "devices/d1/telemetry", "devices/d2/telemetry", false},
		{"plus matches one level", "devices/+/telemetry", "devices/d1/telemetry", true},
		{"plus does not match two levels", "devices/+/telemetry", "devices/d1/x/telemetry", false},
		{"plus matches an empty level", "devices/+/telemetry", "devices//telemetry", true},
		{"plus at the end needs a level", "devices/+", "devices", false},
		{"hash matches the parent level", "devices/#", "devices", true},
		{"hash matches many levels", "devices/#", "devices/d1/a/b/c", true},
		{"hash does not match a sibling", "devices/#", "device", false},
		{"lone hash matches everything", "#", "a/b", true},
		{"lone hash does not match $ topics", "#", "$SYS/broker/load", false},
		{"leading plus does not match $ topics", "+/broker/load", "$SYS/broker/load", false},
		{"literal $ filter matches $ topics", "$SYS/#", "$SYS/broker/load", true},
		{"plus after a $ level matches", "$SYS/+/load", "$SYS/broker/load", true},
		{"levels are case sensitive", "Devices/+", "devices/d1", false},
		{"trailing slash is an empty level", "devices/d1/", "devices/d1/", true},
		{"trailing slash differs from none", "devices/d1/", "devices/d1", false},
		{"leading slash is an empty first level", "/a", "/a", true},
		{"plus matches the empty first level", "+/a", "/a", true},
		{"plus and hash together", "+/+/#", "a/b", true},
		{"plus and hash need the plus levels", "+/+/#", "a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := naiveMatch(tc.filter, tc.topic); got != tc.want {
				t.Fatalf("oracle disagrees with the table: naiveMatch(%q, %q) = %v", tc.filter, tc.topic, got)
			}
			r := mustNew(t, Config{Routes: []Route{{Topic: tc.filter, Stream: "s"}}})
			res, err := r.Route(&Message{Topic: tc.topic})
			if err != nil {
				t.Fatal(err)
			}
			if res.Matched != tc.want {
				t.Fatalf("filter %q topic %q: matched = %v, want %v", tc.filter, tc.topic, res.Matched, tc.want)
			}
		})
	}
}

func TestFirstMatchWins(t *testing.T) {
	cfg := Config{Routes: []Route{
		{Topic: "devices/+/alarm", Stream: "alarms"},
		{Topic: "devices/#", Stream: "all"},
		{Topic: "devices/d1/telemetry", Stream: "never-for-devices"},
		{Topic: "other/+", Stream: "other"},
	}}
	r := mustNew(t, cfg)
	tests := []struct {
		name   string
		topic  string
		stream string
		index  int
	}{
		{"the earlier route wins over a later more specific one", "devices/d1/telemetry", "all", 1},
		{"the first route wins when several match", "devices/d1/alarm", "alarms", 0},
		{"a later route is used when the earlier ones do not match", "other/x", "other", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := r.Route(&Message{Topic: tc.topic})
			if err != nil {
				t.Fatal(err)
			}
			if res.Stream != tc.stream || res.RouteIndex != tc.index || !res.Matched {
				t.Fatalf("got stream %q index %d matched %v, want %q %d true", res.Stream, res.RouteIndex, res.Matched, tc.stream, tc.index)
			}
		})
	}
}

func TestUnmatched(t *testing.T) {
	t.Run("no unmatched stream drops and counts", func(t *testing.T) {
		r := mustNew(t, Config{Routes: []Route{{Topic: "a/+", Stream: "s"}}})
		for range 3 {
			res, err := r.Route(&Message{Topic: "b/c", Payload: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Dropped() || res.Matched || res.RouteIndex != -1 || res.Data != nil {
				t.Fatalf("want a drop, got %+v", res)
			}
		}
		if got := r.Dropped(); got != 3 {
			t.Fatalf("Dropped() = %d, want 3", got)
		}
	})
	t.Run("unmatched stream catches everything including $ topics", func(t *testing.T) {
		r := mustNew(t, Config{
			Routes:    []Route{{Topic: "a/+", Stream: "s"}},
			Unmatched: Unmatched{Stream: "catchall", PartitionKey: "{client_id}"},
		})
		for _, topic := range []string{"b/c", "$SYS/x", "a"} {
			res, err := r.Route(&Message{Topic: topic, ClientID: "c9", Payload: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			if res.Matched || res.RouteIndex != -1 || res.Stream != "catchall" || res.PartitionKey != "c9" || string(res.Data) != "x" {
				t.Fatalf("topic %q: got %+v", topic, res)
			}
		}
		if r.Dropped() != 0 {
			t.Fatalf("Dropped() = %d, want 0", r.Dropped())
		}
	})
}

func TestPartitionKeyTemplates(t *testing.T) {
	msg := &Message{
		Topic:    "devices/d1/telemetry",
		ClientID: "client-7",
		Username: "alice",
		Payload:  []byte(`{"device":{"id":"dev-42","n":17,"ok":true,"f":1.50,"esc":"a\"b\u00e9"},"readings":[{"id":"r0"},{"id":"r1"}],"dup":"first","dup":"last"}`),
	}
	tests := []struct {
		name     string
		template string
		want     string
	}{
		{"topic levels count from 1", "{topic.2}", "d1"},
		{"topic level 1 is the first level", "{topic.1}", "devices"},
		{"client id", "{client_id}", "client-7"},
		{"username", "{username}", "alice"},
		{"literal text around placeholders", "site-{topic.2}/{username}!", "site-d1/alice!"},
		{"doubled braces are literal braces", "{{{client_id}}}", "{client-7}"},
		{"payload string field", "{payload.device.id}", "dev-42"},
		{"payload number keeps its literal text", "{payload.device.f}", "1.50"},
		{"payload integer", "{payload.device.n}", "17"},
		{"payload boolean", "{payload.device.ok}", "true"},
		{"payload string escapes are decoded", "{payload.device.esc}", "a\"bé"},
		{"payload array index", "{payload.readings.1.id}", "r1"},
		{"a repeated key resolves to the last, as encoding/json does", "{payload.dup}", "last"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{Routes: []Route{{Topic: "devices/+/telemetry", Stream: "s", PartitionKey: tc.template}}})
			res, err := r.Route(msg)
			if err != nil {
				t.Fatal(err)
			}
			if res.PartitionKey != tc.want {
				t.Fatalf("key = %q, want %q", res.PartitionKey, tc.want)
			}
		})
	}
}

func TestPartitionKeyErrors(t *testing.T) {
	tests := []struct {
		name     string
		topic    string
		filter   string
		template string
		payload  string
		username string
		want     string
	}{
		{"payload that is not JSON", "d/1", "d/+", "{payload.id}", "temp=3", "", "payload is not JSON"},
		{"empty payload is not JSON", "d/1", "d/+", "{payload.id}", "", "", "payload is not JSON"},
		{"missing payload field", "d/1", "d/+", "{payload.device.id}", `{"device":{}}`, "", "partition key {payload.device.id}: field device.id is missing"},
		{"a composite template names itself and the placeholder", "d/1", "d/+", "site-{payload.id}", `{}`, "", "partition key site-{payload.id}: {payload.id}: field id is missing"},
		{"payload field through a non-object", "d/1", "d/+", "{payload.device.id}", `{"device":3}`, "", "device is a number, not an object"},
		{"payload that is an array at the top", "d/1", "d/+", "{payload.id}", `[1]`, "", `"id" indexes an array`},
		{"array index past the end", "d/1", "d/+", "{payload.a.5}", `{"a":[1]}`, "", "field a.5 is missing"},
		{"payload field that is an object", "d/1", "d/+", "{payload.device}", `{"device":{"id":1}}`, "", "field device is an object"},
		{"payload field that is null", "d/1", "d/+", "{payload.device}", `{"device":null}`, "", "field device is null"},
		{"topic with fewer levels under a hash filter", "d", "d/#", "{topic.3}", "", "", `topic "d" has fewer than 3 levels`},
		{"key that renders empty", "d/1", "d/+", "{username}", "", "", "rendered empty"},
		{"key longer than the limit", "d/1", "d/+", "{payload.id}", `{"id":"` + strings.Repeat("x", maxKeyLen+1) + `"}`, "", "longer than 256"},
		{"composite key longer than the limit", "d/1", "d/+", "k{username}", "", strings.Repeat("u", maxKeyLen), "longer than 256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{Routes: []Route{{Topic: tc.filter, Stream: "s", PartitionKey: tc.template}}})
			res, err := r.Route(&Message{Topic: tc.topic, Username: tc.username, Payload: []byte(tc.payload)})
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("want *KeyError, got %v", err)
			}
			if !strings.Contains(ke.Reason, tc.want) {
				t.Fatalf("reason %q does not contain %q", ke.Reason, tc.want)
			}
			if ke.Stream != "s" || ke.RouteIndex != 0 || res.Stream != "s" || !res.Matched {
				t.Fatalf("the error and result must name the route for the dead letter: %+v %+v", ke, res)
			}
		})
	}
}

func TestPartitionID(t *testing.T) {
	tests := []struct {
		name, id, want string
	}{
		{"short form is kept", "3", "3"},
		{"long form becomes the short form", "shardId-0000000003", "3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{Routes: []Route{{Topic: "#", Stream: "s", PartitionID: tc.id}}})
			res, err := r.Route(&Message{Topic: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if res.PartitionID != tc.want || res.PartitionKey != "" {
				t.Fatalf("got id %q key %q, want id %q", res.PartitionID, res.PartitionKey, tc.want)
			}
		})
	}
}

func TestPlainRouteReturnsThePayloadItself(t *testing.T) {
	r := mustNew(t, Config{Routes: []Route{{Topic: "#", Stream: "s"}}})
	payload := []byte("raw")
	res, err := r.Route(&Message{Topic: "x", Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if &res.Data[0] != &payload[0] || res.PartitionKey != "" || res.PartitionID != "" {
		t.Fatalf("want the payload slice unchanged and no partitioning, got %+v", res)
	}
}

type envelopeDoc struct {
	Topic          string            `json:"topic"`
	ClientID       string            `json:"client_id"`
	Username       string            `json:"username"`
	QoS            int               `json:"qos"`
	ReceivedMS     int64             `json:"received_ms"`
	UserProperties []UserPropertyDoc `json:"user_properties"`
	Encoding       *string           `json:"payload_encoding"`
	Payload        json.RawMessage   `json:"payload"`
}

type UserPropertyDoc struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func TestEnvelope(t *testing.T) {
	received := time.UnixMilli(1700000000123)
	tests := []struct {
		name        string
		payload     []byte
		wantPayload string // JSON text of the payload member
		wantBase64  bool
	}{
		{"a JSON object payload is embedded as a value", []byte(`{"temp":21.5}`), `{"temp":21.5}`, false},
		{"a JSON scalar payload is embedded as a value", []byte(`42`), `42`, false},
		{"a text payload that is not JSON is base64", []byte("temp=21.5"), `"` + base64.StdEncoding.EncodeToString([]byte("temp=21.5")) + `"`, true},
		{"a binary payload is base64", []byte{0, 0xff, 0x80}, `"AP+A"`, true},
		{"an empty payload is base64 of nothing", nil, `""`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{Routes: []Route{{Topic: "#", Stream: "s", Envelope: true}}})
			m := &Message{
				Topic: "devices/d\"1/t", ClientID: "c\n1", Username: "u\xff", QoS: 2,
				Payload:        tc.payload,
				UserProperties: []UserProperty{{"k", "v1"}, {"k", "v2"}, {"a", ""}},
				Received:       received,
			}
			res, err := r.Route(m)
			if err != nil {
				t.Fatal(err)
			}
			var doc envelopeDoc
			dec := json.NewDecoder(strings.NewReader(string(res.Data)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("envelope is not the documented JSON: %v\n%s", err, res.Data)
			}
			if doc.Topic != m.Topic || doc.ClientID != m.ClientID || doc.Username != "u\ufffd" || doc.QoS != 2 || doc.ReceivedMS != 1700000000123 {
				t.Fatalf("metadata wrong: %+v", doc)
			}
			wantProps := []UserPropertyDoc{{"k", "v1"}, {"k", "v2"}, {"a", ""}}
			if fmt.Sprint(doc.UserProperties) != fmt.Sprint(wantProps) {
				t.Fatalf("user properties %v, want %v in order with duplicates", doc.UserProperties, wantProps)
			}
			if string(doc.Payload) != tc.wantPayload {
				t.Fatalf("payload %s, want %s", doc.Payload, tc.wantPayload)
			}
			if got := doc.Encoding != nil && *doc.Encoding == "base64"; got != tc.wantBase64 {
				t.Fatalf("payload_encoding base64 = %v, want %v", got, tc.wantBase64)
			}
		})
	}
	t.Run("every key is present even when empty", func(t *testing.T) {
		r := mustNew(t, Config{Routes: []Route{{Topic: "#", Stream: "s", Envelope: true}}})
		res, err := r.Route(&Message{Topic: "t", Payload: []byte("{}"), Received: received})
		if err != nil {
			t.Fatal(err)
		}
		want := `{"topic":"t","client_id":"","username":"","qos":0,"received_ms":1700000000123,"user_properties":[],"payload":{}}`
		if string(res.Data) != want {
			t.Fatalf("got  %s\nwant %s", res.Data, want)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // every one must appear
	}{
		{"a route needs a topic", Config{Routes: []Route{{Stream: "s"}}}, []string{"routes[0].topic: empty topic filter"}},
		{"a route needs a stream", Config{Routes: []Route{{Topic: "a"}}}, []string{"routes[0].stream: missing"}},
		{"stream names follow DIS rules", Config{Routes: []Route{{Topic: "a", Stream: "bad name"}}}, []string{`routes[0].stream: "bad name" is not a DIS stream name`}},
		{"hash must be the last level", Config{Routes: []Route{{Topic: "a/#/b", Stream: "s"}}}, []string{`routes[0].topic: level "#"`}},
		{"hash must be a whole level", Config{Routes: []Route{{Topic: "a/b#", Stream: "s"}}}, []string{`routes[0].topic: level "b#"`}},
		{"plus must be a whole level", Config{Routes: []Route{{Topic: "a/b+/c", Stream: "s"}}}, []string{`routes[0].topic: level "b+"`}},
		{"a duplicate filter is dead", Config{Routes: []Route{{Topic: "a/+", Stream: "s"}, {Topic: "a/+", Stream: "t"}}}, []string{"routes[1].topic: \"a/+\" is also the filter of routes[0]"}},
		{"key and id are exclusive", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "{client_id}", PartitionID: "0"}}}, []string{"routes[0].partition_id: set either"}},
		{"a bad partition id", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionID: "shard-1"}}}, []string{"routes[0].partition_id: invalid partition id"}},
		{"unknown placeholder", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "{device}"}}}, []string{"routes[0].partition_key: template \"{device}\": unknown placeholder {device}"}},
		{"unclosed brace", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "x{client_id"}}}, []string{"is never closed"}},
		{"stray closing brace", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "x}"}}}, []string{"unmatched \"}\""}},
		{"topic level zero", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "{topic.0}"}}}, []string{"number from 1"}},
		{"topic level past the filter", Config{Routes: []Route{{Topic: "a/+", Stream: "s", PartitionKey: "{topic.3}"}}}, []string{"routes[0].partition_key: {topic.3} can never be filled"}},
		{"payload needs a field", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "{payload}"}}}, []string{"{payload} needs a field"}},
		{"payload path without empty names", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "{payload.a..b}"}}}, []string{"empty field name"}},
		{"a constant key is refused", Config{Routes: []Route{{Topic: "a", Stream: "s", PartitionKey: "fixed"}}}, []string{"no placeholder"}},
		{"nothing routed at all", Config{}, []string{"routes: no routes and no unmatched.stream"}},
		{"unmatched options without a stream", Config{Routes: []Route{{Topic: "a", Stream: "s"}}, Unmatched: Unmatched{Envelope: true}}, []string{"unmatched: partition_key, partition_id and envelope need unmatched.stream"}},
		{"unmatched stream is checked", Config{Unmatched: Unmatched{Stream: "a b", PartitionKey: "{nope}"}}, []string{"unmatched.stream:", "unmatched.partition_key:"}},
		{"every problem is reported at once", Config{Routes: []Route{{Topic: "a/#/b"}, {Topic: "x", Stream: "s", PartitionKey: "{x}"}}}, []string{"routes[0].topic", "routes[0].stream", "routes[1].partition_key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("errors are not *ConfigError: %T", err)
			}
			if _, err := New(tc.cfg); err == nil {
				t.Error("New accepted what Validate refused")
			}
		})
	}
	t.Run("a good config validates", func(t *testing.T) {
		cfg := Config{
			Routes: []Route{
				{Topic: "devices/+/telemetry", Stream: "telemetry", PartitionKey: "{topic.2}"},
				{Topic: "devices/+/alarm/#", Stream: "alarms", PartitionID: "shardId-0000000001", Envelope: true},
				{Topic: "#", Stream: "raw"},
			},
			Unmatched: Unmatched{Stream: "catchall"},
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		r := mustNew(t, cfg)
		if got := fmt.Sprint(r.Streams()); got != "[telemetry alarms raw catchall]" {
			t.Fatalf("Streams() = %s", got)
		}
	})
}

// TestReloadIsAtomic routes from several goroutines while the table is
// swapped back and forth: every result must come whole from one table or the
// other (stream and key agree), which the race detector also checks.
func TestReloadIsAtomic(t *testing.T) {
	cfgA := Config{Routes: []Route{{Topic: "d/+", Stream: "a", PartitionKey: "A{topic.2}"}}}
	cfgB := Config{Routes: []Route{{Topic: "d/#", Stream: "b", PartitionKey: "B{client_id}"}}}
	r := mustNew(t, cfgA)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := r.Route(&Message{Topic: "d/1", ClientID: "c"})
				if err != nil {
					errs <- err
					return
				}
				if !(res.Stream == "a" && res.PartitionKey == "A1" || res.Stream == "b" && res.PartitionKey == "Bc") {
					errs <- fmt.Errorf("mixed result %+v", res)
					return
				}
			}
		})
	}
	for i := range 200 {
		cfg := cfgA
		if i%2 == 0 {
			cfg = cfgB
		}
		if err := r.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Reload(Config{}); err == nil {
		t.Fatal("Reload accepted an invalid config")
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The last good table (cfgA, from i=199) stays after the failed reload.
	res, _ := r.Route(&Message{Topic: "d/1", ClientID: "c"})
	if res.Stream != "a" {
		t.Fatalf("after a failed reload the previous table must stay, got %+v", res)
	}
}

// TestTrieAgreesWithLinearScan checks many filters at once against the
// oracle: the lowest matching index of a linear scan must be what Route
// reports, so indexing never changes which route wins.
func TestTrieAgreesWithLinearScan(t *testing.T) {
	filters := []string{
		"#", "a/#", "a/+", "a/b", "a/b/#", "+/b", "+/+", "+/+/+", "a/+/c", "a//c", "+//+",
		"$SYS/#", "$SYS/+", "+/#", "a/b/c/d", "b", "/", "/+", "+", "a/b/",
	}
	topics := []string{
		"a", "a/b", "a/b/c", "a/x/c", "a//c", "b", "b/b", "/", "//", "$SYS", "$SYS/x", "$SYS/x/y",
		"a/b/c/d", "a/b/", "x/y/z", "", "/a", "a/b/c/d/e",
	}
	// Rotate the filter order so each filter gets to be first.
	for shift := range filters {
		var routes []Route
		for i := range filters {
			f := filters[(i+shift)%len(filters)]
			routes = append(routes, Route{Topic: f, Stream: fmt.Sprintf("s%d", i)})
		}
		r := mustNew(t, Config{Routes: routes})
		for _, topic := range topics {
			want := -1
			for i, rt := range routes {
				if naiveMatch(rt.Topic, topic) {
					want = i
					break
				}
			}
			res, _ := r.Route(&Message{Topic: topic})
			if res.RouteIndex != want {
				t.Fatalf("shift %d topic %q: route %d, linear scan says %d", shift, topic, res.RouteIndex, want)
			}
		}
	}
}
