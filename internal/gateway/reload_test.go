package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/admin"
	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/router"
)

// postReload asks the admin API to reload and decodes its answer.
func postReload(t *testing.T, r *running, token string) (int, admin.ReloadResult) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+r.gw.AdminAddr().String()+"/api/v1/reload", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var res admin.ReloadResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("reload answer %q: %v", body, err)
	}
	return resp.StatusCode, res
}

// Routes change under load: devices keep publishing through two reloads that
// apply and two that are refused; no connection drops, every publish is
// acknowledged, the new route applies from the reload on, and a refused
// config leaves the running one in place.
func TestReloadUnderLoad(t *testing.T) {
	const token = "reload-test-token"
	base := testConfig(t, t.TempDir())
	base.Admin.Token = token
	// Devices are anonymous (loopback); they may publish anywhere but forbidden/#.
	base.MQTT.ACL = broker.ACLConfig{Default: broker.Allow, Rules: []broker.ACLRule{
		{Anonymous: true, Access: broker.Deny, Publish: []string{"forbidden/#"}}}}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	var drops atomic.Int64 // connections lost, devices and probe
	var next atomic.Pointer[config.Config]
	next.Store(&base)
	r := startGateway(t, base)
	r.gw.SetConfigSource(func() (config.Config, error) {
		c := *next.Load()
		return c, c.Validate()
	})
	withRoute := func(routes ...router.Route) *config.Config {
		c := base
		c.Routing.Routes = append(append([]router.Route(nil), base.Routing.Routes...), routes...)
		return &c
	}

	// probe publishes at QoS 0 (an ACL denial drops it without closing the
	// connection) and then at QoS 1 on the same connection: its ack proves
	// the QoS 0 publish was handled.
	probe := mqtttest.Connect(t, r.mqttAddr(), "probe", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { drops.Add(1) })
	})
	var probeIngested int64 // probe publishes that passed the ACL (all unrouted)
	denied := func(topic string) uint64 {
		t.Helper()
		defer func() { probeIngested++ }() // the sync publish
		before := statusOf(t, r, token).MQTT.ACLDenied.Publish
		probe.Publish(topic, 0, false, []byte("probe"))
		if err := mqtttest.FirstError(mqtttest.PublishAll(probe, []string{"probe/sync"}, [][]byte{[]byte("sync")}, 1, 1, 30*time.Second)); err != nil {
			t.Fatalf("probe sync publish: %v", err)
		}
		n := statusOf(t, r, token).MQTT.ACLDenied.Publish - before
		if n == 0 {
			probeIngested++
		}
		return n
	}

	// Four devices publish to a routed and a not-yet-routed topic, in turns,
	// until told to stop; a lost connection is counted.
	const devices = 4
	var sent [devices]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for d := range devices {
		c := mqtttest.Connect(t, r.mqttAddr(), fmt.Sprintf("dev-%d", d), func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(paho.Client, error) { drops.Add(1) })
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded: at most 5,000 publishes per device even if stop never comes.
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				topic := fmt.Sprintf("devices/d%d/telemetry", d)
				if i%2 == 1 {
					topic = fmt.Sprintf("sensors/s%d/data", d)
				}
				tok := c.Publish(topic, 1, false, payload("d", i))
				if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					errs <- fmt.Errorf("device %d publish %d: %v", d, i, tok.Error())
					return
				}
				sent[d].Add(1)
			}
		}()
	}
	total := func() int64 {
		var n int64
		for d := range devices {
			n += sent[d].Load()
		}
		return n
	}
	waitMore := func(what string) {
		t.Helper()
		from := total()
		waitFor(t, what, time.Minute, func() bool { return total() >= from+200 })
	}
	// settle waits until every device finished two publishes begun after
	// now: none is still being routed with a table from before.
	settle := func() {
		t.Helper()
		var from [devices]int64
		for d := range devices {
			from[d] = sent[d].Load()
		}
		waitFor(t, "every device to publish again", time.Minute, func() bool {
			for d := range devices {
				if sent[d].Load() < from[d]+2 {
					return false
				}
			}
			return true
		})
	}
	st := func() admin.Status { return statusOf(t, r, token) }

	waitMore("load before the reloads")
	if s := st(); s.Ingest.Unrouted == 0 {
		t.Fatal("sensors/... publishes were routed before the reload")
	}
	if n := denied("forbidden/x"); n != 1 {
		t.Fatalf("forbidden/x denied %d times before the reload, want 1", n)
	}
	if n := denied("blocked/x"); n != 0 {
		t.Fatalf("blocked/x denied %d times before the reload, want 0", n)
	}

	// 1. A new route and a new ACL apply together.
	changed := withRoute(router.Route{Topic: "sensors/+/data", Stream: "telemetry", PartitionKey: "{topic.2}"})
	changed.MQTT.ACL = broker.ACLConfig{Default: broker.Allow, Rules: []broker.ACLRule{
		{Anonymous: true, Access: broker.Deny, Publish: []string{"blocked/#"}}}}
	next.Store(changed)
	if code, res := postReload(t, r, token); code != 200 || !res.OK() || strings.Join(res.Applied, ",") != "mqtt users and acl,routes" || len(res.RestartNeeded) != 0 {
		t.Fatalf("reload = %d %+v", code, res)
	}
	if n := denied("forbidden/x"); n != 0 {
		t.Fatalf("forbidden/x denied %d times after the reload allowed it", n)
	}
	if n := denied("blocked/x"); n != 1 {
		t.Fatalf("blocked/x denied %d times after the reload, want 1", n)
	}
	settle()
	unroutedAfter := st().Ingest.Unrouted
	waitMore("load after the reload")
	if s := st(); s.Ingest.Unrouted != unroutedAfter {
		t.Fatalf("unrouted grew from %d to %d after the new route applied", unroutedAfter, s.Ingest.Unrouted)
	}

	// 2. An invalid config is refused with its reason; routes and ACL stay.
	bad := withRoute(router.Route{Topic: "sensors/#/x", Stream: "telemetry"})
	bad.MQTT.ACL = base.MQTT.ACL
	next.Store(bad)
	code, res := postReload(t, r, token)
	if code != http.StatusUnprocessableEntity || res.OK() || !strings.Contains(strings.Join(res.Errors, "\n"), "routes[1].topic") {
		t.Fatalf("bad reload = %d %+v", code, res)
	}
	// 3. So is a route to a stream the running uplink does not drain.
	undrained := withRoute(router.Route{Topic: "sensors/+/data", Stream: "other"})
	undrained.Streams = append(append([]config.Stream(nil), base.Streams...), config.Stream{Name: "other", Create: true, PartitionCount: 1, StreamType: "COMMON", DataType: "BLOB", DataDuration: 24})
	next.Store(undrained)
	code, res = postReload(t, r, token)
	if code != http.StatusUnprocessableEntity || !strings.Contains(strings.Join(res.Errors, "\n"), `"other" is a stream the running gateway does not drain`) {
		t.Fatalf("undrained reload = %d %+v", code, res)
	}
	waitMore("load after the refused reloads")
	if s := st(); s.Ingest.Unrouted != unroutedAfter {
		t.Fatalf("a refused reload changed the routes: unrouted %d, was %d", s.Ingest.Unrouted, unroutedAfter)
	}
	if n := denied("blocked/x"); n != 1 {
		t.Fatal("a refused reload changed the ACL")
	}

	// 4. Back to the first config: the route goes away again.
	next.Store(&base)
	if code, res := postReload(t, r, token); code != 200 || !res.OK() {
		t.Fatalf("reload back = %d %+v", code, res)
	}
	waitMore("load after going back")
	if s := st(); s.Ingest.Unrouted == unroutedAfter {
		t.Fatal("the removed route still applies")
	}

	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := st()
	if drops.Load() != 0 || s.MQTT.ClientsConnected != devices+1 {
		t.Fatalf("connections dropped: %d lost, %d connected", drops.Load(), s.MQTT.ClientsConnected)
	}
	if s.Reload.Succeeded != 2 || s.Reload.Failed != 2 {
		t.Fatalf("reload counts %+v", s.Reload)
	}
	if got, want := int64(s.Ingest.Accepted+s.Ingest.Unrouted), total()+probeIngested; got != want {
		t.Fatalf("accepted %d + unrouted %d = %d, want every publish (%d)", s.Ingest.Accepted, s.Ingest.Unrouted, got, want)
	}
}

