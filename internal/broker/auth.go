package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/crypto/bcrypt"
)

// AuthConfig is who may connect and what they may do. It can be replaced at
// runtime with (*Broker).ReloadAuth.
type AuthConfig struct {
	// Anonymous is who may connect without credentials: "loopback" (clients
	// on 127.0.0.1/::1 only), "always" or "never".
	Anonymous string
	Users     []User
	ACL       ACLConfig
	// LoginLimit bounds failed logins per source address.
	LoginLimit LoginLimit
}

// User is an MQTT user: a bcrypt password hash (as printed by `edgegw
// passwd`) and the groups ACL rules can name. A user without a hash can log
// in only with a client certificate whose CN is its name (a TLS listener with
// identity_from_cn).
type User struct {
	Name         string   `yaml:"name"`
	PasswordHash string   `yaml:"password_hash"`
	Groups       []string `yaml:"groups"`
}

// LoginLimit is a token bucket per source IP address: MaxFailures failed
// logins in a row are allowed, then one more per Window/MaxFailures. While
// the bucket is empty, logins from that address are refused without looking
// at the credentials (and without spending a bcrypt comparison on them).
type LoginLimit struct {
	MaxFailures int
	Window      time.Duration
}

// Anonymous access policies.
const (
	AnonymousLoopback = "loopback"
	AnonymousAlways   = "always"
	AnonymousNever    = "never"
)

// ConfigError is one problem in an AuthConfig or a listener. Key is the YAML
// key path relative to the mqtt section ("users[1].password_hash"), so the
// config loader can prefix "mqtt.".
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Msg }

// CheckAuth reports every problem in c at once (errors.Join of *ConfigError).
func CheckAuth(c AuthConfig) error {
	_, err := compileAuth(c)
	return err
}

// authState is a compiled AuthConfig, swapped whole by ReloadAuth. It is
// immutable apart from the verified-password cache.
type authState struct {
	anonymous string
	users     map[string]*user
	acl       *acl
	limit     LoginLimit

	// verified remembers, per user, a salted SHA-256 of the last password
	// that passed bcrypt, so a fleet reconnecting after a restart costs one
	// bcrypt comparison per user instead of one per connection (about 70 ms
	// of CPU each at cost 10 on a small ARM core). It lives in memory only
	// and is dropped with the state on reload.
	salt     [16]byte
	verified sync.Map // username → [32]byte
}

type user struct {
	name   string
	hash   []byte // nil: certificate login only
	groups []string
}

func compileAuth(c AuthConfig) (*authState, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	st := &authState{anonymous: c.Anonymous, users: map[string]*user{}, limit: c.LoginLimit}
	switch c.Anonymous {
	case AnonymousLoopback, AnonymousAlways, AnonymousNever:
	default:
		bad("anonymous", "%q is not allowed; use one of: loopback, always, never", c.Anonymous)
	}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		switch {
		case u.Name == "":
			bad(key+".name", "must not be empty")
			continue
		case st.users[u.Name] != nil:
			bad(key+".name", "user %q is listed twice", u.Name)
			continue
		}
		nu := &user{name: u.Name, groups: u.Groups}
		if u.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				bad(key+".password_hash", "not a bcrypt hash (%v); make one with: edgegw passwd", err)
			}
			nu.hash = []byte(u.PasswordHash)
		}
		st.users[u.Name] = nu
	}
	if c.LoginLimit.MaxFailures < 1 {
		bad("login_limit.max_failures", "%d is out of range; use at least 1", c.LoginLimit.MaxFailures)
	}
	if c.LoginLimit.Window < time.Second {
		bad("login_limit.window", "%s is too short; use at least 1s", c.LoginLimit.Window)
	}
	a, aerrs := compileACL(c.ACL)
	errs = append(errs, aerrs...)
	st.acl = a
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if _, err := rand.Read(st.salt[:]); err != nil {
		return nil, fmt.Errorf("auth: random salt: %w", err)
	}
	return st, nil
}

