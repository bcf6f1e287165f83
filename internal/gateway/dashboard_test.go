package gateway

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegw/edgegw/internal/browsertest"
	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/router"
)

// textOf polls until the element's text satisfies ok, and returns it.
func textOf(t *testing.T, ctx context.Context, sel, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %q after a minute", what, sel, s)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// The dashboard, in a real browser: it loads from the gateway alone (no
// network beyond it), logs in with the token from the URL fragment, shows
// live numbers that change when devices publish, draws its charts, lists the
// uplink and a dead letter, and reports no error of any kind.
func TestDashboardInHeadlessChromium(t *testing.T) {
	const token = "dashboard-test-token"
	cfg := testConfig(t, t.TempDir())
	cfg.Admin.Token = token
	cfg.Routing.Routes = append(cfg.Routing.Routes, router.Route{Topic: "keyed/+", Stream: "telemetry", PartitionKey: "{payload.id}"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	ctx, problems := browsertest.Start(t, 3*time.Minute)

	url := fmt.Sprintf("http://%s/#token=%s", gw.gw.AdminAddr(), token)
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#uplink"))); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	textOf(t, ctx, "#received", "first render", func(s string) bool { return s == "0" })
	textOf(t, ctx, "#gw-id", "gateway id", func(s string) bool { return s == cfg.Gateway.ID })

	pub := mqtttest.Connect(t, gw.mqttAddr(), "dash-pub")
	payloads := make([][]byte, 50)
	for i := range payloads {
		payloads[i] = payload("d1", i)
	}
	if err := mqtttest.FirstError(mqtttest.PublishAll(pub, []string{"devices/d1/telemetry"}, payloads, 1, 16, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.FirstError(mqtttest.PublishAll(pub, []string{"keyed/x"}, [][]byte{[]byte(`{"nokey":true}`)}, 1, 1, time.Minute)); err != nil {
		t.Fatal(err)
	}

	textOf(t, ctx, "#received", "publishes after load", func(s string) bool { return s == "51" })
	textOf(t, ctx, "#sent", "records sent to DIS", func(s string) bool { return s == "50" })
	textOf(t, ctx, "#clients", "clients", func(s string) bool { return s == "1" })
	textOf(t, ctx, "#dead-total", "dead letters", func(s string) bool { return s == "1" })
	textOf(t, ctx, "#dead", "dead letter row", func(s string) bool { return strings.Contains(s, "router") && strings.Contains(s, `{"nokey":true}`) })
	textOf(t, ctx, "#uplink", "uplink row", func(s string) bool { return strings.Contains(s, "telemetry") && strings.Contains(s, "online") })
	textOf(t, ctx, "#ready", "readiness", func(s string) bool { return s == "ready" })

	// The charts have drawn their lines (two samples or more).
	lines, err := chromedp.Run(ctx, chromedp.Poll[int](
		`document.querySelectorAll("#chart-rate polyline").length >= 2 && document.querySelectorAll("#chart-depth polyline").length`,
		chromedp.WithPollingTimeout(time.Minute)))
	if err != nil || lines < 1 {
		t.Fatalf("the charts drew no lines within a minute: %d %v", lines, err)
	}

	if dir := os.Getenv("EDGEGW_SCREENSHOT_DIR"); dir != "" { // for a person to look at
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(dir+"/dashboard.png", png, 0o644)
		}
	}
	if p := problems(); len(p) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(p, "\n"))
	}
}
