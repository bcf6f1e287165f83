package gateway

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edgegw/internal/admin"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/router"
)

// Reload re-reads the config file and applies what can change without a
// restart: routes and the unmatched stream (swapped atomically; publishes
// being routed finish with the old table), and the MQTT users, ACLs, login
// limit and anonymous policy (connected clients stay connected; every later
// login, publish, subscription and delivery is checked with the new rules). A new
// config that is invalid, or whose routes need a stream the running uplink
// does not drain, is refused with every reason and the running one stays.
// Changed keys that need a restart are reported, not applied.
//
// It is called from the SIGHUP watcher and the admin server, on their
// goroutines; reloads are serialized.
func (g *Gateway) Reload(ctx context.Context) admin.ReloadResult {
	o := g.ops
	o.reloadMu.Lock()
	defer o.reloadMu.Unlock()
	res := g.reloadLocked()
	o.reload.LastTime = time.Now()
	if res.OK() {
		o.reload.Succeeded++
		o.reload.LastError = ""
	} else {
		o.reload.Failed++
		o.reload.LastError = strings.Join(res.Errors, "; ")
	}
	g.logReload(res)
	return res
}

func (g *Gateway) reloadLocked() admin.ReloadResult {
	o := g.ops
	if o.load == nil {
		return admin.ReloadResult{Errors: []string{"this gateway was started without a config file, so there is nothing to reload"}}
	}
	select {
	case <-g.ready:
	default:
		return admin.ReloadResult{Errors: []string{"the gateway is still starting; reload again once it is ready"}}
	}
	next, err := o.load()
	if err != nil {
		return admin.ReloadResult{Errors: errorLines(err)}
	}
	cur := o.running

	// Check everything before applying anything, so a refusal changes nothing.
	var res admin.ReloadResult
	drained := map[string]bool{}
	for _, s := range g.cfg.Streams {
		drained[s.Name] = true
	}
	for i, r := range next.Routing.Routes {
		if r.Stream != "" && !drained[r.Stream] {
			res.Errors = append(res.Errors, fmt.Sprintf("routes[%d].stream: %q is a stream the running gateway does not drain; adding a stream needs a restart", i, r.Stream))
		}
	}
	if u := next.Routing.Unmatched.Stream; u != "" && !drained[u] {
		res.Errors = append(res.Errors, fmt.Sprintf("unmatched.stream: %q is a stream the running gateway does not drain; adding a stream needs a restart", u))
	}
	if _, err := router.New(next.Routing); err != nil {
		res.Errors = append(res.Errors, errorLines(err)...)
	}
	if !res.OK() {
		return res
	}

	// Apply: users and ACLs first, since that can still refuse (and then
	// changes nothing); router.Reload cannot fail on a config router.New accepted.
	if !reflect.DeepEqual(cur.MQTT.AuthConfig(), next.MQTT.AuthConfig()) {
		if err := g.ReloadAuth(next); err != nil {
			return admin.ReloadResult{Errors: errorLines(err)}
		}
		res.Applied = append(res.Applied, "mqtt users and acl")
	}
	if !reflect.DeepEqual(cur.Routing, next.Routing) {
		if err := g.router.Reload(next.Routing); err != nil {
			return admin.ReloadResult{Errors: errorLines(err)}
		}
		res.Applied = append(res.Applied, "routes")
	}
	res.RestartNeeded = restartNeeded(g.cfg, next)
	o.running = next
	return res
}

// restartNeeded lists the top-level sections that differ from the config the
// gateway started with and that a reload does not apply.
func restartNeeded(started, next config.Config) []string {
	// The mqtt keys reload applies do not count.
	started.MQTT.MQTTAuth, next.MQTT.MQTTAuth = config.MQTTAuth{}, config.MQTTAuth{}
	started.MQTT.Anonymous, next.MQTT.Anonymous = "", ""
	var keys []string
	a, b := reflect.ValueOf(started), reflect.ValueOf(next)
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			continue // inline: the routes, which reload applies
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	return keys
}

// errorLines splits a joined (and possibly multi-line) error into its lines.
func errorLines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = []string{fmt.Sprintf("%T with no message", err)}
	}
	return out
}