// Reload reports exactly the changed sections it cannot apply.
func TestRestartNeededNamesUnappliedSections(t *testing.T) {
	base := testConfig(t, t.TempDir())
	for _, tc := range []struct {
		name   string
		change func(*config.Config)
		want   string
	}{
		{"nothing", func(*config.Config) {}, ""},
		{"routes apply", func(c *config.Config) { c.Routing.Unmatched.Stream = "telemetry" }, ""},
		{"acl applies", func(c *config.Config) { c.MQTT.ACL.Default = broker.Deny }, ""},
		{"anonymous applies", func(c *config.Config) { c.MQTT.Anonymous = "never" }, ""},
		{"listeners need a restart", func(c *config.Config) { c.MQTT.Listeners = nil }, "mqtt"},
		{"buffer and log need a restart", func(c *config.Config) { c.Buffer.MaxBytes *= 2; c.Log.Level = "debug" }, "buffer,log"},
		{"streams need a restart", func(c *config.Config) { c.Streams = nil }, "streams"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := base
			next.MQTT.Listeners = append([]config.Listener(nil), base.MQTT.Listeners...)
			tc.change(&next)
			if got := strings.Join(restartNeeded(base, next), ","); got != tc.want {
				t.Fatalf("restartNeeded = %q, want %q", got, tc.want)
			}
		})
	}
}
