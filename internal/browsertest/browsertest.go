// Package browsertest starts Debian's headless chromium for the dashboard's
// browser tests (internal/admin, internal/gateway), driven with chromedp.
package browsertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

// Start starts a headless chromium for one test, with every action bounded
// by timeout, and returns its context and a function listing everything the
// page reported as an error so far: console.error, uncaught exceptions, and
// browser-log errors (a failed load, a refused connection). Without
// chromium the test is skipped, or fails when EDGEGW_REQUIRE_TOOLS is set.
func Start(t testing.TB, timeout time.Duration) (context.Context, func() []string) {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(mqtttest.Tool(t, "chromium")),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		// Without these Chromium dials out on its own, and this machine's
		// closed network refuses those connections noisily.
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
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
