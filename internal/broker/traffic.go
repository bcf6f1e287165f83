package broker

import (
	"fmt"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Traffic counts PUBLISH packets by direction and QoS for the admin metrics.
// It is a separate mochi hook, installed by CountTraffic, so a broker that is
// not observed pays nothing; counting is one atomic add per packet.
type Traffic struct {
	mqtt.HookBase
	in, out [3]atomic.Uint64
}

// TrafficStats is a snapshot of Traffic: PUBLISH packets per QoS (index 0-2).
type TrafficStats struct {
	// Received counts PUBLISH packets read from clients, whether accepted or
	// refused afterwards (the gateway's own publishes are not read, so not counted).
	Received [3]uint64
	// Sent counts PUBLISH packets written to subscribers, resends included.
	Sent [3]uint64
}

// CountTraffic installs a Traffic hook; call it before Start. It is safe to
// read the returned counters from any goroutine.
func (b *Broker) CountTraffic() (*Traffic, error) {
	t := &Traffic{}
	if err := b.srv.AddHook(t, nil); err != nil {
		return nil, fmt.Errorf("add traffic hook: %w", err)
	}
	return t, nil
}

// Stats returns the counts so far.
func (t *Traffic) Stats() TrafficStats {
	var s TrafficStats
	for q := range 3 {
		s.Received[q] = t.in[q].Load()
		s.Sent[q] = t.out[q].Load()
	}
	return s
}

// ID names the hook in mochi's logs.
func (t *Traffic) ID() string { return "edgegw-traffic" }

// Provides says which events the hook handles.
func (t *Traffic) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnPacketSent }

// OnPacketRead runs on the reading client's goroutine for every packet.
func (t *Traffic) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos < 3 {
		t.in[pk.FixedHeader.Qos].Add(1)
	}
	return pk, nil
}

// OnPacketSent runs on whichever goroutine wrote the packet.
func (t *Traffic) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos < 3 {
		t.out[pk.FixedHeader.Qos].Add(1)
	}
}
