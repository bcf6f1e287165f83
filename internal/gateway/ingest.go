package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/router"
)

// ingest is the path from the broker's publish hook to the buffer:
// route → buffer. It implements broker.Ingester and runs on the publishing
// client's goroutine; it is safe for concurrent use.
type ingest struct {
	router *router.Router
	buf    *buffer.Buffer
	dead   *deadLetters

	accepted atomic.Uint64 // records appended to the buffer
	refused  atomic.Uint64 // publishes refused (routing, buffer full, I/O)
}

// Ingest routes p and appends the record. For QoS 0 the append is not waited
// for; for QoS 1 and 2 it returns once the record is durable (group commit), so
// the broker's ack follows the persist.
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
		in.refused.Add(1)
		in.dead.send(deadLetter{Stream: res.Stream, Source: "router", Reason: err.Error(),
			Topic: p.Topic, ClientID: p.ClientID, Timestamp: p.Received.UnixMilli()}, p.Payload)
		return &broker.Reject{Code: broker.CodePayloadFormatInvalid, Reason: err.Error(), AckV311: true}
	}
	if res.Dropped() {
		return nil // not for DIS: an ordinary MQTT publish
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
		in.refused.Add(1)
		return bufferReject(res.Stream, err)
	}
	in.accepted.Add(1)
	return nil
}

// bufferReject turns a failed append into the MQTT answer: the device keeps the
// message (3.1.1 clients are disconnected before any ack; MQTT 5 clients get a
// reason code that says whether a retry can help).
func bufferReject(stream string, err error) *broker.Reject {
	switch {
	case errors.Is(err, buffer.ErrFull):
		return &broker.Reject{Code: broker.CodeQuotaExceeded,
			Reason: fmt.Sprintf("buffer for stream %s is full; retry later", stream)}
	case errors.Is(err, buffer.ErrDiskFull):
		return &broker.Reject{Code: broker.CodeQuotaExceeded,
			Reason: "gateway disk is full; retry later"}
	case errors.Is(err, buffer.ErrTooLarge):
		return &broker.Reject{Code: broker.CodePayloadFormatInvalid,
			Reason: "payload larger than the 1 MiB DIS record limit", AckV311: false}
	default:
		return &broker.Reject{Code: broker.CodeUnspecifiedError,
			Reason: "gateway could not store the message; retry later"}
	}
}
