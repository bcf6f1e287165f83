package disserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgegw/edgegw/internal/dis"
)

const tokenPrefix = "EGW1." // version tag of our token format

// tokenClaims is the signed content of an issued token. Tokens are stateless
// (HMAC with a key persisted in the store), so they survive restarts.
type tokenClaims struct {
	User    string `json:"u"`
	Domain  string `json:"d,omitempty"`
	Project string `json:"p"`
	Issued  int64  `json:"iat"`
	Expires int64  `json:"exp"`
}

func errUnauthorized(format string, args ...any) *dis.Error {
	return &dis.Error{Status: http.StatusUnauthorized, Code: dis.CodeAuthFailed,
		Message: "Incorrect IAM authentication information: " + fmt.Sprintf(format, args...)}
}

func errForbidden(project string) *dis.Error {
	return &dis.Error{Status: http.StatusForbidden, Code: dis.CodeInvalidRBAC,
		Message: fmt.Sprintf("Invalid RBAC. The credential is not allowed to access project %s.", project)}
}

// authenticate checks the request's credentials for projectID: 401 for
// missing or bad credentials, 403 for a project the credential does not own.
func (s *Server) authenticate(r *http.Request, rawBody []byte, projectID string) error {
	mode := s.cfg.Auth.Mode
	if mode == AuthNone {
		return nil
	}
	if tok := r.Header.Get(dis.HeaderAuthToken); tok != "" && (mode == AuthToken || mode == AuthAny) {
		c, err := s.verifyToken(tok)
		if err != nil {
			return err
		}
		if c.Project != projectID {
			return errForbidden(projectID)
		}
		return nil
	}
	if r.Header.Get("Authorization") != "" && (mode == AuthAKSK || mode == AuthAny) {
		lookup := func(ak string) (string, bool) {
			k, ok := s.keys[ak]
			return k.SecretKey, ok
		}
		a, err := dis.VerifyRequest(r, rawBody, lookup, s.now(), s.cfg.Auth.MaxClockSkew)
		if err != nil {
			return errUnauthorized("%v", err)
		}
		if !allowsProject(s.keys[a.AccessKey].Projects, projectID) {
			return errForbidden(projectID)
		}
		return nil
	}
	switch mode {
	case AuthToken:
		return errUnauthorized("X-Auth-Token is missing")
	case AuthAKSK:
		return errUnauthorized("AK/SK signature (Authorization: SDK-HMAC-SHA256 …) is missing")
	default:
		return errUnauthorized("no X-Auth-Token and no AK/SK signature")
	}
}

// issueToken serves POST /v3/auth/tokens for configured users (§3.2).
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request, body []byte) error {
	if s.cfg.Auth.Mode != AuthToken && s.cfg.Auth.Mode != AuthAny {
		return &dis.Error{Status: http.StatusNotFound, Code: "APIGW.0101",
			Message: "Token authentication is not enabled on this server (auth.mode is " + s.cfg.Auth.Mode + ")."}
	}
	var req dis.TokenRequest
	if err := decodeIAMJSON(body, &req); err != nil {
		return err
	}
	id := req.Auth.Identity
	if len(id.Methods) != 1 || id.Methods[0] != "password" {
		return bodyError("auth.identity.methods", `must be ["password"]`)
	}
	u := id.Password.User
	cfgUser, ok := s.users[u.Domain.Name+"\x00"+u.Name]
	if !ok || subtle.ConstantTimeCompare([]byte(cfgUser.Password), []byte(u.Password)) != 1 {
		return errUnauthorized("user name or password is wrong")
	}
	project := req.Auth.Scope.Project.ID
	if project == "" {
		project = req.Auth.Scope.Project.Name
	}
	if project == "" {
		return bodyError("auth.scope.project.id", "is required: tokens are scoped to a project")
	}
	if !allowsProject(cfgUser.Projects, project) {
		return errForbidden(project)
	}
	secret := s.secret
	now := s.now()
	exp := now.Add(s.cfg.Auth.TokenTTL)
	c := tokenClaims{User: u.Name, Domain: u.Domain.Name, Project: project, Issued: now.Unix(), Expires: exp.Unix()}
	tok := signToken(secret, c)
	var resp dis.TokenResponse
	resp.Token.ExpiresAt = exp.UTC().Format("2006-01-02T15:04:05.000000Z")
	resp.Token.IssuedAt = now.UTC().Format("2006-01-02T15:04:05.000000Z")
	resp.Token.Methods = []string{"password"}
	resp.Token.Project.ID, resp.Token.Project.Name = project, project
	resp.Token.User.Name, resp.Token.User.Domain.Name = u.Name, u.Domain.Name
	w.Header().Set(dis.HeaderSubjectToken, tok)
	b, _ := json.Marshal(resp) // strings only
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
	return nil
}

func signToken(secret []byte, c tokenClaims) string {
	payload, _ := json.Marshal(c) // strings and ints
	p := base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tokenPrefix + p))
	return tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verifyToken checks an X-Auth-Token: our format, signature, expiry, and
// that its user is still configured.
func (s *Server) verifyToken(tok string) (tokenClaims, error) {
	var c tokenClaims
	if len(tok) > 4096 {
		return c, errUnauthorized("the token is malformed")
	}
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return c, errUnauthorized("the token is malformed")
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return c, errUnauthorized("the token is malformed")
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(tokenPrefix + p))
	want := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return c, errUnauthorized("the token signature is invalid")
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, errUnauthorized("the token is malformed")
	}
	if s.now().Unix() >= c.Expires {
		return c, errUnauthorized("the token has expired")
	}
	u, ok := s.users[c.Domain+"\x00"+c.User]
	if !ok || !allowsProject(u.Projects, c.Project) {
		return c, errUnauthorized("the token's user is no longer allowed")
	}
	return c, nil
}

// ensureTokenSecret loads or creates the token key at startup, so request
// handling reads it without locks.
func (s *Server) ensureTokenSecret() error {
	if s.secret != nil {
		return nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := s.syncUpdate(func(txn *badger.Txn) error { return txn.Set([]byte(keySecret), key) }); err != nil {
		return fmt.Errorf("store token key: %w", err)
	}
	s.secret = key
	return nil
}
