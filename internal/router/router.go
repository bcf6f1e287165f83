// Package router decides where an MQTT publish goes: which DIS stream, with
// which partition key or partition id, and in which form (the bare payload or
// a JSON envelope with the publish metadata).
//
// Routes are ordered topic filters; the first that matches wins, and a topic
// no route matches is dropped (and counted) or sent to a catch-all stream.
// Filters are indexed in a trie over topic levels, so a lookup costs the same
// with 10 routes or 1,000.
//
// Concurrency: Route is called from the broker's publish hook on each
// publishing client's goroutine, concurrently. It takes no lock and never
// blocks: the compiled routing table is immutable and read through an atomic
// pointer, which Reload replaces whole, so a reload never shows a half-built
// table to a publish in flight.
package router

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// UserProperty is an MQTT 5 user property.
type UserProperty struct {
	Key   string
	Value string
}

// Message is the part of a publish the router reads. The router keeps no
// reference to it after Route returns, except through Result.Data.
type Message struct {
	Topic    string
	ClientID string
	Username string
	QoS      byte
	Payload  []byte
	// UserProperties are copied into the envelope; they are read only by
	// envelope routes, so the broker may leave them nil for others.
	UserProperties []UserProperty
	// Received is when the broker got the publish; the zero time means now.
	Received time.Time
}

// Result is where a message goes.
type Result struct {
	// Matched is true when a configured route matched; RouteIndex is then its
	// index in Config.Routes, and -1 otherwise.
	Matched    bool
	RouteIndex int
	// Stream is the destination stream: the route's, or the unmatched
	// stream. It is empty when the message is to be dropped (no route
	// matched and unmatched.stream is not set); Route has counted the drop.
	Stream string
	// At most one of PartitionKey and PartitionID is set.
	PartitionKey string
	PartitionID  string
	// Data is the record to write: the payload itself (same backing array,
	// not a copy) or the envelope.
	Data []byte
}

// Dropped reports whether the message goes nowhere.
func (r Result) Dropped() bool { return r.Stream == "" }

// KeyError is returned by Route when a partition key template cannot be
// filled from a message: the payload is not JSON, lacks the field, or the
// topic has too few levels. The message cannot be routed as configured, so
// the broker dead-letters it (the Result still names the stream) and gives
// MQTT 5 clients Reason as the reason string.
type KeyError struct {
	RouteIndex int // -1 for the unmatched route
	Stream     string
	Reason     string
}

func (e *KeyError) Error() string {
	if e.RouteIndex < 0 {
		return fmt.Sprintf("unmatched route to stream %s: %s", e.Stream, e.Reason)
	}
	return fmt.Sprintf("route %d to stream %s: %s", e.RouteIndex, e.Stream, e.Reason)
}

type compiledRoute struct {
	stream      string
	key         *template // nil: no key
	partitionID string
	envelope    bool
}

// table is one immutable compiled Config.
type table struct {
	routes    []compiledRoute
	trie      *trie
	unmatched *compiledRoute // nil: drop
	streams   []string
}

// Router routes messages with the table it was last given.
type Router struct {
	table   atomic.Pointer[table]
	dropped atomic.Uint64
}

// New compiles cfg. It returns the same errors as cfg.Validate.
func New(cfg Config) (*Router, error) {
	t, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	r := &Router{}
	r.table.Store(t)
	return r, nil
}

// Reload compiles cfg and, if it is valid, makes it the table for every later
// Route call; publishes already being routed finish with the old table. On
// error the current table stays. The drop counter carries over.
func (r *Router) Reload(cfg Config) error {
	t, err := compile(cfg)
	if err != nil {
		return err
	}
	r.table.Store(t)
	return nil
}

// Dropped returns how many messages matched no route and were dropped since
// New, across reloads.
func (r *Router) Dropped() uint64 { return r.dropped.Load() }

// Streams returns the distinct streams of the current table, in config
// order, the unmatched stream last. The schema registry uses it to know which
// stream schemas to fetch before the first publish.
func (r *Router) Streams() []string { return slices.Clone(r.table.Load().streams) }

// Route returns the destination of m. It is safe for concurrent use and does
// not block. The error, if any, is a *KeyError, and the Result still names
// the matched route and stream so the message can be dead-lettered.
func (r *Router) Route(m *Message) (Result, error) {
	t := r.table.Load()
	res := Result{RouteIndex: -1}
	var cr *compiledRoute
	if idx := t.trie.match(m.Topic); idx != noRoute {
		cr = &t.routes[idx]
		res.Matched, res.RouteIndex = true, int(idx)
	} else if t.unmatched != nil {
		cr = t.unmatched
	} else {
		r.dropped.Add(1)
		return res, nil
	}
	res.Stream = cr.stream
	res.PartitionID = cr.partitionID
	pi := payloadInfo{data: m.Payload}
	if cr.key != nil {
		key, err := cr.key.render(m, &pi)
		if err != nil {
			return res, &KeyError{RouteIndex: res.RouteIndex, Stream: cr.stream, Reason: err.Error()}
		}
		res.PartitionKey = key
	}
	if cr.envelope {
		res.Data = buildEnvelope(m, &pi)
	} else {
		res.Data = m.Payload
	}
	return res, nil
}

func receivedMillis(m *Message) int64 {
	if m.Received.IsZero() {
		return time.Now().UnixMilli()
	}
	return m.Received.UnixMilli()
}

// compile validates cfg and builds its table; every problem is reported.
func compile(cfg Config) (*table, error) {
	var errs []error
	t := &table{trie: newTrie(), routes: make([]compiledRoute, len(cfg.Routes))}
	if len(cfg.Routes) > noRoute-1 {
		return nil, &ConfigError{Key: "routes", Msg: fmt.Sprintf("%d routes, at most %d", len(cfg.Routes), noRoute-1)}
	}
	seen := make(map[string]int, len(cfg.Routes))
	addStream := func(s string) {
		if s != "" && !slices.Contains(t.streams, s) {
			t.streams = append(t.streams, s)
		}
	}
	for i, r := range cfg.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		levels := 0
		if err := validateFilter(r.Topic); err != nil {
			errs = append(errs, &ConfigError{Key: key + ".topic", Msg: err.Error()})
		} else if first, dup := seen[r.Topic]; dup {
			errs = append(errs, &ConfigError{Key: key + ".topic", Msg: fmt.Sprintf("%q is also the filter of routes[%d], which always wins; remove one", r.Topic, first)})
		} else {
			seen[r.Topic] = i
			t.trie.insert(r.Topic, int32(i))
			if n, multi := filterLevels(r.Topic); !multi {
				levels = n
			}
		}
		t.routes[i] = compileRoute(key, r, levels, &errs)
		addStream(r.Stream)
	}
	if u := cfg.Unmatched; u.Stream != "" {
		cr := compileRoute("unmatched", Route{Stream: u.Stream, PartitionKey: u.PartitionKey, PartitionID: u.PartitionID, Envelope: u.Envelope}, 0, &errs)
		t.unmatched = &cr
		addStream(u.Stream)
	} else {
		if u.PartitionKey != "" || u.PartitionID != "" || u.Envelope {
			errs = append(errs, &ConfigError{Key: "unmatched", Msg: "partition_key, partition_id and envelope need unmatched.stream; without a stream unmatched messages are dropped"})
		}
		if len(cfg.Routes) == 0 {
			errs = append(errs, &ConfigError{Key: "routes", Msg: "no routes and no unmatched.stream, so every message would be dropped; add a route or set unmatched.stream"})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}
