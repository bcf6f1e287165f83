package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/internal/ratelog"
)

// ListenerConfig is one network listener.
type ListenerConfig struct {
	Name    string
	Type    string // tcp, tls, ws or wss
	Address string
	// TLS is required for tls and wss listeners.
	TLS *TLSConfig
	// AllowedOrigins lists the browser origins (scheme://host[:port]) a ws or
	// wss listener accepts besides its own host; "*" accepts any. Clients
	// that send no Origin header (devices, not browsers) are always accepted.
	AllowedOrigins []string
}

// Listener types.
const (
	TypeTCP = "tcp"
	TypeTLS = "tls"
	TypeWS  = "ws"
	TypeWSS = "wss"
)

// TLSConfig is a listener's TLS settings.
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate (chain) and key.
	// They are read again when either file changes, so a renewed certificate
	// applies to new connections without a restart.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of the CAs that sign client certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "none", "optional" (verify a certificate if the client
	// sends one) or "require" (mutual TLS). Empty means require when
	// ClientCAFile is set and none otherwise.
	ClientAuth string `yaml:"client_auth"`
	// IdentityFromCN makes a verified client certificate's Common Name the
	// client's username: the certificate authenticates the device, and ACL
	// %u rules and the {username} key template see the CN.
	IdentityFromCN bool `yaml:"identity_from_cn"`
	// MinVersion is "1.2" (the default: every MQTT client library in use
	// speaks it) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Client certificate policies.
const (
	ClientAuthNone     = "none"
	ClientAuthOptional = "optional"
	ClientAuthRequire  = "require"
)

// connectTimeout bounds how long a new connection may take to finish its
// TLS or WebSocket handshake and send CONNECT: a device on a slow link
// needs a few seconds, and a socket that sends nothing must not hold a
// goroutine forever (mochi sets no deadline before CONNECT). mochi replaces
// the deadline with the keepalive one after CONNECT.
const connectTimeout = 10 * time.Second

// CheckListener reports every problem in lc (errors.Join of *ConfigError,
// keys relative to the listener: "tls.cert_file"). It reads the TLS files,
// so a config check finds a missing or mismatched key before startup.
func CheckListener(lc ListenerConfig) error {
	_, err := listenerTLS(lc)
	return err
}

func listenerTLS(lc ListenerConfig) (*tls.Config, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	secure := lc.Type == TypeTLS || lc.Type == TypeWSS
	switch lc.Type {
	case TypeTCP, TypeTLS, TypeWS, TypeWSS:
	default:
		bad("type", "%q is not allowed; use one of: tcp, tls, ws, wss", lc.Type)
	}
	if len(lc.AllowedOrigins) > 0 && lc.Type != TypeWS && lc.Type != TypeWSS {
		bad("allowed_origins", "applies to ws and wss listeners only")
	}
	for i, o := range lc.AllowedOrigins {
		if o == "*" {
			continue
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			bad(fmt.Sprintf("allowed_origins[%d]", i), "%q is not an origin; write scheme://host[:port], e.g. https://dashboard.example.com, or \"*\"", o)
		}
	}
	if lc.TLS == nil {
		if secure {
			bad("tls", "a %s listener needs tls.cert_file and tls.key_file", lc.Type)
		}
		return nil, errors.Join(errs...)
	}
	if !secure {
		bad("tls", "applies to tls and wss listeners only; use type tls (or wss) for TLS")
		return nil, errors.Join(errs...)
	}
	t := lc.TLS
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch t.MinVersion {
	case "", "1.2":
	case "1.3":
		cfg.MinVersion = tls.VersionTLS13
	default:
		bad("tls.min_version", "%q: want 1.2 or 1.3", t.MinVersion)
	}
	if t.CertFile == "" {
		bad("tls.cert_file", "missing; the server certificate (PEM)")
	}
	if t.KeyFile == "" {
		bad("tls.key_file", "missing; the server private key (PEM)")
	}
	if t.CertFile != "" && t.KeyFile != "" {
		kp := &keyPair{certFile: t.CertFile, keyFile: t.KeyFile}
		if err := kp.load(); err != nil {
			bad("tls.cert_file", "%v", err)
		}
		cfg.GetCertificate = kp.get
	}
	clientAuth := t.ClientAuth
	if clientAuth == "" {
		clientAuth = ClientAuthNone
		if t.ClientCAFile != "" {
			clientAuth = ClientAuthRequire
		}
	}
	switch clientAuth {
	case ClientAuthNone:
		if t.ClientCAFile != "" {
			bad("tls.client_auth", "is none but client_ca_file is set; use optional or require, or drop client_ca_file")
		}
	case ClientAuthOptional:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		bad("tls.client_auth", "%q: want none, optional or require", t.ClientAuth)
	}
	if clientAuth != ClientAuthNone {
		if t.ClientCAFile == "" {
			bad("tls.client_ca_file", "missing; client_auth %s needs the CA bundle that signs client certificates", clientAuth)
		} else if pool, err := loadCAs(t.ClientCAFile); err != nil {
			bad("tls.client_ca_file", "%v", err)
		} else {
			cfg.ClientCAs = pool
		}
	}
	if t.IdentityFromCN && clientAuth == ClientAuthNone {
		bad("tls.identity_from_cn", "needs client certificates; set client_ca_file (and client_auth optional or require)")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// certCheckEvery bounds how often a handshake looks at the certificate
// files: a stat of two files per second at most, whatever the connection
// rate. Tests set it to 0.
var certCheckEvery = time.Second

// keyPair is a server certificate read from files and read again when they
// change (checked at most every certCheckEvery, on a handshake).
type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // sizes and modification times of both files
	checked time.Time
}

func fileStamp(files ...string) (string, error) {
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (k *keyPair) load() error {
	stamp, err := fileStamp(k.certFile, k.keyFile)
	if err != nil {
		return err
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("load key pair %s, %s: %w", k.certFile, k.keyFile, err)
	}
	k.cert, k.stamp = &c, stamp
	return nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); now.Sub(k.checked) >= certCheckEvery {
		k.checked = now
		if stamp, err := fileStamp(k.certFile, k.keyFile); err == nil && stamp != k.stamp {
			// A half-written renewal fails to load: keep serving the old one
			// and try again on a later handshake.
			_ = k.load()
		}
	}
	return k.cert, nil
}

// closeClientsOf returns what the listeners' Close calls to disconnect their
// clients (MQTT 5 clients get DISCONNECT 0x8B, server shutting down), in
// place of the callback mochi passes: that one (Server.closeListenerClients)
// uses Clients.GetByListener, which takes the clients' read lock twice (its
// Len call nests RLock). A client leaving at that moment queues for the write
// lock (Clients.Delete) between the two, and the nested RLock then waits for
// it forever: Close deadlocks (mochi v2.7.9; seen in CI, a test hung 12
// minutes in Server.Close). GetAll takes the read lock once.
func closeClientsOf(srv *mqtt.Server) func(listener string) {
	return func(id string) {
		for _, cl := range srv.Clients.GetAll() {
			if cl.Net.Listener == id && !cl.Closed() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	}
}

// deadlineListener gives every accepted connection connectTimeout to get as
// far as CONNECT.
type deadlineListener struct{ net.Listener }

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(connectTimeout))
	return c, nil
}

