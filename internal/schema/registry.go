package schema

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// StreamSchema is what DIS reports about a stream's data (describe stream,
// §5.1.4): data_type, data_schema and csv_properties.delimiter.
type StreamSchema struct {
	DataType   string
	DataSchema string
	Delimiter  string
}

// FromDescribe takes the schema fields of a describe-stream response.
func FromDescribe(d *dis.DescribeStreamResponse) StreamSchema {
	s := StreamSchema{DataType: d.DataType, DataSchema: d.DataSchema}
	if d.CSVProperties != nil {
		s.Delimiter = d.CSVProperties.Delimiter
	}
	return s
}

// FetchFromDIS fetches with describe stream (§5.1.4), asking for one
// partition only: the schema fields do not depend on the partition list.
func FetchFromDIS(c *dis.Client) FetchFunc {
	return func(ctx context.Context, stream string) (StreamSchema, error) {
		d, err := c.DescribeStream(ctx, stream, "", 1)
		if err != nil {
			return StreamSchema{}, fmt.Errorf("describe stream %s: %w", stream, err)
		}
		return FromDescribe(d), nil
	}
}

// FetchFunc returns a stream's schema from DIS. It is called only from the
// goroutine running Registry.Run, one stream at a time, with a context that
// carries fetch_timeout; it should return when the context is done.
type FetchFunc func(ctx context.Context, stream string) (StreamSchema, error)

// ErrNoSchema is returned (wrapped, with the stream) by Registry.Validate
// when no_schema is reject and the stream's schema is not known yet. The
// payload may be fine: the broker should answer "try later" (MQTT 5 0x80
// unspecified error, or 0x97 quota exceeded), not 0x99 payload invalid.
var ErrNoSchema = errors.New("schema not known yet")

// Schema sources, for Status.
const (
	SourceConfig = "config"
	SourceDIS    = "dis"
)

// entry is one stream's current state. Entries are immutable apart from
// their counters; the owner goroutine replaces them, carrying the counters.
type entry struct {
	v       *Validator // nil until a schema is known
	source  string
	updated time.Time // last successful fetch (DIS streams)
	err     error     // last fetch or compile error; nil after a success
	counts  *counters
}

// counters are one stream's outcomes since NewRegistry: plain atomics, so
// counting costs the publish path no lock and no allocation.
type counters struct {
	passed      atomic.Uint64
	unvalidated atomic.Uint64
	rejected    [len(allCodes)]atomic.Uint64
}

func (c *counters) reject(code Code) {
	for i, k := range allCodes {
		if k == code {
			c.rejected[i].Add(1)
			return
		}
	}
}

// Registry holds one Validator per stream and keeps DIS-sourced ones fresh.
type Registry struct {
	cfg     Config
	options map[string]StreamConfig // per-stream settings, by name
	fetch   FetchFunc
	log     *slog.Logger

	// current maps stream → entry. Validate reads it; only NewRegistry and
	// the Run goroutine store a new map (copy on write).
	current atomic.Pointer[map[string]*entry]
	// wanted collects streams Validate met without an entry; wake tells Run.
	wanted      sync.Map
	wake        chan struct{}
	unvalidated atomic.Uint64
}

// NewRegistry compiles the schemas given in cfg and prepares to fetch the
// others. streams names streams to fetch from the start (the router's
// streams); a stream met later in Validate is fetched then. fetch may be nil
// when DIS is not used: only config schemas apply.
func NewRegistry(cfg Config, fetch FetchFunc, log *slog.Logger, streams ...string) (*Registry, error) {
	configured, err := cfg.compileConfigured()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:     cfg.withDefaults(),
		options: make(map[string]StreamConfig, len(cfg.Streams)),
		fetch:   fetch,
		log:     cmp.Or(log, slog.New(slog.DiscardHandler)),
		wake:    make(chan struct{}, 1),
	}
	m := make(map[string]*entry)
	for _, s := range cfg.Streams {
		r.options[s.Name] = s
	}
	for name, v := range configured {
		m[name] = &entry{v: v, source: SourceConfig, counts: new(counters)}
	}
	all := slices.Clone(streams)
	for _, s := range cfg.Streams {
		all = append(all, s.Name) // options only: fetched from the start too
	}
	for _, s := range all {
		if m[s] == nil {
			m[s] = &entry{source: SourceDIS, counts: new(counters)}
		}
	}
	r.current.Store(&m)
	return r, nil
}

// Validate checks payload against stream's schema. It returns nil, a
// *ValidationError (with Stream set), or an error wrapping ErrNoSchema. It is
// safe for concurrent use and never blocks: a stream whose schema is not
// known yet follows the no_schema policy while Run fetches it.
func (r *Registry) Validate(stream string, payload []byte) error {
	e := (*r.current.Load())[stream]
	if e == nil || e.v == nil {
		if e == nil {
			r.want(stream)
		}
		if r.cfg.NoSchema == NoSchemaReject {
			return fmt.Errorf("stream %s: %w", stream, ErrNoSchema)
		}
		r.unvalidated.Add(1)
		if e != nil {
			e.counts.unvalidated.Add(1)
		}
		return nil
	}
	err := e.v.Validate(payload)
	if err != nil {
		ve := err.(*ValidationError)
		ve.Stream = stream // fresh per call: ours to fill
		e.counts.reject(ve.Code)
		return err
	}
	e.counts.passed.Add(1)
	return nil
}

func (r *Registry) want(stream string) {
	if _, loaded := r.wanted.LoadOrStore(stream, struct{}{}); !loaded {
		select {
		case r.wake <- struct{}{}:
		default: // Run is already due to look
		}
	}
}

