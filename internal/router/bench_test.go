package router

import (
	"fmt"
	"testing"
)

// benchRoutes builds n routes shaped like a fleet config: one per site, each
// with a "+" device level, plus a few "#" routes, so that many filters share
// prefixes and several overlap the benchmark topic.
func benchRoutes(n int) []Route {
	routes := make([]Route, 0, n)
	for i := 0; len(routes) < n; i++ {
		switch i % 4 {
		case 0, 1:
			routes = append(routes, Route{Topic: fmt.Sprintf("site%d/+/telemetry", i), Stream: "telemetry", PartitionKey: "{topic.2}"})
		case 2:
			routes = append(routes, Route{Topic: fmt.Sprintf("site%d/+/alarm/#", i), Stream: "alarms"})
		case 3:
			routes = append(routes, Route{Topic: fmt.Sprintf("site%d/+/+/status", i), Stream: "status", PartitionID: "0"})
		}
	}
	return routes
}

// BenchmarkRoute measures one lookup, including the key render, with the
// matching route at the end of the table (the worst case for a linear scan),
// and with a topic that matches nothing (walks the trie and drops).
func BenchmarkRoute(b *testing.B) {
	for _, n := range []int{10, 1000} {
		routes := benchRoutes(n)
		last := n - 1
		for last%4 == 2 || last%4 == 3 { // end on a telemetry route
			last--
		}
		r, err := New(Config{Routes: routes})
		if err != nil {
			b.Fatal(err)
		}
		hit := &Message{Topic: fmt.Sprintf("site%d/d17/telemetry", last), ClientID: "d17", Payload: []byte(`{"temp":21.5}`)}
		miss := &Message{Topic: "elsewhere/d17/telemetry", Payload: hit.Payload}
		b.Run(fmt.Sprintf("routes=%d/match", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := r.Route(hit)
				if err != nil || res.RouteIndex != last {
					b.Fatalf("got %+v %v", res, err)
				}
			}
		})
		b.Run(fmt.Sprintf("routes=%d/nomatch", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res, _ := r.Route(miss); !res.Dropped() {
					b.Fatal("matched")
				}
			}
		})
		b.Run(fmt.Sprintf("routes=%d/linear-scan-baseline", n), func(b *testing.B) {
			// What an unindexed router would pay: the reason for the trie.
			found := -1
			for b.Loop() {
				for i := range routes {
					if scanMatch(routes[i].Topic, hit.Topic) {
						found = i
						break
					}
				}
			}
			if found != last {
				b.Fatalf("baseline found route %d, want %d", found, last)
			}
		})
	}
}

func BenchmarkRouteFeatures(b *testing.B) {
	payload := []byte(`{"device":{"id":"dev-42","fw":"1.2.3"},"temp":21.5,"hum":40,"ts":1700000000000}`)
	m := &Message{Topic: "devices/d1/telemetry", ClientID: "d1", Username: "alice", QoS: 1, Payload: payload,
		UserProperties: []UserProperty{{"site", "berlin"}}}
	for _, tc := range []struct {
		name  string
		route Route
	}{
		{"key=topic-level", Route{Topic: "devices/+/telemetry", Stream: "s", PartitionKey: "{topic.2}"}},
		{"key=composite", Route{Topic: "devices/+/telemetry", Stream: "s", PartitionKey: "{username}-{topic.2}"}},
		{"key=payload-field", Route{Topic: "devices/+/telemetry", Stream: "s", PartitionKey: "{payload.device.id}"}},
		{"envelope", Route{Topic: "devices/+/telemetry", Stream: "s", Envelope: true}},
	} {
		r, err := New(Config{Routes: []Route{tc.route}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := r.Route(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// scanMatch is an allocation-free filter match for the linear baseline, so
// the comparison with the trie is fair.
func scanMatch(filter, topic string) bool {
	fi, ti := 0, 0
	for {
		fend := fi
		for fend < len(filter) && filter[fend] != '/' {
			fend++
		}
		flevel := filter[fi:fend]
		if flevel == "#" {
			return true
		}
		if ti > len(topic) {
			return false
		}
		tend := ti
		for tend < len(topic) && topic[tend] != '/' {
			tend++
		}
		if flevel != "+" && flevel != topic[ti:tend] {
			return false
		}
		fi, ti = fend+1, tend+1
		if fi > len(filter) {
			return ti > len(topic)
		}
	}
}
