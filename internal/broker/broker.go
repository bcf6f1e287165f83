// Package broker runs the embedded MQTT broker (mochi-mqtt): its listeners
// (TCP, TLS, WebSocket, WSS), client authentication (bcrypt passwords, client
// certificates, anonymous by policy) with failed logins rate-limited per
// address, ordered ACLs, and the publish hook that hands every device publish
// to the ingest path before it is acknowledged.
//
// Concurrency: mochi runs one goroutine per connection that reads and handles
// that client's packets in order. The ingest hook runs on it, synchronously, and
// mochi writes the PUBACK/PUBREC only after the hook returns
// (../shared/LIBRARY-NOTES.md §A1), so a blocking Ingester delays the ack of that
// one client and nobody else. Ingester implementations must therefore be safe for
// concurrent use by many connections. Publishes made by the gateway itself
// (Publish, used by the downlink) run on the caller's goroutine and never reach
// the Ingester.
//
// Users and ACLs live in one immutable state behind an atomic pointer:
// ReloadAuth swaps it whole, connected clients stay connected, and every
// later login and ACL check uses the new state.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/ratelog"
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
	// Auth is who may connect and what they may do; zero LoginLimit fields
	// and an empty Anonymous take their defaults.
	Auth                   AuthConfig
	MaxPacketSize          uint32
	MaxSessionExpiry       time.Duration
	ReceiveMaximum         uint16
	MaxClientWritesPending int32
	Ingester               Ingester
	Logger                 *slog.Logger

	now func() time.Time // the login limiter's clock; tests replace it
}

// Defaults for AuthConfig fields left zero.
const (
	// DefaultLoginMaxFailures and DefaultLoginWindow: five failed logins in a
	// row, then one a minute per address, then one per 12 s — a mistyped
	// password is retried without waiting, a guesser gets 7,200 tries a day
	// instead of thousands a second.
	DefaultLoginMaxFailures = 5
	DefaultLoginWindow      = time.Minute
	DefaultAnonymous        = AnonymousNever
)

func (c AuthConfig) withDefaults() AuthConfig {
	if c.Anonymous == "" {
		c.Anonymous = DefaultAnonymous
	}
	if c.LoginLimit.MaxFailures == 0 {
		c.LoginLimit.MaxFailures = DefaultLoginMaxFailures
	}
	if c.LoginLimit.Window == 0 {
		c.LoginLimit.Window = DefaultLoginWindow
	}
	return c
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv       *mqtt.Server
	log       *slog.Logger
	addrs     map[string]net.Addr
	listeners map[string]*ListenerConfig
	ingest    Ingester
	maxPacket uint32 // announced in MQTT 5 CONNACKs; 0: no limit

	auth    atomic.Pointer[authState]
	limiter loginLimiter
	now     func() time.Time
	stats   counters
	// subscribing holds, per client in a SUBSCRIBE, its filters: mochi asks
	// OnACLCheck(write=false) both for a subscription and for each delivery,
	// and this tells the two apart for the counters.
	subscribing sync.Map // *mqtt.Client → []string
	logLogin    *ratelog.Limiter
	logACL      *ratelog.Limiter

	closeOnce sync.Once
}

// Log intervals: the first event of a key is logged, then at most one line
// per interval with the count of the others (every event is counted in
// Stats regardless).
const (
	// loginLogEvery: per source address; a device with a wrong password
	// retrying every few seconds shows up once a minute.
	loginLogEvery = time.Minute
	// aclLogEvery: per client and direction; a misconfigured device that
	// publishes where it may not is one line per ten minutes.
	aclLogEvery = 10 * time.Minute
)

// New binds the listeners and prepares the broker; Start begins serving.
// A listener that cannot bind, and a bad Auth, are errors naming the key.
func New(opts Options) (*Broker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	st, err := compileAuth(opts.Auth.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("MQTT users and ACLs: %w", err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	// MQTT counts the session expiry in 32-bit seconds (about 136 years):
	// cap a longer duration there instead of letting it wrap to a short one.
	caps.MaximumSessionExpiryInterval = uint32(min(opts.MaxSessionExpiry/time.Second, math.MaxUint32))
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
	b := &Broker{
		srv: srv, log: log, ingest: opts.Ingester, now: opts.now, maxPacket: opts.MaxPacketSize,
		addrs:     map[string]net.Addr{},
		listeners: map[string]*ListenerConfig{},
		limiter:   loginLimiter{buckets: map[string]*bucket{}},
		logLogin:  ratelog.New(loginLogEvery, 0),
		logACL:    ratelog.New(aclLogEvery, 0),
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.auth.Store(st)

	if err := srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add broker hook: %w", err)
	}
	hs := &handshakeLog{log: log, limit: ratelog.New(loginLogEvery, 0)}
	for _, lc := range opts.Listeners {
		if b.listeners[lc.Name] != nil {
			b.closeListeners()
			return nil, fmt.Errorf("MQTT listener %q is configured twice", lc.Name)
		}
		l, addr, err := bind(lc, hs, closeClientsOf(srv))
		if err != nil {
			b.closeListeners()
			return nil, err
		}
		if err := srv.AddListener(l); err != nil {
			l.Close(func(string) {})
			b.closeListeners()
			return nil, fmt.Errorf("MQTT listener %q: %w", lc.Name, err)
		}
		b.listeners[lc.Name] = &lc
		b.addrs[lc.Name] = addr
	}
	return b, nil
}

// ReloadAuth replaces the users, groups, ACL rules, anonymous policy and
// login limit. It is safe to call at any time from any goroutine. On error
// (every problem, keys as in the mqtt config section) nothing changes.
// Connected clients stay connected under their identity; every later login,
// publish, subscription and delivery is checked with the new rules. Failed
// login counts per address carry over.
func (b *Broker) ReloadAuth(c AuthConfig) error {
	st, err := compileAuth(c.withDefaults())
	if err != nil {
		return err
	}
	b.auth.Store(st)
	b.log.Info("MQTT users and ACLs loaded", "users", len(st.users), "acl_rules", len(st.acl.rules), "anonymous", st.anonymous)
	return nil
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
		b.log.Info("MQTT listener ready", "listener", name, "type", b.listeners[name].Type, "addr", a.String())
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

// Publish sends a message from the gateway itself to subscribers (the downlink,
// dead letters). It bypasses the publish ACL (subscribers' ACLs still apply to
// delivery) and never reaches the Ingester.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(topic, payload, retain, qos)
}

// ClientsConnected returns the number of connected clients (the inline client excluded).
func (b *Broker) ClientsConnected() int64 {
	return atomic.LoadInt64(&b.srv.Info.ClientsConnected)
}

// hook authenticates clients, checks ACLs and hands publishes to the Ingester.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "edgegw" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnSubscribed,
		mqtt.OnPacketEncode:
		return true
	}
	return false
}

