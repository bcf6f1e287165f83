// Package disserver is the DIS-compatible server: the REST API of the Data
// Ingestion Service reference (streams, partitions, records, cursors, apps,
// checkpoints, quotas, IAM-style tokens) on a Badger store, faithful enough
// that the official DIS clients cannot tell it from the service.
//
// Concurrency model:
//   - HTTP handlers run on net/http's goroutines. They validate and decode
//     requests, and read records and checkpoints straight from Badger in
//     read-only transactions (reads never go through the write path).
//   - One writer goroutine (writer.go) owns every record append: it routes
//     records to partitions, applies flow control and fault injection,
//     assigns sequence numbers, writes whole batches of requests, calls
//     db.Sync once per batch (group commit) and only then publishes the new
//     high-water marks and replies. A sequence number is never returned
//     before it is durable.
//   - One janitor goroutine (janitor.go) removes records past retention,
//     turns DELETED partitions EXPIRED and purges deleted streams.
//   - Metadata (projects, streams, apps) lives in memory under Server.mu and
//     each stream's own mu, and is written through to Badger (and synced)
//     before a request that changed it is answered. Lock order: Server.mu,
//     then stream.mu.
package disserver

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sync/semaphore"

	"github.com/edgegw/edgegw/internal/dis"
)

// Server is a DIS-compatible server. Create it with New; it is safe for
// concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	db  *badger.DB
	now func() time.Time

	mu       sync.RWMutex
	projects map[string]*project
	lastSID  uint64 // last stream key number issued; under mu

	secret []byte // token HMAC key, persisted
	keys   map[string]KeyConfig
	users  map[string]UserConfig // by domain + "\x00" + name

	w *writer

	faultMu       sync.Mutex
	faults        Faults
	faultBase     time.Time // outage window origin
	putRequests   uint64    // PutRecords requests seen, for RejectEveryNthRequest
	recordCounter uint64    // records offered, for FailEveryNthRecord; writer goroutine only
	// resetRecordCounter asks the writer to zero recordCounter (after SetFaults); under faultMu.
	resetRecordCounter bool

	reqSeq    atomic.Uint64
	reqPrefix string

	// gate and inflight let Shutdown wait for running requests before it
	// closes the store; closed is set under gate.
	gate     sync.RWMutex
	inflight sync.WaitGroup
	// bodyBudget bounds the request bodies held in memory at once.
	bodyBudget *semaphore.Weighted

	httpMu       sync.Mutex
	httpSrv      *http.Server
	shuttingDown bool // under httpMu: Serve refuses to start

	janitorStop chan struct{}
	janitorDone chan struct{}
	janitorKick chan struct{}

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

// maxBodyBytesInFlight bounds the request bodies held at once: ten 12 MB
// PutRecords (the AK/SK body limit) fit, and a small box can afford 128 MiB.
// More requests wait for room instead of growing the heap.
const maxBodyBytesInFlight = 128 << 20

// project is one tenant's namespace.
type project struct {
	id      string
	streams map[string]*stream
	apps    map[string]*appMeta
	limiter *tokenBucket // request-level limit; nil when off; guarded by limMu
	limMu   sync.Mutex
	// appCommits holds the last checkpoint commit time per app (epoch ms), to
	// tell whether an app is in use. In memory only.
	appCommits sync.Map
}

