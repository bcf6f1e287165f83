package broker

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ACLConfig is the ordered list of access rules. The first rule that applies
// to the client and whose pattern matches the topic decides; when none does,
// Default decides.
type ACLConfig struct {
	// Default is "allow" or "deny". Empty means deny when Rules is not empty
	// and allow when it is: a broker with no rules behaves as before ACLs
	// existed, and one given rules allows only what they allow.
	Default string    `yaml:"default"`
	Rules   []ACLRule `yaml:"rules"`
}

// ACLRule grants or refuses publish and subscribe access to some clients.
//
// The rule applies to a client that is named in Users ("*" names every
// authenticated client), belongs to one of Groups, or is anonymous when
// Anonymous is set. Publish and Subscribe are MQTT topic filters in which a
// whole level "%u" stands for the client's username and "%c" for its client
// id, as in mosquitto: "devices/%u/#" lets each device publish only under its
// own subtree.
type ACLRule struct {
	Users     []string `yaml:"users"`
	Groups    []string `yaml:"groups"`
	Anonymous bool     `yaml:"anonymous"`
	// Access is "allow" (the default) or "deny".
	Access    string   `yaml:"access"`
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// Access values.
const (
	Allow = "allow"
	Deny  = "deny"
)

// identity is who a client is, as far as ACLs are concerned.
type identity struct {
	username  string // "" for an anonymous client
	clientID  string
	groups    []string
	anonymous bool
}

// acl is a compiled ACLConfig. It is immutable.
type acl struct {
	defaultAllow bool
	rules        []aclRule
}

type aclRule struct {
	index     int
	allUsers  bool
	users     []string
	groups    []string
	anonymous bool
	allow     bool
	publish   []*Pattern
	subscribe []*Pattern
}

// compileACL checks c and builds its runtime form. Errors are *ConfigError
// with keys relative to the mqtt section ("acl.rules[2].publish[0]").
func compileACL(c ACLConfig) (*acl, []error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	a := &acl{defaultAllow: len(c.Rules) == 0}
	switch c.Default {
	case "":
	case Allow:
		a.defaultAllow = true
	case Deny:
		a.defaultAllow = false
	default:
		bad("acl.default", "%q: want allow or deny (empty: deny when rules are listed, allow when none are)", c.Default)
	}
	for i, r := range c.Rules {
		key := fmt.Sprintf("acl.rules[%d]", i)
		cr := aclRule{index: i, anonymous: r.Anonymous, groups: r.Groups}
		for _, u := range r.Users {
			if u == "*" {
				cr.allUsers = true
			} else {
				cr.users = append(cr.users, u)
			}
		}
		if len(r.Users) == 0 && len(r.Groups) == 0 && !r.Anonymous {
			bad(key, "says nobody it applies to; set users (\"*\" for every authenticated client), groups or anonymous: true")
		}
		switch r.Access {
		case "", Allow:
			cr.allow = true
		case Deny:
		default:
			bad(key+".access", "%q: want allow (the default) or deny", r.Access)
		}
		if len(r.Publish) == 0 && len(r.Subscribe) == 0 {
			bad(key, "has neither publish nor subscribe topics; list the topic filters it covers")
		}
		for j, f := range r.Publish {
			p, err := ParsePattern(f)
			if err != nil {
				bad(fmt.Sprintf("%s.publish[%d]", key, j), "%v", err)
				continue
			}
			cr.publish = append(cr.publish, p)
		}
		for j, f := range r.Subscribe {
			p, err := ParsePattern(f)
			if err != nil {
				bad(fmt.Sprintf("%s.subscribe[%d]", key, j), "%v", err)
				continue
			}
			cr.subscribe = append(cr.subscribe, p)
		}
		a.rules = append(a.rules, cr)
	}
	return a, errs
}

func (r *aclRule) appliesTo(id *identity) bool {
	if id.anonymous {
		return r.anonymous
	}
	if r.allUsers || slices.Contains(r.users, id.username) {
		return true
	}
	for _, g := range r.groups {
		if slices.Contains(id.groups, g) {
			return true
		}
	}
	return false
}

// canPublish decides whether id may publish to topic (a topic name). It
// returns the index of the deciding rule, or -1 for the default.
func (a *acl) canPublish(id *identity, topic string) (bool, int) {
	return a.decideTopic(id, topic, false)
}

// canReceive decides whether id may receive a message on topic (a topic
// name): the check mochi makes for every delivery to a subscriber.
func (a *acl) canReceive(id *identity, topic string) (bool, int) {
	return a.decideTopic(id, topic, true)
}

// decideTopic is the first rule applying to id whose publish (or, for
// receive, subscribe) patterns match topic.
func (a *acl) decideTopic(id *identity, topic string, receive bool) (bool, int) {
	for i := range a.rules {
		r := &a.rules[i]
		patterns := r.publish
		if receive {
			patterns = r.subscribe
		}
		if len(patterns) == 0 || !r.appliesTo(id) {
			continue
		}
		for _, p := range patterns {
			if p.MatchTopic(topic, id.username, id.clientID) {
				return r.allow, r.index
			}
		}
	}
	return a.defaultAllow, -1
}

// canSubscribe decides whether id may subscribe to filter (which may hold
// wildcards and a $share/{group}/ prefix). A rule decides only when one of
// its patterns covers the whole filter; a rule that covers part of it (an
// allow for devices/+/x under a subscription to devices/#, or a deny for one
// topic) is left to the per-delivery check (canReceive), so a subscription
// to devices/# with a deny for devices/d1/secret is granted and never
// delivers devices/d1/secret.
func (a *acl) canSubscribe(id *identity, filter string) (bool, int) {
	filter = stripShare(filter)
	for i := range a.rules {
		r := &a.rules[i]
		if len(r.subscribe) == 0 || !r.appliesTo(id) {
			continue
		}
		for _, p := range r.subscribe {
			if p.CoversFilter(filter, id.username, id.clientID) {
				return r.allow, r.index
			}
		}
	}
	return a.defaultAllow, -1
}

// stripShare removes the $share/{group}/ prefix of a shared subscription
// (MQTT 5 §4.8.2): access is about the topics, not the share group.
func stripShare(filter string) string {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return filter
	}
	if _, f, ok := strings.Cut(rest, "/"); ok {
		return f
	}
	return filter
}

