package config

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// EnvAdminToken overrides admin.token, so the token need not be written into
// the config file.
const EnvAdminToken = "EDGEGW_ADMIN_TOKEN"

// Admin configures the admin HTTP server: metrics, health, status, the
// dashboard and reload.
type Admin struct {
	// Listen is the address of the admin HTTP server; empty turns it off.
	Listen string `yaml:"listen"`
	// Token is the bearer token every request but /healthz and /readyz must
	// carry when it is set. It is required when Listen is not a loopback
	// address. EDGEGW_ADMIN_TOKEN overrides it; TokenFile reads it from a file.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// defaultAdmin is the admin section's default.
func defaultAdmin() Admin {
	// 127.0.0.1: nothing outside the box sees the admin API unless asked to;
	// 9181: next to the built-in DIS server's 9180, one port range to remember.
	return Admin{Listen: "127.0.0.1:9181"}
}

// validateAdmin checks the admin section.
func (c *Config) validateAdmin(bad func(key, format string, args ...any)) {
	a := c.Admin
	if a.Listen == "" {
		return
	}
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		bad("admin.listen", "%q is not host:port (%v); e.g. 127.0.0.1:9181, or empty to turn the admin server off", a.Listen, err)
		return
	}
	if a.Token != "" && a.TokenFile != "" {
		bad("admin.token_file", "set either admin.token or admin.token_file, not both")
	}
	if !IsLoopbackHost(host) && a.Token == "" && a.TokenFile == "" && os.Getenv(EnvAdminToken) == "" {
		bad("admin.listen", "%q is reachable from other hosts, so a bearer token is required; set admin.token or admin.token_file (or the environment variable %s), or listen on 127.0.0.1", a.Listen, EnvAdminToken)
	}
}

// AdminToken resolves the admin bearer token: the environment first, then the
// token file, then the config file. Empty means no token.
func (a Admin) AdminToken() (string, error) {
	if v := os.Getenv(EnvAdminToken); v != "" {
		return v, nil
	}
	if a.TokenFile != "" {
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return "", fmt.Errorf("admin.token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("admin.token_file %s is empty; put the bearer token in it", a.TokenFile)
		}
		return tok, nil
	}
	return a.Token, nil
}

// IsLoopbackHost reports whether host (from host:port) can only be reached
// from this machine: a loopback IP or "localhost". An empty host means every
// interface and is not loopback.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
