package broker

// Server-side delivery for the downlink: Deliver publishes one message and
// reports the subscriber deliveries mochi dropped, and the delivery hook
// repairs mochi v2.7.9's MQTT 5 flow control (Receive Maximum).
//
// # Drops
//
// mochi hands a message to each subscriber without blocking: a full outbound
// queue (MaximumClientWritesPending) drops it and fires OnPublishDropped, a
// full inflight store (MaximumInflight) drops it and only counts
// Info.InflightDropped, and exhausted packet ids fire OnPacketIDExhausted
// (server.go:1064-1110). The inline Publish fans out synchronously on the
// caller's goroutine, so Deliver serialises its calls, marks the payload it
// passes (its backing array identifies the publish in the hooks, which get
// the original packet, not the per-subscriber copy) and reads the inflight
// drop counter around the call. The counter is global: a device publish
// dropped at the same instant is attributed to the delivery as well, which
// only costs a needless retry, never a missed drop.
//
// # Settlement
//
// A message handed to mochi is still in memory: a crash before it reaches a
// subscriber loses it. So that the downlink can checkpoint a record only
// once it is safe, the hook tracks, per Deliver, every QoS 1/2 delivery to
// a connected subscriber (matched in OnQosPublish on the delivering
// goroutine by the inline origin and the payload) until its PUBACK or
// PUBCOMP (OnQosComplete, or the flow-control handling below), a drop, or
// the subscriber's disconnect. DeliveryResult.Settled reports when none is
// left. A message stored for an offline persistent session counts as
// settled: waiting for a device that may return in hours would stop the
// checkpoint.
//
// # Receive Maximum (LIBRARY-NOTES "defects found with real clients" #2)
//
// An MQTT 5 client announces how many QoS 1/2 publishes it accepts
// unacknowledged. mochi keeps a send quota per client; when it is zero it
// stores the message as pending (Expiry -1) and, after each inbound packet,
// writes one pending message and deletes it from the inflight store
// (server.go:719-727). The deleted message's PUBACK then finds nothing and
// never returns its quota, so the quota leaks away and delivery stalls after
// a few dozen messages; pending messages are picked by their creation second
// (inflight.go GetAll) and so arrive out of order, and a message deleted
// while unacknowledged is not resent after a reconnect. processPubrel and
// processPubcomp also raise the send quota unconditionally.
//
// The hook takes the send quota of such clients away from mochi and does the
// accounting itself:
//
//   - When the session is established it freezes mochi's quota at 0 (with a
//     maximum of 1), so every QoS > 0 message for the client takes mochi's
//     pending path: stored in the inflight store and not written. OnQosPublish
//     appends its packet id to the client's FIFO.
//   - A pump goroutine per client writes queued messages in FIFO order while
//     fewer than Receive Maximum are unacknowledged. The message stays in the
//     inflight store until it is acknowledged, so a reconnect resends it.
//   - PUBACK, PUBCOMP (and PUBREC with an error code) are handled in
//     OnPacketRead, before mochi sees them: the hook removes the message from
//     the inflight store, frees the slot and wakes the pump, and hands mochi a
//     PUBACK for packet id 0, which no message ever has, so mochi does
//     nothing (and does not raise its quota). An inbound PUBREL (the client's
//     own QoS 2 publish) is completed the same way mochi does it, minus the
//     send-quota increase.
//
// Publishers never see a non-zero quota for these clients, so no message can
// overtake the queue: delivery is in publish order per publisher and never
// exceeds the client's Receive Maximum.
//
// Limits, all at session takeover (a client reconnecting to a stored
// session): mochi resends the stored session's messages at once before the
// hook takes over (MQTT allows resending unacknowledged messages; queued ones
// beyond Receive Maximum are also resent, as mochi always did), and a message
// published in the microseconds between mochi cloning the old session and
// the hook taking over may be sent twice. OnQosComplete does not fire for
// acknowledgements the hook handles. Clients without a Receive Maximum (MQTT
// 3.1.1, or MQTT 5 without the property, which means 65,535) are left to mochi.

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DeliveryOptions configures server-side delivery.
type DeliveryOptions struct {
	// DisableFlowControlFix leaves MQTT 5 send quotas to mochi v2.7.9 as is
	// (see delivery.go); only tests that show the defect set it.
	DisableFlowControlFix bool
}