// bind opens lc's socket and returns the mochi listener serving it. Binding
// here (not in mochi) makes a bind error fail startup with the listener's
// name for every type, WebSocket included (mochi's own WebSocket listener
// binds in Serve and only logs the error), and lets tests use port 0.
func bind(lc ListenerConfig, hs *handshakeLog, closeClients func(listener string)) (listeners.Listener, net.Addr, error) {
	tlsCfg, err := listenerTLS(lc)
	if err != nil {
		return nil, nil, fmt.Errorf("MQTT listener %q: %w", lc.Name, err)
	}
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("MQTT listener %q (%s on %s): %w", lc.Name, lc.Type, lc.Address, err)
	}
	addr := ln.Addr()
	ln = deadlineListener{ln}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	switch lc.Type {
	case TypeWS, TypeWSS:
		l := newWSListener(lc, ln)
		l.closeClients = closeClients
		return l, addr, nil
	default:
		return &tcpListener{id: lc.Name, proto: lc.Type, ln: ln, hs: hs, closeClients: closeClients}, addr, nil
	}
}

// guard tracks a listener's connections from accept until mochi's
// establish returns, so Close can end them all and wait: mochi's Close waits
// on its client WaitGroup right after closing the listeners, and an
// establish still starting then would call WaitGroup.Add concurrently with
// Wait (a data race, and a client attached after Close).
type guard struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// enter registers c; false means the listener is closing and c must go.
func (g *guard) enter(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if g.conns == nil {
		g.conns = map[net.Conn]struct{}{}
	}
	g.conns[c] = struct{}{}
	g.wg.Add(1)
	return true
}

func (g *guard) leave(c net.Conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	g.wg.Done()
}

