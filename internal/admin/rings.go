package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ring keeps the last n items. It is safe for concurrent use.
type ring[T any] struct {
	mu    sync.Mutex
	items []T
	next  int
	full  bool
}

func newRing[T any](n int) *ring[T] { return &ring[T]{items: make([]T, n)} }

func (r *ring[T]) add(v T) {
	r.mu.Lock()
	r.items[r.next] = v
	r.next = (r.next + 1) % len(r.items)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
}

// list returns the items, oldest first.
func (r *ring[T]) list() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]T(nil), r.items[:r.next]...)
	}
	return append(append([]T(nil), r.items[r.next:]...), r.items[:r.next]...)
}

// RecentErrors keeps the last warnings and errors the gateway logged, for the
// status API and the dashboard. Its Handler tees a logger into it.
type RecentErrors struct{ r *ring[LogEntry] }

// recentErrorsKept: a screenful on the dashboard.
const recentErrorsKept = 20

// NewRecentErrors returns an empty ring.
func NewRecentErrors() *RecentErrors { return &RecentErrors{r: newRing[LogEntry](recentErrorsKept)} }

// List returns the kept entries, oldest first.
func (e *RecentErrors) List() []LogEntry { return e.r.list() }

// Handler returns a handler that passes every record to next and keeps those
// at Warn and above.
func (e *RecentErrors) Handler(next slog.Handler) slog.Handler {
	return &teeHandler{next: next, keep: e}
}

type teeHandler struct {
	next   slog.Handler
	keep   *RecentErrors
	prefix string // groups opened with WithGroup, as "a.b."
	attrs  string // attributes added with WithAttrs, formatted
}

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(h.attrs)
		r.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, h.prefix, a)
			return true
		})
		h.keep.r.add(LogEntry{Time: r.Time, Level: r.Level.String(), Message: r.Message, Attrs: strings.TrimSpace(b.String())})
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		appendAttr(&b, h.prefix, a)
	}
	return &teeHandler{next: h.next.WithAttrs(as), keep: h.keep, prefix: h.prefix, attrs: b.String()}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &teeHandler{next: h.next.WithGroup(name), keep: h.keep, prefix: h.prefix + name + ".", attrs: h.attrs}
}

func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			appendAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	fmt.Fprintf(b, "%s%s=%q ", prefix, a.Key, a.Value.String())
}

// DeadLetters counts dead letters and keeps the last few for the dashboard.
type DeadLetters struct {
	r        *ring[DeadLetter]
	mu       sync.Mutex
	total    uint64
	bySource map[string]uint64
}

// Dead letters kept, and how much of each record's data the preview shows:
// enough to recognise a payload without holding megabytes.
const (
	deadLettersKept = 20
	previewBytes    = 200
)

// NewDeadLetters returns an empty counter.
func NewDeadLetters() *DeadLetters {
	return &DeadLetters{r: newRing[DeadLetter](deadLettersKept), bySource: map[string]uint64{}}
}

// Add records one dead letter as published: its topic and JSON body (the
// gateway's dead-letter document). A body that is not such a document is
// counted with source "unknown".
func (d *DeadLetters) Add(topic string, body []byte) {
	var doc struct {
		Stream     string  `json:"stream"`
		Source     string  `json:"source"`
		Code       string  `json:"code"`
		Reason     string  `json:"reason"`
		ClientID   string  `json:"client_id"`
		Data       *string `json:"data"`
		DataBase64 []byte  `json:"data_base64"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Source == "" {
		doc.Source = "unknown"
	}
	dl := DeadLetter{Time: time.Now(), Topic: topic, Stream: doc.Stream, Source: doc.Source, Code: doc.Code,
		Reason: doc.Reason, ClientID: doc.ClientID}
	switch {
	case doc.Data != nil:
		dl.Preview = truncate(*doc.Data, previewBytes)
	case doc.DataBase64 != nil:
		dl.Preview = fmt.Sprintf("(%d bytes of binary data)", len(doc.DataBase64))
	}
	d.mu.Lock()
	d.total++
	d.bySource[dl.Source]++
	d.mu.Unlock()
	d.r.add(dl)
}

// Status returns the counts and the recent dead letters.
func (d *DeadLetters) Status() DeadLetterStatus {
	d.mu.Lock()
	st := DeadLetterStatus{Total: d.total, BySource: make(map[string]uint64, len(d.bySource))}
	for k, v := range d.bySource {
		st.BySource[k] = v
	}
	d.mu.Unlock()
	st.Recent = d.r.list()
	return st
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