// OnPacketEncode runs on whichever goroutine writes to the client, for every
// packet. It puts the broker's Maximum Packet Size into MQTT 5 CONNACKs
// (MQTT 5 §3.2.2.3.6): mochi enforces the limit but does not announce it, so
// a client would otherwise learn it only by being disconnected (0x95).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ProtocolVersion == 5 && h.b.maxPacket > 0 {
		pk.Properties.MaximumPacketSize = h.b.maxPacket
	}
	return pk
}

// OnConnectAuthenticate runs on the connecting client's goroutine.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	b := h.b
	ok, kind := b.authenticate(cl, pk.Connect.Username, pk.Connect.Password)
	if ok {
		b.stats.logins[kindIndex(loginKinds[:], kind)].Add(1)
		return true
	}
	b.stats.authFailures[kindIndex(failKinds[:], kind)].Add(1)
	if kind == FailRateLimited && cl.Properties.ProtocolVersion == 5 {
		// MQTT 5 has a reason code for this, 0x9F; mochi would answer 0x86
		// (bad user name or password) and a device would think its
		// credentials wrong. Answer 0x9F and end the connection, so mochi's
		// own CONNACK finds it closed and is not sent. 3.1.1 has no such
		// code and keeps 0x05 (not authorized).
		_ = b.srv.SendConnack(cl, packets.ErrConnectionRateExceeded, false, nil)
		cl.Stop(packets.ErrConnectionRateExceeded)
	}
	ip := remoteIP(cl.Net.Remote)
	if log, suppressed := b.logLogin.Allow(ip); log {
		attrs := []any{"reason", kind, "client", cl.ID, "username", string(pk.Connect.Username),
			"remote", cl.Net.Remote, "listener", cl.Net.Listener, "anonymous_policy", b.auth.Load().anonymous,
			"refusals_not_logged", suppressed}
		if kind == FailAnonymous {
			attrs = append(attrs, "fix", "give the client a username and password (mqtt.users) or a certificate, or allow anonymous clients with mqtt.anonymous: loopback or always")
		}
		b.log.Warn("MQTT login refused", attrs...)
	}
	return false
}

// OnACLCheck runs on the client's goroutine for its publishes and
// subscriptions (write=true and false), and on the publisher's goroutine for
// each delivery to the client (write=false).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	b := h.b
	st := b.auth.Load()
	if len(st.acl.rules) == 0 && st.acl.defaultAllow {
		return true
	}
	id := identity{username: string(cl.Properties.Username), clientID: cl.ID}
	id.anonymous = id.username == ""
	id.groups = st.groupsOf(id.username)
	var ok bool
	var rule int
	var dir string
	switch {
	case write:
		ok, rule = st.acl.canPublish(&id, topic)
		dir = "publish"
	case b.isSubscribing(cl, topic):
		ok, rule = st.acl.canSubscribe(&id, topic)
		dir = "subscribe"
	default:
		ok, rule = st.acl.canReceive(&id, topic)
		dir = "delivery"
	}
	if ok {
		return true
	}
	switch dir {
	case "publish":
		b.stats.aclDeniedPublish.Add(1)
	case "subscribe":
		b.stats.aclDeniedSubscribe.Add(1)
	default:
		b.stats.aclDeniedDelivery.Add(1)
	}
	if log, suppressed := b.logACL.Allow(dir + "\x00" + cl.ID); log {
		ruleText := "default"
		if rule >= 0 {
			ruleText = fmt.Sprintf("acl.rules[%d]", rule)
		}
		b.log.Warn("MQTT ACL denied "+dir+"; further denials for this client are counted, not logged",
			"client", cl.ID, "username", id.username, "topic", topic, "rule", ruleText, "denials_not_logged", suppressed)
	}
	return false
}

func (b *Broker) isSubscribing(cl *mqtt.Client, topic string) bool {
	v, ok := b.subscribing.Load(cl)
	return ok && slices.Contains(v.([]string), topic)
}

// OnSubscribe runs on the subscribing client's goroutine just before mochi
// checks each filter with OnACLCheck; OnSubscribed runs after.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	filters := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		filters[i] = f.Filter
	}
	h.b.subscribing.Store(cl, filters)
	return pk
}

func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	h.b.subscribing.Delete(cl)
}

// OnPublish runs on the publishing client's goroutine, before the ack is sent.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || h.b.ingest == nil {
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
	err := h.b.ingest.Ingest(context.Background(), p)
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
			h.b.log.Debug("write negative ack", "client", cl.ID, "err", werr)
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
