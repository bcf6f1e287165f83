package disserver

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
)

func TestShutdownIsIdempotentAndRefusesLateRequests(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler() // embedded the way the gateway may: no Serve
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v2/p/streams", nil))
	if w.Code != 200 {
		t.Fatalf("before shutdown: %d", w.Code)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v2/p/streams", nil))
	if w.Code != 503 {
		t.Fatalf("after shutdown: %d %s", w.Code, w.Body.Bytes())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("Serve after Shutdown left the listener open")
	}
}

func TestSecondServerOnTheSameDirectoryFails(t *testing.T) {
	e := startEnv(t, nil)
	if _, err := New(e.cfg, testLogger(t)); err == nil {
		t.Fatal("a second server opened a data directory in use")
	}
}