// New opens (or creates) the store under cfg.DataDir and returns a server
// ready to Serve. The caller must call Shutdown.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	modeUnset := cfg.Auth.Mode == ""
	cfg.ResolveAuthMode()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("DIS server config: %w", err)
	}
	if modeUnset {
		log.Info("DIS server auth.mode not set; using any because credentials are configured")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create DIS data directory: %w", err)
	}
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	s := &Server{
		cfg:         cfg,
		log:         log,
		now:         now,
		projects:    map[string]*project{},
		keys:        map[string]KeyConfig{},
		users:       map[string]UserConfig{},
		faults:      cfg.Faults,
		faultBase:   now(),
		reqPrefix:   hex.EncodeToString(rb[:]),
		janitorStop: make(chan struct{}),
		janitorDone: make(chan struct{}),
		janitorKick: make(chan struct{}, 1),
		bodyBudget:  semaphore.NewWeighted(max(maxBodyBytesInFlight, cfg.Limits.MaxRequestBytes)),
	}
	for _, k := range cfg.Auth.Keys {
		s.keys[k.AccessKey] = k
	}
	if ak, sk := os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey); ak != "" && sk != "" {
		s.keys[ak] = KeyConfig{AccessKey: ak, SecretKey: sk, Projects: []string{AnyProject}}
	}
	for _, u := range cfg.Auth.Users {
		s.users[u.Domain+"\x00"+u.Name] = u
	}
	db, err := openBadger(cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load DIS data from %s: %w", cfg.DataDir, err)
	}
	if err := s.ensureTokenSecret(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if cfg.Auth.Mode == AuthNone {
		msg := "DIS server runs with auth: none; every request is accepted without credentials. Use only for local development"
		if host, _, err := net.SplitHostPort(cfg.Listen); err == nil {
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				msg += "; it listens on a non-loopback address, so anyone who can reach " + cfg.Listen + " can read and write every stream"
			}
		}
		log.Warn(msg, "listen", cfg.Listen)
	}
	s.w = newWriter(s)
	go s.w.run()
	go s.janitor()
	return s, nil
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve serves the API on ln until Shutdown and closes ln. It returns nil
// after Shutdown, also when Shutdown came first (like http.Server, whose
// ErrServerClosed it maps to nil).
func (s *Server) Serve(ln net.Listener) error {
	s.httpMu.Lock()
	if s.closed.Load() || s.shuttingDown {
		s.httpMu.Unlock()
		_ = ln.Close()
		return nil
	}
	if s.httpSrv == nil {
		s.httpSrv = &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 10 * time.Second,  // headers are small; slow-loris guard
			ReadTimeout:       60 * time.Second,  // a 12 MB body over a slow edge uplink
			WriteTimeout:      60 * time.Second,  // a GetRecords reply is at most a few MB
			IdleTimeout:       120 * time.Second, // SDKs keep connections alive between polls
			MaxHeaderBytes:    64 << 10,          // auth headers are ~1 KB; tokens a few hundred bytes
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
	}
	srv := s.httpSrv
	s.httpMu.Unlock()
	s.log.Info("DIS server listening", "addr", ln.Addr().String(), "auth", s.cfg.Auth.Mode, "data_dir", s.cfg.DataDir)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("DIS server: %w", err)
	}
	return nil
}

// Shutdown stops the HTTP server (waiting for in-flight requests until ctx
// ends), then the writer and the janitor, then closes Badger. It is
// idempotent; later calls return the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		s.httpMu.Lock()
		srv := s.httpSrv
		s.shuttingDown = true
		s.httpMu.Unlock()
		if srv != nil {
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop DIS HTTP server: %w", err))
				_ = srv.Close()
			}
		}
		// Requests served through Handler by an embedder's own HTTP server:
		// refuse new ones and wait for the running ones.
		s.gate.Lock()
		s.closed.Store(true)
		s.gate.Unlock()
		waited := make(chan struct{})
		go func() { s.inflight.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("DIS requests still running at shutdown: %w", ctx.Err()))
		}
		close(s.janitorStop)
		<-s.janitorDone
		s.w.stop()
		if err := s.db.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync DIS store: %w", err))
		}
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close DIS store: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// load reads metadata and the partition high-water marks from Badger.
func (s *Server) load() error {
	return s.db.View(func(txn *badger.Txn) error {
		if item, err := txn.Get([]byte(keySID)); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil || len(v) != 8 {
				return fmt.Errorf("read %s: corrupt", keySID)
			}
			s.lastSID = binary.BigEndian.Uint64(v)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if item, err := txn.Get([]byte(keySecret)); err == nil {
			if s.secret, err = item.ValueCopy(nil); err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxStreamMeta), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var m streamMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("stream metadata %q: %w", it.Item().Key(), err)
			}
			st := &stream{sid: m.SID, id: m.ID, meta: m}
			for i := range m.Partitions {
				p, err := loadPartition(txn, m.SID, i)
				if err != nil {
					return fmt.Errorf("stream %s partition %d: %w", m.Name, i, err)
				}
				st.parts = append(st.parts, p)
			}
			s.project(m.Project).streams[m.Name] = st
		}
		it.Close()
		ai := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxAppMeta)})
		defer ai.Close()
		for ai.Rewind(); ai.Valid(); ai.Next() {
			v, err := ai.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var a appMeta
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("app metadata %q: %w", ai.Item().Key(), err)
			}
			s.project(a.Project).apps[a.Name] = &a
		}
		return nil
	})
}

