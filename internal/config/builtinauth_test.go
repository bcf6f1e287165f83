package config

import (
	"testing"

	"github.com/edgegw/edgegw/internal/disserver"
)

// TestBuiltinAuthMode: a file states dis.builtin.auth.mode, or configures
// credentials and gets any; Go callers of Default keep none.
func TestBuiltinAuthMode(t *testing.T) {
	t.Setenv(disserver.EnvAccessKey, "")
	t.Setenv(disserver.EnvSecretKey, "")
	cfg, err := Load("testdata/builtin-auth.good.yml")
	if err != nil || cfg.DIS.Builtin.Server.Auth.Mode != disserver.AuthAny {
		t.Fatalf("credentials without a mode: %q, %v; want any", cfg.DIS.Builtin.Server.Auth.Mode, err)
	}
	cfg, err = Load("testdata/minimal.good.yml")
	if err != nil || cfg.DIS.Builtin.Server.Auth.Mode != disserver.AuthNone {
		t.Fatalf("explicit none: %q, %v", cfg.DIS.Builtin.Server.Auth.Mode, err)
	}
	if _, err := Load("testdata/builtin-auth.bad.yml"); err == nil {
		t.Fatal("no mode and no credentials accepted")
	}
	t.Setenv(disserver.EnvAccessKey, "AKENV")
	t.Setenv(disserver.EnvSecretKey, "SKENV")
	cfg, err = Load("testdata/builtin-auth.bad.yml")
	if err != nil || cfg.DIS.Builtin.Server.Auth.Mode != disserver.AuthAny {
		t.Fatalf("environment key pair without a mode: %q, %v; want any", cfg.DIS.Builtin.Server.Auth.Mode, err)
	}
	// A disabled built-in server needs no mode.
	if _, err := Parse([]byte("streams: [{name: s}]\nroutes: [{topic: a, stream: s}]\ndis: {endpoint: 'http://127.0.0.1:1', builtin: {enabled: false}}\n")); err != nil {
		t.Fatalf("disabled built-in server: %v", err)
	}
	if m := Default().DIS.Builtin.Server.Auth.Mode; m != disserver.AuthNone {
		t.Fatalf("Default() (Go callers) has mode %q, want none", m)
	}
}
