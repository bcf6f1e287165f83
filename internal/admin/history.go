package admin

import (
	"sync"
	"time"
)

// Sample is one point of the dashboard's charts: counters as totals (the page
// computes rates from consecutive samples) and gauges as they were.
type Sample struct {
	T                 int64  `json:"t"` // Unix milliseconds
	PublishesReceived uint64 `json:"publishes_received"`
	PublishesSent     uint64 `json:"publishes_sent"`
	Accepted          uint64 `json:"accepted"`
	Rejected          uint64 `json:"rejected"`
	UplinkSent        uint64 `json:"uplink_sent"`
	UplinkFailed      uint64 `json:"uplink_failed"` // requests failed + records dead-lettered
	BufferRecords     int64  `json:"buffer_records"`
	BufferBytes       int64  `json:"buffer_bytes"`
	Clients           int64  `json:"clients"`
}

func sampleOf(st *Status, now time.Time) Sample {
	s := Sample{
		T:                 now.UnixMilli(),
		PublishesReceived: st.MQTT.PublishesReceived.Total(),
		PublishesSent:     st.MQTT.PublishesSent.Total(),
		Accepted:          st.Ingest.Accepted,
		BufferRecords:     st.Buffer.Records,
		BufferBytes:       st.Buffer.Bytes,
		Clients:           st.MQTT.ClientsConnected,
	}
	for _, v := range st.Ingest.Rejected {
		s.Rejected += v
	}
	for _, u := range st.Uplink.Streams {
		s.UplinkSent += u.Sent
		s.UplinkFailed += u.FailedRequests + u.DeadLettered
	}
	return s
}

// history keeps the last samples. It is safe for concurrent use.
type history struct {
	mu      sync.Mutex
	samples []Sample // oldest first, at most max
	max     int
}

func (h *history) add(s Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) == h.max {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:h.max-1]
	}
	h.samples = append(h.samples, s)
}

// since returns the samples newer than t (Unix ms), oldest first.
func (h *history) since(t int64) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := len(h.samples)
	for i > 0 && h.samples[i-1].T > t {
		i--
	}
	return append([]Sample{}, h.samples[i:]...)
}
