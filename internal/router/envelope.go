package router

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// Envelope format. A route with envelope: true writes this JSON object to its
// stream instead of the bare payload:
//
//	{"topic":"devices/d1/telemetry","client_id":"d1","username":"alice",
//	 "qos":1,"received_ms":1700000000000,
//	 "user_properties":[{"key":"k","value":"v"}],
//	 "payload":{"temp":21.5}}
//
// Every key is always present, so a stream schema can describe the envelope.
// user_properties is a list of pairs, not an object, because MQTT 5 allows a
// key to repeat and keeps the order. A payload that is valid JSON is embedded
// as a JSON value, unchanged; any other payload (binary, text, empty) is
// base64 (standard alphabet, padded) in a JSON string and the object gets
// "payload_encoding":"base64" before "payload". A consumer therefore tests
// payload_encoding and never has to guess whether a string payload was text.

// envelopeOverhead estimates the fixed bytes of the envelope (keys,
// punctuation, a 13-digit timestamp) so the buffer is allocated once.
const envelopeOverhead = 160

func buildEnvelope(m *Message, pi *payloadInfo) []byte {
	size := envelopeOverhead + len(m.Topic) + len(m.ClientID) + len(m.Username)
	for _, p := range m.UserProperties {
		size += len(p.Key) + len(p.Value) + 24
	}
	isJSON := pi.json()
	if isJSON {
		size += len(m.Payload)
	} else {
		size += base64.StdEncoding.EncodedLen(len(m.Payload))
	}
	b := make([]byte, 0, size)
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, m.Topic)
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, m.ClientID)
	b = append(b, `,"username":`...)
	b = appendJSONString(b, m.Username)
	b = append(b, `,"qos":`...)
	b = strconv.AppendUint(b, uint64(m.QoS), 10)
	b = append(b, `,"received_ms":`...)
	b = strconv.AppendInt(b, receivedMillis(m), 10)
	b = append(b, `,"user_properties":[`...)
	for i, p := range m.UserProperties {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendJSONString(b, p.Key)
		b = append(b, `,"value":`...)
		b = appendJSONString(b, p.Value)
		b = append(b, '}')
	}
	b = append(b, ']')
	if isJSON {
		b = append(b, `,"payload":`...)
		b = append(b, m.Payload...)
	} else {
		b = append(b, `,"payload_encoding":"base64","payload":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Payload)
		b = append(b, '"')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Control characters are
// escaped and invalid UTF-8 becomes U+FFFD, as encoding/json does, so the
// envelope is always valid JSON whatever a client sent.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