// DeliveryResult reports one Deliver call.
type DeliveryResult struct {
	// Dropped counts subscriber deliveries mochi dropped: a full outbound
	// queue, a full inflight store, or no free packet id. A message that
	// reached the inflight store of an offline persistent session is
	// delivered, not dropped (mochi resends it on reconnect).
	Dropped int
	t       *tracked
}

// Settled reports whether every QoS 1/2 delivery of the message to a
// connected subscriber has been acknowledged, or has ended otherwise (the
// subscriber disconnected, the delivery was dropped). It is true at once
// for QoS 0 and for messages without connected subscribers. Safe from any
// goroutine.
func (r DeliveryResult) Settled() bool { return r.t == nil || r.t.pending.Load() == 0 }

// Delivery publishes the gateway's own messages (the downlink) and owns the
// flow-control fix. It is safe for concurrent use.
type Delivery struct{ h *deliveryHook }

// NewDelivery installs the delivery hook into b. Call it once, after New and
// before Start, so that it sees every connection.
func NewDelivery(b *Broker, opts DeliveryOptions) (*Delivery, error) {
	h := &deliveryHook{
		srv: b.srv, log: b.log, fix: !opts.DisableFlowControlFix,
		clients: map[*mqtt.Client]*fcClient{}, acks: map[ackKey]*tracked{}, ackIDs: map[*mqtt.Client]map[uint16]bool{},
	}
	if err := b.srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("add delivery hook: %w", err)
	}
	return &Delivery{h: h}, nil
}

// Deliver publishes a message to the matching subscribers, bypassing the
// publish ACL (subscribers' ACLs still apply) and the Ingester, and reports
// how many subscriber deliveries were dropped. Calls are serialised; each
// returns once mochi has handed the message to every subscriber's queue or
// inflight store.
func (d *Delivery) Deliver(topic string, payload []byte, retain bool, qos byte) (DeliveryResult, error) {
	return d.h.deliver(topic, payload, retain, qos)
}

// tracked is the publish a Deliver call is making.
type tracked struct {
	payload []byte
	data    *byte // backing array of payload, as passed to mochi
	dropped atomic.Int64
	pending atomic.Int64 // deliveries to connected subscribers not yet acknowledged
}

// ackKey is one delivery awaiting its acknowledgement.
type ackKey struct {
	cl *mqtt.Client
	id uint16
}

// deliveryHook implements Deliver's drop accounting and the flow-control fix.
type deliveryHook struct {
	mqtt.HookBase
	srv *mqtt.Server
	log *slog.Logger
	fix bool

	deliverMu sync.Mutex // serialises Deliver
	current   atomic.Pointer[tracked]

	ackMu sync.Mutex
	acks  map[ackKey]*tracked
	// ackIDs lists each client's keys in acks, for its disconnect.
	ackIDs map[*mqtt.Client]map[uint16]bool

	mu      sync.RWMutex
	clients map[*mqtt.Client]*fcClient
	stopped bool
	wg      sync.WaitGroup // pumps
}

func (h *deliveryHook) ID() string { return "edgegw-delivery" }

func (h *deliveryHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublishDropped, mqtt.OnPacketIDExhausted, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnDisconnect:
		return true
	case mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnPacketRead:
		return h.fix
	}
	return false
}

func (h *deliveryHook) deliver(topic string, payload []byte, retain bool, qos byte) (DeliveryResult, error) {
	h.deliverMu.Lock()
	defer h.deliverMu.Unlock()
	// A private copy with spare capacity, so that even an empty payload has
	// a backing array of its own to be recognised by.
	p := make([]byte, len(payload), len(payload)+1)
	copy(p, payload)
	t := &tracked{payload: p, data: unsafe.SliceData(p)}
	h.current.Store(t)
	before := atomic.LoadInt64(&h.srv.Info.InflightDropped)
	err := h.srv.Publish(topic, p, retain, qos)
	full := atomic.LoadInt64(&h.srv.Info.InflightDropped) - before
	h.current.Store(nil)
	return DeliveryResult{Dropped: int(t.dropped.Load() + full), t: t}, err
}

// track registers a QoS 1/2 delivery of the current Deliver to cl. It runs
// on the delivering goroutine, from OnQosPublish.
func (h *deliveryHook) track(cl *mqtt.Client, pk packets.Packet) {
	t := h.current.Load()
	if t == nil || pk.Origin != mqtt.InlineClientId || !bytes.Equal(pk.Payload, t.payload) || cl.Closed() {
		return // not ours, or stored for an offline session: nothing to wait for
	}
	k := ackKey{cl, pk.PacketID}
	h.ackMu.Lock()
	if _, dup := h.acks[k]; !dup {
		h.acks[k] = t
		if h.ackIDs[cl] == nil {
			h.ackIDs[cl] = map[uint16]bool{}
		}
		h.ackIDs[cl][pk.PacketID] = true
		t.pending.Add(1)
	}
	h.ackMu.Unlock()
	if cl.Closed() {
		h.settleClient(cl, nil) // it went away meanwhile; OnDisconnect may have run already
	}
}