func (st *authState) digest(password []byte) [32]byte {
	h := sha256.New()
	h.Write(st.salt[:])
	h.Write(password)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// checkPassword compares password with u's hash. It runs on the connecting
// client's goroutine; the bcrypt comparison takes tens of milliseconds.
func (st *authState) checkPassword(u *user, password []byte) bool {
	if u.hash == nil {
		return false
	}
	d := st.digest(password)
	if v, ok := st.verified.Load(u.name); ok {
		cached := v.([32]byte)
		if subtle.ConstantTimeCompare(cached[:], d[:]) == 1 {
			return true
		}
	}
	if bcrypt.CompareHashAndPassword(u.hash, password) != nil {
		return false
	}
	st.verified.Store(u.name, d)
	return true
}

// groupsOf returns the groups of a user, or nil when it is not listed (a
// certificate identity, or a user removed by a reload).
func (st *authState) groupsOf(name string) []string {
	if u := st.users[name]; u != nil {
		return u.groups
	}
	return nil
}

// Login outcomes, the keys of Stats.Logins and Stats.AuthFailures.
const (
	LoginPassword    = "password"
	LoginCertificate = "certificate"
	LoginAnonymous   = "anonymous"

	FailBadPassword   = "bad_password"   // unknown user or wrong password
	FailAnonymous     = "anonymous"      // no credentials where anonymous access is not allowed
	FailNoCertificate = "no_certificate" // a listener requiring a certificate identity got none
	FailRateLimited   = "rate_limited"   // too many failures from the address
)

var loginKinds = [...]string{LoginPassword, LoginCertificate, LoginAnonymous}
var failKinds = [...]string{FailBadPassword, FailAnonymous, FailNoCertificate, FailRateLimited}

func kindIndex(kinds []string, k string) int {
	for i, v := range kinds {
		if v == k {
			return i
		}
	}
	panic("broker: unknown counter " + k)
}

// authenticate decides a CONNECT. It runs on the connecting client's
// goroutine. On success it may set the client's username (the certificate
// CN). It returns the login kind, or the failure reason.
func (b *Broker) authenticate(cl *mqtt.Client, username, password []byte) (ok bool, kind string) {
	st := b.auth.Load()
	ip := remoteIP(cl.Net.Remote)
	if !b.limiter.allowed(ip, st.limit, b.now()) {
		return false, FailRateLimited
	}
	ok, kind = b.decideLogin(st, cl, username, password)
	if !ok {
		b.limiter.failed(ip, st.limit, b.now())
	}
	return ok, kind
}

func (b *Broker) decideLogin(st *authState, cl *mqtt.Client, username, password []byte) (bool, string) {
	lc := b.listeners[cl.Net.Listener]
	if lc != nil && lc.TLS != nil && lc.TLS.IdentityFromCN {
		if cert := verifiedClientCert(cl.Net.Conn); cert != nil {
			cn := cert.Subject.CommonName
			if _, ok := subst(cn); !ok {
				// A CN that cannot be one topic level cannot be an identity.
				b.log.Warn("MQTT client certificate refused: its CN cannot serve as a username",
					"client", cl.ID, "remote", cl.Net.Remote, "cn", cn)
				return false, FailNoCertificate
			}
			cl.Properties.Username = []byte(cn)
			return true, LoginCertificate
		}
		if lc.TLS.ClientAuth == ClientAuthRequire {
			return false, FailNoCertificate // cannot happen: the handshake required one
		}
	}
	if len(username) > 0 {
		u := st.users[string(username)]
		if u == nil {
			// Spend the same time as a wrong password so a probe cannot
			// tell which user names exist.
			_ = bcrypt.CompareHashAndPassword(dummyHash(), password)
			return false, FailBadPassword
		}
		if !st.checkPassword(u, password) {
			return false, FailBadPassword
		}
		return true, LoginPassword
	}
	switch st.anonymous {
	case AnonymousAlways:
		return true, LoginAnonymous
	case AnonymousLoopback:
		if ip := net.ParseIP(remoteIP(cl.Net.Remote)); ip != nil && ip.IsLoopback() {
			return true, LoginAnonymous
		}
	}
	return false, FailAnonymous
}

// dummyHash is compared against for unknown users (cost 10, the default of
// edgegw passwd). It is made on first use, not at program start.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("edgegw: no such user"), bcrypt.DefaultCost)
	if err != nil {
		panic(err) // only for a password over 72 bytes or a broken random source
	}
	return h
})

// verifiedClientCert returns the leaf of the client certificate chain the
// TLS handshake verified, or nil (no TLS, no certificate, or not verified).
// By the time CONNECT has been read the handshake is complete.
func verifiedClientCert(c net.Conn) *x509.Certificate {
	var cs tls.ConnectionState
	switch c := c.(type) {
	case *tls.Conn:
		cs = c.ConnectionState()
	case *wsConn:
		if c.tls == nil {
			return nil
		}
		cs = *c.tls
	default:
		return nil
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

func remoteIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// loginLimiter holds a token bucket of failed logins per source address.
// Only failures take tokens, so devices that log in correctly never meet it.
type loginLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxLimiterAddrs bounds the limiter's memory (about 100 bytes an address)
// against a flood of failing logins from many addresses. When full, buckets
// that have refilled are forgotten first, then every bucket.
const maxLimiterAddrs = 16384

func (l *loginLimiter) refill(bk *bucket, lim LoginLimit, now time.Time) {
	rate := float64(lim.MaxFailures) / lim.Window.Seconds()
	bk.tokens = min(float64(lim.MaxFailures), bk.tokens+now.Sub(bk.at).Seconds()*rate)
	bk.at = now
}

// allowed reports whether a login from ip may be checked at all.
func (l *loginLimiter) allowed(ip string, lim LoginLimit, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	bk := l.buckets[ip]
	if bk == nil {
		return true
	}
	l.refill(bk, lim, now)
	return bk.tokens >= 1
}

// failed takes a token for a failed login from ip.
func (l *loginLimiter) failed(ip string, lim LoginLimit, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bk := l.buckets[ip]
	if bk == nil {
		if len(l.buckets) >= maxLimiterAddrs {
			l.prune(lim, now)
		}
		bk = &bucket{tokens: float64(lim.MaxFailures), at: now}
		l.buckets[ip] = bk
	}
	l.refill(bk, lim, now)
	bk.tokens = max(0, bk.tokens-1)
}

func (l *loginLimiter) prune(lim LoginLimit, now time.Time) {
	for ip, bk := range l.buckets {
		l.refill(bk, lim, now)
		if bk.tokens >= float64(lim.MaxFailures) {
			delete(l.buckets, ip)
		}
	}
	if len(l.buckets) >= maxLimiterAddrs {
		clear(l.buckets)
	}
}