// Unvalidated counts payloads accepted without a schema under no_schema:
// accept.
func (r *Registry) Unvalidated() uint64 { return r.unvalidated.Load() }

// StreamStatus describes one stream's schema for the status page.
type StreamStatus struct {
	Stream   string
	Source   string // SourceConfig or SourceDIS
	Known    bool   // a validator is in use
	DataType string
	Updated  time.Time // last successful fetch (DIS streams)
	Err      error     // last fetch or compile error, nil after a success
	// Outcomes of Validate since NewRegistry: payloads that passed, that
	// were accepted without a schema (no_schema: accept), and rejections by
	// code (codes with none are left out).
	Passed      uint64
	Unvalidated uint64
	Rejected    map[Code]uint64
}

// Status lists the streams by name.
func (r *Registry) Status() []StreamStatus {
	m := *r.current.Load()
	out := make([]StreamStatus, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		e := m[name]
		st := StreamStatus{Stream: name, Source: e.source, Known: e.v != nil, Updated: e.updated, Err: e.err,
			Passed: e.counts.passed.Load(), Unvalidated: e.counts.unvalidated.Load(), Rejected: map[Code]uint64{}}
		for i, code := range allCodes {
			if n := e.counts.rejected[i].Load(); n > 0 {
				st.Rejected[code] = n
			}
		}
		if e.v != nil {
			st.DataType = e.v.spec.DataType
		}
		out = append(out, st)
	}
	return out
}

// Backoff after a failed fetch: the first retry comes after fetchRetryMin
// (so a gateway that starts just before DIS is reachable has its schemas
// within seconds), doubling up to the refresh interval (so an outage costs at
// most one describe call per stream per interval).
const fetchRetryMin = time.Second

type fetchState struct {
	due     time.Time
	backoff time.Duration
	failing bool
}

// Run fetches every DIS-sourced stream's schema now and then every
// refresh_interval, until ctx is done; it then returns nil. Run it once, on
// its own goroutine; Validate works before and after.
func (r *Registry) Run(ctx context.Context) error {
	if r.fetch == nil {
		<-ctx.Done()
		return nil
	}
	states := map[string]*fetchState{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		r.adoptWanted()
		for name, e := range *r.current.Load() {
			if e.source == SourceDIS && states[name] == nil {
				states[name] = &fetchState{due: now}
			}
		}
		var next time.Time
		for _, name := range slices.Sorted(maps.Keys(states)) {
			st := states[name]
			if !st.due.After(now) {
				if ctx.Err() != nil {
					return nil
				}
				r.refresh(ctx, name, st)
			}
			if next.IsZero() || st.due.Before(next) {
				next = st.due
			}
		}
		var due <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-due:
		}
	}
}

// adoptWanted gives each stream Validate asked about an entry, so it is
// fetched (or, configured with data_type, never is: those have entries).
func (r *Registry) adoptWanted() {
	var names []string
	r.wanted.Range(func(k, _ any) bool {
		names = append(names, k.(string))
		r.wanted.Delete(k)
		return true
	})
	for _, name := range names {
		if (*r.current.Load())[name] == nil {
			r.set(name, &entry{source: SourceDIS, counts: new(counters)})
		}
	}
}

// set replaces one stream's entry. Run goroutine only.
func (r *Registry) set(name string, e *entry) {
	m := maps.Clone(*r.current.Load())
	m[name] = e
	r.current.Store(&m)
}

// refresh fetches and compiles one stream's schema. Run goroutine only.
func (r *Registry) refresh(ctx context.Context, name string, st *fetchState) {
	old := (*r.current.Load())[name]
	fctx, cancel := context.WithTimeout(ctx, r.cfg.FetchTimeout)
	fetched, err := r.fetch(fctx, name)
	cancel()
	var v *Validator
	if err == nil {
		v, err = r.validatorFor(name, fetched)
	}
	now := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not the stream's fault
		}
		st.backoff = min(max(2*st.backoff, fetchRetryMin), r.cfg.RefreshInterval)
		st.due = now.Add(st.backoff)
		if !st.failing || old.err == nil || old.err.Error() != err.Error() {
			// Once per failure streak (and per new error), not per retry.
			r.log.Warn("stream schema fetch failed", "stream", name, "err", err,
				"using", r.fallback(old), "retry_in", st.backoff)
		}
		st.failing = true
		r.set(name, &entry{v: old.v, source: SourceDIS, updated: old.updated, err: err, counts: old.counts})
		return
	}
	if st.failing || old.v == nil || old.v != v {
		r.log.Info("stream schema loaded", "stream", name, "data_type", v.spec.DataType)
	}
	st.failing, st.backoff = false, 0
	st.due = now.Add(r.cfg.RefreshInterval)
	r.set(name, &entry{v: v, source: SourceDIS, updated: now, counts: old.counts})
}

func (r *Registry) fallback(old *entry) string {
	switch {
	case old.v != nil:
		return "last good schema"
	case r.cfg.NoSchema == NoSchemaReject:
		return "none: rejecting payloads"
	default:
		return "none: accepting payloads unvalidated"
	}
}

// validatorFor compiles the stream's spec, reusing the validator of any
// stream with the same spec: a refresh that finds the schema unchanged
// compiles nothing.
func (r *Registry) validatorFor(name string, fetched StreamSchema) (*Validator, error) {
	opts := r.options[name]
	opts.DataSchemaFile = "" // DIS supplies the schema
	spec, err := opts.spec(&fetched)
	if err != nil {
		return nil, err
	}
	for _, e := range *r.current.Load() {
		if e.v != nil && e.v.spec == spec {
			return e.v, nil
		}
	}
	return Compile(spec)
}
