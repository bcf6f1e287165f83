package admin

import "time"

// Status is everything the admin API knows about the gateway at one moment:
// the body of /api/v1/status, what /metrics exposes, and what /readyz judges.
// The gateway builds it from its components' read-only Stats accessors; the
// admin package never reaches into a component.
type Status struct {
	Gateway     GatewayStatus    `json:"gateway"`
	Ready       Readiness        `json:"ready"` // filled in by the admin server
	MQTT        MQTTStatus       `json:"mqtt"`
	Ingest      IngestStatus     `json:"ingest"`
	Buffer      BufferStatus     `json:"buffer"`
	Uplink      UplinkStatus     `json:"uplink"`
	Downlink    *DownlinkStatus  `json:"downlink"` // nil: no downlink configured
	Schemas     []SchemaStream   `json:"schemas"`
	DeadLetters DeadLetterStatus `json:"dead_letters"`
	Errors      []LogEntry       `json:"recent_errors"` // newest last
	Reload      ReloadStatus     `json:"reload"`
}

// GatewayStatus identifies the process.
type GatewayStatus struct {
	ID            string    `json:"id"`
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Starting      bool      `json:"starting"` // components are still being started; the rest of Status is empty
	ShuttingDown  bool      `json:"shutting_down"`
}

// Readiness is the verdict of /readyz.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"` // why not, one sentence each
}

// QoSCounts counts MQTT publishes per QoS level.
type QoSCounts struct {
	QoS0 uint64 `json:"qos0"`
	QoS1 uint64 `json:"qos1"`
	QoS2 uint64 `json:"qos2"`
}

// Total is the sum over the QoS levels.
func (q QoSCounts) Total() uint64 { return q.QoS0 + q.QoS1 + q.QoS2 }

// MQTTStatus describes the embedded broker.
type MQTTStatus struct {
	Listening         bool       `json:"listening"`
	Listeners         []Listener `json:"listeners"`
	ClientsConnected  int64      `json:"clients_connected"`
	PublishesReceived QoSCounts  `json:"publishes_received"` // PUBLISH packets from clients
	PublishesSent     QoSCounts  `json:"publishes_sent"`     // PUBLISH packets to subscribers
	// Logins counts accepted logins by method (password, certificate,
	// anonymous); AuthFailures refused ones by reason (bad_password, ...).
	Logins       map[string]uint64 `json:"logins"`
	AuthFailures map[string]uint64 `json:"auth_failures"`
	ACLDenied    ACLDenied         `json:"acl_denied"`
}

// ACLDenied counts what the ACLs refused.
type ACLDenied struct {
	Publish   uint64 `json:"publish"`
	Subscribe uint64 `json:"subscribe"`
	Delivery  uint64 `json:"delivery"` // messages not delivered to a subscriber its rules do not allow
}

// Listener is one bound MQTT listener.
type Listener struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// IngestStatus describes the path from the publish hook into the buffer.
type IngestStatus struct {
	Accepted uint64 `json:"accepted"` // records appended to the buffer
	// Rejected counts refused publishes by reason (RejectReasons).
	Rejected map[string]uint64 `json:"rejected"`
	// Unrouted counts publishes no route matched and that went to MQTT only.
	Unrouted uint64 `json:"unrouted"`
}

// SchemaStream is one stream's payload validation.
type SchemaStream struct {
	Stream      string            `json:"stream"`
	Source      string            `json:"source"` // config | dis
	Known       bool              `json:"known"`  // a schema is in use
	DataType    string            `json:"data_type,omitempty"`
	Updated     time.Time         `json:"updated,omitzero"` // last fetch from DIS
	Error       string            `json:"error,omitempty"`  // last fetch or compile error
	Passed      uint64            `json:"passed"`
	Unvalidated uint64            `json:"unvalidated"` // accepted before the schema was known
	Rejected    map[string]uint64 `json:"rejected"`    // by validation code (type, range, missing_field, ...)
}

// BufferStatus describes the durable buffer.
type BufferStatus struct {
	Open           bool                    `json:"open"`
	Records        int64                   `json:"records"`
	Bytes          int64                   `json:"bytes"`
	MaxBytes       int64                   `json:"max_bytes"`
	DiskUsageBytes int64                   `json:"disk_usage_bytes"`
	DiskFull       uint64                  `json:"disk_full"`    // appends refused for lack of disk
	WriteErrors    uint64                  `json:"write_errors"` // appends failed otherwise
	Syncs          uint64                  `json:"syncs"`
	Streams        map[string]BufferStream `json:"streams"`
}

