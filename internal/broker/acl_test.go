package broker

import (
	"errors"
	"strings"
	"testing"
)

func mustPattern(t *testing.T, s string) *Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatalf("ParsePattern(%q): %v", s, err)
	}
	return p
}

func TestPatternMatchTopic(t *testing.T) {
	const user, client = "d1", "c-1"
	for _, tc := range []struct {
		pattern, topic string
		want           bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/x", true},
		{"a/+", "a/", true}, // an empty level is a level
		{"a/+", "a", false},
		{"a/+", "a/x/y", false},
		{"a/#", "a", true}, // "#" includes the parent level (MQTT §4.7.1.2)
		{"a/#", "a/x/y", true},
		{"a/#", "ab", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker", false}, // wildcards do not match $ topics (§4.7.2)
		{"+/broker", "$SYS/broker", false},
		{"$SYS/#", "$SYS/broker", true},
		{"devices/%u/#", "devices/d1/telemetry", true},
		{"devices/%u/#", "devices/d2/telemetry", false},
		{"devices/%u/#", "devices/d1", true},
		{"devices/%c/cmd", "devices/c-1/cmd", true},
		{"devices/%c/cmd", "devices/d1/cmd", false},
		{"%u/x", "d1/x", true},
	} {
		got := mustPattern(t, tc.pattern).MatchTopic(tc.topic, user, client)
		if got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.topic, got, tc.want)
		}
	}
}

