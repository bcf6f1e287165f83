package downlink

import (
	"strings"
	"testing"
)

func TestTopicTemplates(t *testing.T) {
	rec := func(key, data string) *record {
		return &record{stream: "commands", partition: 2, key: key, data: []byte(data)}
	}
	for _, tc := range []struct {
		name, tmpl, prefix string
		rec                *record
		want, err          string
	}{
		{"fixed topic", "broadcast/firmware", "", rec("k", "x"), "broadcast/firmware", ""},
		{"partition key fills a level", "devices/{partition_key}/commands", "", rec("d1", "x"), "devices/d1/commands", ""},
		{"key suffix drops the route's prefix", "devices/{key_suffix}/cmd", "gw1.", rec("gw1.d7", "x"), "devices/d7/cmd", ""},
		{"payload field", "devices/{payload.device.id}/cmd", "", rec("k", `{"device":{"id":"d9"}}`), "devices/d9/cmd", ""},
		{"payload number and array index", "t/{payload.ids.1}", "", rec("k", `{"ids":[4,5]}`), "t/5", ""},
		{"stream and partition", "{stream}/{partition}", "", rec("k", "x"), "commands/2", ""},
		{"literal braces", "a/{{x}}/{partition_key}", "", rec("k", "x"), "a/{x}/k", ""},
		{"a key with a slash cannot add levels", "devices/{partition_key}/cmd", "", rec("d1/../d2", "x"), "", "may not contain '/'"},
		{"a key with a wildcard is refused", "devices/{partition_key}", "", rec("+", "x"), "", "may not contain"},
		{"an empty key is refused", "devices/{partition_key}", "", rec("", "x"), "", "is empty"},
		{"a record may not start a topic with $", "{partition_key}/x", "", rec("$SYS", "x"), "", "may not start with '$'"},
		{"payload field of a non-JSON record", "d/{payload.id}", "", rec("k", "not json"), "", "not JSON"},
		{"missing payload field", "d/{payload.id}", "", rec("k", `{"other":1}`), "", "field id is missing"},
		{"object payload field", "d/{payload.id}", "", rec("k", `{"id":{}}`), "", "an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt, err := parseTopic(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.render(tc.rec, tc.prefix)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("render = %q, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("render = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestTopicTemplateErrors(t *testing.T) {
	for tmpl, want := range map[string]string{
		"":                    "empty topic",
		"devices/+/cmd":       "wildcard",
		"devices/#":           "wildcard",
		"devices/{device}":    "unknown placeholder {device}",
		"devices/{payload}":   "needs a field",
		"devices/{payload.}":  "empty field path",
		"devices/{partition_": "never closed",
		"devices/}":           "unmatched",
	} {
		if err := CheckTopic(tmpl); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTopic(%q) = %v; want error containing %q", tmpl, err, want)
		}
	}
}

func TestRouteFilters(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Route
		rec  record
		want bool
	}{
		{"no filter accepts everything", Route{}, record{key: "x"}, true},
		{"key prefix of this gateway", Route{KeyPrefix: "gw1."}, record{key: "gw1.d1"}, true},
		{"key prefix of another gateway", Route{KeyPrefix: "gw1."}, record{key: "gw2.d1"}, false},
		{"JSON field addressed to this gateway", Route{MatchField: "target.gateway", MatchValue: "gw1"}, record{data: []byte(`{"target":{"gateway":"gw1"}}`)}, true},
		{"JSON field addressed elsewhere", Route{MatchField: "target.gateway", MatchValue: "gw1"}, record{data: []byte(`{"target":{"gateway":"gw2"}}`)}, false},
		{"JSON field missing", Route{MatchField: "gateway", MatchValue: "gw1"}, record{data: []byte(`{}`)}, false},
		{"not JSON with a field filter", Route{MatchField: "gateway", MatchValue: "gw1"}, record{data: []byte(`gw1`)}, false},
		{"partition listed", Route{Partitions: []string{"shardId-0000000003"}}, record{partition: 3}, true},
		{"partition not listed", Route{Partitions: []string{"3"}}, record{partition: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Topic = "t"
			c, err := compileRoute(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.accepts(&tc.rec); got != tc.want {
				t.Fatalf("accepts = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnwrap(t *testing.T) {
	for _, tc := range []struct {
		name, field, data, want, err string
	}{
		{"string field is its text", "payload", `{"device":"d1","payload":"reboot"}`, "reboot", ""},
		{"object field is its JSON", "payload", `{"payload":{"cmd":"set","v":2}}`, `{"cmd":"set","v":2}`, ""},
		{"the uplink's envelope with a base64 payload", "payload", `{"topic":"t","payload_encoding":"base64","payload":"AAEC"}`, "\x00\x01\x02", ""},
		{"nested field", "cmd.body", `{"cmd":{"body":"x"}}`, "x", ""},
		{"escaped string", "payload", `{"payload":"a\"b\u00e9"}`, "a\"bé", ""},
		{"missing field", "payload", `{"p":1}`, "", "field payload is missing"},
		{"not JSON", "payload", `reboot`, "", "not JSON"},
		{"unknown encoding", "payload", `{"payload_encoding":"hex","payload":"00"}`, "", "only base64"},
		{"bad base64", "payload", `{"payload_encoding":"base64","payload":"!!"}`, "", "not standard base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileRoute(Route{Topic: "t", Transform: TransformUnwrap, UnwrapField: tc.field})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.payload(&record{data: []byte(tc.data)})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("payload = %q, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("payload = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestAppName(t *testing.T) {
	for id, want := range map[string]string{
		"edgegw":                 "edgegw-downlink",
		"gw-01.site.corp":        "gw-01-site-corp-downlink",
		"ünï":                    "-n--downlink",
		strings.Repeat("a", 300): strings.Repeat("a", 191) + "-downlink",
	} {
		got := AppName(id)
		if got != want || !appNameRe.MatchString(got) {
			t.Errorf("AppName(%q) = %q, want %q (a valid app name)", id, got, want)
		}
	}
}

// Records come from the cloud: no template, filter or transform may panic
// on any data, and a rendered topic is always publishable.
func FuzzRender(f *testing.F) {
	f.Add("devices/{payload.device.id}/cmd", "k", `{"device":{"id":"d1"}}`)
	f.Add("{partition_key}/{key_suffix}", "$x", `[1,2]`)
	f.Add("t/{payload.a.0.b}", "", `{"a":[{"b":true}]}`)
	f.Fuzz(func(t *testing.T, tmpl, key, data string) {
		tt, err := parseTopic(tmpl)
		if err != nil {
			return
		}
		rec := &record{stream: "s", key: key, data: []byte(data)}
		topic, err := tt.render(rec, "p")
		if err == nil && (topic == "" || strings.ContainsAny(topic, "+#\x00")) {
			t.Fatalf("rendered unpublishable topic %q", topic)
		}
		c, err := compileRoute(Route{Topic: "t", Transform: TransformUnwrap, UnwrapField: "payload", MatchField: "a.b", MatchValue: "1"})
		if err != nil {
			t.Fatal(err)
		}
		c.accepts(rec)
		c.payload(rec)
	})
}
