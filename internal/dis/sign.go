package dis

// AK/SK request signing, shared by the client (which signs) and the
// DIS-compatible server (which verifies), so both sides compute the canonical
// request with the same code. Two signing forms exist (COMPAT-NOTES fact 9,
// GO-SDK-WIRE.md §4):
//
//   - APIG form, sent by the v3 SDKs:
//     SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex(HMAC(SK, StringToSign))
//   - scoped form, sent by the legacy DIS SDKs (Java, Python, go-dis):
//     SDK-HMAC-SHA256 Credential=AK/yyyyMMdd/region/dis/sdk_request, SignedHeaders=…, Signature=…
//     with a SigV4-style derived key HMAC(HMAC(HMAC(HMAC("SDK"+SK, yyyyMMdd), region), "dis"), "sdk_request")
//     and the scope as an extra line of the string to sign.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Signing constants.
const (
	SignAlgorithm = "SDK-HMAC-SHA256"
	// SignAlgorithmV11 is the scoped form's algorithm name when the Java DIS
	// SDK signs with its derivation-key switch on (its default when
	// derivation.key.switch is unset) and in the Python SDK's
	// SignWithDerivationKey: same canonical request and scope, this name in
	// the header and the string to sign.
	SignAlgorithmV11      = "V11-HMAC-SHA256"
	HeaderSdkDate         = "X-Sdk-Date"
	HeaderContentSha256   = "X-Sdk-Content-Sha256"
	SdkDateFormat         = "20060102T150405Z"
	UnsignedPayload       = "UNSIGNED-PAYLOAD"
	scopeService          = "dis"
	scopeTerminal         = "sdk_request"
	maxSignedHeaders      = 64   // a real request signs 3-6; more is an attack on the parser
	maxAuthorizationBytes = 4096 // an Authorization header is ~200 bytes
)

// Errors returned by VerifyRequest and ParseAuthorization. All of them mean
// "authentication failed" (HTTP 401); they differ only for logs.
var (
	ErrNoSignature     = errors.New("no SDK-HMAC-SHA256 Authorization header")
	ErrMalformedAuth   = errors.New("malformed Authorization header")
	ErrUnknownKey      = errors.New("unknown access key")
	ErrBadSignature    = errors.New("signature does not match")
	ErrClockSkew       = errors.New("X-Sdk-Date is too far from the server clock")
	ErrMissingSdkDate  = errors.New("X-Sdk-Date header is missing or malformed")
	ErrScopeMismatch   = errors.New("credential scope does not match X-Sdk-Date or service")
	ErrUnsignedHeaders = errors.New("required header is not signed")
	ErrBodyHash        = errors.New("X-Sdk-Content-Sha256 does not match the body")
)

// AuthForm tells the two signing forms apart.
type AuthForm int

// Signing forms.
const (
	FormAccess     AuthForm = iota + 1 // APIG: Access=AK
	FormCredential                     // legacy DIS SDK: Credential=AK/date/region/dis/sdk_request
)

// Authorization is a parsed SDK-HMAC-SHA256 Authorization header.
type Authorization struct {
	Form AuthForm
	// Algorithm is SignAlgorithm, or SignAlgorithmV11 (FormCredential only).
	Algorithm     string
	AccessKey     string
	Date          string // yyyyMMdd of the scope (FormCredential only)
	Region        string // region of the scope (FormCredential only)
	SignedHeaders []string
	Signature     string // lower-case hex
}

