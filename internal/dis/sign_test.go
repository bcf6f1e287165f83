package dis

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// vectorRequest builds the requests of the test vectors in GO-SDK-WIRE.md §4.
func vectorRequest(t testing.TB, method, target string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://127.0.0.1:18080"+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "huaweicloud-usdk-go/3.0; dis-acceptance/1")
	req.Header.Set("X-Project-Id", "proj123")
	req.Header.Set("Content-Type", "application/json")
	return req
}

var vectorTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestSignRequestMatchesGoSDKVectors(t *testing.T) {
	cases := []struct {
		name, method, target string
		body                 []byte
		sig                  string
	}{
		{"GET cursors with a space in the stream name", "GET",
			"/v2/proj123/cursors?stream-name=my%20stream&partition-id=shardId-0000000000&cursor-type=AT_SEQUENCE_NUMBER&starting-sequence-number=42",
			nil, "e5aa2129c147b26d4c65e112f3eab8f4aaf6d1ea833543f1f42eb43c385b98f8"},
		{"POST apps with the SDK's trailing newline", "POST", "/v2/proj123/apps",
			[]byte("{\"app_name\":\"newapp\"}\n"), "f044b4d4d2ee6203998a2c1bb447ed923170b93b09d01aac4b7bc8c82b981edc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := vectorRequest(t, tc.method, tc.target, tc.body)
			if err := SignRequest(req, tc.body, "AKTEST", "SKTEST", vectorTime); err != nil {
				t.Fatal(err)
			}
			want := "SDK-HMAC-SHA256 Access=AKTEST, SignedHeaders=user-agent;x-project-id;x-sdk-date, Signature=" + tc.sig
			if got := req.Header.Get("Authorization"); got != want {
				t.Fatalf("Authorization\n got %s\nwant %s", got, want)
			}
			if req.Header.Get(HeaderSdkDate) != "20250101T000000Z" {
				t.Fatalf("X-Sdk-Date %q", req.Header.Get(HeaderSdkDate))
			}
		})
	}
}

func TestCanonicalRequestMatchesDocumentedForm(t *testing.T) {
	req := vectorRequest(t, "GET", "/v2/proj123/cursors?stream-name=my%20stream&partition-id=shardId-0000000000&cursor-type=AT_SEQUENCE_NUMBER&starting-sequence-number=42", nil)
	req.Header.Set(HeaderSdkDate, "20250101T000000Z")
	want := "GET\n/v2/proj123/cursors/\ncursor-type=AT_SEQUENCE_NUMBER&partition-id=shardId-0000000000&starting-sequence-number=42&stream-name=my%20stream\nuser-agent:huaweicloud-usdk-go/3.0; dis-acceptance/1\nx-project-id:proj123\nx-sdk-date:20250101T000000Z\n\nuser-agent;x-project-id;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := CanonicalRequest(req, nil, []string{"user-agent", "x-project-id", "x-sdk-date"}); got != want {
		t.Fatalf("canonical request\n got %q\nwant %q", got, want)
	}
}

// received turns a signed client request into what a server sees.
func received(t *testing.T, req *http.Request, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(req.Method, req.URL.RequestURI(), bytes.NewReader(body))
	r.Host = req.URL.Host
	for k, v := range req.Header {
		r.Header[k] = v
	}
	return r
}

