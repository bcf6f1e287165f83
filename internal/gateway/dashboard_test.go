package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegw/edgegw/internal/mqtttest"
	"github.com/edgegw/edgegw/internal/router"
)

// chromium returns Debian's chromium, failing the test when it is missing and
// EDGEGW_REQUIRE_TOOLS is set (as in CI), skipping it otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("EDGEGW_REQUIRE_TOOLS") != "" {
			t.Fatal("chromium is required (EDGEGW_REQUIRE_TOOLS is set) but not installed; apt-get install chromium")
		}
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	return p
}

// browser starts a headless Chromium for one test and collects everything the
// page reports as an error: console.error, uncaught exceptions, and entries of
// the browser log at level error (a failed load, a refused connection).
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		// Without these Chromium dials out on its own, and this machine's
		// closed network refuses those connections noisily.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	// Open the tab first, so the console subscription sees the page from its start.
	if err := chromedp.Do(ctx); err != nil {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}

	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return // the context ended
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				mu.Lock()
				problems = append(problems, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancelTimeout(); <-done; cancelCtx(); cancelAlloc() })
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

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
	ctx, problems := browser(t)

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