// settle ends the wait for one delivery; it does nothing for deliveries
// that are not tracked (device messages, already settled).
func (h *deliveryHook) settle(cl *mqtt.Client, id uint16) {
	k := ackKey{cl, id}
	h.ackMu.Lock()
	t := h.acks[k]
	if t != nil {
		delete(h.acks, k)
		delete(h.ackIDs[cl], id)
	}
	h.ackMu.Unlock()
	if t != nil {
		t.pending.Add(-1)
	}
}

// settleClient ends the waits for cl's deliveries: all of them, or only
// those of the publish only (a dropped delivery).
func (h *deliveryHook) settleClient(cl *mqtt.Client, only *tracked) {
	h.ackMu.Lock()
	var done []*tracked
	for id := range h.ackIDs[cl] {
		k := ackKey{cl, id}
		if t := h.acks[k]; only == nil || t == only {
			done = append(done, t)
			delete(h.acks, k)
			delete(h.ackIDs[cl], id)
		}
	}
	if len(h.ackIDs[cl]) == 0 {
		delete(h.ackIDs, cl)
	}
	h.ackMu.Unlock()
	for _, t := range done {
		t.pending.Add(-1)
	}
}

// OnQosComplete runs on the subscriber's goroutine when mochi completes a
// QoS 1/2 delivery (acknowledgements the flow-control fix handles settle in
// OnPacketRead).
func (h *deliveryHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.settle(cl, pk.PacketID) }

// OnQosDropped runs when mochi gives up a stored delivery (expired,
// cleared, refused by the client).
func (h *deliveryHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.settle(cl, pk.PacketID) }

// noteDrop runs on the publishing goroutine, inside deliver's Publish call
// when the packet is ours.
func (h *deliveryHook) noteDrop(cl *mqtt.Client, pk packets.Packet) {
	t := h.current.Load()
	if t != nil && pk.Origin == mqtt.InlineClientId && unsafe.SliceData(pk.Payload) == t.data {
		t.dropped.Add(1)
		h.settleClient(cl, t) // registered in OnQosPublish before mochi found the queue full
	}
}

// OnPublishDropped runs on the publishing goroutine when a subscriber's
// outbound queue is full.
func (h *deliveryHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) { h.noteDrop(cl, pk) }

// OnPacketIDExhausted runs on the publishing goroutine when a subscriber has
// no free packet id.
func (h *deliveryHook) OnPacketIDExhausted(cl *mqtt.Client, pk packets.Packet) { h.noteDrop(cl, pk) }

// fcClient is the flow-control state of one MQTT 5 connection with a
// Receive Maximum. mu guards every field below it.
type fcClient struct {
	cl   *mqtt.Client
	rm   int
	kick chan struct{} // capacity 1: wakes the pump
	done chan struct{} // closed when the connection ends

	mu        sync.Mutex
	inflight  *mqtt.Inflight      // the store whose quota is frozen
	inherited map[uint16]struct{} // ids of the previous connection's session (resent by mochi)
	queue     []uint16            // stored, not yet written, in publish order
	queued    map[uint16]struct{}
	sent      map[uint16]struct{} // written, not yet acknowledged
	active    bool
	started   bool // the pump runs; guarded by deliveryHook.mu
}

// freeze makes mochi store every QoS > 0 message for the client as pending:
// send quota 0, maximum 1 (a maximum of 0 would mean "no flow control").
func freeze(inf *mqtt.Inflight) {
	inf.ResetSendQuota(1)
	inf.DecreaseSendQuota()
}

func (h *deliveryHook) lookup(cl *mqtt.Client) *fcClient {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.clients[cl]
}

