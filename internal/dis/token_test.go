package dis_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
)

const (
	project  = "proj1"
	password = "s3cr3t-P@ssw0rd-never-logged"
)

// clock is a settable clock shared by the server and the signer.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// tokenRoundTripper counts token requests and can make IAM unreachable.
type tokenRoundTripper struct {
	fetches atomic.Int32
	down    atomic.Bool
	tokens  sync.Map // every token IAM issued
}

func (t *tokenRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/v3/auth/tokens") {
		t.fetches.Add(1)
		if t.down.Load() {
			return nil, errors.New("dial tcp: connect: connection refused")
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		if tok := resp.Header.Get(dis.HeaderSubjectToken); tok != "" {
			t.tokens.Store(tok, true)
		}
	}
	return resp, err
}

type tokenEnv struct {
	clk    *clock
	srvOff atomic.Int64 // extra time only the server sees
	rt     *tokenRoundTripper
	signer *dis.TokenSigner
	client *dis.Client
	base   string
}

func newTokenEnv(t *testing.T, pw string, protobuf bool) *tokenEnv {
	t.Helper()
	clk := newClock()
	e := &tokenEnv{clk: clk}
	sc := disserver.DefaultConfig()
	sc.DataDir = filepath.Join(t.TempDir(), "dis")
	sc.FlowControl.Enabled = false
	sc.Auth.Mode = disserver.AuthToken
	sc.Auth.Users = []disserver.UserConfig{{Name: "edge", Password: password, Domain: "acme", Projects: []string{project}}}
	sc.Clock = func() time.Time { return clk.now().Add(time.Duration(e.srvOff.Load())) }
	srv, err := disserver.New(sc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	base := "http://" + ln.Addr().String()
	rt := &tokenRoundTripper{}
	signer, err := dis.NewTokenSigner(dis.TokenConfig{IAMEndpoint: base, User: "edge", Password: pw, Domain: "acme", ProjectID: project,
		HTTPClient: &http.Client{Transport: rt}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	client, err := dis.NewClient(dis.ClientConfig{Endpoint: base, ProjectID: project, Signer: signer, Protobuf: protobuf})
	if err != nil {
		t.Fatal(err)
	}
	e.rt, e.signer, e.client, e.base = rt, signer, client, base
	return e
}

// signerClockSkew moves the server's clock ahead of the signer's.
func (e *tokenEnv) signerClockSkew(t *testing.T, d time.Duration) { e.srvOff.Store(int64(d)) }

func (e *tokenEnv) list(t *testing.T) error {
	t.Helper()
	_, err := e.client.ListStreams(context.Background(), "", 10)
	return err
}

// One token serves every request until 80% of its 24 h lifetime has passed;
// then it is replaced, before it expires.
func TestTokenIsCachedAndRefreshedBeforeExpiry(t *testing.T) {
	e := newTokenEnv(t, password, false)
	for i := 0; i < 5; i++ {
		if err := e.list(t); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.rt.fetches.Load(); n != 1 {
		t.Fatalf("%d token fetches for 5 requests, want 1", n)
	}
	st := e.signer.Status()
	if !st.Valid || st.Expires.Sub(e.clk.now()) < 23*time.Hour || st.RefreshAt.Sub(e.clk.now()) != time.Duration(0.8*float64(24*time.Hour)) {
		t.Fatalf("status after the first fetch: %+v", st)
	}
	e.clk.advance(19 * time.Hour) // 79%: still the same token
	if err := e.list(t); err != nil || e.rt.fetches.Load() != 1 {
		t.Fatalf("at 19h: err %v, %d fetches", err, e.rt.fetches.Load())
	}
	e.clk.advance(time.Hour) // 83%: refreshed
	if err := e.list(t); err != nil || e.rt.fetches.Load() != 2 {
		t.Fatalf("at 20h: err %v, %d fetches, want a refresh", err, e.rt.fetches.Load())
	}
	e.clk.advance(10 * time.Hour) // the first token has expired; the second is valid
	if err := e.list(t); err != nil || e.rt.fetches.Load() != 2 {
		t.Fatalf("at 30h: err %v, %d fetches", err, e.rt.fetches.Load())
	}
}

// When IAM fails at refresh time the old token keeps working until shortly
// before it expires, and IAM is asked at most every 10 s; after that the
// fetch error is returned, and the next success recovers.
func TestTokenRefreshFailureKeepsOldTokenThenFails(t *testing.T) {
	e := newTokenEnv(t, password, false)
	if err := e.list(t); err != nil {
		t.Fatal(err)
	}
	e.rt.down.Store(true)
	e.clk.advance(20 * time.Hour)
	for i := 0; i < 10; i++ {
		if err := e.list(t); err != nil {
			t.Fatalf("request %d with a failing refresh: %v", i, err)
		}
	}
	if n := e.rt.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: a failed refresh is retried at most every 10 s", n)
	}
	if st := e.signer.Status(); st.Failures != 1 || !strings.Contains(st.LastError, "connection refused") || !st.Valid {
		t.Fatalf("status %+v", st)
	}
	e.clk.advance(4 * time.Hour) // past the first token's expiry
	err := e.list(t)
	if err == nil || !strings.Contains(err.Error(), "obtain IAM token") {
		t.Fatalf("with no usable token and IAM down: %v", err)
	}
	e.rt.down.Store(false)
	if err := e.list(t); err == nil {
		t.Fatal("IAM was asked again within 10 s of a failure")
	}
	e.clk.advance(11 * time.Second)
	if err := e.list(t); err != nil {
		t.Fatalf("after IAM recovered: %v", err)
	}
}

// Many requests needing a token at once share one fetch.
func TestConcurrentRequestsShareOneTokenFetch(t *testing.T) {
	e := newTokenEnv(t, password, false)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- e.list(t) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.rt.fetches.Load(); n != 1 {
		t.Fatalf("%d token fetches for 20 concurrent requests, want 1", n)
	}
}

// A 401 makes the client drop its token; the next request gets a new one.
func TestInvalidateAuthFetchesANewToken(t *testing.T) {
	e := newTokenEnv(t, password, false)
	if err := e.list(t); err != nil {
		t.Fatal(err)
	}
	e.client.InvalidateAuth()
	if err := e.list(t); err != nil || e.rt.fetches.Load() != 2 {
		t.Fatalf("after InvalidateAuth: err %v, %d fetches, want 2", err, e.rt.fetches.Load())
	}
}

// The password and the tokens appear in no error and no formatting of the
// signer or the client.
func TestCredentialsAreNeverPrinted(t *testing.T) {
	e := newTokenEnv(t, password+"-wrong", false)
	err := e.list(t)
	var de *dis.Error
	if !errors.As(err, &de) || de.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), `user "edge"`) {
		t.Fatalf("wrong password: %v", err)
	}
	good := newTokenEnv(t, password, false)
	if err := good.list(t); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("signer", "signer", good.signer, "client", good.client, "status", good.signer.Status())
	ak := dis.AKSKSigner{AccessKey: "AK1", SecretKey: "SK-very-secret"}
	texts := []string{err.Error(), logged.String(),
		fmt.Sprintf("%v %+v %#v %s", good.signer, good.signer, good.signer, good.signer),
		fmt.Sprintf("%v %+v %#v %s", good.client, good.client, ak, &ak),
		fmt.Sprintf("%+v", e.signer.Status())}
	var tokens []string
	good.rt.tokens.Range(func(k, _ any) bool { tokens = append(tokens, k.(string)); return true })
	if len(tokens) == 0 {
		t.Fatal("no token seen")
	}
	for _, text := range texts {
		for _, secret := range append(tokens, password, "SK-very-secret") {
			if strings.Contains(text, secret) {
				t.Fatalf("a secret (%.6s…) is printed in:\n%s", secret, text)
			}
		}
	}
	if !strings.Contains(texts[2], "user edge") {
		t.Fatalf("the signer's description lacks its user: %s", texts[2])
	}
}

// PutRecords with a protobuf body: records arrive, and per-record errors
// come back decoded.
func TestPutRecordsProtobuf(t *testing.T) {
	e := newTokenEnv(t, password, true)
	ctx := context.Background()
	dur := 24
	if err := e.client.CreateStream(ctx, &dis.CreateStreamRequest{StreamName: "s", PartitionCount: 2, DataDuration: &dur}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.client.PutRecords(ctx, &dis.PutRecordsRequest{StreamName: "s", Records: []dis.PutRecordsRequestEntry{
		{Data: []byte("a\x00\xff"), PartitionKey: "k"},
		{Data: []byte("b"), PartitionID: "7"},
		{Data: []byte("c"), PartitionID: "shardId-0000000001", Timestamp: 1700000000000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.FailedRecordCount != 1 || resp.Records[1].ErrorCode != dis.CodePartitionNotFound ||
		resp.Records[0].SequenceNumber == "" || resp.Records[2].PartitionID != dis.ShardID(1) {
		t.Fatalf("reply %+v", resp)
	}
	cur, err := e.client.GetCursor(ctx, dis.CursorRequest{StreamName: "s", PartitionID: resp.Records[0].PartitionID, CursorType: dis.CursorTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GetRecords(ctx, cur, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) == 0 || string(got.Records[0].Data) != "a\x00\xff" {
		t.Fatalf("read back %+v", got.Records)
	}
}

// A 401 from DIS (here: the token expired by the server's clock while the
// signer still trusted it) drops the token; the next request gets a new one.
func TestUnauthorizedDropsTheToken(t *testing.T) {
	e := newTokenEnv(t, password, false)
	if err := e.list(t); err != nil {
		t.Fatal(err)
	}
	e.signerClockSkew(t, 25*time.Hour)
	if err := e.list(t); err == nil {
		t.Fatal("an expired token was accepted")
	}
	if err := e.list(t); err != nil || e.rt.fetches.Load() != 2 {
		t.Fatalf("after the 401: err %v, %d fetches, want 2", err, e.rt.fetches.Load())
	}
}
