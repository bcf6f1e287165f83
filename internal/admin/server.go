// Package admin is the gateway's admin HTTP server: Prometheus metrics
// (/metrics), liveness and readiness (/healthz, /readyz), the status API
// (/api/v1/status, /api/v1/history), configuration reload
// (POST /api/v1/reload) and a live dashboard (/), embedded in the binary.
//
// Everything it shows comes from one Status snapshot that the gateway builds
// from its components' read-only accessors, taken at request or scrape time,
// so the publish and uplink paths do no extra work for it; the only exception
// is the PutRecords latency histogram, fed by ObservePutRecords.
//
// Concurrency: Start binds and serves on goroutines owned by the Server, one
// of which samples the Status every SampleEvery for the dashboard's charts;
// Shutdown stops them and waits. The Source, Reload and ObservePutRecords may
// be called from any goroutine, concurrently.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgegw/edgegw/internal/config"
)

//go:embed web
var webFS embed.FS

// Options configures a Server.
type Options struct {
	// Listen is the TCP address to serve on.
	Listen string
	// Token, when set, is the bearer token every request except /healthz,
	// /readyz and the dashboard's static files must carry. It is required when
	// Listen is not a loopback address.
	Token string
	// Source returns the current status; it is called per request, per scrape
	// and per sample, concurrently.
	Source func() Status
	// Reload re-reads and applies the configuration (POST /api/v1/reload).
	// Nil answers 501.
	Reload  func(ctx context.Context) ReloadResult
	Version string
	Logger  *slog.Logger

	// SampleEvery is the dashboard's chart resolution; 0 means 2 s.
	SampleEvery time.Duration
	// HistoryLen is how many samples are kept; 0 means 300 (10 minutes at 2 s).
	HistoryLen int
	// ReadyBufferFraction: see DefaultReadyBufferFraction; 0 means that.
	ReadyBufferFraction float64
}

// Server is the admin HTTP server.
type Server struct {
	opts       Options
	log        *slog.Logger
	putLatency *prometheus.HistogramVec
	registry   *prometheus.Registry
	history    *history
	tokenSum   [32]byte
	handler    http.Handler

	mu   sync.Mutex
	ln   net.Listener
	srv  *http.Server
	stop chan struct{}
	wg   sync.WaitGroup
}

// New checks opts and builds the server; Start binds it. An address reachable
// from other hosts without a token is refused.
func New(opts Options) (*Server, error) {
	host, _, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %q: %w", opts.Listen, err)
	}
	if opts.Token == "" && !config.IsLoopbackHost(host) {
		return nil, fmt.Errorf("admin.listen %q is reachable from other hosts and no bearer token is set; set admin.token or admin.token_file (or %s), or listen on 127.0.0.1", opts.Listen, config.EnvAdminToken)
	}
	if opts.Source == nil {
		return nil, errors.New("admin: no status source")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 2 * time.Second // fine enough for a chart, cheap enough for a small box
	}
	if opts.HistoryLen <= 0 {
		opts.HistoryLen = 300 // 10 minutes at the default resolution
	}
	if opts.ReadyBufferFraction <= 0 {
		opts.ReadyBufferFraction = DefaultReadyBufferFraction
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		putLatency: newPutLatency(),
		history:    &history{max: opts.HistoryLen},
		tokenSum:   sha256.Sum256([]byte(opts.Token)),
	}
	s.registry = newRegistry(s.status, opts.Version, s.putLatency)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// ObservePutRecords records the latency of one DIS PutRecords request; err is
// the request's error, nil when DIS answered.
func (s *Server) ObservePutRecords(stream string, err error, d time.Duration) {
	observe(s.putLatency, stream, err, d)
}

// Start binds the listener and serves until Shutdown.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("admin server: listen on %s (admin.listen): %w", s.opts.Listen, err)
	}
	srv := &http.Server{
		Handler: s.handler,
		// Bounds for a small box facing possibly slow or hostile clients.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // a scrape of a large registry on a slow link
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	s.ln, s.srv, s.stop = ln, srv, make(chan struct{})
	s.mu.Unlock()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "err", err)
		}
	}()
	go func() { defer s.wg.Done(); s.sample() }()
	s.log.Info("admin server ready", "addr", ln.Addr().String(), "auth", s.opts.Token != "")
	return nil
}

// Addr returns the bound address (after Start), or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops serving, waiting for requests in progress until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, stop := s.srv, s.stop
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	close(stop)
	err := srv.Shutdown(ctx)
	s.wg.Wait()
	return err
}

// sample runs on its own goroutine until Shutdown.
func (s *Server) sample() {
	t := time.NewTicker(s.opts.SampleEvery)
	defer t.Stop()
	for {
		st := s.status()
		s.history.add(sampleOf(&st, time.Now()))
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// status takes a snapshot and judges readiness.
func (s *Server) status() Status {
	st := s.opts.Source()
	st.Ready = judge(&st, s.opts.ReadyBufferFraction)
	return st
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := s.status()
		code := http.StatusOK
		if !st.Ready.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, st.Ready)
	})
	mux.Handle("GET /metrics", s.authed(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})))
	mux.Handle("GET /api/v1/status", s.authed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.status())
	})))
	mux.Handle("GET /api/v1/history", s.authed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var since int64
		if v := r.URL.Query().Get("since"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since must be Unix milliseconds"})
				return
			}
			since = n
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"interval_ms": s.opts.SampleEvery.Milliseconds(),
			"samples":     s.history.since(since),
		})
	})))
	mux.Handle("POST /api/v1/reload", s.authed(http.HandlerFunc(s.reload)))
	mux.HandleFunc("GET /api/v1/reload", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST to reload the configuration"})
	})

	static, _ := fs.Sub(webFS, "web") // the embedded directory exists: a compile-time fact
	files := http.FileServerFS(static)
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The dashboard's files carry no data; the API calls they make do,
		// and need the token.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	return mux
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.opts.Reload == nil {
		writeJSON(w, http.StatusNotImplemented, ReloadResult{Errors: []string{"this server cannot reload"}})
		return
	}
	res := s.opts.Reload(r.Context())
	code := http.StatusOK
	if !res.OK() {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, res)
}

// authed requires the bearer token when one is set, and refuses cross-site
// requests (a web page on another origin cannot make the browser call us).
func (s *Server) authed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin requests are not allowed"})
				return
			}
		}
		if s.opts.Token != "" {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(tok))
			if !ok || subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="edgegw"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token; send Authorization: Bearer <admin.token>"})
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}
