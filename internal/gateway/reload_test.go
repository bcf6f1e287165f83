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
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
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

	// Four devices publish to a routed and a not-yet-routed topic, in turns,
	// until told to stop; a lost connection is counted.
	const devices = 4
	var drops atomic.Int64
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

	// 1. A new route applies.
	next.Store(withRoute(router.Route{Topic: "sensors/+/data", Stream: "telemetry", PartitionKey: "{topic.2}"}))
	if code, res := postReload(t, r, token); code != 200 || !res.OK() || len(res.Applied) != 1 || res.Applied[0] != "routes" {
		t.Fatalf("reload = %d %+v", code, res)
	}
	settle()
	unroutedAfter := st().Ingest.Unrouted
	waitMore("load after the reload")
	if s := st(); s.Ingest.Unrouted != unroutedAfter {
		t.Fatalf("unrouted grew from %d to %d after the new route applied", unroutedAfter, s.Ingest.Unrouted)
	}

	// 2. An invalid config is refused with its reason; the route stays.
	bad := withRoute(router.Route{Topic: "sensors/#/x", Stream: "telemetry"})
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
	if drops.Load() != 0 || s.MQTT.ClientsConnected != devices {
		t.Fatalf("connections dropped: %d lost, %d connected", drops.Load(), s.MQTT.ClientsConnected)
	}
	if s.Reload.Succeeded != 2 || s.Reload.Failed != 2 {
		t.Fatalf("reload counts %+v", s.Reload)
	}
	if got, want := int64(s.Ingest.Accepted+s.Ingest.Unrouted), total(); got != want {
		t.Fatalf("accepted %d + unrouted %d = %d, want every publish (%d)", s.Ingest.Accepted, s.Ingest.Unrouted, got, want)
	}
}