// closeAll refuses new connections, closes the open ones and waits until
// every establish call has returned.
func (g *guard) closeAll() {
	g.mu.Lock()
	g.closed = true
	for c := range g.conns {
		_ = c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// handshakeLog logs failed TLS handshakes (an expired or foreign client
// certificate, a plain-text client on a TLS port) once per minute per
// source address.
type handshakeLog struct {
	log   *slog.Logger
	limit *ratelog.Limiter
}

func (h *handshakeLog) note(listener string, c net.Conn, err error) {
	tc, ok := c.(*tls.Conn)
	if !ok || tc.ConnectionState().HandshakeComplete {
		return // not a handshake failure: mochi and the auth hook have said why
	}
	if log, suppressed := h.limit.Allow(remoteIP(c.RemoteAddr().String())); log {
		h.log.Warn("MQTT TLS handshake failed", "listener", listener, "remote", c.RemoteAddr().String(),
			"err", err, "failures_not_logged", suppressed)
	}
}

// tcpListener serves tcp and tls listeners: mochi's listeners.Net with
// the guard, and without its Warn line with an empty message for every
// connection that ends in an error.
type tcpListener struct {
	id    string
	proto string
	ln    net.Listener
	hs    *handshakeLog
	log   *slog.Logger
	g     guard
	// closeClients disconnects the listener's clients (closeClientsOf).
	closeClients func(listener string)
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Address() string  { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string { return l.proto }

func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve is the accept loop, on its own goroutine (mochi starts it so); each
// connection is established on a goroutine of its own.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		if !l.g.enter(c) {
			_ = c.Close()
			return
		}
		go func() {
			defer l.g.leave(c)
			if err := establish(l.id, c); err != nil {
				l.hs.note(l.id, c, err)
				l.log.Debug("MQTT connection ended", "listener", l.id, "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops accepting, disconnects the listener's clients and waits for
// their establish calls to return.
func (l *tcpListener) Close(listeners.CloseFn) {
	_ = l.ln.Close()
	l.closeClients(l.id)
	l.g.closeAll()
}

// wsListener serves MQTT over WebSocket (MQTT 5 §6) on a socket bound by
// bind: one HTTP server, any path, binary messages carrying the MQTT byte
// stream.
type wsListener struct {
	id        string
	ln        net.Listener
	secure    bool
	srv       *http.Server
	upgrader  websocket.Upgrader
	log       *slog.Logger
	establish listeners.EstablishFn
	closed    atomic.Bool
	g         guard
	// closeClients disconnects the listener's clients (closeClientsOf).
	closeClients func(listener string)
}

func newWSListener(lc ListenerConfig, ln net.Listener) *wsListener {
	l := &wsListener{id: lc.Name, ln: ln, secure: lc.Type == TypeWSS}
	origins := slices.Clone(lc.AllowedOrigins)
	l.upgrader = websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		CheckOrigin:  func(r *http.Request) bool { return originAllowed(r, origins) },
	}
	l.srv = &http.Server{
		Handler: http.HandlerFunc(l.handle),
		// The upgrade request is small; the connection is then hijacked and
		// these no longer apply.
		ReadHeaderTimeout: connectTimeout,
		ErrorLog:          nil,
	}
	return l
}

// originAllowed accepts requests without an Origin (not from a browser),
// from the listener's own host, or from a listed origin. Without this check
// any web page a browser on the gateway's network opens could talk MQTT to
// it, with the anonymous loopback access of a browser on the box itself.
func originAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || slices.Contains(allowed, "*") || slices.Contains(allowed, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (l *wsListener) ID() string      { return l.id }
func (l *wsListener) Address() string { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string {
	if l.secure {
		return TypeWSS
	}
	return TypeWS
}

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	l.srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return nil
}

// Serve runs the HTTP server on its own goroutine (mochi starts it so).
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if err := l.srv.Serve(l.ln); err != nil && !l.closed.Load() && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("WebSocket listener stopped", "listener", l.id, "err", err)
	}
}

// handle runs on the HTTP server's connection goroutine, which then becomes
// the MQTT client's reading goroutine until the client goes.
func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with the HTTP error
	}
	conn := &wsConn{Conn: c.NetConn(), c: c, tls: r.TLS}
	if !l.g.enter(conn) {
		_ = conn.Close()
		return
	}
	defer l.g.leave(conn)
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	if err := l.establish(l.id, conn); err != nil {
		l.log.Debug("MQTT WebSocket connection ended", "listener", l.id, "remote", r.RemoteAddr, "err", err)
	}
	_ = conn.Close()
}

// Close stops accepting and disconnects the listener's clients.
func (l *wsListener) Close(listeners.CloseFn) {
	if l.closed.CompareAndSwap(false, true) {
		// Close, not Shutdown: upgraded connections are hijacked and
		// Shutdown would not wait for them anyway; closeClients ends them.
		_ = l.srv.Close()
	}
	l.closeClients(l.id)
	l.g.closeAll()
}

// wsConn is an upgraded WebSocket connection as the net.Conn mochi reads
// MQTT packets from: binary messages in, one binary message per write out.
// tls is the connection's TLS state (wss), for client certificates.
type wsConn struct {
	net.Conn
	c   *websocket.Conn
	tls *tls.ConnectionState
	r   io.Reader
}

// errTextFrame is returned for a text message: MQTT over WebSocket is binary
// only (MQTT 5 §6.0: the server closes the connection).
var errTextFrame = errors.New("WebSocket text message: MQTT needs binary messages")

// Read runs on the client's reading goroutine only.
func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil // the next message continues the byte stream
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message. mochi serialises writes per client.
func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
