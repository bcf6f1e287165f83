package gateway

import (
	"fmt"
	"os"
	"strings"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/uplink"
)

// tokenSigner builds the IAM token signer of dis.auth.mode token. The user
// and password come from the environment first (EDGEGW_DIS_USER,
// EDGEGW_DIS_PASSWORD), then the password file, then the config file; they
// are never logged. Tokens come from dis.auth.iam_endpoint, or from the DIS
// endpoint itself (the built-in server serves the token API).
func tokenSigner(c config.DIS, endpoint string) (*dis.TokenSigner, error) {
	a := c.Auth
	user, pw := a.User, a.Password
	if a.PasswordFile != "" {
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("dis.auth.password_file: %w", err)
		}
		pw = strings.TrimSpace(string(b))
	}
	if v := os.Getenv(config.EnvDISUser); v != "" {
		user = v
	}
	if v := os.Getenv(config.EnvDISPassword); v != "" {
		pw = v
	}
	if user == "" || pw == "" {
		return nil, fmt.Errorf("dis.auth.mode is token but the user or password is empty; set dis.auth.user and dis.auth.password (or password_file), or the environment variables %s and %s", config.EnvDISUser, config.EnvDISPassword)
	}
	iam := a.IAMEndpoint
	if iam == "" {
		iam = endpoint
	}
	s, err := dis.NewTokenSigner(dis.TokenConfig{IAMEndpoint: iam, User: user, Password: pw, Domain: a.Domain, ProjectID: c.ProjectID, HTTPClient: nil})
	if err != nil {
		return nil, fmt.Errorf("dis.auth: %w", err)
	}
	return s, nil
}

// UplinkStats returns the uplink's per-stream counters and state (nil before
// Ready). Safe to call from any goroutine.
func (g *Gateway) UplinkStats() map[string]uplink.Stats {
	if u := g.uplinkIfStarted(); u != nil {
		return u.Stats()
	}
	return nil
}

// UplinkState returns the worst DIS reachability over all streams: online,
// degraded or offline ("" before Ready).
func (g *Gateway) UplinkState() uplink.State {
	if u := g.uplinkIfStarted(); u != nil {
		return u.State()
	}
	return ""
}

// DISTokenStatus returns the IAM token's state when dis.auth.mode is token.
func (g *Gateway) DISTokenStatus() (dis.TokenStatus, bool) {
	select {
	case <-g.ready:
	default:
		return dis.TokenStatus{}, false
	}
	if s, ok := g.client.Signer().(*dis.TokenSigner); ok {
		return s.Status(), true
	}
	return dis.TokenStatus{}, false
}

func (g *Gateway) uplinkIfStarted() *uplink.Uplink {
	select {
	case <-g.ready:
		return g.uplink
	default:
		return nil
	}
}
