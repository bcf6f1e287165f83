package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/ratelog"
	"github.com/edgegw/edgegw/internal/router"
	"github.com/edgegw/edgegw/internal/schema"
)

// ingest is the path from the broker's publish hook to the buffer:
// route → validate → buffer. It implements broker.Ingester and runs on the
// publishing client's goroutine; it is safe for concurrent use.
//
// A payload that can never succeed (it cannot be routed as configured, or
// fails its stream's schema) is not buffered: it is counted, logged (rate
// limited per client and stream), dead-lettered, and refused with MQTT 5
// reason 0x99 and the reason string; MQTT 3.1.1 publishers are acked, since
// sending it again cannot help. A publish that may succeed later (buffer
// full, schema not fetched yet under no_schema: reject) is refused so the
// device keeps it: 0x97/0x80 for MQTT 5, a disconnect for 3.1.1.
type ingest struct {
	router  *router.Router
	schemas *schema.Registry // nil: no validation
	buf     *buffer.Buffer
	dead    *deadLetters
	log     *slog.Logger
	logLim  *ratelog.Limiter

	accepted atomic.Uint64 // records appended to the buffer
	refused  atomic.Uint64 // publishes refused, any reason
	streams  sync.Map      // stream name → *streamCounts
}

// Refusal reasons, the keys of IngestStats.Refused.
const (
	RefusedInvalidPayload = "invalid_payload" // failed the stream's schema (dead-lettered)
	RefusedUnroutable     = "unroutable"      // a partition key template could not be filled (dead-lettered)
	RefusedNoSchema       = "no_schema"       // schema not fetched yet and schema.no_schema is reject
	RefusedBufferFull     = "buffer_full"     // buffer.max_bytes reached (overflow: reject)
	RefusedDiskFull       = "disk_full"       // the disk under the buffer is full
	RefusedTooLarge       = "too_large"       // larger than a DIS record may be
	RefusedStoreFailed    = "store_failed"    // the buffer could not write
)

var refusedReasons = [...]string{RefusedInvalidPayload, RefusedUnroutable, RefusedNoSchema,
	RefusedBufferFull, RefusedDiskFull, RefusedTooLarge, RefusedStoreFailed}

// ingestLogEvery: a device that keeps sending a bad payload is one log line
// per stream per minute, with the count of the others.
const ingestLogEvery = time.Minute

type streamCounts struct {
	accepted atomic.Uint64
	refused  [len(refusedReasons)]atomic.Uint64
}

func newIngest(r *router.Router, reg *schema.Registry, buf *buffer.Buffer, dead *deadLetters, log *slog.Logger) *ingest {
	return &ingest{router: r, schemas: reg, buf: buf, dead: dead, log: log, logLim: ratelog.New(ingestLogEvery, 0)}
}

func (in *ingest) counts(stream string) *streamCounts {
	if c, ok := in.streams.Load(stream); ok {
		return c.(*streamCounts)
	}
	c, _ := in.streams.LoadOrStore(stream, new(streamCounts))
	return c.(*streamCounts)
}

func (in *ingest) refuse(stream, reason string) {
	in.refused.Add(1)
	for i, r := range refusedReasons {
		if r == reason {
			in.counts(stream).refused[i].Add(1)
			return
		}
	}
}

// Ingest routes p, validates the record and appends it. For QoS 0 the
// append is not waited for; for QoS 1 and 2 it returns once the record is
// durable (group commit), so the broker's ack follows the persist.
func (in *ingest) Ingest(ctx context.Context, p *broker.Publish) error {
	msg := router.Message{
		Topic:    p.Topic,
		ClientID: p.ClientID,
		Username: p.Username,
		QoS:      p.QoS,
		Payload:  p.Payload,
		Received: p.Received,
	}
	if len(p.UserProperties) > 0 {
		msg.UserProperties = make([]router.UserProperty, len(p.UserProperties))
		for i, up := range p.UserProperties {
			msg.UserProperties[i] = router.UserProperty{Key: up.Key, Value: up.Val}
		}
	}
	res, err := in.router.Route(&msg)
	if err != nil {
		// The payload cannot be routed as configured (e.g. the key field is
		// missing): it will never succeed, so dead-letter it and ack.
		in.refuse(res.Stream, RefusedUnroutable)
		in.logRefusal(p, res.Stream, RefusedUnroutable, "", err.Error())
		in.dead.send(ctx, p.QoS > 0, deadLetter{Stream: res.Stream, Source: "router", Reason: err.Error(),
			Topic: p.Topic, ClientID: p.ClientID, Username: p.Username, Timestamp: p.Received.UnixMilli()}, p.Payload)
		return &broker.Reject{Code: broker.CodePayloadFormatInvalid, Reason: err.Error(), AckV311: true}
	}
	if res.Dropped() {
		return nil // not for DIS: an ordinary MQTT publish
	}
	if in.schemas != nil {
		// The record is what the stream's schema describes: the payload, or
		// the envelope for envelope routes.
		if err := in.schemas.Validate(res.Stream, res.Data); err != nil {
			return in.invalid(ctx, p, res, err)
		}
	}
	rec := buffer.Record{
		Stream:       res.Stream,
		PartitionKey: res.PartitionKey,
		PartitionID:  res.PartitionID,
		Data:         res.Data,
		Timestamp:    p.Received.UnixMilli(),
	}
	if p.QoS == 0 {
		err = in.buf.AppendAsync(rec)
	} else {
		_, err = in.buf.Append(ctx, rec)
	}
	if err != nil {
		rej, reason := bufferReject(res.Stream, err)
		in.refuse(res.Stream, reason)
		in.logRefusal(p, res.Stream, reason, "", err.Error())
		return rej
	}
	in.accepted.Add(1)
	in.counts(res.Stream).accepted.Add(1)
	return nil
}