// loadPartition finds a partition's retained range: the first retained
// sequence number the janitor recorded, and one past the last record key.
func loadPartition(txn *badger.Txn, sid uint64, idx int) (*partition, error) {
	p := &partition{idx: idx}
	var first int64
	if item, err := txn.Get(firstKey(sid, idx)); err == nil {
		v, err := item.ValueCopy(nil)
		if err != nil || len(v) != 8 {
			return nil, errors.New("corrupt first-sequence marker")
		}
		first = int64(binary.BigEndian.Uint64(v))
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return nil, err
	}
	next := first
	it := txn.NewIterator(badger.IteratorOptions{Prefix: partPrefix(pfxRecord, sid, idx), Reverse: true})
	defer it.Close()
	it.Seek(recordKey(sid, idx, -1)) // all 0xFF: the last key of the partition
	if it.Valid() {
		last := recordSeq(it.Item().Key())
		if last+1 > next {
			next = last + 1
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		rec, err := decodeRecord(v)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", last, err)
		}
		p.lastArrival, p.lastIndex = rec.Arrival, rec.IndexTime
	}
	p.assign = next
	p.committed.Store(next)
	p.first.Store(first)
	return p, nil
}

// project returns (creating) a project's namespace. Caller holds s.mu for
// writing, or is load().
func (s *Server) project(id string) *project {
	p := s.projects[id]
	if p == nil {
		p = &project{id: id, streams: map[string]*stream{}, apps: map[string]*appMeta{}}
		if rps := s.cfg.FlowControl.RequestsPerSecond; rps > 0 {
			p.limiter = newTokenBucket(float64(rps), float64(rps))
		}
		s.projects[id] = p
	}
	return p
}

// lookupProject returns a project without creating it.
func (s *Server) lookupProject(id string) *project {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.projects[id]
}

// call is one API request after routing, authentication and body decoding.
type call struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	project string
	seg     []string // path segments after the project id
	query   url.Values
	body    []byte
	proto   bool // request Content-Type is protobuf: PutRecords/GetRecords answer in protobuf
}

// q returns a query parameter; an empty value counts as absent (COMPAT-NOTES fact 3).
func (c *call) q(name string) string { return c.query.Get(name) }

func (c *call) json(status int, v any) error {
	// jsoniter in its encoding/json-compatible mode: same bytes, several
	// times faster on GetRecords pages (base64 of up to 2 MB of data).
	b, err := fastJSON.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	c.w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(b)
	return nil
}

func (c *call) empty(status int) error {
	c.w.WriteHeader(status)
	return nil
}

func (c *call) protobuf(status int, b []byte) error {
	c.w.Header().Set("Content-Type", dis.ContentTypeProtobuf)
	c.w.WriteHeader(status)
	_, _ = c.w.Write(b)
	return nil
}

type handlerFunc func(*Server, *call) error