func TestVerifyRequest(t *testing.T) {
	lookup := func(ak string) (string, bool) {
		if ak == "AKTEST" {
			return "SKTEST", true
		}
		return "", false
	}
	body := []byte(`{"stream_name":"s","records":[{"data":"YQ=="}]}`)
	signAPIG := func(t *testing.T) *http.Request {
		req := vectorRequest(t, "POST", "/v2/proj123/records", body)
		if err := SignRequest(req, body, "AKTEST", "SKTEST", vectorTime); err != nil {
			t.Fatal(err)
		}
		return received(t, req, body)
	}
	signScoped := func(t *testing.T) *http.Request {
		req := vectorRequest(t, "GET", "/v2/proj123/records?partition-cursor=abc%20def", nil)
		req.Header.Set("Host", "dis.example")
		if err := SignRequestScoped(req, nil, "AKTEST", "SKTEST", "cn-north-4", vectorTime); err != nil {
			t.Fatal(err)
		}
		return received(t, req, nil)
	}
	cases := []struct {
		name    string
		req     func(t *testing.T) *http.Request
		body    []byte
		now     time.Time
		wantErr error
	}{
		{"APIG form verifies", signAPIG, body, vectorTime, nil},
		{"scoped legacy form verifies", signScoped, nil, vectorTime, nil},
		{"14 minutes of skew is accepted", signAPIG, body, vectorTime.Add(14 * time.Minute), nil},
		{"16 minutes of skew is refused", signAPIG, body, vectorTime.Add(16 * time.Minute), ErrClockSkew},
		{"a changed body is refused", signAPIG, []byte(`{"stream_name":"t"}`), vectorTime, ErrBadSignature},
		{"an unknown key is refused", func(t *testing.T) *http.Request {
			r := signAPIG(t)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AKTEST", "AKOTHER", 1))
			return r
		}, body, vectorTime, ErrUnknownKey},
		{"a changed signed header is refused", func(t *testing.T) *http.Request {
			r := signAPIG(t)
			r.Header.Set("X-Project-Id", "other")
			return r
		}, body, vectorTime, ErrBadSignature},
		{"a changed query is refused", func(t *testing.T) *http.Request {
			r := signScoped(t)
			r.URL.RawQuery = "partition-cursor=other"
			return r
		}, nil, vectorTime, ErrBadSignature},
		{"no Authorization header", func(t *testing.T) *http.Request {
			return httptest.NewRequest("GET", "/v2/p/streams", nil)
		}, nil, vectorTime, ErrNoSignature},
		{"missing X-Sdk-Date", func(t *testing.T) *http.Request {
			r := signAPIG(t)
			r.Header.Del(HeaderSdkDate)
			return r
		}, body, vectorTime, ErrMissingSdkDate},
		{"a hash header cannot vouch for a different body", func(t *testing.T) *http.Request {
			r := signAPIG(t)
			sum := sha256.Sum256(body) // the signed body's hash, sent with another body
			r.Header.Set(HeaderContentSha256, hex.EncodeToString(sum[:]))
			return r
		}, []byte(`{"stream_name":"evil"}`), vectorTime, ErrBodyHash},
		{"a hash header equal to the body's own hash verifies", func(t *testing.T) *http.Request {
			req := vectorRequest(t, "POST", "/v2/proj123/records", body)
			sum := sha256.Sum256(body)
			req.Header.Set(HeaderContentSha256, hex.EncodeToString(sum[:]))
			if err := SignRequest(req, body, "AKTEST", "SKTEST", vectorTime); err != nil {
				t.Fatal(err)
			}
			return received(t, req, body)
		}, body, vectorTime, nil},
		{"a signed UNSIGNED-PAYLOAD verifies without hashing the body", func(t *testing.T) *http.Request {
			req := vectorRequest(t, "POST", "/v2/proj123/records", body)
			req.Header.Set(HeaderContentSha256, UnsignedPayload)
			if err := SignRequest(req, body, "AKTEST", "SKTEST", vectorTime); err != nil {
				t.Fatal(err)
			}
			return received(t, req, body)
		}, body, vectorTime, nil},
		{"an unsigned UNSIGNED-PAYLOAD is refused", func(t *testing.T) *http.Request {
			req := vectorRequest(t, "POST", "/v2/proj123/records", body)
			req.Header.Set(HeaderContentSha256, UnsignedPayload)
			if err := SignRequest(req, body, "AKTEST", "SKTEST", vectorTime); err != nil {
				t.Fatal(err)
			}
			r := received(t, req, body)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";x-sdk-content-sha256", "", 1))
			return r
		}, []byte(`{"stream_name":"evil"}`), vectorTime, ErrUnsignedHeaders},
		{"x-sdk-date must be signed", func(t *testing.T) *http.Request {
			r := signAPIG(t)
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";x-sdk-date", "", 1))
			return r
		}, body, vectorTime, ErrUnsignedHeaders},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyRequest(tc.req(t), tc.body, lookup, tc.now, 15*time.Minute)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	good := []struct {
		in   string
		form AuthForm
		ak   string
	}{
		{"SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=" + sig, FormAccess, "AK1"},
		{"SDK-HMAC-SHA256 Credential=AK2/20250101/cn-north-4/dis/sdk_request, SignedHeaders=host;x-sdk-date, Signature=" + sig, FormCredential, "AK2"},
	}
	for _, g := range good {
		a, err := ParseAuthorization(g.in)
		if err != nil || a.Form != g.form || a.AccessKey != g.ak || len(a.SignedHeaders) != 2 {
			t.Errorf("ParseAuthorization(%q) = %+v, %v", g.in, a, err)
		}
		if a.String() != g.in {
			t.Errorf("String() = %q, want %q", a.String(), g.in)
		}
	}
	bad := []string{
		"", "Basic abc", "SDK-HMAC-SHA256 ", "SDK-HMAC-SHA256 Access=AK",
		"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=xyz",
		"SDK-HMAC-SHA256 Access=AK, Credential=AK/20250101/r/dis/sdk_request, SignedHeaders=host, Signature=" + sig,
		"SDK-HMAC-SHA256 Credential=AK/2025/r/dis/sdk_request, SignedHeaders=host, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK, SignedHeaders=Host, Signature=" + sig,
		"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=" + sig + ", Extra=1",
	}
	for _, in := range bad {
		if _, err := ParseAuthorization(in); err == nil {
			t.Errorf("ParseAuthorization(%q) accepted", in)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=" + strings.Repeat("ab", 32))
	f.Add("SDK-HMAC-SHA256 Credential=AK2/20250101/cn-north-4/dis/sdk_request, SignedHeaders=host, Signature=" + strings.Repeat("0", 64))
	f.Add("SDK-HMAC-SHA256 ,,,==")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err != nil {
			return
		}
		// Whatever parses must round-trip.
		b, err := ParseAuthorization(a.String())
		if err != nil || b.AccessKey != a.AccessKey || b.Signature != a.Signature || len(b.SignedHeaders) != len(a.SignedHeaders) {
			t.Fatalf("round trip of %q: %+v vs %+v (%v)", h, a, b, err)
		}
	})
}

func FuzzVerifyRequest(f *testing.F) {
	f.Add("SDK-HMAC-SHA256 Access=AKTEST, SignedHeaders=user-agent;x-project-id;x-sdk-date, Signature="+strings.Repeat("ab", 32), "20250101T000000Z", "a=b&c", []byte("{}"))
	f.Fuzz(func(t *testing.T, auth, date, query string, body []byte) {
		r := httptest.NewRequest("POST", "/v2/p/records", bytes.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Authorization", auth)
		r.Header.Set(HeaderSdkDate, date)
		_, err := VerifyRequest(r, body, func(string) (string, bool) { return "SK", true }, vectorTime, 15*time.Minute)
		if err == nil {
			t.Fatalf("a random signature verified: %q", auth)
		}
	})
}
