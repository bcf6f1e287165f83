package config

import (
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/downlink"
)

// Downlink configures the cloud-to-device path: DIS streams consumed with a
// consumer app and republished to MQTT topics. Without routes it is off.
type Downlink struct {
	// App is the DIS consumer app holding the checkpoints; empty means
	// "<gateway.id>-downlink". Gateways sharing a stream need distinct apps.
	App string `yaml:"app"`
	// StartPosition is where a partition without a checkpoint begins the
	// first time: "latest" (only new records), "trim_horizon" (everything
	// DIS still holds) or "timestamp" (StartTimestamp, RFC 3339).
	StartPosition  string `yaml:"start_position"`
	StartTimestamp string `yaml:"start_timestamp"`
	// CommitEveryRecords and CommitInterval batch checkpoint commits.
	// CommitEveryRecords also bounds the commands of a partition awaiting
	// acknowledgement, so a crash delivers at most twice that many again.
	CommitEveryRecords int      `yaml:"commit_every_records"`
	CommitInterval     Duration `yaml:"commit_interval"`
	// AckTimeout is how long a command may stay unacknowledged by a
	// connected subscriber before its partition goes on without it.
	AckTimeout Duration `yaml:"ack_timeout"`
	// PollInterval and PollIntervalMax bound the wait between reads of an
	// idle partition (doubling); records flowing are read back to back.
	PollInterval    Duration `yaml:"poll_interval"`
	PollIntervalMax Duration `yaml:"poll_interval_max"`
	// MaxFetchBytes caps one GetRecords reply.
	MaxFetchBytes ByteSize `yaml:"max_fetch_bytes"`
	// BackoffInitial and BackoffMax bound retries while DIS is unreachable.
	BackoffInitial Duration `yaml:"backoff_initial"`
	BackoffMax     Duration `yaml:"backoff_max"`
	// DiscoveryInterval is how often partitions are listed (scaling).
	DiscoveryInterval Duration `yaml:"discovery_interval"`
	// OnDrop is what happens when a subscriber's queue drops a record:
	// "retry" until every subscriber took it, or "dead_letter" after
	// MaxAttempts publishes.
	OnDrop      string          `yaml:"on_drop"`
	MaxAttempts int             `yaml:"max_attempts"`
	Routes      []DownlinkRoute `yaml:"routes"`
}

// DownlinkRoute sends a stream's records to an MQTT topic.
type DownlinkRoute struct {
	Stream string `yaml:"stream"`
	// Topic is a template: {partition_key}, {key_suffix}, {payload.FIELD},
	// {stream}, {partition}, or fixed text.
	Topic  string `yaml:"topic"`
	QoS    int    `yaml:"qos"`
	Retain bool   `yaml:"retain"`
	// Transform is "raw" or "unwrap" (the payload is UnwrapField of the
	// record's JSON object, base64-decoded when the uplink envelope says so).
	Transform   string `yaml:"transform"`
	UnwrapField string `yaml:"unwrap_field"`
	// Partitions, KeyPrefix and Match select this gateway's records (the
	// fleet pattern); all must hold.
	Partitions []string       `yaml:"partitions"`
	KeyPrefix  string         `yaml:"key_prefix"`
	Match      *DownlinkMatch `yaml:"match"`
}

// DownlinkMatch accepts records whose JSON payload has Value at Field.
type DownlinkMatch struct {
	Field string `yaml:"field"`
	// Value empty means the gateway's id.
	Value string `yaml:"value"`
}

// defaultDownlink is the downlink section's default; each number has its reason.
func defaultDownlink() Downlink {
	return Downlink{
		// latest: a gateway installed today should not replay a day of old
		// commands to devices.
		StartPosition: downlink.StartLatest,
		// 100 records or 1 s: after a crash at most 100 records per
		// partition arrive twice, and a trickle is checkpointed within a
		// second at no more than one commit per second per partition.
		CommitEveryRecords: 100,
		CommitInterval:     Duration(time.Second),
		// 10 s: far above a healthy device's round trip, so only a stuck one
		// holds up its partition, and for less than MQTT keepalive (60 s)
		// takes to notice a dead connection.
		AckTimeout: Duration(10 * time.Second),
		// 100 ms to 1 s: a command following a burst waits at most 100 ms,
		// one on an idle stream at most a second, and an idle partition
		// costs one GetRecords a second (DIS allows 5 reads/s per partition).
		PollInterval:    Duration(100 * time.Millisecond),
		PollIntervalMax: Duration(time.Second),
		// 1 MiB: one page held in memory per partition; commands are small
		// and DIS records at most 1 MiB.
		MaxFetchBytes: 1 << 20,
		// 500 ms to 30 s: like the uplink, prompt after a blip, gentle
		// during a long outage (the Java SDK's cap).
		BackoffInitial: Duration(500 * time.Millisecond),
		BackoffMax:     Duration(30 * time.Second),
		// 10 s: a scale-up reaches devices within 10 s for one describe
		// call per stream every 10 s.
		DiscoveryInterval: Duration(10 * time.Second),
		// dead_letter after 5 attempts (about 1.5 s of retries): a live
		// subscriber drains its queue in milliseconds, and one stuck device
		// must not hold up every other device's commands on the partition.
		OnDrop:      downlink.DropDeadLetter,
		MaxAttempts: 5,
	}
}

