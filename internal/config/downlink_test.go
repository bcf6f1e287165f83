package config

import (
	"strings"
	"testing"
)

const uplinkRoute = "streams:\n  - name: s1\nroutes:\n  - {topic: a/+, stream: s1}\n"

func TestDownlinkRouteDefaults(t *testing.T) {
	cfg, err := Parse([]byte(uplinkRoute + builtinNoAuth + "downlink:\n  routes:\n    - {stream: commands, topic: \"devices/{partition_key}/cmd\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Downlink.Routes[0]
	if r.QoS != 1 || r.Transform != "raw" || r.UnwrapField != "payload" || r.Retain {
		t.Errorf("route defaults not applied: %+v", r)
	}
	if d := cfg.Downlink; d.StartPosition != "latest" || d.OnDrop != "dead_letter" || d.CommitEveryRecords != 100 {
		t.Errorf("section defaults not applied: %+v", d)
	}
}

func TestUnknownKeyInsideDownlinkRouteIsReported(t *testing.T) {
	// DownlinkRoute has its own UnmarshalYAML (for defaults); the key check
	// must still look inside it.
	_, err := Parse([]byte(uplinkRoute + "downlink:\n  routes:\n    - stream: c\n      topic: t\n      retained: true\n"))
	if err == nil || !strings.Contains(err.Error(), `downlink.routes[0].retained: unknown key (line 9); did you mean "retain"?`) {
		t.Fatalf("got %v", err)
	}
}