// ParseAuthorization parses an Authorization header value in either form.
func ParseAuthorization(h string) (Authorization, error) {
	var a Authorization
	if len(h) > maxAuthorizationBytes {
		return a, fmt.Errorf("%w: %d bytes", ErrMalformedAuth, len(h))
	}
	h = strings.TrimSpace(h)
	a.Algorithm = SignAlgorithm
	rest, ok := strings.CutPrefix(h, SignAlgorithm+" ")
	if !ok {
		if rest, ok = strings.CutPrefix(h, SignAlgorithmV11+" "); !ok {
			return a, ErrNoSignature
		}
		a.Algorithm = SignAlgorithmV11
	}
	var haveSig, haveHeaders bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("%w: %q is not key=value", ErrMalformedAuth, part)
		}
		switch k {
		case "Access":
			if a.Form != 0 || v == "" {
				return a, fmt.Errorf("%w: Access", ErrMalformedAuth)
			}
			a.Form, a.AccessKey = FormAccess, v
		case "Credential":
			if a.Form != 0 {
				return a, fmt.Errorf("%w: both Access and Credential", ErrMalformedAuth)
			}
			f := strings.Split(v, "/")
			if len(f) != 5 || f[0] == "" || len(f[1]) != 8 || f[3] != scopeService || f[4] != scopeTerminal {
				return a, fmt.Errorf("%w: Credential must be AK/yyyyMMdd/region/dis/sdk_request", ErrMalformedAuth)
			}
			a.Form, a.AccessKey, a.Date, a.Region = FormCredential, f[0], f[1], f[2]
		case "SignedHeaders":
			if haveHeaders || v == "" {
				return a, fmt.Errorf("%w: SignedHeaders", ErrMalformedAuth)
			}
			haveHeaders = true
			a.SignedHeaders = strings.Split(v, ";")
			if len(a.SignedHeaders) > maxSignedHeaders {
				return a, fmt.Errorf("%w: %d signed headers", ErrMalformedAuth, len(a.SignedHeaders))
			}
			for _, name := range a.SignedHeaders {
				if name == "" || name != strings.ToLower(name) {
					return a, fmt.Errorf("%w: signed header %q must be lower-case and non-empty", ErrMalformedAuth, name)
				}
			}
		case "Signature":
			if haveSig || len(v) != 64 {
				return a, fmt.Errorf("%w: Signature must be 64 hex digits", ErrMalformedAuth)
			}
			if _, err := hex.DecodeString(v); err != nil {
				return a, fmt.Errorf("%w: Signature is not hex", ErrMalformedAuth)
			}
			haveSig = true
			a.Signature = strings.ToLower(v)
		default:
			return a, fmt.Errorf("%w: unknown part %q", ErrMalformedAuth, k)
		}
	}
	if a.Form == 0 || !haveHeaders || !haveSig {
		return a, fmt.Errorf("%w: want Access or Credential, SignedHeaders and Signature", ErrMalformedAuth)
	}
	if a.Algorithm == SignAlgorithmV11 && a.Form != FormCredential {
		return a, fmt.Errorf("%w: %s needs Credential=AK/yyyyMMdd/region/dis/sdk_request", ErrMalformedAuth, SignAlgorithmV11)
	}
	return a, nil
}

// String formats the header value.
func (a Authorization) String() string {
	id := "Access=" + a.AccessKey
	if a.Form == FormCredential {
		id = "Credential=" + a.AccessKey + "/" + a.Date + "/" + a.Region + "/" + scopeService + "/" + scopeTerminal
	}
	alg := a.Algorithm
	if alg == "" {
		alg = SignAlgorithm
	}
	return alg + " " + id + ", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + a.Signature
}

// SignRequest signs req in the APIG form exactly as the official Go SDK v3
// does (GO-SDK-WIRE.md §4): it sets X-Sdk-Date from now, signs every header
// already on req except Content-Type and names containing '_', and sets
// Authorization. body must be the exact bytes that will be sent (after any
// compression); nil means no body.
func SignRequest(req *http.Request, body []byte, ak, sk string, now time.Time) error {
	if ak == "" || sk == "" {
		return errors.New("sign request: empty access key or secret key")
	}
	req.Header.Set(HeaderSdkDate, now.UTC().Format(SdkDateFormat))
	a := Authorization{Form: FormAccess, Algorithm: SignAlgorithm, AccessKey: ak, SignedHeaders: headersToSign(req)}
	sts := stringToSign(req, payloadHash(req, body), a, req.Header.Get(HeaderSdkDate), canonOpts{})
	a.Signature = hex.EncodeToString(hmacSHA256([]byte(sk), sts))
	req.Header.Set("Authorization", a.String())
	return nil
}

// SignRequestScoped signs req in the legacy DIS SDK form
// (Credential=AK/yyyyMMdd/region/dis/sdk_request), as go-dis and the Java and
// Python DIS SDKs do.
func SignRequestScoped(req *http.Request, body []byte, ak, sk, region string, now time.Time) error {
	if ak == "" || sk == "" || region == "" || strings.Contains(region, "/") {
		return errors.New("sign request: empty access key, secret key or region")
	}
	date := now.UTC().Format(SdkDateFormat)
	req.Header.Set(HeaderSdkDate, date)
	a := Authorization{Form: FormCredential, Algorithm: SignAlgorithm, AccessKey: ak, Date: date[:8], Region: region, SignedHeaders: headersToSign(req)}
	sts := stringToSign(req, payloadHash(req, body), a, date, canonOpts{})
	a.Signature = hex.EncodeToString(hmacSHA256(scopedKey(sk, a.Date, region), sts))
	req.Header.Set("Authorization", a.String())
	return nil
}

