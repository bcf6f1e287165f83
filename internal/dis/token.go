package dis

// IAM token authentication (reference §3.2): the client obtains a token with
// a password identity scoped to its project (POST /v3/auth/tokens, the token
// in the X-Subject-Token reply header), sends it as X-Auth-Token, caches it,
// and refreshes it well before its expiry (IAM tokens last 24 h).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Token timing, each with its reason.
const (
	// DefaultTokenLifetime 24 h: IAM's documented token validity, assumed
	// when a reply carries no readable expires_at.
	DefaultTokenLifetime = 24 * time.Hour
	// tokenRefreshFraction: a token is replaced once 80% of its lifetime has
	// passed (after ~19 h for IAM's 24 h), leaving hours in which a failing
	// IAM can be retried while the old token still works.
	tokenRefreshFraction = 0.8
	// tokenExpiryMargin 1 min: a token this close to its expiry is not sent
	// any more (the request may be in flight past it; clocks differ).
	tokenExpiryMargin = time.Minute
	// tokenRetryInterval 10 s: after a failed fetch IAM is asked again at
	// most this often, however many requests need a token.
	tokenRetryInterval = 10 * time.Second
)

// TokenConfig configures a TokenSigner.
type TokenConfig struct {
	// IAMEndpoint is the base URL of the token API (the path is ignored), e.g.
	// https://iam.cn-north-4.myhuaweicloud.com; the built-in DIS server
	// serves the same API at its own address.
	IAMEndpoint string
	User        string
	Password    string
	Domain      string // the account (domain) name the user belongs to
	ProjectID   string // the token's scope
	// HTTPClient overrides the transport; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now (tests inject a clock).
	Now func() time.Time
}

// TokenSigner authenticates requests with an IAM token (X-Auth-Token). It
// implements Signer; it is safe for concurrent use, and one fetch serves all
// requests waiting for a token. Its String and LogValue never show the
// password or the token.
type TokenSigner struct {
	cfg  TokenConfig
	url  string
	hc   *http.Client
	now  func() time.Time
	mu   sync.Mutex
	tok  string
	exp  time.Time // local time after which the token is not sent
	ref  time.Time // local time from which a refresh is attempted
	next time.Time // no fetch before this after a failure
	err  error     // the last fetch failure
	busy chan struct{}

	fetches, failures int
}

