package admin

import (
	"fmt"
	"slices"
)

// DefaultReadyBufferFraction is the buffer fill above which a gateway whose
// uplink is offline stops being ready: 90 % leaves room for the publishes in
// flight while a load balancer or operator reacts.
const DefaultReadyBufferFraction = 0.9

// judge decides readiness: the broker listens, the buffer is open, and DIS is
// reachable or the buffer still has room ("buffering within bounds").
func judge(st *Status, maxFraction float64) Readiness {
	var reasons []string
	if st.Gateway.Starting {
		return Readiness{Reasons: []string{"the gateway is starting"}}
	}
	if st.Gateway.ShuttingDown {
		reasons = append(reasons, "the gateway is shutting down")
	}
	if !st.MQTT.Listening {
		reasons = append(reasons, "the MQTT broker is not listening")
	}
	if !st.Buffer.Open {
		reasons = append(reasons, "the buffer is not open")
	}
	var offline []string
	for name, u := range st.Uplink.Streams {
		if u.State == StateOffline {
			offline = append(offline, name)
		}
	}
	slices.Sort(offline)
	if len(offline) > 0 && st.Buffer.MaxBytes > 0 {
		limit := int64(float64(st.Buffer.MaxBytes) * maxFraction)
		if st.Buffer.Bytes >= limit {
			reasons = append(reasons, fmt.Sprintf(
				"DIS is unreachable for stream(s) %v and the buffer holds %d of %d bytes (over %.0f%% of buffer.max_bytes); publishes will soon be refused",
				offline, st.Buffer.Bytes, st.Buffer.MaxBytes, maxFraction*100))
		}
	}
	return Readiness{Ready: len(reasons) == 0, Reasons: reasons}
}