// AKSKSigner signs client requests in the APIG form. It implements Signer.
type AKSKSigner struct {
	AccessKey string
	SecretKey string
	// Now returns the signing time; nil means time.Now.
	Now func() time.Time
}

// Sign implements Signer.
func (s AKSKSigner) Sign(req *http.Request, body []byte) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return SignRequest(req, body, s.AccessKey, s.SecretKey, now())
}

// VerifyRequest checks the AK/SK signature of a received request in either
// form. lookup returns the secret key of an access key. body is the raw body
// as received (compressed bytes if Content-Encoding is set). The X-Sdk-Date
// must be within maxSkew of now. It returns the parsed header so the caller
// can apply per-key policy (projects).
func VerifyRequest(req *http.Request, body []byte, lookup func(ak string) (sk string, ok bool), now time.Time, maxSkew time.Duration) (Authorization, error) {
	h := req.Header.Get("Authorization")
	if h == "" {
		return Authorization{}, ErrNoSignature
	}
	a, err := ParseAuthorization(h)
	if err != nil {
		return a, err
	}
	date := req.Header.Get(HeaderSdkDate)
	t, err := time.Parse(SdkDateFormat, date)
	if err != nil {
		return a, ErrMissingSdkDate
	}
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return a, fmt.Errorf("%w: %s vs %s", ErrClockSkew, date, now.UTC().Format(SdkDateFormat))
	}
	if !containsString(a.SignedHeaders, "x-sdk-date") {
		// Without it a captured request could be replayed forever.
		return a, fmt.Errorf("%w: x-sdk-date", ErrUnsignedHeaders)
	}
	// The canonical request takes the payload hash from X-Sdk-Content-Sha256
	// when present, so the header must not let a body other than the signed
	// one through: a hash must be the body's own, and UNSIGNED-PAYLOAD (the
	// client's explicit choice not to sign the body) counts only if signed.
	if h := req.Header.Get(HeaderContentSha256); h != "" {
		if h == UnsignedPayload {
			if !containsString(a.SignedHeaders, strings.ToLower(HeaderContentSha256)) {
				return a, fmt.Errorf("%w: x-sdk-content-sha256 (UNSIGNED-PAYLOAD)", ErrUnsignedHeaders)
			}
		} else if sum := sha256.Sum256(body); !strings.EqualFold(h, hex.EncodeToString(sum[:])) {
			return a, ErrBodyHash
		}
	}
	sk, ok := lookup(a.AccessKey)
	if !ok {
		return a, ErrUnknownKey
	}
	var keys [][]byte
	if a.Form == FormCredential {
		if a.Date != date[:8] {
			return a, ErrScopeMismatch
		}
		keys = append(keys, scopedKey(sk, a.Date, a.Region))
		if a.Algorithm == SignAlgorithmV11 {
			// The derivation-key variants sign with HKDF(AK, SK, info) in
			// place of SK: Python's info names the region, Java's
			// signWithDerivationKey the literal word "region".
			for _, region := range []string{a.Region, "region"} {
				dk := derivedKey(a.AccessKey, sk, a.Date+"/"+region+"/"+scopeService)
				keys = append(keys, scopedKey(dk, a.Date, a.Region))
			}
		}
	} else {
		keys = append(keys, []byte(sk))
	}
	// Canonicalisation differs between signers in ways the request alone
	// does not reveal, and every variant is unambiguous, so a signature over
	// any of them verifies: go-dis's scoped form escapes a space in the query
	// as '+' (url.QueryEscape) where the others send %20; the Python DIS SDK
	// writes a query key with an empty value as "k" where the others write
	// "k=", and signs the Host without its port (then sends it with one).
	hash := payloadHash(req, body)
	variants := []canonOpts{{}, {plusForSpace: true}}
	if queryHasEmptyValue(req.URL.RawQuery) {
		variants = append(variants, canonOpts{bareEmpty: true})
	}
	if containsString(a.SignedHeaders, "host") {
		if h, _, err := net.SplitHostPort(req.Host); err == nil && h != "" {
			n := len(variants)
			for _, v := range variants[:n] {
				v.host = h
				variants = append(variants, v)
			}
		}
	}
	for _, key := range keys {
		for _, v := range variants {
			sig := hex.EncodeToString(hmacSHA256(key, stringToSign(req, hash, a, date, v)))
			if hmac.Equal([]byte(sig), []byte(a.Signature)) {
				return a, nil
			}
		}
	}
	return a, ErrBadSignature
}

