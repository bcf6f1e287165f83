package gateway

import (
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"unicode/utf8"
)

// DeadLetterTopicPrefix is where refused records are republished, one topic per
// stream: $edgegw/deadletter/{stream}. Topics starting with '$' are not matched
// by a subscription to "#", so only a subscriber who asks for them gets them.
const DeadLetterTopicPrefix = "$edgegw/deadletter/"

// deadLetter is the JSON published for a record that will never reach its
// stream: refused by the router, the schema check, or DIS itself.
type deadLetter struct {
	Stream    string `json:"stream"`
	Source    string `json:"source"` // router | schema | dis
	Code      string `json:"code,omitempty"`
	Reason    string `json:"reason"`
	Topic     string `json:"topic,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Key       string `json:"partition_key,omitempty"`
	Timestamp int64  `json:"timestamp"`
	// Data is the payload as text when it is valid UTF-8, else DataBase64 holds it.
	Data       *string `json:"data,omitempty"`
	DataBase64 []byte  `json:"data_base64,omitempty"`
}

// deadLetters publishes dead letters to MQTT through the broker's inline client.
type deadLetters struct {
	publish func(topic string, payload []byte) error
	log     *slog.Logger
	count   atomic.Uint64
}

// send publishes one dead letter. It is called from publish hooks and uplink
// workers; it never blocks on subscribers (mochi queues per subscriber).
func (d *deadLetters) send(dl deadLetter, data []byte) {
	d.count.Add(1)
	if utf8.Valid(data) {
		s := string(data)
		dl.Data = &s
	} else {
		dl.DataBase64 = data
	}
	body, err := json.Marshal(dl)
	if err != nil {
		d.log.Error("dead letter: encode", "stream", dl.Stream, "err", err)
		return
	}
	stream := dl.Stream
	if stream == "" {
		stream = "_unrouted"
	}
	if d.publish == nil {
		return
	}
	if err := d.publish(DeadLetterTopicPrefix+stream, body); err != nil {
		d.log.Error("dead letter: publish", "stream", dl.Stream, "err", err)
	}
}
