package disserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

func authConfig(mode string) func(*Config) {
	return func(c *Config) {
		c.Auth.Mode = mode
		c.Auth.Keys = []KeyConfig{
			{AccessKey: "AKTEST", SecretKey: "SKTEST", Projects: []string{testProject}},
			{AccessKey: "AKALL", SecretKey: "SKALL", Projects: []string{AnyProject}},
		}
		c.Auth.Users = []UserConfig{{Name: "alice", Password: "pw", Domain: "dom", Projects: []string{testProject}}}
	}
}

func (e *env) signWith(ak, sk string) {
	e.sign = func(r *http.Request, body []byte) {
		if err := dis.SignRequest(r, body, ak, sk, e.clock.Now()); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) token(user, password, domain, project string) (string, reply) {
	e.t.Helper()
	saved := e.sign
	e.sign = nil
	defer func() { e.sign = saved }()
	r := e.do("POST", "/v3/auth/tokens", dis.NewPasswordTokenRequest(user, password, domain, project))
	return r.header.Get(dis.HeaderSubjectToken), r
}

func TestAKSK(t *testing.T) {
	e := startEnv(t, authConfig(AuthAKSK))
	t.Run("unsigned request is 401 APIGW.0301", func(t *testing.T) {
		r := e.do("GET", streamsPath, nil)
		if r.status != 401 || r.errCode(t) != "APIGW.0301" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("APIG form signed by the shared signer is accepted", func(t *testing.T) {
		e.signWith("AKTEST", "SKTEST")
		e.createStream("s", 1)
		e.put("s", putEntry{Data: b64("x")})
	})
	t.Run("scoped legacy DIS SDK form is accepted", func(t *testing.T) {
		e.sign = func(r *http.Request, body []byte) {
			if err := dis.SignRequestScoped(r, body, "AKTEST", "SKTEST", "cn-north-4", e.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
		e.mustStatus(200, e.do("GET", streamsPath+"/s/", nil))
		e.put("s", putEntry{Data: b64("y")})
	})
	t.Run("X-Sdk-Content-Sha256 cannot vouch for a body other than the signed one", func(t *testing.T) {
		signed := []byte(`{"stream_name":"s","records":[{"data":"` + b64("good") + `"}]}`)
		sum := sha256.Sum256(signed)
		e.sign = func(r *http.Request, _ []byte) {
			if err := dis.SignRequest(r, signed, "AKTEST", "SKTEST", e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			r.Header.Set(dis.HeaderContentSha256, hex.EncodeToString(sum[:]))
		}
		r := e.do("POST", recordsPath, []byte(`{"stream_name":"s","records":[{"data":"`+b64("evil")+`"}]}`))
		if r.status != 401 || r.errCode(t) != "APIGW.0301" {
			t.Fatalf("swapped body: %d %s", r.status, r.body)
		}
		// The same header with the body it names verifies.
		r = e.do("POST", recordsPath, signed)
		e.mustStatus(200, r)
	})
	t.Run("wrong secret is 401", func(t *testing.T) {
		e.signWith("AKTEST", "WRONG")
		if r := e.do("GET", streamsPath, nil); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("unknown access key is 401", func(t *testing.T) {
		e.signWith("AKNOPE", "SKTEST")
		if r := e.do("GET", streamsPath, nil); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("X-Sdk-Date 16 minutes old is 401", func(t *testing.T) {
		e.sign = func(r *http.Request, body []byte) {
			_ = dis.SignRequest(r, body, "AKTEST", "SKTEST", e.clock.Now().Add(-16*time.Minute))
		}
		if r := e.do("GET", streamsPath, nil); r.status != 401 || !strings.Contains(r.errMsg(t), "X-Sdk-Date") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("a key for another project is 403 and reads nothing", func(t *testing.T) {
		e.signWith("AKTEST", "SKTEST")
		r := e.do("GET", "/v2/otherproj/streams", nil)
		if r.status != 403 || r.errCode(t) != "DIS.4116" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r = e.do("POST", "/v2/otherproj/records", putBody("s", putEntry{Data: b64("z")}))
		if r.status != 403 {
			t.Fatalf("write to another project: %d %s", r.status, r.body)
		}
	})
	t.Run("projects are separate namespaces even for a key allowed in both", func(t *testing.T) {
		e.signWith("AKALL", "SKALL")
		r := e.do("GET", "/v2/otherproj/streams/s", nil)
		if r.status != 400 || r.errCode(t) != "DIS.4301" {
			t.Fatalf("stream s of %s visible from otherproj: %d %s", testProject, r.status, r.body)
		}
		cur := e.cursor("s", "0", dis.CursorTrimHorizon)
		r = e.do("GET", "/v2/otherproj/records?partition-cursor="+cur, nil)
		if r.status != 400 || r.errCode(t) != "DIS.4301" {
			t.Fatalf("cursor of %s read from otherproj: %d %s", testProject, r.status, r.body)
		}
		// Apps and checkpoints are per project too.
		e.mustStatus(201, e.do("POST", appsPath, map[string]any{"app_name": "a"}))
		e.mustStatus(201, e.do("POST", checkpointsPath, commitBody("a", "s", "0", "1")))
		for _, path := range []string{"/v2/otherproj/apps/a", "/v2/otherproj/checkpoints?app_name=a&stream_name=s&partition_id=0&checkpoint_type=LAST_READ"} {
			if r := e.do("GET", path, nil); r.status != 400 || r.errCode(t) != "DIS.4332" {
				t.Fatalf("GET %s: %d %s", path, r.status, r.body)
			}
		}
		if r := e.do("POST", "/v2/otherproj/checkpoints", commitBody("a", "s", "0", "0")); r.status != 400 || r.errCode(t) != "DIS.4332" {
			t.Fatalf("commit into otherproj: %d %s", r.status, r.body)
		}
		var l dis.ListAppsResponse
		e.mustStatus(200, e.do("GET", "/v2/otherproj/apps", nil)).decode(t, &l)
		if len(l.Apps) != 0 || l.TotalNumber != 0 {
			t.Fatalf("apps of %s listed in otherproj: %+v", testProject, l)
		}
		var cp dis.GetCheckpointResponse
		e.mustStatus(200, e.do("GET", checkpointsPath+"?app_name=a&stream_name=s&partition_id=0&checkpoint_type=LAST_READ", nil)).decode(t, &cp)
		if cp.SequenceNumber != "1" {
			t.Fatalf("checkpoint in %s changed: %+v", testProject, cp)
		}
	})
	t.Run("tokens are refused in aksk mode", func(t *testing.T) {
		e.sign = nil
		if r := e.do("POST", "/v3/auth/tokens", dis.NewPasswordTokenRequest("alice", "pw", "dom", testProject)); r.status != 404 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestAKSKFromEnvironment(t *testing.T) {
	t.Setenv(EnvAccessKey, "AKENV")
	t.Setenv(EnvSecretKey, "SKENV")
	e := startEnv(t, func(c *Config) { c.Auth.Mode = AuthAKSK })
	e.signWith("AKENV", "SKENV")
	e.mustStatus(200, e.do("GET", "/v2/anyproject/streams", nil))
	e.mustStatus(200, e.do("GET", streamsPath, nil))
}

func TestTokens(t *testing.T) {
	e := startEnv(t, authConfig(AuthToken))
	var tok string
	t.Run("password token for a configured user", func(t *testing.T) {
		var r reply
		tok, r = e.token("alice", "pw", "dom", testProject)
		if r.status != 201 || tok == "" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var tr dis.TokenResponse
		r.decode(t, &tr)
		exp, err := time.Parse("2006-01-02T15:04:05.000000Z", tr.Token.ExpiresAt)
		if err != nil || !exp.Equal(e.clock.Now().Add(24*time.Hour)) || tr.Token.Project.ID != testProject || tr.Token.User.Name != "alice" {
			t.Fatalf("token body %s (%v)", r.body, err)
		}
	})
	authed := func(tok string) []string { return []string{dis.HeaderAuthToken, tok} }
	runCases(t, e, []apiCase{
		{name: "token grants its project", method: "POST", path: streamsPath, hdr: authed(tok), body: map[string]any{"stream_name": "s", "partition_count": 1}, status: 201},
		{name: "token for another project is 403", method: "GET", path: "/v2/otherproj/streams", hdr: authed(tok), status: 403, code: "DIS.4116"},
		{name: "no token is 401", method: "GET", path: streamsPath, status: 401, code: "APIGW.0301"},
		{name: "forged token is 401", method: "GET", path: streamsPath, hdr: authed(tok[:len(tok)-2] + "xx"), status: 401},
		{name: "garbage token is 401", method: "GET", path: streamsPath, hdr: authed("abc"), status: 401},
		{name: "wrong password is 401", method: "POST", path: "/v3/auth/tokens", body: dis.NewPasswordTokenRequest("alice", "bad", "dom", testProject), status: 401},
		{name: "unknown user is 401", method: "POST", path: "/v3/auth/tokens", body: dis.NewPasswordTokenRequest("bob", "pw", "dom", testProject), status: 401},
		{name: "scope outside the user's projects is 403", method: "POST", path: "/v3/auth/tokens", body: dis.NewPasswordTokenRequest("alice", "pw", "dom", "otherproj"), status: 403},
		{name: "scope is required", method: "POST", path: "/v3/auth/tokens", body: dis.NewPasswordTokenRequest("alice", "pw", "dom", ""), status: 400, code: "DIS.4300"},
		{name: "token endpoint needs POST", method: "GET", path: "/v3/auth/tokens", status: 405},
		// IAM's own body has members this server does not use (ids, MFA,
		// scope.domain); an IAM client sending them still gets its token.
		{name: "IAM members the server does not use are ignored", method: "POST", path: "/v3/auth/tokens", body: map[string]any{
			"auth": map[string]any{
				"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
					"name": "alice", "password": "pw", "id": "", "domain": map[string]any{"name": "dom", "id": "d-1"}}}},
				"scope": map[string]any{"project": map[string]any{"name": testProject, "domain": map[string]any{"name": "dom"}}}}}, status: 201},
	})
	t.Run("token survives a restart", func(t *testing.T) {
		e = e.restart()
		e.mustStatus(200, e.do("GET", streamsPath, nil, authed(tok)...))
	})
	t.Run("token expires after 24 hours", func(t *testing.T) {
		e.clock.Advance(24*time.Hour - time.Second)
		e.mustStatus(200, e.do("GET", streamsPath, nil, authed(tok)...))
		e.clock.Advance(time.Second)
		if r := e.do("GET", streamsPath, nil, authed(tok)...); r.status != 401 || !strings.Contains(r.errMsg(t), "expired") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("AK/SK is refused in token mode", func(t *testing.T) {
		e.signWith("AKTEST", "SKTEST")
		if r := e.do("GET", streamsPath, nil); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestAuthAnyAcceptsBoth(t *testing.T) {
	e := startEnv(t, authConfig(AuthAny))
	tok, r := e.token("alice", "pw", "dom", testProject)
	e.mustStatus(201, r)
	e.mustStatus(200, e.do("GET", streamsPath, nil, dis.HeaderAuthToken, tok))
	e.signWith("AKTEST", "SKTEST")
	e.mustStatus(200, e.do("GET", streamsPath, nil))
	e.sign = nil
	if r := e.do("GET", streamsPath, nil); r.status != 401 {
		t.Fatalf("%d", r.status)
	}
}

func TestAuthNoneAcceptsAnything(t *testing.T) {
	e := startEnv(t, nil)
	e.mustStatus(200, e.do("GET", "/v2/anyone/streams", nil))
	e.mustStatus(200, e.do("GET", streamsPath, nil, "Authorization", "SDK-HMAC-SHA256 garbage"))
}

// TestAuthNoneIsLoggedLoudly: auth none warns at startup, and says more when
// the server listens beyond loopback; the other modes do not warn.
func TestAuthNoneIsLoggedLoudly(t *testing.T) {
	cases := []struct {
		name, listen string
		mutate       func(*Config)
		want         []string // substrings of the one WARN line; nil: no warning
	}{
		{"none on loopback", "127.0.0.1:9180", nil, []string{"auth: none", "local development"}},
		{"none on every interface", "0.0.0.0:9180", nil, []string{"auth: none", "non-loopback", "0.0.0.0:9180"}},
		{"aksk", "0.0.0.0:9180", authConfig(AuthAKSK), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			cfg.Listen = tc.listen
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			var buf strings.Builder
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			s, err := New(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			out := buf.String()
			mu.Unlock()
			if tc.want == nil {
				if strings.Contains(out, "auth: none") {
					t.Fatalf("mode %s warned about auth none: %s", cfg.Auth.Mode, out)
				}
				return
			}
			if !strings.Contains(out, "level=WARN") {
				t.Fatalf("no WARN line: %q", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("warning lacks %q: %s", w, out)
				}
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
