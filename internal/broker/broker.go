// Package broker runs the embedded MQTT broker (mochi-mqtt): its listeners,
// client authentication, and the publish hook that hands every device publish to
// the ingest path before it is acknowledged.
//
// Concurrency: mochi runs one goroutine per connection that reads and handles
// that client's packets in order. The ingest hook runs on it, synchronously, and
// mochi writes the PUBACK/PUBREC only after the hook returns
// (../shared/LIBRARY-NOTES.md §A1), so a blocking Ingester delays the ack of that
// one client and nobody else. Ingester implementations must therefore be safe for
// concurrent use by many connections. Publishes made by the gateway itself
// (Publish, used by the downlink) run on the caller's goroutine and never reach
// the Ingester.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Publish is a device publish handed to the ingest path.
type Publish struct {
	ClientID        string
	Username        string
	Topic           string
	QoS             byte
	Retain          bool
	Payload         []byte
	ProtocolVersion byte // 3, 4 (3.1.1) or 5
	UserProperties  []packets.UserProperty
	Received        time.Time
}

// Ingester takes a device publish into the uplink path. It is called on the
// publishing client's goroutine before the publish is acknowledged; returning
// nil lets the broker acknowledge it, so for QoS > 0 it must return only once
// the record is durable. To refuse a publish return a *Reject (any other error
// is treated as Reject{Code: 0x80}).
type Ingester interface {
	Ingest(ctx context.Context, p *Publish) error
}

// Reject refuses a publish with an MQTT 5 reason code.
//
// MQTT 5 publishers with QoS > 0 get a PUBACK (QoS 1) or PUBREC (QoS 2) with
// Code and Reason as its reason string. MQTT 3.1.1 has no negative ack: if
// AckV311 is true the publish is acknowledged and not delivered (right for
// payloads that can never succeed and were dead-lettered), otherwise the client
// is disconnected without an ack so the message stays on the device and is sent
// again (right for a full buffer or a failing disk).
type Reject struct {
	Code    byte
	Reason  string
	AckV311 bool
}

func (r *Reject) Error() string { return fmt.Sprintf("publish refused (0x%02x): %s", r.Code, r.Reason) }

// Reason codes used by the gateway (MQTT 5 §2.4).
const (
	CodeUnspecifiedError     byte = 0x80
	CodeImplementationError  byte = 0x83
	CodeNotAuthorized        byte = 0x87
	CodeQuotaExceeded        byte = 0x97
	CodePayloadFormatInvalid byte = 0x99
)

// Options configures a Broker.
type Options struct {
	Listeners []ListenerConfig
	// Anonymous is who may connect without credentials: "loopback", "always" or "never".
	Anonymous              string
	MaxPacketSize          uint32
	MaxSessionExpiry       time.Duration
	ReceiveMaximum         uint16
	MaxClientWritesPending int32
	Ingester               Ingester
	Logger                 *slog.Logger
}

// ListenerConfig is one network listener.
type ListenerConfig struct {
	Name    string
	Type    string // tcp
	Address string
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv   *mqtt.Server
	log   *slog.Logger
	addrs map[string]net.Addr

	closeOnce sync.Once
}

// New binds the listeners and prepares the broker; Start begins serving.
// A listener that cannot bind is an error naming it.
func New(opts Options) (*Broker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumSessionExpiryInterval = uint32(opts.MaxSessionExpiry / time.Second)
	if opts.ReceiveMaximum > 0 {
		caps.ReceiveMaximum = opts.ReceiveMaximum
	}
	if opts.MaxClientWritesPending > 0 {
		caps.MaximumClientWritesPending = opts.MaxClientWritesPending
	}
	// mochi v2.7.9 copies a publish's properties into its PUBACK and then
	// encodes a SUBACK-style reason code; MQTT.js and Paho v5 clients drop the
	// connection on it (../shared/LIBRARY-NOTES.md, "defects found"). Acks need
	// no inherited properties anyway.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true

	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true, // server-side publishes for the downlink
		Logger:       log.With("component", "mqtt"),
	})
	b := &Broker{srv: srv, log: log, addrs: map[string]net.Addr{}}

	h := &hook{anonymous: opts.Anonymous, ingest: opts.Ingester, log: log}
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("add broker hook: %w", err)
	}
	for _, lc := range opts.Listeners {
		if err := b.addListener(lc); err != nil {
			b.closeListeners()
			return nil, err
		}
	}
	return b, nil
}