// NewTokenSigner checks cfg and returns a signer; the first token is fetched
// with the first request.
func NewTokenSigner(cfg TokenConfig) (*TokenSigner, error) {
	u, err := url.Parse(cfg.IAMEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("IAM endpoint %q: want http://host[:port] or https://host[:port]", cfg.IAMEndpoint)
	}
	if cfg.User == "" || cfg.Password == "" || cfg.ProjectID == "" {
		return nil, errors.New("IAM token auth needs a user name, a password and a project id")
	}
	s := &TokenSigner{cfg: cfg, url: u.Scheme + "://" + u.Host + "/v3/auth/tokens", hc: cfg.HTTPClient, now: cfg.Now}
	if s.hc == nil {
		s.hc = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Sign implements Signer: it sets X-Auth-Token, fetching or refreshing the
// token first when needed.
func (s *TokenSigner) Sign(req *http.Request, _ []byte) error {
	tok, err := s.Token(req.Context())
	if err != nil {
		return err
	}
	req.Header.Set(HeaderAuthToken, tok)
	return nil
}

// Token returns a valid token: the cached one until 80% of its lifetime has
// passed, then a new one. When the refresh fails the old token is used until
// shortly before its expiry; without a usable token the fetch error is
// returned (and IAM is asked again at most every 10 s).
func (s *TokenSigner) Token(ctx context.Context) (string, error) {
	for {
		s.mu.Lock()
		now := s.now()
		usable := s.tok != "" && now.Before(s.exp)
		if usable && now.Before(s.ref) {
			tok := s.tok
			s.mu.Unlock()
			return tok, nil
		}
		if s.busy != nil || now.Before(s.next) {
			// Another request is fetching, or the last fetch failed recently.
			if usable {
				tok := s.tok
				s.mu.Unlock()
				return tok, nil
			}
			if s.busy == nil {
				err := s.err
				s.mu.Unlock()
				return "", err
			}
			ch := s.busy
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.busy = ch
		s.fetches++
		s.mu.Unlock()

		tok, lifetime, err := s.fetch(ctx)

		s.mu.Lock()
		s.busy = nil
		close(ch)
		if err != nil {
			s.failures++
			s.err = err
			s.next = now.Add(tokenRetryInterval)
			usable = s.tok != "" && s.now().Before(s.exp)
			old := s.tok
			s.mu.Unlock()
			if usable {
				return old, nil
			}
			return "", err
		}
		s.tok, s.err, s.next = tok, nil, time.Time{}
		s.exp = now.Add(lifetime - min(tokenExpiryMargin, lifetime/10))
		s.ref = now.Add(time.Duration(float64(lifetime) * tokenRefreshFraction))
		s.mu.Unlock()
		return tok, nil
	}
}

// Invalidate drops the cached token, so the next request fetches a new one
// (DIS answered 401: the token may have been revoked).
func (s *TokenSigner) Invalidate() {
	s.mu.Lock()
	s.tok, s.exp, s.ref = "", time.Time{}, time.Time{}
	s.mu.Unlock()
}

// TokenStatus is what the signer exposes for status pages: never the token.
type TokenStatus struct {
	Valid     bool      // a usable token is cached
	Expires   time.Time // when the cached token stops being used; zero if none
	RefreshAt time.Time // when it is replaced
	Fetches   int       // token requests made
	Failures  int       // of which failed
	LastError string    // the last failure, if the last fetch failed
}

// Status returns the signer's state.
func (s *TokenSigner) Status() TokenStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := TokenStatus{Valid: s.tok != "" && s.now().Before(s.exp), Expires: s.exp, RefreshAt: s.ref, Fetches: s.fetches, Failures: s.failures}
	if s.err != nil {
		st.LastError = s.err.Error()
	}
	return st
}

// String describes the signer without its secrets.
func (s *TokenSigner) String() string {
	return fmt.Sprintf("IAM token auth (user %s, domain %s, project %s, IAM %s)", s.cfg.User, s.cfg.Domain, s.cfg.ProjectID, s.url)
}

// GoString keeps %#v from printing the password.
func (s *TokenSigner) GoString() string { return s.String() }

// LogValue keeps slog from printing the password.
func (s *TokenSigner) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Format keeps every fmt verb (%v, %+v, %#v, %s) from printing the password.
func (s *TokenSigner) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// maxTokenReplyBytes bounds what is read of a token reply (the body lists
// roles and a catalog; a few KB in practice).
const maxTokenReplyBytes = 1 << 20

// fetch obtains a new token and its lifetime.
func (s *TokenSigner) fetch(ctx context.Context) (string, time.Duration, error) {
	c := &s.cfg
	body, err := json.Marshal(NewPasswordTokenRequest(c.User, c.Password, c.Domain, c.ProjectID))
	if err != nil {
		return "", 0, err
	}
	what := fmt.Sprintf("obtain IAM token for user %q (domain %q, project %q) from %s", c.User, c.Domain, c.ProjectID, s.url)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenReplyBytes))
	if err != nil {
		return "", 0, fmt.Errorf("%s: read reply: %w", what, err)
	}
	if resp.StatusCode >= 300 {
		return "", 0, fmt.Errorf("%s: %w", what, parseError(resp, data))
	}
	tok := resp.Header.Get(HeaderSubjectToken)
	if tok == "" {
		return "", 0, fmt.Errorf("%s: HTTP %d without an X-Subject-Token header", what, resp.StatusCode)
	}
	lifetime := DefaultTokenLifetime
	var tr TokenResponse
	if json.Unmarshal(data, &tr) == nil {
		exp, err1 := time.Parse(time.RFC3339Nano, tr.Token.ExpiresAt)
		iss, err2 := time.Parse(time.RFC3339Nano, tr.Token.IssuedAt)
		if err1 == nil && err2 == nil && exp.After(iss) {
			// Both times are IAM's clock: the difference is the lifetime
			// whatever the skew between IAM and this box.
			lifetime = exp.Sub(iss)
		}
	}
	return tok, lifetime, nil
}
