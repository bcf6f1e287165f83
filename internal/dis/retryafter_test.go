package dis_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// A 429 or 503 carries its Retry-After (seconds or an HTTP date) into
// Error.RetryAfter, which the uplink waits at least; a missing or malformed
// header gives 0 (the uplink's own backoff then applies).
func TestRetryAfterHeaderReachesTheError(t *testing.T) {
	cases := []struct {
		status     int
		header     string
		min, limit time.Duration
	}{
		{429, "7", 7 * time.Second, 7 * time.Second},
		{503, "0", 0, 0},
		{429, time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat), 80 * time.Second, 90 * time.Second},
		{429, "", 0, 0},
		{429, "soon", 0, 0},
		{429, "-3", 0, 0},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.header != "" {
				w.Header().Set("Retry-After", c.header)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.status)
			w.Write([]byte(`{"error_code":"DIS.4303","error_msg":"Exceeded traffic control limit."}`))
		}))
		cl, err := dis.NewClient(dis.ClientConfig{Endpoint: srv.URL, ProjectID: "p"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.PutRecords(context.Background(), &dis.PutRecordsRequest{StreamName: "s", Records: []dis.PutRecordsRequestEntry{{Data: []byte("x")}}})
		srv.Close()
		var de *dis.Error
		if !errors.As(err, &de) {
			t.Fatalf("%d Retry-After %q: error %v is not a *dis.Error", c.status, c.header, err)
		}
		if de.Status != c.status || de.Code != dis.CodeTrafficControl || de.RetryAfter < c.min || de.RetryAfter > c.limit {
			t.Fatalf("%d Retry-After %q: got status %d code %s RetryAfter %s, want %s..%s", c.status, c.header, de.Status, de.Code, de.RetryAfter, c.min, c.limit)
		}
	}
}
