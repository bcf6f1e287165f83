package config

import "fmt"

// StreamBuffer overrides the buffer's bounds and overflow policy for one
// stream (streams[].buffer.*); zero values inherit the buffer section. It lets
// e.g. alarms refuse publishes when full while telemetry drops its oldest.
type StreamBuffer struct {
	// MaxBytes bounds this stream's buffered bytes on top of
	// buffer.max_bytes (which bounds all streams together); 0: no own bound.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxAge overrides buffer.max_age; 0: buffer.max_age, or the stream's
	// retention when that is 0 too.
	MaxAge Duration `yaml:"max_age"`
	// Overflow overrides buffer.overflow: reject or drop_oldest; empty
	// inherits.
	Overflow string `yaml:"overflow"`
}

// validateStreamBuffers checks streams[].buffer.*.
func (c *Config) validateStreamBuffers(bad func(key, format string, args ...any)) {
	for i, s := range c.Streams {
		key := fmt.Sprintf("streams[%d].buffer", i)
		b := s.Buffer
		switch b.Overflow {
		case "", "reject", "drop_oldest":
		default:
			bad(key+".overflow", "%q is not allowed; use one of: reject, drop_oldest (or leave it out to use buffer.overflow)", b.Overflow)
		}
		if b.MaxBytes != 0 && b.MaxBytes < c.MQTT.MaxPacketSize {
			// A publish MQTT accepts must be able to fit, or it is refused forever.
			bad(key+".max_bytes", "%s is smaller than mqtt.max_packet_size (%s), so a large publish could never fit; use 0 (only buffer.max_bytes) or at least %s", b.MaxBytes, c.MQTT.MaxPacketSize, c.MQTT.MaxPacketSize)
		} else if b.MaxBytes > c.Buffer.MaxBytes {
			bad(key+".max_bytes", "%s is above buffer.max_bytes (%s), so it would never apply; lower it or raise buffer.max_bytes", b.MaxBytes, c.Buffer.MaxBytes)
		}
		if b.MaxAge < 0 {
			bad(key+".max_age", "must not be negative; 0 means buffer.max_age")
		}
	}
}
