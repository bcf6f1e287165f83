package admin

import (
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry returns the registry behind /metrics: the gateway's own metrics,
// read from a Status snapshot at scrape time (so the hot paths pay nothing),
// the PutRecords latency histogram, and Go runtime and process metrics.
func newRegistry(snap func() Status, version string, putLatency *prometheus.HistogramVec) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statusCollector{snap: snap, version: version},
		putLatency,
	)
	return reg
}

// newPutLatency is the PutRecords request latency histogram, observed by the
// gateway around every DIS PutRecords call.
func newPutLatency() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "edgegw_dis_put_records_duration_seconds",
		Help: "Latency of DIS PutRecords requests, by stream and outcome (ok: DIS answered 200; error: the request failed as a whole).",
		// 5 ms to 30 s: a loopback built-in server answers in milliseconds, a
		// cloud region in tens to hundreds, and dis.timeout defaults to 30 s.
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"stream", "outcome"})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("edgegw_"+name, help, labels, nil)
}

var (
	dBuildInfo        = desc("build_info", "Always 1; the labels say which edgegw runs.", "version", "gateway")
	dReady            = desc("ready", "1 when /readyz answers ready, else 0.")
	dClients          = desc("mqtt_clients_connected", "MQTT clients connected now.")
	dPubIn            = desc("mqtt_publishes_received_total", "PUBLISH packets received from MQTT clients, by QoS.", "qos")
	dPubOut           = desc("mqtt_publishes_sent_total", "PUBLISH packets sent to MQTT subscribers, by QoS.", "qos")
	dLogins           = desc("mqtt_logins_total", "MQTT logins accepted, by method (password, certificate, anonymous).", "method")
	dLoginFailures    = desc("mqtt_login_failures_total", "MQTT logins refused, by reason (bad_password, anonymous, no_certificate, rate_limited).", "reason")
	dACLDenied        = desc("mqtt_acl_denied_total", "Operations the ACLs refused: publish, subscribe, or delivery to a subscriber.", "action")
	dAccepted         = desc("ingest_records_accepted_total", "Publishes appended to the buffer for DIS.")
	dRejected         = desc("ingest_publishes_rejected_total", "Publishes refused by the gateway, by reason (invalid_payload, unroutable, no_schema, buffer_full, disk_full, too_large, store_failed, acl_denied).", "reason")
	dSchemaKnown      = desc("schema_known", "1 when a stream's schema is known and validates payloads, by where it comes from (config, dis).", "stream", "source")
	dSchemaChecked    = desc("schema_validations_total", "Payloads checked against a stream's schema, by result (passed, unvalidated: accepted before the schema was known).", "stream", "result")
	dSchemaRejected   = desc("schema_rejected_total", "Payloads that failed a stream's schema, by validation code.", "stream", "code")
	dUnrouted         = desc("router_unmatched_total", "Publishes that matched no route and went to MQTT subscribers only.")
	dDeadLetters      = desc("dead_letters_total", "Records sent to the dead-letter topic, by source (router, schema, dis, downlink).", "source")
	dBufRecords       = desc("buffer_records", "Records in the buffer waiting for DIS.", "stream")
	dBufBytes         = desc("buffer_bytes", "Bytes in the buffer waiting for DIS (what buffer.max_bytes bounds).", "stream")
	dBufOldest        = desc("buffer_oldest_record_age_seconds", "Age of the oldest buffered record; 0 when the stream's buffer is empty.", "stream")
	dBufMax           = desc("buffer_max_bytes", "The buffer.max_bytes bound.")
	dBufDisk          = desc("buffer_disk_usage_bytes", "Disk space used by the buffer's files.")
	dBufAppended      = desc("buffer_records_appended_total", "Records committed to the buffer.", "stream")
	dBufAcked         = desc("buffer_records_acked_total", "Records removed from the buffer after DIS took them (or dead-lettered them).", "stream")
	dBufRejected      = desc("buffer_records_rejected_total", "Appends refused because the buffer was full (buffer.overflow: reject).", "stream")
	dBufDropped       = desc("buffer_records_dropped_total", "Records removed unsent: overflow (buffer.overflow: drop_oldest) or expired (buffer.max_age).", "stream", "reason")
	dBufDiskFull      = desc("buffer_disk_full_total", "Appends refused because the disk was full.")
	dBufWriteErrors   = desc("buffer_write_errors_total", "Appends that failed with a write or sync error.")
	dBufSyncs         = desc("buffer_syncs_total", "Buffer syncs to stable storage (group commits).")
	dUpState          = desc("uplink_state", "1 for the uplink's current state per stream (online, degraded, offline), 0 for the others.", "stream", "state")
	dUpSent           = desc("uplink_records_sent_total", "Records DIS accepted.", "stream")
	dUpRetried        = desc("uplink_records_retried_total", "Records sent again after a transient per-record failure.", "stream")
	dUpDead           = desc("uplink_records_dead_lettered_total", "Records DIS refused permanently (failed; sent to the dead-letter topic).", "stream")
	dUpRequests       = desc("uplink_requests_total", "PutRecords requests sent.", "stream")
	dUpFailedRequests = desc("uplink_requests_failed_total", "PutRecords requests that failed as a whole (network, throttling, 5xx, auth).", "stream")
	dDownLag          = desc("downlink_lag_records", "Records in a DIS partition not yet published to MQTT by the downlink.", "stream", "partition")
	dDownUp           = desc("downlink_running", "1 while the downlink consumes its streams, 0 while it starts or after it stopped.")
	dDownDelivered    = desc("downlink_records_delivered_total", "DIS records the downlink published to MQTT.")
	dDownDead         = desc("downlink_records_dead_lettered_total", "DIS records the downlink gave up on.")
	dDownDropped      = desc("downlink_deliveries_dropped_total", "Downlink deliveries a subscriber's queue dropped (retried).")
	dDownErrors       = desc("downlink_errors_total", "Failed DIS calls of the downlink, by kind (read, commit).", "kind")
	dDownJumps        = desc("downlink_trim_horizon_jumps_total", "Downlink positions that had fallen below DIS retention: records in between expired undelivered.")
	dReloads          = desc("config_reloads_total", "Configuration reloads (SIGHUP or POST /api/v1/reload), by result.", "result")
	dUptime           = desc("uptime_seconds", "Seconds since the gateway started.")
)