// UnmarshalYAML fills route defaults before decoding, so an entry states
// only what differs: QoS 1 (commands should arrive), transform raw,
// unwrap_field payload (the uplink envelope's field).
func (r *DownlinkRoute) UnmarshalYAML(n *yaml.Node) error {
	type plain DownlinkRoute
	p := plain{QoS: 1, Transform: downlink.TransformRaw, UnwrapField: "payload"}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*r = DownlinkRoute(p)
	return nil
}

var downlinkAppRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)

// validateDownlink checks the downlink section.
func (c *Config) validateDownlink(bad func(key, format string, args ...any)) {
	d := c.Downlink
	if d.App != "" && !downlinkAppRe.MatchString(d.App) {
		bad("downlink.app", "%q must be 1 to 200 letters, digits, '_' or '-' (a DIS app name); empty means %q", d.App, downlink.AppName(c.Gateway.ID))
	}
	switch d.StartPosition {
	case downlink.StartLatest, downlink.StartTrimHorizon:
		if d.StartTimestamp != "" {
			bad("downlink.start_timestamp", "is set but downlink.start_position is %q; set start_position: timestamp or remove it", d.StartPosition)
		}
	case downlink.StartTimestamp:
		if _, err := time.Parse(time.RFC3339, d.StartTimestamp); err != nil {
			bad("downlink.start_timestamp", "%q is not an RFC 3339 time, e.g. 2026-03-01T12:00:00Z (needed with start_position: timestamp)", d.StartTimestamp)
		}
	default:
		bad("downlink.start_position", "%q is not allowed; use one of: latest, trim_horizon, timestamp", d.StartPosition)
	}
	if d.CommitEveryRecords < 1 || d.CommitEveryRecords > 100000 {
		bad("downlink.commit_every_records", "%d is out of range; use 1 to 100000", d.CommitEveryRecords)
	}
	if d.CommitInterval.D() < 10*time.Millisecond || d.CommitInterval.D() > time.Hour {
		bad("downlink.commit_interval", "%s is out of range; use 10ms to 1h", d.CommitInterval.D())
	}
	if d.AckTimeout.D() < 100*time.Millisecond || d.AckTimeout.D() > 10*time.Minute {
		bad("downlink.ack_timeout", "%s is out of range; use 100ms to 10m", d.AckTimeout.D())
	}
	if d.PollInterval.D() < time.Millisecond {
		bad("downlink.poll_interval", "%s is too small; use at least 1ms", d.PollInterval.D())
	}
	// A cursor lives 5 minutes; an idle reader must come back well before.
	if d.PollIntervalMax < d.PollInterval || d.PollIntervalMax.D() > time.Minute {
		bad("downlink.poll_interval_max", "%s is out of range; use downlink.poll_interval (%s) to 1m", d.PollIntervalMax.D(), d.PollInterval.D())
	}
	if d.MaxFetchBytes != 0 && (d.MaxFetchBytes < 1<<10 || d.MaxFetchBytes > 64<<20) {
		bad("downlink.max_fetch_bytes", "%s is out of range; use 1KiB to 64MiB, or 0 for the server's default", d.MaxFetchBytes)
	}
	if d.BackoffInitial.D() < time.Millisecond {
		bad("downlink.backoff_initial", "%s is too small; use at least 1ms", d.BackoffInitial.D())
	}
	if d.BackoffMax < d.BackoffInitial {
		bad("downlink.backoff_max", "%s is less than downlink.backoff_initial (%s)", d.BackoffMax.D(), d.BackoffInitial.D())
	}
	if d.DiscoveryInterval.D() < 100*time.Millisecond {
		bad("downlink.discovery_interval", "%s is too small; use at least 100ms", d.DiscoveryInterval.D())
	}
	switch d.OnDrop {
	case downlink.DropRetry, downlink.DropDeadLetter:
	default:
		bad("downlink.on_drop", "%q is not allowed; use one of: retry, dead_letter", d.OnDrop)
	}
	if d.MaxAttempts < 1 || d.MaxAttempts > 1000 {
		bad("downlink.max_attempts", "%d is out of range; use 1 to 1000", d.MaxAttempts)
	}
	for i, r := range d.Routes {
		key := fmt.Sprintf("downlink.routes[%d]", i)
		if !validStreamName(r.Stream) {
			bad(key+".stream", "%q is not a valid DIS stream name: 1-64 characters of A-Z a-z 0-9 _ -", r.Stream)
		}
		if err := downlink.CheckTopic(r.Topic); err != nil {
			bad(key+".topic", "%v", err)
		}
		if r.QoS < 0 || r.QoS > 2 {
			bad(key+".qos", "%d is not allowed; use 0, 1 or 2", r.QoS)
		}
		switch r.Transform {
		case downlink.TransformRaw:
		case downlink.TransformUnwrap:
			if err := downlink.CheckFieldPath(r.UnwrapField); err != nil {
				bad(key+".unwrap_field", "%v", err)
			}
		default:
			bad(key+".transform", "%q is not allowed; use one of: raw, unwrap", r.Transform)
		}
		for j, p := range r.Partitions {
			if _, err := dis.ParsePartitionID(p); err != nil {
				bad(fmt.Sprintf("%s.partitions[%d]", key, j), "%v", err)
			}
		}
		if r.Match != nil {
			if err := downlink.CheckFieldPath(r.Match.Field); err != nil {
				bad(key+".match.field", "%v", err)
			}
		}
	}
}
