package router

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzTopicMatch checks the trie against the oracle for any valid filter
// pair and topic: the lowest matching index must agree, nothing may panic.
func FuzzTopicMatch(f *testing.F) {
	f.Add("a/+/c", "a/#", "a/b/c")
	f.Add("#", "$SYS/#", "$SYS/x")
	f.Add("+/+", "/", "//")
	f.Add("a//b", "+//+", "a//b")
	f.Fuzz(func(t *testing.T, f1, f2, topic string) {
		var routes []Route
		for _, f := range []string{f1, f2} {
			if validateFilter(f) == nil && (len(routes) == 0 || routes[0].Topic != f) {
				routes = append(routes, Route{Topic: f, Stream: "s"})
			}
		}
		if len(routes) == 0 {
			return
		}
		r, err := New(Config{Routes: routes})
		if err != nil {
			t.Fatalf("valid filters refused: %v", err)
		}
		want := -1
		for i, rt := range routes {
			if naiveMatch(rt.Topic, topic) {
				want = i
				break
			}
		}
		res, err := r.Route(&Message{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		if res.RouteIndex != want {
			t.Fatalf("filters %+v topic %q: route %d, oracle %d", routes, topic, res.RouteIndex, want)
		}
	})
}

// FuzzKeyTemplate parses any template and renders it against any message:
// parsing either fails with an error or yields a template whose rendering
// either fails with a *KeyError or gives a key within the limits.
func FuzzKeyTemplate(f *testing.F) {
	f.Add("{topic.2}", "devices/d1/t", "c", "u", []byte(`{"a":1}`))
	f.Add("x{payload.a.b}-{{}}", "a", "", "", []byte(`{"a":{"b":"v"}}`))
	f.Add("{payload.0}", "a", "", "", []byte(`["z"]`))
	f.Add("{payload.a}", "a", "", "", []byte(`{"a":"\ud800"}`))
	f.Add("{topic.1}{client_id}{username}", "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, tmpl, topic, client, user string, payload []byte) {
		r, err := New(Config{Routes: []Route{{Topic: "#", Stream: "s", PartitionKey: tmpl}}, Unmatched: Unmatched{Stream: "u", PartitionKey: tmpl}})
		if err != nil {
			return
		}
		res, err := r.Route(&Message{Topic: topic, ClientID: client, Username: user, Payload: payload})
		if err != nil {
			if _, ok := err.(*KeyError); !ok {
				t.Fatalf("error is %T, want *KeyError", err)
			}
			return
		}
		if res.PartitionKey == "" || len(res.PartitionKey) > maxKeyLen {
			t.Fatalf("key %q outside 1..%d bytes", res.PartitionKey, maxKeyLen)
		}
	})
}

// FuzzJSONField compares the byte scanner with encoding/json on valid JSON.
func FuzzJSONField(f *testing.F) {
	f.Add([]byte(`{"a":{"b":"x"},"c":[1,{"d":true}]}`), "a.b")
	f.Add([]byte(`{"c":[1,{"d":true}]}`), "c.1.d")
	f.Add([]byte(` {"a" : "\"}" , "a":2.5e3 } `), "a")
	f.Add([]byte(`{"k\u0065y":"v"}`), "key")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		if !json.Valid(data) || path == "" {
			return
		}
		segs := strings.Split(path, ".")
		got, err := jsonField(data, segs)
		want, ok := decodeField(t, data, segs)
		if !ok {
			if err == nil {
				t.Fatalf("scanner found %q where encoding/json finds no key value", got)
			}
			return
		}
		if err != nil {
			t.Fatalf("scanner failed (%v) where encoding/json finds %q", err, want)
		}
		if got != want {
			t.Fatalf("scanner %q, encoding/json %q", got, want)
		}
	})
}

// decodeField is the oracle: the same lookup on encoding/json's decode.
func decodeField(t *testing.T, data []byte, path []string) (string, bool) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode of valid JSON: %v", err)
	}
	for _, seg := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[seg]; !ok {
				return "", false
			}
		case []any:
			i := 0
			for _, c := range seg {
				if c < '0' || c > '9' || i > len(x) {
					return "", false
				}
				i = i*10 + int(c-'0')
			}
			if seg == "" || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// FuzzEnvelope checks that the envelope is valid JSON whose fields read back
// as the message, whatever bytes the strings and payload hold.
func FuzzEnvelope(f *testing.F) {
	f.Add("t/1", "c", "u", "k", "v", []byte(`{"a":1}`))
	f.Add("t\x00\"", "\xff", "\u2028", "", "\\", []byte{0xff})
	f.Fuzz(func(t *testing.T, topic, client, user, pk, pv string, payload []byte) {
		r, err := New(Config{Routes: []Route{{Topic: "#", Stream: "s", Envelope: true}}, Unmatched: Unmatched{Stream: "s", Envelope: true}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Route(&Message{Topic: topic, ClientID: client, Username: user, Payload: payload, UserProperties: []UserProperty{{pk, pv}}})
		if err != nil {
			t.Fatal(err)
		}
		var doc envelopeDoc
		if err := json.Unmarshal(res.Data, &doc); err != nil {
			t.Fatalf("envelope is not JSON: %v\n%q", err, res.Data)
		}
		if utf8.ValidString(topic) && doc.Topic != topic || utf8.ValidString(client) && doc.ClientID != client || utf8.ValidString(pv) && doc.UserProperties[0].Value != pv {
			t.Fatalf("fields do not read back: %+v", doc)
		}
	})
}