// Pattern is a compiled ACL topic pattern: an MQTT topic filter whose whole
// levels may be %u (the username) or %c (the client id).
type Pattern struct {
	raw    string
	levels []level
}

type levelKind uint8

const (
	levelLiteral levelKind = iota
	levelPlus              // +
	levelHash              // #, last level only
	levelUser              // %u
	levelClient            // %c
)

type level struct {
	kind levelKind
	lit  string
}

// maxPatternLen is the MQTT limit on a UTF-8 string (two-byte length).
const maxPatternLen = 65535

// ParsePattern compiles an ACL topic pattern. It is the parser of the acl
// config keys and fuzzed (FuzzACLPattern).
func ParsePattern(s string) (*Pattern, error) {
	switch {
	case s == "":
		return nil, errors.New("empty topic pattern; use \"#\" for every topic")
	case len(s) > maxPatternLen:
		return nil, fmt.Errorf("topic pattern is %d bytes, the MQTT limit is %d", len(s), maxPatternLen)
	case !utf8.ValidString(s):
		return nil, errors.New("topic pattern is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return nil, errors.New("topic pattern contains a NUL character")
	}
	p := &Pattern{raw: s}
	parts := strings.Split(s, "/")
	for i, part := range parts {
		switch {
		case part == "+":
			p.levels = append(p.levels, level{kind: levelPlus})
		case part == "#":
			if i != len(parts)-1 {
				return nil, fmt.Errorf("%q: \"#\" must be the whole last level, as in devices/%%u/#", s)
			}
			p.levels = append(p.levels, level{kind: levelHash})
		case part == "%u":
			p.levels = append(p.levels, level{kind: levelUser})
		case part == "%c":
			p.levels = append(p.levels, level{kind: levelClient})
		case strings.ContainsAny(part, "+#"):
			return nil, fmt.Errorf("%q: level %q: \"+\" and \"#\" must be whole levels, as in devices/+/telemetry", s, part)
		case strings.Contains(part, "%u") || strings.Contains(part, "%c"):
			return nil, fmt.Errorf("%q: level %q: %%u and %%c must be whole levels, as in devices/%%u/telemetry", s, part)
		default:
			p.levels = append(p.levels, level{kind: levelLiteral, lit: part})
		}
	}
	return p, nil
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.raw }

// subst is the value a %u or %c level stands for, or ok=false when it cannot
// stand for a level: empty, or holding a separator or wildcard (a username
// "+" must not turn devices/%u/# into devices/+/#).
func subst(v string) (string, bool) {
	if v == "" || strings.ContainsAny(v, "/+#\x00") {
		return "", false
	}
	return v, true
}

// levelMatches reports whether pattern level l matches the topic level t (a
// literal; wildcards are handled by the callers).
func levelMatches(l level, t, user, client string) bool {
	switch l.kind {
	case levelLiteral:
		return l.lit == t
	case levelPlus:
		return true
	case levelUser:
		v, ok := subst(user)
		return ok && v == t
	case levelClient:
		v, ok := subst(client)
		return ok && v == t
	}
	return false
}

// MatchTopic reports whether topic (a topic name, without wildcards) matches
// the pattern for a client with this username and client id. Following MQTT
// (§4.7.2), a pattern starting with a wildcard does not match topics
// starting with "$".
func (p *Pattern) MatchTopic(topic, user, client string) bool {
	if strings.HasPrefix(topic, "$") && p.wildFirst() {
		return false
	}
	pos := 0 // start of the next topic level; -1 once the topic is used up
	for _, l := range p.levels {
		if l.kind == levelHash {
			return true // "a/#" also matches "a" (§4.7.1.2)
		}
		if pos < 0 {
			return false
		}
		lvl := topic[pos:]
		if j := strings.IndexByte(lvl, '/'); j >= 0 {
			lvl, pos = lvl[:j], pos+j+1
		} else {
			pos = -1
		}
		if !levelMatches(l, lvl, user, client) {
			return false
		}
	}
	return pos < 0
}

// CoversFilter reports whether every topic the subscription filter matches
// is matched by the pattern, for a client with this username and client id.
func (p *Pattern) CoversFilter(filter, user, client string) bool {
	if filter == "" || strings.HasPrefix(filter, "$") && p.wildFirst() {
		return false
	}
	fl := strings.Split(filter, "/")
	for i, l := range p.levels {
		if l.kind == levelHash {
			return true // covers whatever follows, a "#" included
		}
		if i >= len(fl) {
			return false // the pattern is longer than every topic of the filter
		}
		switch f := fl[i]; f {
		case "#":
			return false // the filter goes on where the pattern does not
		case "+":
			if l.kind != levelPlus {
				return false
			}
		default:
			if !levelMatches(l, f, user, client) {
				return false
			}
		}
	}
	return len(fl) == len(p.levels)
}

// wildFirst reports whether the first level is a wildcard.
func (p *Pattern) wildFirst() bool {
	k := p.levels[0].kind
	return k == levelPlus || k == levelHash
}