func (b *Broker) addListener(lc ListenerConfig) error {
	switch lc.Type {
	case "tcp":
		// Bind here rather than in mochi so the error names the listener and
		// tests can use port 0 and read the bound address back.
		ln, err := net.Listen("tcp", lc.Address)
		if err != nil {
			return fmt.Errorf("MQTT listener %q: %w", lc.Name, err)
		}
		b.addrs[lc.Name] = ln.Addr()
		if err := b.srv.AddListener(listeners.NewNet(lc.Name, ln)); err != nil {
			ln.Close()
			return fmt.Errorf("MQTT listener %q: %w", lc.Name, err)
		}
		return nil
	default:
		return fmt.Errorf("MQTT listener %q: type %q is not supported", lc.Name, lc.Type)
	}
}

func (b *Broker) closeListeners() {
	b.srv.Listeners.CloseAll(func(string) {})
}

// Addr returns the bound address of the named listener, or nil.
func (b *Broker) Addr(name string) net.Addr { return b.addrs[name] }

// Start begins accepting connections. It does not block.
func (b *Broker) Start() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("start MQTT broker: %w", err)
	}
	for name, a := range b.addrs {
		b.log.Info("MQTT listener ready", "listener", name, "addr", a.String())
	}
	return nil
}

// Close stops the listeners, disconnects every client and waits for their
// goroutines: after Close returns no Ingest call is running or will start.
// It is idempotent.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.srv.Close() })
	return err
}

// Publish sends a message from the gateway itself to subscribers (the downlink).
// It bypasses ACLs and never reaches the Ingester.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(topic, payload, retain, qos)
}

// ClientsConnected returns the number of connected clients (the inline client excluded).
func (b *Broker) ClientsConnected() int64 {
	return atomic.LoadInt64(&b.srv.Info.ClientsConnected)
}

// hook authenticates clients and hands publishes to the Ingester.
type hook struct {
	mqtt.HookBase
	anonymous string
	ingest    Ingester
	log       *slog.Logger
}

func (h *hook) ID() string { return "edgegw" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish:
		return true
	}
	return false
}

// OnConnectAuthenticate runs on the connecting client's goroutine.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	switch h.anonymous {
	case "always":
		return true
	case "loopback":
		if isLoopback(cl.Net.Remote) {
			return true
		}
	}
	h.log.Info("MQTT connection refused: anonymous access not allowed from this address",
		"client", cl.ID, "remote", cl.Net.Remote, "mqtt.anonymous", h.anonymous)
	return false
}

// OnACLCheck allows every topic to authenticated clients.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }

// OnPublish runs on the publishing client's goroutine, before the ack is sent.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || h.ingest == nil {
		return pk, nil // the gateway's own publishes never re-enter the uplink path
	}
	p := &Publish{
		ClientID:        cl.ID,
		Username:        string(cl.Properties.Username),
		Topic:           pk.TopicName,
		QoS:             pk.FixedHeader.Qos,
		Retain:          pk.FixedHeader.Retain,
		Payload:         pk.Payload,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		UserProperties:  pk.Properties.User,
		Received:        time.Now(),
	}
	err := h.ingest.Ingest(context.Background(), p)
	if err == nil {
		return pk, nil
	}
	rej := new(Reject)
	if !errors.As(err, &rej) {
		rej = &Reject{Code: CodeUnspecifiedError, Reason: err.Error()}
	}
	if pk.FixedHeader.Qos == 0 {
		return pk, packets.ErrRejectPacket // nothing to ack; the Ingester counted it
	}
	if cl.Properties.ProtocolVersion == 5 {
		// Write the negative ack ourselves and tell mochi to drop the packet:
		// returning a packets.Code would make mochi log every refusal at Error
		// and answer QoS 2 with a PUBACK instead of a PUBREC.
		ackType := packets.Puback
		if pk.FixedHeader.Qos == 2 {
			ackType = packets.Pubrec
		}
		ack := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: ackType},
			PacketID:    pk.PacketID,
			ReasonCode:  rej.Code,
			Properties:  packets.Properties{ReasonString: rej.Reason},
		}
		if werr := cl.WritePacket(ack); werr != nil {
			h.log.Debug("write negative ack", "client", cl.ID, "err", werr)
		}
		return pk, packets.ErrRejectPacket
	}
	if rej.AckV311 {
		return pk, packets.CodeSuccessIgnore // acked, neither delivered nor retained
	}
	// MQTT 3.1.1 cannot refuse one publish: close the connection without an ack
	// so the device keeps the message and sends it again after reconnecting.
	cl.Stop(rej)
	return pk, packets.ErrRejectPacket
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