// BufferStream describes one stream's part of the buffer.
type BufferStream struct {
	Records          int64   `json:"records"`
	Bytes            int64   `json:"bytes"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	Appended         uint64  `json:"appended"`
	Acked            uint64  `json:"acked"`
	Rejected         uint64  `json:"rejected"` // refused because the buffer was full
	DroppedOldest    uint64  `json:"dropped_oldest"`
	Expired          uint64  `json:"expired"`
}

// UplinkStatus describes the drain into DIS.
type UplinkStatus struct {
	Endpoint string                  `json:"endpoint"`
	Streams  map[string]UplinkStream `json:"streams"`
}

// Uplink stream states (uplink.State values).
const (
	StateOnline   = "online"
	StateDegraded = "degraded"
	StateOffline  = "offline"
)

// UplinkStream is one stream's uplink.
type UplinkStream struct {
	State          string `json:"state"` // online | degraded | offline
	Sent           uint64 `json:"sent"`
	Retried        uint64 `json:"retried"`
	DeadLettered   uint64 `json:"dead_lettered"`
	Requests       uint64 `json:"requests"`
	FailedRequests uint64 `json:"failed_requests"`
	LastError      string `json:"last_error,omitempty"`
}

// DownlinkStatus describes the cloud-to-device path when one is configured.
type DownlinkStatus struct {
	App          string `json:"app"`
	State        string `json:"state"` // starting | running | stopped
	Delivered    uint64 `json:"delivered"`
	Filtered     uint64 `json:"filtered"` // matched no downlink route
	Dropped      uint64 `json:"dropped"`  // deliveries mochi dropped (then retried)
	DeadLettered uint64 `json:"dead_lettered"`
	ReadErrors   uint64 `json:"read_errors"`
	CommitErrors uint64 `json:"commit_errors"`
	// TrimHorizonJumps counts positions that fell below DIS retention:
	// records in between expired undelivered.
	TrimHorizonJumps uint64              `json:"trim_horizon_jumps"`
	Partitions       []DownlinkPartition `json:"partitions"`
}

// DownlinkPartition is one consumed DIS partition.
type DownlinkPartition struct {
	Stream    string `json:"stream"`
	Partition string `json:"partition"`
	State     string `json:"state"`
	Lag       uint64 `json:"lag"` // records in DIS not yet read
	Delivered uint64 `json:"delivered"`
	LastError string `json:"last_error,omitempty"`
}

// DeadLetterStatus counts dead letters and keeps the most recent ones.
type DeadLetterStatus struct {
	Total    uint64            `json:"total"`
	BySource map[string]uint64 `json:"by_source"` // router | schema | dis | downlink
	Recent   []DeadLetter      `json:"recent"`    // newest last
}

// DeadLetter is one recent dead letter as published on
// $edgegw/deadletter/{stream}, its data cut to a preview.
type DeadLetter struct {
	Time     time.Time `json:"time"`
	Topic    string    `json:"topic"`
	Stream   string    `json:"stream"`
	Source   string    `json:"source"`
	Code     string    `json:"code,omitempty"`
	Reason   string    `json:"reason"`
	ClientID string    `json:"client_id,omitempty"`
	Preview  string    `json:"preview,omitempty"`
}

// LogEntry is one warning or error the gateway logged.
type LogEntry struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Attrs   string    `json:"attrs,omitempty"` // key=value pairs as logged
}

// ReloadStatus describes configuration reloads since start.
type ReloadStatus struct {
	Succeeded uint64    `json:"succeeded"`
	Failed    uint64    `json:"failed"`
	LastTime  time.Time `json:"last_time,omitzero"`
	LastError string    `json:"last_error,omitempty"` // the reasons of the last refused reload
}

// ReloadResult is what one reload did: the body of POST /api/v1/reload.
type ReloadResult struct {
	// Applied names what took effect (routes, users, acls, schemas).
	Applied []string `json:"applied,omitempty"`
	// RestartNeeded names changed keys that take effect only after a restart.
	RestartNeeded []string `json:"restart_needed,omitempty"`
	// Errors are the reasons the new config was refused; the old one stays.
	Errors []string `json:"errors,omitempty"`
}

// OK reports whether the reload was applied.
func (r ReloadResult) OK() bool { return len(r.Errors) == 0 }