// route maps (method, version, segments after the project) to a handler.
// ok is false for an unknown path; a known path with another method gives a
// nil handler and ok true.
func route(method, version string, seg []string) (h handlerFunc, ok bool) {
	n := len(seg)
	pick := func(m map[string]handlerFunc) (handlerFunc, bool) { return m[method], true }
	switch version {
	case "v1":
		if n == 1 && seg[0] == "quotas" {
			return pick(map[string]handlerFunc{"GET": (*Server).hQuotas})
		}
	case "v3":
		if n == 2 && seg[0] == "streams" {
			return pick(map[string]handlerFunc{"PUT": (*Server).hUpdateStream})
		}
	case "v2":
		switch {
		case n == 1 && seg[0] == "streams":
			return pick(map[string]handlerFunc{"POST": (*Server).hCreateStream, "GET": (*Server).hListStreams})
		case n == 2 && seg[0] == "streams":
			return pick(map[string]handlerFunc{"GET": (*Server).hDescribeStream, "DELETE": (*Server).hDeleteStream, "PUT": (*Server).hUpdatePartitionCount})
		case n == 3 && seg[0] == "streams" && seg[2] == "update_partition_counts":
			return pick(map[string]handlerFunc{"GET": (*Server).hScalingLog})
		case n == 3 && seg[0] == "streams" && seg[2] == "update":
			return pick(map[string]handlerFunc{"PUT": (*Server).hUpdateAutoScale})
		case n == 1 && seg[0] == "records":
			return pick(map[string]handlerFunc{"POST": (*Server).hPutRecords, "GET": (*Server).hGetRecords})
		case n == 1 && seg[0] == "cursors":
			return pick(map[string]handlerFunc{"GET": (*Server).hGetCursor})
		case n == 1 && seg[0] == "apps":
			return pick(map[string]handlerFunc{"POST": (*Server).hCreateApp, "GET": (*Server).hListApps})
		case n == 2 && seg[0] == "apps":
			return pick(map[string]handlerFunc{"GET": (*Server).hDescribeApp, "DELETE": (*Server).hDeleteApp})
		case n == 4 && seg[0] == "apps" && seg[2] == "streams":
			return pick(map[string]handlerFunc{"GET": (*Server).hConsumerState})
		case n == 2 && seg[0] == "stream" && seg[1] == "tags":
			return pick(map[string]handlerFunc{"GET": (*Server).hListTags})
		case n == 3 && seg[0] == "stream" && seg[2] == "tags":
			return pick(map[string]handlerFunc{"POST": (*Server).hCreateTag, "GET": (*Server).hStreamTags})
		case n == 4 && seg[0] == "stream" && seg[2] == "tags":
			m := map[string]handlerFunc{"DELETE": (*Server).hDeleteTag}
			if seg[3] == "action" {
				m["POST"] = (*Server).hBatchTags
			}
			return pick(m)
		case n == 1 && seg[0] == "checkpoints":
			return pick(map[string]handlerFunc{"POST": (*Server).hCommitCheckpoint, "GET": (*Server).hGetCheckpoint, "DELETE": (*Server).hDeleteCheckpoint})
		}
	}
	return nil, false
}

func (s *Server) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	reqID := fmt.Sprintf("%s%010x", s.reqPrefix, s.reqSeq.Add(1))
	w.Header().Set("X-Request-Id", reqID)
	s.gate.RLock()
	if s.closed.Load() {
		s.gate.RUnlock()
		writeError(w, &dis.Error{Status: http.StatusServiceUnavailable, Code: dis.CodeSystemError, Message: "System error. The DIS server is shutting down."})
		return
	}
	s.inflight.Add(1)
	s.gate.RUnlock()
	defer s.inflight.Done()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("DIS request panicked", "err", fmt.Sprint(v), "method", r.Method, "path", r.URL.Path, "request_id", reqID)
			if w.status == 0 {
				writeError(w, dis.NewError(dis.CodeSystemError, "System error."))
			}
		}
	}()
	if err := s.serve(w, r); err != nil {
		var de *dis.Error
		if !errors.As(err, &de) {
			s.log.Error("DIS request failed", "err", err, "method", r.Method, "path", r.URL.Path, "request_id", reqID)
			de = dis.NewError(dis.CodeSystemError, "System error.")
		}
		writeError(w, de)
	}
	s.log.Debug("DIS request", "method", r.Method, "path", r.URL.Path, "status", w.status, "duration", time.Since(start), "request_id", reqID)
}

