package dis

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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
	f.Add("V11-HMAC-SHA256 Credential=AK3/20250101/cn-north-4/dis/sdk_request, SignedHeaders=host;x-sdk-date, Signature=" + strings.Repeat("cd", 32))
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err != nil {
			return
		}
		// Whatever parses must round-trip.
		b, err := ParseAuthorization(a.String())
		if err != nil || b.Algorithm != a.Algorithm || b.AccessKey != a.AccessKey || b.Signature != a.Signature || len(b.SignedHeaders) != len(a.SignedHeaders) {
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

// The legacy DIS SDKs' signers, written out independently of sign.go from
// their sources (Python models/disauth.py and utils/hkdf.py; Java
// DefaultSigner, SignUtil, SignerConstants), to check that VerifyRequest
// accepts what they send.

func hmacHex(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// legacyKey is the SigV4-style chain over "SDK"+secret.
func legacyKey(secret, date, region string) []byte {
	k := hmacHex([]byte("SDK"+secret), date)
	for _, s := range []string{region, "dis", "sdk_request"} {
		k = hmacHex(k, s)
	}
	return k
}

// hkdfKey is utils/hkdf.py getDerKey: HMAC(AK, SK) then HMAC(prk, info||1), hex.
func hkdfKey(ak, sk, info string) string {
	return hex.EncodeToString(hmacHex(hmacHex([]byte(ak), sk), info+"\x01"))
}

// pythonQuote is urllib.parse.quote(s, safe='~').
func pythonQuote(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// pythonSign signs like the Python DIS SDK's Signer.Sign (or, with
// derivation, SignWithDerivationKey): it signs host (without its port, a bug
// of the SDK) and x-sdk-date, writes an empty query value as a bare key, and
// sends the request with the real Host afterwards.
func pythonSign(req *http.Request, body []byte, query map[string]string, ak, sk, region string, t time.Time, derivation bool) {
	date := t.UTC().Format("20060102T150405Z")
	host, _, _ := strings.Cut(req.URL.Host, ":")
	var segs []string
	for _, v := range strings.Split(req.URL.Path, "/") {
		if v != "" {
			segs = append(segs, pythonQuote(v))
		}
	}
	uri := "/" + strings.Join(segs, "/") + "/"
	var kv []string
	for k, v := range query {
		if v == "" {
			kv = append(kv, pythonQuote(k))
		} else {
			kv = append(kv, pythonQuote(k)+"="+pythonQuote(v))
		}
	}
	slices.Sort(kv)
	sum := sha256.Sum256(body)
	canonical := req.Method + "\n" + uri + "\n" + strings.Join(kv, "&") + "\nhost:" + host + "\nx-sdk-date:" + date + "\n\nhost;x-sdk-date\n" + hex.EncodeToString(sum[:])
	alg, secret := "SDK-HMAC-SHA256", sk
	if derivation {
		alg, secret = "V11-HMAC-SHA256", hkdfKey(ak, sk, date[:8]+"/"+region+"/dis")
	}
	scope := date[:8] + "/" + region + "/dis/sdk_request"
	crSum := sha256.Sum256([]byte(canonical))
	sts := alg + "\n" + date + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	sig := hex.EncodeToString(hmacHex(legacyKey(secret, date[:8], region), sts))
	req.Header.Set("X-Sdk-Date", date)
	req.Header.Set("Authorization", alg+" Credential="+ak+"/"+scope+", SignedHeaders=host;x-sdk-date, Signature="+sig)
	q := url.Values{}
	for k, v := range query {
		q.Set(k, v)
	}
	req.URL.RawQuery = q.Encode()
}

// javaV11Sign signs like the Java DIS SDK's DefaultSigner with the
// derivation-key switch on: V11-HMAC-SHA256, host with its port, the SK
// itself (derivedInfoRegion "") or SignUtil.signWithDerivationKey's HKDF key
// whose info holds the literal word "region".
func javaV11Sign(req *http.Request, body []byte, ak, sk, region string, t time.Time, derivedInfoRegion string) {
	date := t.UTC().Format("20060102T150405Z")
	req.Header.Set("X-Sdk-Date", date)
	signed := []string{"content-type", "host", "x-project-id", "x-sdk-date"}
	var hdrs strings.Builder
	for _, h := range signed {
		v := req.Header.Get(h)
		if h == "host" {
			v = req.URL.Host
		}
		hdrs.WriteString(h + ":" + v + "\n")
	}
	sum := sha256.Sum256(body)
	canonical := req.Method + "\n" + req.URL.Path + "\n" + req.URL.RawQuery + "\n" + hdrs.String() + "\n" + strings.Join(signed, ";") + "\n" + hex.EncodeToString(sum[:])
	secret := sk
	if derivedInfoRegion != "" {
		secret = hkdfKey(ak, sk, date[:8]+"/"+derivedInfoRegion+"/dis")
	}
	scope := date[:8] + "/" + region + "/dis/sdk_request"
	crSum := sha256.Sum256([]byte(canonical))
	sts := "V11-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	sig := hex.EncodeToString(hmacHex(legacyKey(secret, date[:8], region), sts))
	req.Header.Set("Authorization", "V11-HMAC-SHA256 Credential="+ak+"/"+scope+", SignedHeaders="+strings.Join(signed, ";")+", Signature="+sig)
}

func TestVerifyLegacySDKSigners(t *testing.T) {
	lookup := func(ak string) (string, bool) { return "SKTEST", ak == "AKTEST" }
	body := []byte(`{"stream_name":"s","records":[{"data":"YQ=="}]}`)
	newReq := func(method, path string, b []byte) *http.Request {
		req, err := http.NewRequest(method, "http://127.0.0.1:20004"+path, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
		req.Header.Set("X-Project-Id", "proj123")
		return req
	}
	cases := []struct {
		name    string
		req     func() (*http.Request, []byte)
		sent    []byte // body the server receives; nil: the signed one
		wantErr error
	}{
		{"Python: empty query value, Host signed without its port", func() (*http.Request, []byte) {
			r := newReq("GET", "/v2/proj123/streams/s/", nil)
			pythonSign(r, nil, map[string]string{"limit_partitions": "1000", "start_partitionId": ""}, "AKTEST", "SKTEST", "cn-north-4", vectorTime, false)
			return r, nil
		}, nil, nil},
		{"Python: POST records", func() (*http.Request, []byte) {
			r := newReq("POST", "/v2/proj123/records/", body)
			pythonSign(r, body, nil, "AKTEST", "SKTEST", "cn-north-4", vectorTime, false)
			return r, body
		}, nil, nil},
		{"Python: SignWithDerivationKey (V11, HKDF key)", func() (*http.Request, []byte) {
			r := newReq("POST", "/v2/proj123/records/", body)
			pythonSign(r, body, nil, "AKTEST", "SKTEST", "cn-north-4", vectorTime, true)
			return r, body
		}, nil, nil},
		{"Python: a changed body is refused", func() (*http.Request, []byte) {
			r := newReq("POST", "/v2/proj123/records/", body)
			pythonSign(r, body, nil, "AKTEST", "SKTEST", "cn-north-4", vectorTime, false)
			return r, body
		}, []byte(`{"stream_name":"t"}`), ErrBadSignature},
		{"Java: V11 with the SK (derivation switch on, the default)", func() (*http.Request, []byte) {
			r := newReq("POST", "/v2/proj123/records/", body)
			javaV11Sign(r, body, "AKTEST", "SKTEST", "cn-north-4", vectorTime, "")
			return r, body
		}, nil, nil},
		{"Java: V11 with signWithDerivationKey's HKDF key", func() (*http.Request, []byte) {
			r := newReq("GET", "/v2/proj123/cursors/?cursor-type=LATEST&partition-id=0&stream-name=s", nil)
			javaV11Sign(r, nil, "AKTEST", "SKTEST", "cn-north-4", vectorTime, "region")
			return r, nil
		}, nil, nil},
		{"Java: V11 with a wrong SK is refused", func() (*http.Request, []byte) {
			r := newReq("POST", "/v2/proj123/records/", body)
			javaV11Sign(r, body, "AKTEST", "WRONG", "cn-north-4", vectorTime, "")
			return r, body
		}, nil, ErrBadSignature},
		{"V11 with Access= is malformed", func() (*http.Request, []byte) {
			r := newReq("GET", "/v2/proj123/streams/", nil)
			if err := SignRequest(r, nil, "AKTEST", "SKTEST", vectorTime); err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SDK-HMAC-SHA256", "V11-HMAC-SHA256", 1))
			return r, nil
		}, nil, ErrMalformedAuth},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, signedBody := tc.req()
			sent := signedBody
			if tc.sent != nil {
				sent = tc.sent
			}
			_, err := VerifyRequest(received(t, req, sent), sent, lookup, vectorTime, 15*time.Minute)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}