var states = []string{StateOnline, StateDegraded, StateOffline}

// statusCollector turns a Status snapshot into metrics at scrape time.
type statusCollector struct {
	snap    func() Status
	version string
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dBuildInfo, dReady, dClients, dPubIn, dPubOut, dLogins, dLoginFailures, dACLDenied, dAccepted, dRejected, dSchemaKnown, dSchemaChecked, dSchemaRejected,
		dUnrouted, dDeadLetters, dBufRecords, dBufBytes, dBufOldest, dBufMax, dBufDisk, dBufAppended, dBufAcked,
		dBufRejected, dBufDropped, dBufDiskFull, dBufWriteErrors, dBufSyncs, dUpState, dUpSent, dUpRetried,
		dUpDead, dUpRequests, dUpFailedRequests, dDownLag, dDownUp, dDownDelivered, dDownDead, dDownDropped, dDownErrors, dDownJumps, dReloads, dUptime} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.snap()
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	gauge(dBuildInfo, 1, c.version, st.Gateway.ID)
	gauge(dReady, b2f(st.Ready.Ready))
	gauge(dUptime, st.Gateway.UptimeSeconds)

	gauge(dClients, float64(st.MQTT.ClientsConnected))
	for q, v := range []uint64{st.MQTT.PublishesReceived.QoS0, st.MQTT.PublishesReceived.QoS1, st.MQTT.PublishesReceived.QoS2} {
		counter(dPubIn, v, strconv.Itoa(q))
	}
	for q, v := range []uint64{st.MQTT.PublishesSent.QoS0, st.MQTT.PublishesSent.QoS1, st.MQTT.PublishesSent.QoS2} {
		counter(dPubOut, v, strconv.Itoa(q))
	}

	for _, m := range sortedKeys(st.MQTT.Logins) {
		counter(dLogins, st.MQTT.Logins[m], m)
	}
	for _, r := range sortedKeys(st.MQTT.AuthFailures) {
		counter(dLoginFailures, st.MQTT.AuthFailures[r], r)
	}
	counter(dACLDenied, st.MQTT.ACLDenied.Publish, "publish")
	counter(dACLDenied, st.MQTT.ACLDenied.Subscribe, "subscribe")
	counter(dACLDenied, st.MQTT.ACLDenied.Delivery, "delivery")

	counter(dAccepted, st.Ingest.Accepted)
	for _, reason := range withKeys(RejectReasons, st.Ingest.Rejected) {
		counter(dRejected, st.Ingest.Rejected[reason], reason)
	}
	counter(dUnrouted, st.Ingest.Unrouted)
	for _, sc := range st.Schemas {
		gauge(dSchemaKnown, b2f(sc.Known), sc.Stream, sc.Source)
		counter(dSchemaChecked, sc.Passed, sc.Stream, "passed")
		counter(dSchemaChecked, sc.Unvalidated, sc.Stream, "unvalidated")
		for _, code := range sortedKeys(sc.Rejected) {
			counter(dSchemaRejected, sc.Rejected[code], sc.Stream, code)
		}
	}
	for _, src := range withKeys(DeadLetterSources, st.DeadLetters.BySource) {
		counter(dDeadLetters, st.DeadLetters.BySource[src], src)
	}

	b := st.Buffer
	gauge(dBufMax, float64(b.MaxBytes))
	gauge(dBufDisk, float64(b.DiskUsageBytes))
	counter(dBufDiskFull, b.DiskFull)
	counter(dBufWriteErrors, b.WriteErrors)
	counter(dBufSyncs, b.Syncs)
	for _, name := range sortedKeys(b.Streams) {
		s := b.Streams[name]
		gauge(dBufRecords, float64(s.Records), name)
		gauge(dBufBytes, float64(s.Bytes), name)
		gauge(dBufOldest, s.OldestAgeSeconds, name)
		counter(dBufAppended, s.Appended, name)
		counter(dBufAcked, s.Acked, name)
		counter(dBufRejected, s.Rejected, name)
		counter(dBufDropped, s.DroppedOldest, name, "overflow")
		counter(dBufDropped, s.Expired, name, "expired")
	}

	for _, name := range sortedKeys(st.Uplink.Streams) {
		u := st.Uplink.Streams[name]
		for _, s := range states {
			gauge(dUpState, b2f(u.State == s), name, s)
		}
		counter(dUpSent, u.Sent, name)
		counter(dUpRetried, u.Retried, name)
		counter(dUpDead, u.DeadLettered, name)
		counter(dUpRequests, u.Requests, name)
		counter(dUpFailedRequests, u.FailedRequests, name)
	}

	if d := st.Downlink; d != nil {
		gauge(dDownUp, b2f(d.State == "running"))
		counter(dDownDelivered, d.Delivered)
		counter(dDownDead, d.DeadLettered)
		counter(dDownDropped, d.Dropped)
		counter(dDownErrors, d.ReadErrors, "read")
		counter(dDownErrors, d.CommitErrors, "commit")
		counter(dDownJumps, d.TrimHorizonJumps)
		for _, p := range d.Partitions {
			gauge(dDownLag, float64(p.Lag), p.Stream, p.Partition)
		}
	}

	counter(dReloads, st.Reload.Succeeded, "success")
	counter(dReloads, st.Reload.Failed, "failure")
}

// RejectReasons are the values of the reason label of
// edgegw_ingest_publishes_rejected_total, always all exported (0 until seen)
// so rate() works from the first refusal: the ingest path's reasons
// (gateway.Refused*) and RejectACLDenied.
var RejectReasons = []string{"invalid_payload", "unroutable", "no_schema", "buffer_full", "disk_full", "too_large", "store_failed", RejectACLDenied}

// RejectACLDenied counts publishes the ACLs refused before the ingest path.
const RejectACLDenied = "acl_denied"

// DeadLetterSources are the values of the source label of
// edgegw_dead_letters_total, always all exported (0 until seen) so rate()
// works from the first one: the uplink's (router, schema, dis) and the
// downlink's records it gave up on.
var DeadLetterSources = []string{"router", "schema", "dis", "downlink"}

// withKeys returns base followed by the keys of m not in base, sorted.
func withKeys(base []string, m map[string]uint64) []string {
	out := slices.Clone(base)
	for _, k := range sortedKeys(m) {
		if !slices.Contains(base, k) {
			out = append(out, k)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// observe records one PutRecords request.
func observe(h *prometheus.HistogramVec, stream string, err error, d time.Duration) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	h.WithLabelValues(stream, outcome).Observe(d.Seconds())
}
