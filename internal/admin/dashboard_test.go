package admin

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegw/edgegw/internal/browsertest"
)

func waitText(t *testing.T, ctx context.Context, sel string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil && ok(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %q (%v) after 30s", sel, s, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Every part of the page renders from a full status (a downlink, warnings,
// not ready), and the login form takes the token when the URL has none.
func TestDashboardRendersEveryPart(t *testing.T) {
	st := fakeStatus()
	st.Errors = []LogEntry{{Time: time.Now(), Level: "ERROR", Message: "uplink: request failed", Attrs: `stream="telemetry" err="EOF"`}}
	st.DeadLetters.Recent = []DeadLetter{{Time: time.Now(), Stream: "telemetry", Source: "dis", Code: "DIS.4226", Reason: "too old", Preview: `{"t":1}`}}
	st.Buffer.Bytes = st.Buffer.MaxBytes
	st.Uplink.Streams["telemetry"] = UplinkStream{State: StateOffline, LastError: "dial tcp: connection refused"}
	s, err := New(Options{Listen: "127.0.0.1:0", Token: "tok", Source: func() Status { return st },
		SampleEvery: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	ctx, problems := browsertest.Start(t, 2*time.Minute)

	// No token yet: the API answers 401 (the browser logs that) and the
	// page asks for the token.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+s.Addr().String()+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login"))); err != nil {
		t.Fatalf("login form: %v", err)
	}
	for _, p := range problems() {
		if !strings.Contains(p, "401") {
			t.Fatalf("unexpected page error before login: %s", p)
		}
	}
	before := len(problems())
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), "tok"), chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.CSS("#main"))); err != nil {
		t.Fatalf("log in: %v", err)
	}

	waitText(t, ctx, "#ready", func(s string) bool { return s == "not ready" })
	waitText(t, ctx, "#ready-reasons", func(s string) bool { return strings.Contains(s, "DIS is unreachable for stream(s) [telemetry]") })
	waitText(t, ctx, "#clients", func(s string) bool { return s == "3" })
	waitText(t, ctx, "#received", func(s string) bool { return s == "15" })
	waitText(t, ctx, "#uplink", func(s string) bool {
		return strings.Contains(s, "offline") && strings.Contains(s, "connection refused")
	})
	waitText(t, ctx, "#downlink", func(s string) bool { return strings.Contains(s, "shardId-0000000000") && strings.Contains(s, "42") })
	waitText(t, ctx, "#downlink-summary", func(s string) bool { return strings.Contains(s, "running") })
	waitText(t, ctx, "#errors", func(s string) bool { return strings.Contains(s, "uplink: request failed") })
	waitText(t, ctx, "#dead", func(s string) bool { return strings.Contains(s, "DIS.4226") && strings.Contains(s, `{"t":1}`) })
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#chart-depth polyline").length > 0`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("depth chart not drawn: %v", err)
	}
	if dir := os.Getenv("EDGEGW_SCREENSHOT_DIR"); dir != "" { // for a person to look at
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(dir+"/dashboard-full.png", png, 0o644)
		}
	}
	if p := problems(); len(p) > before {
		t.Fatalf("the page reported errors after login:\n%s", strings.Join(p[before:], "\n"))
	}
}