// statusWriter records the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.Path
	// Trailing slashes route like no slash (COMPAT-NOTES fact 2).
	if len(path) > 1 && strings.HasSuffix(path, "/") {
		path = path[:len(path)-1]
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) == 3 && segs[0] == "v3" && segs[1] == "auth" && segs[2] == "tokens" {
		if r.Method != http.MethodPost {
			return errMethod(r.Method)
		}
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		return s.issueToken(w, r, body)
	}
	if len(segs) < 3 {
		return errNoRoute()
	}
	h, ok := route(r.Method, segs[0], segs[2:])
	if !ok {
		return errNoRoute()
	}
	if h == nil {
		return errMethod(r.Method)
	}
	if isDataPlane(segs[0], segs[2:]) && s.inOutage() {
		w.Header().Set("Retry-After", "1")
		return &dis.Error{Status: http.StatusServiceUnavailable, Code: dis.CodeSystemError, Message: "System error. Service unavailable (fault injection: outage window)."}
	}
	projectID := segs[1]
	if !projectIDRe.MatchString(projectID) {
		return dis.NewError(dis.CodeInvalidProject, "Invalid Project Id. %q must be 1 to 64 letters, digits, '_' or '-'", projectID)
	}
	if hp := r.Header.Get("X-Project-Id"); hp != "" && hp != projectID {
		return dis.NewError(dis.CodeInvalidProject, "Invalid Project Id. X-Project-Id %q does not match the path's project %q", hp, projectID)
	}
	release, err := s.reserveBody(r)
	if err != nil {
		return err
	}
	defer release()
	raw, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if err := s.authenticate(r, raw, projectID); err != nil {
		return err
	}
	if e := s.limitRequest(s.lookupProject(projectID)); e != nil {
		w.Header().Set("Retry-After", "1")
		return e
	}
	body, err := s.decodeContent(r, raw)
	if err != nil {
		return err
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return dis.NewError(dis.CodeInvalidRequest, "Invalid request. Query string: %v", err)
	}
	c := &call{
		s: s, w: w, r: r, project: projectID, seg: segs[2:], query: query, body: body,
		proto: dis.IsProtobufContentType(r.Header.Get("Content-Type")),
	}
	return h(s, c)
}

// isDataPlane tells the APIs an injected outage takes down: records,
// cursors and checkpoints, which producers and consumers use. Stream and
// app management stay up so that test fixtures can be set up and inspected
// during the window.
func isDataPlane(version string, seg []string) bool {
	return version == "v2" && len(seg) == 1 && (seg[0] == "records" || seg[0] == "cursors" || seg[0] == "checkpoints")
}

func errNoRoute() error {
	return &dis.Error{Status: http.StatusNotFound, Code: "APIGW.0101", Message: "The API does not exist or has not been published in the environment."}
}

func errMethod(m string) error {
	return &dis.Error{Status: http.StatusMethodNotAllowed, Code: "APIGW.0101", Message: "Method " + m + " is not allowed on this API."}
}

// writeError sends a DIS error with both key pairs (COMPAT-NOTES fact 10).
// Errors are JSON even when the request was protobuf (part b, point 5).
func writeError(w http.ResponseWriter, e *dis.Error) {
	b, _ := json.Marshal(e.Body()) // strings only: cannot fail
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

// newID returns a random id in the style of the service's stream and app ids
// (19 letters and digits).
func newID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [19]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// syncUpdate runs fn in a read-write transaction and syncs the store, so
// that the change survives a crash before the reply is sent.
func (s *Server) syncUpdate(fn func(txn *badger.Txn) error) error {
	if err := s.db.Update(fn); err != nil {
		return err
	}
	return s.db.Sync()
}