// OnSessionEstablish runs on the connecting client's goroutine before the
// client is registered (no publisher can reach it yet) and before mochi
// inherits a stored session.
func (h *deliveryHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if cl.Properties.ProtocolVersion != 5 || cl.Properties.Props.ReceiveMaximum == 0 || cl.Net.Inline {
		return
	}
	fc := &fcClient{
		cl: cl, rm: int(cl.Properties.Props.ReceiveMaximum),
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		inflight: cl.State.Inflight, inherited: map[uint16]struct{}{},
		queued: map[uint16]struct{}{}, sent: map[uint16]struct{}{},
	}
	freeze(fc.inflight)
	if old, ok := h.srv.Clients.Get(cl.ID); ok && old != cl && !pk.Connect.Clean {
		for _, p := range old.State.Inflight.GetAll(false) {
			fc.inherited[p.PacketID] = struct{}{}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	// A connection that failed between here and OnSessionEstablished (CONNACK
	// or resend write error) gets no OnDisconnect; drop such leftovers.
	for c, old := range h.clients {
		if c.Closed() && !old.started {
			delete(h.clients, c)
		}
	}
	h.clients[cl] = fc
}

// OnSessionEstablished runs on the client's goroutine after CONNACK and
// mochi's resend of a stored session; from here the pump owns delivery.
func (h *deliveryHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	fc := h.lookup(cl)
	if fc == nil {
		return
	}
	fc.mu.Lock()
	cloned := cl.State.Inflight != fc.inflight
	if cloned {
		// mochi replaced the store with the old session's and reset its
		// quota; everything in it has been written (resent, or sent
		// directly while the quota was open).
		fc.inflight = cl.State.Inflight
		freeze(fc.inflight)
	}
	var late []packets.Packet
	for _, p := range fc.inflight.GetAll(false) {
		id := p.PacketID
		switch p.FixedHeader.Type {
		case packets.Pubrel: // our QoS 2 message, PUBREC received
			fc.sent[id] = struct{}{}
		case packets.Publish:
			_, inh := fc.inherited[id]
			switch {
			case inh || (cloned && p.Expiry >= 0):
				fc.sent[id] = struct{}{}
				fc.unqueue(id)
			case p.Expiry < 0:
				if _, q := fc.queued[id]; !q {
					late = append(late, p)
				}
			}
		}
	}
	sort.Slice(late, func(i, j int) bool { return late[i].PacketID < late[j].PacketID })
	for _, p := range late {
		fc.enqueue(p.PacketID)
	}
	fc.inherited = nil
	fc.active = true
	fc.mu.Unlock()

	h.mu.Lock()
	if h.stopped || h.clients[cl] != fc {
		h.mu.Unlock()
		return
	}
	h.wg.Add(1)
	fc.started = true
	h.mu.Unlock()
	go h.pump(fc)
	fc.wake()
}

func (fc *fcClient) enqueue(id uint16) {
	if _, q := fc.queued[id]; q {
		return
	}
	if _, s := fc.sent[id]; s {
		return
	}
	fc.queue = append(fc.queue, id)
	fc.queued[id] = struct{}{}
}

func (fc *fcClient) unqueue(id uint16) {
	if _, q := fc.queued[id]; !q {
		return
	}
	delete(fc.queued, id)
	for i, v := range fc.queue {
		if v == id {
			fc.queue = append(fc.queue[:i], fc.queue[i+1:]...)
			return
		}
	}
}

func (fc *fcClient) wake() {
	select {
	case fc.kick <- struct{}{}:
	default:
	}
}

// OnQosPublish runs on the publishing goroutine when mochi stores a QoS > 0
// message for a client (also for acks of inbound publishes and for resends,
// which are not ours to queue).
func (h *deliveryHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup {
		return
	}
	h.track(cl, pk)
	if !h.fix {
		return
	}
	fc := h.lookup(cl)
	if fc == nil {
		return
	}
	fc.mu.Lock()
	fc.enqueue(pk.PacketID)
	active := fc.active
	fc.mu.Unlock()
	if active {
		fc.wake()
	}
}

// noop is what mochi gets instead of an acknowledgement the hook handled: a
// PUBACK for packet id 0, which no stored message has, so processPuback
// returns without touching the quota.
func noop(pk packets.Packet) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: pk.ProtocolVersion}
}