// invalid handles a payload the schema check refused.
func (in *ingest) invalid(ctx context.Context, p *broker.Publish, res router.Result, err error) error {
	var ve *schema.ValidationError
	if !errors.As(err, &ve) {
		// schema.ErrNoSchema: the payload may be fine; the device keeps it.
		in.refuse(res.Stream, RefusedNoSchema)
		reason := fmt.Sprintf("the schema of stream %s is not known yet; retry later", res.Stream)
		in.logRefusal(p, res.Stream, RefusedNoSchema, "", reason)
		return &broker.Reject{Code: broker.CodeUnspecifiedError, Reason: reason}
	}
	detail := ve.Detail()
	in.refuse(res.Stream, RefusedInvalidPayload)
	in.logRefusal(p, res.Stream, RefusedInvalidPayload, string(ve.Code), detail)
	in.dead.send(ctx, p.QoS > 0, deadLetter{Stream: res.Stream, Source: "schema", Code: string(ve.Code), Reason: detail,
		Topic: p.Topic, ClientID: p.ClientID, Username: p.Username, Key: res.PartitionKey,
		Timestamp: p.Received.UnixMilli()}, res.Data)
	return &broker.Reject{Code: broker.CodePayloadFormatInvalid, Reason: detail, AckV311: true}
}

// logRefusal logs the first refusal per client and stream, then one line a
// minute with the number not logged. Every refusal is counted regardless.
func (in *ingest) logRefusal(p *broker.Publish, stream, reason, code, detail string) {
	ok, suppressed := in.logLim.Allow(stream + "\x00" + p.ClientID)
	if !ok {
		return
	}
	in.log.Warn("publish refused", "reason", reason, "code", code, "detail", detail, "stream", stream,
		"client", p.ClientID, "topic", p.Topic, "refusals_not_logged", suppressed)
}

// bufferReject turns a failed append into the MQTT answer: the device keeps the
// message (3.1.1 clients are disconnected before any ack; MQTT 5 clients get a
// reason code that says whether a retry can help).
func bufferReject(stream string, err error) (*broker.Reject, string) {
	switch {
	case errors.Is(err, buffer.ErrFull):
		return &broker.Reject{Code: broker.CodeQuotaExceeded,
			Reason: fmt.Sprintf("buffer for stream %s is full; retry later", stream)}, RefusedBufferFull
	case errors.Is(err, buffer.ErrDiskFull):
		return &broker.Reject{Code: broker.CodeQuotaExceeded,
			Reason: "gateway disk is full; retry later"}, RefusedDiskFull
	case errors.Is(err, buffer.ErrTooLarge):
		return &broker.Reject{Code: broker.CodePayloadFormatInvalid,
			Reason: "payload larger than the 1 MiB DIS record limit", AckV311: false}, RefusedTooLarge
	default:
		return &broker.Reject{Code: broker.CodeUnspecifiedError,
			Reason: "gateway could not store the message; retry later"}, RefusedStoreFailed
	}
}

// IngestStats counts what the ingest path did with device publishes since
// the gateway started. Every count only grows.
type IngestStats struct {
	// Accepted records were appended to the buffer.
	Accepted uint64
	// Refused counts refused publishes by reason (the Refused* constants),
	// over all streams.
	Refused map[string]uint64
	// Streams has the same per stream ("" for publishes that could not be
	// routed to any stream).
	Streams map[string]StreamIngestStats
	// DeadLetters were published to the dead-letter topic;
	// DeadLetterFailures could not be (published or, with
	// dead_letter.stream, buffered).
	DeadLetters        uint64
	DeadLetterFailures uint64
}

// StreamIngestStats is one stream's part of IngestStats.
type StreamIngestStats struct {
	Accepted uint64
	Refused  map[string]uint64
}

func (in *ingest) stats() IngestStats {
	s := IngestStats{Accepted: in.accepted.Load(), Refused: map[string]uint64{}, Streams: map[string]StreamIngestStats{}}
	in.streams.Range(func(k, v any) bool {
		c := v.(*streamCounts)
		ss := StreamIngestStats{Accepted: c.accepted.Load(), Refused: map[string]uint64{}}
		for i, r := range refusedReasons {
			if n := c.refused[i].Load(); n > 0 {
				ss.Refused[r] = n
				s.Refused[r] += n
			}
		}
		s.Streams[k.(string)] = ss
		return true
	})
	if in.dead != nil {
		s.DeadLetters, s.DeadLetterFailures = in.dead.count.Load(), in.dead.failed.Load()
	}
	return s
}

// IngestStats returns the ingest path's counters (after Ready). Schema
// rejections by stream and validation code are in SchemaStatus.
func (g *Gateway) IngestStats() IngestStats { return g.ingest.stats() }

// SchemaStatus lists each stream's schema: where it comes from, whether it
// is known, and its validation outcomes by code (after Ready).
func (g *Gateway) SchemaStatus() []schema.StreamStatus {
	if g.schemas == nil {
		return nil
	}
	return g.schemas.Status()
}

// BrokerStats returns the MQTT broker's counters: connections, logins and
// authentication failures by reason, ACL denials (after Ready).
func (g *Gateway) BrokerStats() broker.Stats { return g.broker.Stats() }

// ReloadAuth applies the mqtt users, acl, login_limit and anonymous keys of
// cfg (already validated) to the running broker: connected clients stay,
// later logins and ACL checks use the new rules. On error nothing changes.
func (g *Gateway) ReloadAuth(cfg config.Config) error {
	return g.broker.ReloadAuth(cfg.MQTT.AuthConfig())
}