func TestPatternCoversFilter(t *testing.T) {
	const user, client = "d1", "c-1"
	for _, tc := range []struct {
		pattern, filter string
		want            bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/b", "a/+", false}, // the filter is wider than the pattern
		{"a/+", "a/#", false},
		{"a/#", "a/#", true},
		{"a/#", "a/+/c", true},
		{"a/#", "a", true},
		{"#", "#", true},
		{"#", "$SYS/#", false},
		{"$SYS/#", "$SYS/#", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b", false},
		{"devices/%u/commands", "devices/d1/commands", true},
		{"devices/%u/commands", "devices/+/commands", false}, // never the others' commands
		{"devices/%u/commands", "devices/d2/commands", false},
		{"devices/%u/commands/#", "devices/d1/commands/+", true},
		{"devices/%c/#", "devices/c-1/#", true},
	} {
		got := mustPattern(t, tc.pattern).CoversFilter(tc.filter, user, client)
		if got != tc.want {
			t.Errorf("%q covers %q = %v, want %v", tc.pattern, tc.filter, got, tc.want)
		}
	}
}

// A username or client id that holds a separator or wildcard must not turn
// %u into more than one literal level: user "+" with devices/%u/# would
// otherwise be allowed devices/+/#.
func TestSubstitutionCannotWiden(t *testing.T) {
	p := mustPattern(t, "devices/%u/#")
	for _, user := range []string{"+", "#", "a/b", "", "x\x00"} {
		if p.CoversFilter("devices/+/#", user, "c") || p.CoversFilter("devices/#", user, "c") {
			t.Errorf("user %q widened the pattern to a wildcard subscription", user)
		}
		if p.MatchTopic("devices/a/b/x", user, "c") && user == "a/b" {
			t.Errorf("user %q matched two levels", user)
		}
	}
	c := mustPattern(t, "cmd/%c")
	if c.CoversFilter("cmd/+", "u", "+") {
		t.Errorf("client id + widened cmd/%%c")
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty topic pattern"},
		{"a/#/b", `"#" must be the whole last level`},
		{"a/b#", `"+" and "#" must be whole levels`},
		{"a+/b", `"+" and "#" must be whole levels`},
		{"devices/dev-%u/x", "%u and %c must be whole levels"},
		{"a/%c%u", "%u and %c must be whole levels"},
		{"a\x00b", "NUL"},
		{"\xff", "not valid UTF-8"},
	} {
		_, err := ParsePattern(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePattern(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParsePattern("50%/x"); err != nil {
		t.Errorf("a literal %% is allowed: %v", err)
	}
}

func compile(t *testing.T, c ACLConfig) *acl {
	t.Helper()
	a, errs := compileACL(c)
	if len(errs) > 0 {
		t.Fatalf("compileACL: %v", errors.Join(errs...))
	}
	return a
}

func TestACLRulesAreOrderedFirstMatchWins(t *testing.T) {
	a := compile(t, ACLConfig{Rules: []ACLRule{
		{Users: []string{"d1"}, Access: Deny, Publish: []string{"devices/d1/secret"}},
		{Groups: []string{"devices"}, Publish: []string{"devices/%u/#"}, Subscribe: []string{"devices/%u/commands"}},
		{Users: []string{"ops"}, Publish: []string{"#"}, Subscribe: []string{"#", "$edgegw/deadletter/#"}},
		{Anonymous: true, Subscribe: []string{"public/#"}},
	}})
	d1 := &identity{username: "d1", clientID: "c1", groups: []string{"devices"}}
	d2 := &identity{username: "d2", clientID: "c2", groups: []string{"devices"}}
	ops := &identity{username: "ops", clientID: "o"}
	anon := &identity{clientID: "x", anonymous: true}

	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"d1 publishes under its own subtree", first(a.canPublish(d1, "devices/d1/telemetry")), true},
		{"d1 may not publish under d2", first(a.canPublish(d1, "devices/d2/telemetry")), false},
		{"the earlier deny rule wins over the group allow", first(a.canPublish(d1, "devices/d1/secret")), false},
		{"d2 is not hit by d1's deny", first(a.canPublish(d2, "devices/d2/secret")), true},
		{"d1 subscribes to its command topic", first(a.canSubscribe(d1, "devices/d1/commands")), true},
		{"d1 may not subscribe to every command topic", first(a.canSubscribe(d1, "devices/+/commands")), false},
		{"a shared subscription is checked without its share prefix", first(a.canSubscribe(d1, "$share/g/devices/d1/commands")), true},
		{"ops reads the dead letters explicitly", first(a.canSubscribe(ops, "$edgegw/deadletter/#")), true},
		{"ops's # does not reach $SYS", first(a.canSubscribe(ops, "$SYS/#")), false},
		{"anonymous reads public", first(a.canSubscribe(anon, "public/news")), true},
		{"anonymous publishes nothing (default deny with rules)", first(a.canPublish(anon, "public/news")), false},
		{"group rules do not apply to anonymous", first(a.canPublish(anon, "devices//x")), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if _, rule := a.canPublish(d1, "devices/d1/secret"); rule != 0 {
		t.Errorf("deciding rule = %d, want 0", rule)
	}
}

func first(ok bool, _ int) bool { return ok }

// A deny for one topic under an allowed wider subscription does not refuse
// the subscription; the delivery check keeps the topic away.
func TestPartialDenyIsEnforcedPerDelivery(t *testing.T) {
	a := compile(t, ACLConfig{Default: Allow, Rules: []ACLRule{
		{Users: []string{"*"}, Access: Deny, Subscribe: []string{"devices/+/secret"}},
	}})
	u := &identity{username: "u", clientID: "c"}
	if ok, _ := a.canSubscribe(u, "devices/#"); !ok {
		t.Fatal("devices/# is only partly denied: the subscription is granted")
	}
	if ok, _ := a.canSubscribe(u, "devices/d1/secret"); ok {
		t.Fatal("a subscription wholly inside a deny is refused")
	}
	if ok, _ := a.canReceive(u, "devices/d1/secret"); ok {
		t.Fatal("delivery of a denied topic is refused")
	}
	if ok, _ := a.canReceive(u, "devices/d1/telemetry"); !ok {
		t.Fatal("delivery of other topics is allowed")
	}
}

func TestACLDefaults(t *testing.T) {
	id := &identity{username: "u", clientID: "c"}
	if ok, _ := compile(t, ACLConfig{}).canPublish(id, "x"); !ok {
		t.Error("no rules: everything is allowed")
	}
	withRules := ACLConfig{Rules: []ACLRule{{Users: []string{"other"}, Publish: []string{"#"}}}}
	if ok, _ := compile(t, withRules).canPublish(id, "x"); ok {
		t.Error("rules given: what they do not allow is denied")
	}
	withRules.Default = Allow
	if ok, _ := compile(t, withRules).canPublish(id, "x"); !ok {
		t.Error("default: allow")
	}
}

func TestACLConfigErrorsNameTheirKey(t *testing.T) {
	_, errs := compileACL(ACLConfig{Default: "maybe", Rules: []ACLRule{
		{Publish: []string{"a"}},
		{Users: []string{"u"}},
		{Users: []string{"u"}, Access: "sometimes", Publish: []string{"a/#/b"}, Subscribe: []string{"x/dev%u"}},
	}})
	got := errors.Join(errs...).Error()
	for _, want := range []string{
		`acl.default: "maybe": want allow or deny`,
		`acl.rules[0]: says nobody it applies to`,
		`acl.rules[1]: has neither publish nor subscribe topics`,
		`acl.rules[2].access: "sometimes"`,
		`acl.rules[2].publish[0]: "a/#/b"`,
		`acl.rules[2].subscribe[0]: "x/dev%u"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if len(errs) != 6 {
		t.Errorf("got %d errors, want 6:\n%s", len(errs), got)
	}
}

// FuzzACLPattern: no pattern, topic or identity crashes the parser or the
// matchers, a parsed pattern's text round-trips, and a topic name a pattern
// matches is also covered as a one-topic filter (the two checks agree).
func FuzzACLPattern(f *testing.F) {
	for _, s := range []string{"#", "+", "a/+/c", "devices/%u/#", "devices/%c/cmd", "$SYS/#", "a/#/b", "%u", "/", "//", "a/b#"} {
		f.Add(s, "devices/d1/cmd", "d1", "c1")
	}
	f.Add("+/+", "$x/y", "+", "#")
	f.Fuzz(func(t *testing.T, pattern, topic, user, client string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		if p.String() != pattern {
			t.Fatalf("String() = %q, want %q", p.String(), pattern)
		}
		m := p.MatchTopic(topic, user, client)
		if strings.ContainsAny(topic, "+#") || topic == "" {
			_ = p.CoversFilter(topic, user, client)
			return
		}
		if c := p.CoversFilter(topic, user, client); c != m {
			t.Fatalf("pattern %q, topic %q (user %q, client %q): MatchTopic %v but CoversFilter %v", pattern, topic, user, client, m, c)
		}
	})
}

// The ACL check runs on every publish and every delivery: its cost with a
// realistic rule set (a deny, the fleet rule, 48 per-user rules).
func BenchmarkACLPublishCheck(b *testing.B) {
	rules := []ACLRule{{Users: []string{"d1"}, Access: Deny, Publish: []string{"devices/d1/secret"}}}
	for i := 0; i < 48; i++ {
		rules = append(rules, ACLRule{Users: []string{"ops" + string(rune('a'+i%26))}, Publish: []string{"ops/+/x", "ops/%u/#"}})
	}
	rules = append(rules, ACLRule{Groups: []string{"devices"}, Publish: []string{"devices/%u/#"}})
	a, errs := compileACL(ACLConfig{Rules: rules})
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	id := &identity{username: "d7", clientID: "c7", groups: []string{"devices"}}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := a.canPublish(id, "devices/d7/telemetry/temp"); !ok {
			b.Fatal("denied")
		}
	}
}