// canonOpts selects a canonicalisation variant (see VerifyRequest).
type canonOpts struct {
	plusForSpace bool   // query escaping as url.QueryEscape
	bareEmpty    bool   // a query key with an empty value is written "k", not "k="
	host         string // value of the host header when set (Host without its port)
}

// queryHasEmptyValue reports whether a raw query holds a key with an empty
// value ("k=" or a bare "k").
func queryHasEmptyValue(raw string) bool {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return false
	}
	for _, vs := range q {
		if slices.Contains(vs, "") {
			return true
		}
	}
	return false
}

// derivedKey is the DIS SDKs' HKDF-SHA256 derivation key (one block, salt
// AK, input SK), hex encoded, used in place of the SK by the V11 variants.
func derivedKey(ak, sk, info string) string {
	prk := hmacSHA256([]byte(ak), sk)
	return hex.EncodeToString(hmacSHA256(prk, info+"\x01"))
}

// payloadHash is the payload line of the canonical request: the
// X-Sdk-Content-Sha256 header if present, else hex(sha256(body)).
func payloadHash(req *http.Request, body []byte) string {
	if h := req.Header.Get(HeaderContentSha256); h != "" {
		return h
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// CanonicalRequest returns the canonical request string for req with the
// given signed headers (exported for tests and debugging of clients).
func CanonicalRequest(req *http.Request, body []byte, signedHeaders []string) string {
	return canonicalRequest(req, payloadHash(req, body), signedHeaders, canonOpts{})
}

func stringToSign(req *http.Request, payload string, a Authorization, date string, o canonOpts) string {
	cr := canonicalRequest(req, payload, a.SignedHeaders, o)
	sum := sha256.Sum256([]byte(cr))
	alg := a.Algorithm
	if alg == "" {
		alg = SignAlgorithm
	}
	if a.Form == FormCredential {
		scope := a.Date + "/" + a.Region + "/" + scopeService + "/" + scopeTerminal
		return alg + "\n" + date + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	}
	return alg + "\n" + date + "\n" + hex.EncodeToString(sum[:])
}

func canonicalRequest(req *http.Request, payload string, signed []string, o canonOpts) string {
	var b strings.Builder
	b.WriteString(req.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(req.URL.Path))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(req.URL.RawQuery, o))
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		if name == "host" && o.host != "" {
			b.WriteString(o.host)
		} else {
			b.WriteString(strings.TrimSpace(headerValue(req, name)))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String()
}

// headerValue returns a header as the signer saw it. Go moves Host out of the
// header map (both on the client and the server) and Content-Length too on
// the client.
func headerValue(req *http.Request, name string) string {
	switch name {
	case "host":
		if req.Host != "" {
			return req.Host
		}
		if req.URL != nil {
			return req.URL.Host
		}
	case "content-length":
		if v := req.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(req.ContentLength, 10)
	}
	return strings.Join(req.Header.Values(name), ",")
}

func headersToSign(req *http.Request) []string {
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "content-type") || strings.Contains(lk, "_") || lk == "authorization" {
			continue
		}
		names = append(names, lk)
	}
	sort.Strings(names)
	return names
}

func canonicalURI(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = escapeUnreserved(s, false)
	}
	p := strings.Join(segs, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func canonicalQuery(raw string, o canonOpts) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		// A query Go cannot parse was not built by an SDK; signing the raw
		// text makes verification fail instead of guessing.
		return raw
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vals := append([]string(nil), q[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			if v == "" && o.bareEmpty {
				parts = append(parts, escapeUnreserved(k, o.plusForSpace))
				continue
			}
			parts = append(parts, escapeUnreserved(k, o.plusForSpace)+"="+escapeUnreserved(v, o.plusForSpace))
		}
	}
	if o.bareEmpty {
		sort.Strings(parts) // Python sorts the joined "k=v" strings
	}
	return strings.Join(parts, "&")
}

// escapeUnreserved percent-encodes every byte except A-Z a-z 0-9 - _ . ~ with
// upper-case hex. With plusForSpace it matches url.QueryEscape instead.
func escapeUnreserved(s string, plusForSpace bool) string {
	if plusForSpace {
		return url.QueryEscape(s)
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func scopedKey(sk, date, region string) []byte {
	k := hmacSHA256([]byte("SDK"+sk), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, scopeService)
	return hmacSHA256(k, scopeTerminal)
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
