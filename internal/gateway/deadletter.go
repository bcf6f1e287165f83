package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/ratelog"
)

// DeadLetterTopicPrefix is the default dead_letter.topic_prefix: refused
// records are republished one topic per stream, $edgegw/deadletter/{stream}.
// Topics starting with '$' are not matched by a subscription to "#", so only
// a subscriber who asks for them gets them.
const DeadLetterTopicPrefix = "$edgegw/deadletter/"

// unroutedStream names the topic of dead letters that have no stream.
const unroutedStream = "_unrouted"

// deadLetter is the JSON published for a record that will never reach its
// stream: refused by the router, the schema check, or DIS itself.
type deadLetter struct {
	Stream string `json:"stream"`
	Source string `json:"source"` // router | schema | dis | downlink
	// Code is the schema.ValidationError code (type, range, missing_field,
	// ...) or the DIS error code (DIS.4xxx).
	Code string `json:"code,omitempty"`
	// Reason is what the publisher was told (the MQTT 5 reason string) or
	// what DIS said.
	Reason    string `json:"reason"`
	Topic     string `json:"topic,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	Key       string `json:"partition_key,omitempty"`
	Timestamp int64  `json:"timestamp"`
	// Data is the payload as text when it is valid UTF-8, else DataBase64 holds it.
	Data       *string `json:"data,omitempty"`
	DataBase64 []byte  `json:"data_base64,omitempty"`
}

// deadLetters publishes dead letters to MQTT through the broker's inline
// client and, when dead_letter.stream is set, appends them to that stream
// through the buffer, so they survive restarts and DIS outages like any
// record.
type deadLetters struct {
	prefix  string
	stream  string         // "" : MQTT only
	buf     *buffer.Buffer // set with stream
	publish func(topic string, payload []byte) error
	log     *slog.Logger
	logLim  *ratelog.Limiter

	count  atomic.Uint64 // dead letters made
	failed atomic.Uint64 // not published or not buffered
}

func newDeadLetters(prefix, stream string, buf *buffer.Buffer, log *slog.Logger) *deadLetters {
	if prefix == "" {
		prefix = DeadLetterTopicPrefix
	}
	return &deadLetters{prefix: prefix, stream: stream, buf: buf, log: log, logLim: ratelog.New(time.Minute, 0)}
}

// send publishes one dead letter. It is called from publish hooks (durable
// true for QoS > 0 publishes: the record is in the buffer before the
// publisher's ack) and uplink workers (durable false); it never blocks on
// subscribers (mochi queues per subscriber).
func (d *deadLetters) send(ctx context.Context, durable bool, dl deadLetter, data []byte) {
	d.count.Add(1)
	if utf8.Valid(data) {
		s := string(data)
		dl.Data = &s
	} else {
		dl.DataBase64 = data
	}
	body, err := json.Marshal(dl)
	if err != nil {
		d.fail(dl.Stream, "encode", err)
		return
	}
	stream := dl.Stream
	if stream == "" {
		stream = unroutedStream
	}
	if d.publish != nil {
		if err := d.publish(d.prefix+stream, body); err != nil {
			d.fail(dl.Stream, "publish", err)
		}
	}
	// A dead letter of the dead-letter stream itself (DIS refused one) goes
	// to MQTT only, or it would come back forever.
	if d.stream == "" || dl.Stream == d.stream || d.buf == nil {
		return
	}
	rec := buffer.Record{Stream: d.stream, PartitionKey: stream, Data: body, Timestamp: time.Now().UnixMilli()}
	if durable {
		_, err = d.buf.Append(ctx, rec)
	} else {
		err = d.buf.AppendAsync(rec)
	}
	if err != nil {
		d.fail(dl.Stream, "buffer for dead_letter.stream "+d.stream, err)
	}
}

func (d *deadLetters) fail(stream, what string, err error) {
	d.failed.Add(1)
	if ok, suppressed := d.logLim.Allow(what); ok {
		d.log.Error("dead letter lost: "+what, "stream", stream, "err", err, "failures_not_logged", suppressed)
	}
}