// OnPacketRead runs on the client's goroutine for every inbound packet,
// before mochi processes it.
func (h *deliveryHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubcomp, packets.Pubrec, packets.Pubrel:
	default:
		return pk, nil
	}
	fc := h.lookup(cl)
	if fc == nil {
		return pk, nil
	}
	id := pk.PacketID
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubcomp:
		stored, ok := cl.State.Inflight.Get(id)
		want := packets.Publish
		if pk.FixedHeader.Type == packets.Pubcomp {
			want = packets.Pubrel
		}
		if !ok || stored.FixedHeader.Type != want {
			return noop(pk), nil // unknown id: nothing to complete (mochi would raise the quota on a PUBCOMP)
		}
		h.complete(fc, id)
		h.settle(cl, id)
		if cl.State.Inflight.Delete(id) {
			atomic.AddInt64(&h.srv.Info.Inflight, -1)
		}
		if pk.FixedHeader.Type == packets.Pubcomp {
			cl.State.Inflight.IncreaseReceiveQuota() // mochi's processPubrec took one
		}
		return noop(pk), nil
	case packets.Pubrec:
		if pk.ReasonCode >= packets.ErrUnspecifiedError.Code {
			h.complete(fc, id) // a failed PUBREC ends the flow and returns the quota (MQTT 5 §4.9)
			h.settle(cl, id)   // mochi deletes it too (OnQosDropped)
		}
		return pk, nil // mochi answers with PUBREL or deletes the message
	default: // Pubrel: the client's own QoS 2 publish
		if _, ok := cl.State.Inflight.Get(id); !ok || pk.ReasonCode >= packets.ErrUnspecifiedError.Code || !pk.ReasonCodeValid() {
			return pk, nil // mochi's answers for these leave the send quota alone
		}
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: id, ReasonCode: packets.CodeSuccess.Code}
		cl.State.Inflight.Set(ack)
		if err := cl.WritePacket(ack); err != nil {
			h.log.Debug("write PUBCOMP", "client", cl.ID, "err", err)
		}
		cl.State.Inflight.IncreaseReceiveQuota()
		if cl.State.Inflight.Delete(id) {
			atomic.AddInt64(&h.srv.Info.Inflight, -1)
		}
		return noop(pk), nil
	}
}

// complete ends the flow of a message we wrote and wakes the pump.
func (h *deliveryHook) complete(fc *fcClient, id uint16) {
	fc.mu.Lock()
	delete(fc.sent, id)
	fc.unqueue(id)
	fc.mu.Unlock()
	fc.wake()
}

// pump writes a client's queued messages, in order, while its Receive
// Maximum allows. One goroutine per flow-controlled connection; it owns
// the writes of QoS > 0 publishes to that client, may block on the
// connection, and ends with the connection or the broker.
func (h *deliveryHook) pump(fc *fcClient) {
	defer h.wg.Done()
	for {
		select {
		case <-fc.done:
			return
		case <-fc.kick:
		}
		for {
			fc.mu.Lock()
			if len(fc.sent) >= fc.rm || len(fc.queue) == 0 {
				fc.mu.Unlock()
				break
			}
			id := fc.queue[0]
			fc.queue = fc.queue[1:]
			delete(fc.queued, id)
			pk, ok := fc.inflight.Get(id)
			if !ok || pk.FixedHeader.Type != packets.Publish {
				fc.mu.Unlock()
				continue // expired or cleared meanwhile
			}
			fc.sent[id] = struct{}{}
			fc.mu.Unlock()
			err := fc.cl.WritePacket(pk)
			if errors.Is(err, packets.ErrPacketTooLarge) {
				// Larger than the client's Maximum Packet Size: the server
				// must discard it (MQTT 5 §3.1.2.11.4). It must not hold a
				// slot of the window for ever.
				h.log.Warn("flow control: message larger than the client accepts; discarded", "client", fc.cl.ID, "topic", pk.TopicName)
				fc.mu.Lock()
				delete(fc.sent, id)
				fc.mu.Unlock()
				if fc.inflight.Delete(id) {
					atomic.AddInt64(&h.srv.Info.Inflight, -1)
				}
				h.settle(fc.cl, id)
				continue
			}
			if err != nil {
				// The connection is gone; the message stays stored for
				// the session and is resent on reconnect.
				h.log.Debug("flow control: write", "client", fc.cl.ID, "err", err)
				return
			}
		}
	}
}

// OnDisconnect runs on the client's goroutine when its connection ends.
func (h *deliveryHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.settleClient(cl, nil)
	h.mu.Lock()
	fc := h.clients[cl]
	delete(h.clients, cl)
	h.mu.Unlock()
	if fc != nil {
		close(fc.done)
	}
}

// Stop is called by mochi when the server closes: it ends every pump and
// waits for them.
func (h *deliveryHook) Stop() error {
	h.mu.Lock()
	h.stopped = true
	for cl, fc := range h.clients {
		close(fc.done)
		delete(h.clients, cl)
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}
