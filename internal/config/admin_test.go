package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminDefaultIsLoopbackWithoutToken(t *testing.T) {
	a := Default().Admin
	if a.Listen != "127.0.0.1:9181" || a.Token != "" {
		t.Fatalf("admin default = %+v", a)
	}
}

// withRoute makes a config fragment a whole valid file.
const withRoute = "\nstreams: [{name: s1}]\nroutes: [{topic: a/+, stream: s1}]\n" + builtinNoAuth

// builtinNoAuth is what a test file says to run the built-in DIS server
// without credentials (dis.builtin.auth.mode has no default).
const builtinNoAuth = "dis: {builtin: {auth: {mode: none}}}\n"

func TestAdminTokenRequiredOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		ok         bool
	}{
		{"loopback without token", "admin: {listen: 127.0.0.1:9181}", true},
		{"localhost without token", "admin: {listen: localhost:9181}", true},
		{"ipv6 loopback without token", `admin: {listen: "[::1]:9181"}`, true},
		{"off", `admin: {listen: ""}`, true},
		{"all interfaces with token", "admin: {listen: ':9181', token: s3cret}", true},
		{"lan address without token", "admin: {listen: 192.0.2.10:9181}", false},
		{"all interfaces without token", "admin: {listen: ':9181'}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvAdminToken, "")
			_, err := Parse([]byte(tc.yaml + withRoute))
			if (err == nil) != tc.ok {
				t.Fatalf("Parse(%s) = %v, want ok=%v", tc.yaml, err, tc.ok)
			}
		})
	}
	t.Run("environment token is enough", func(t *testing.T) {
		t.Setenv(EnvAdminToken, "from-env")
		if _, err := Parse([]byte("admin: {listen: ':9181'}" + withRoute)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAdminTokenResolution(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvAdminToken, "")
	if tok, err := (Admin{Token: "from-config"}).AdminToken(); err != nil || tok != "from-config" {
		t.Errorf("config token: %q %v", tok, err)
	}
	if tok, err := (Admin{TokenFile: file}).AdminToken(); err != nil || tok != "from-file" {
		t.Errorf("file token: %q %v", tok, err)
	}
	if _, err := (Admin{TokenFile: empty}).AdminToken(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
	if _, err := (Admin{TokenFile: filepath.Join(dir, "missing")}).AdminToken(); err == nil || !strings.Contains(err.Error(), "admin.token_file") {
		t.Errorf("missing token file: %v", err)
	}
	t.Setenv(EnvAdminToken, "from-env")
	if tok, err := (Admin{TokenFile: file}).AdminToken(); err != nil || tok != "from-env" {
		t.Errorf("env token: %q %v", tok, err)
	}
}
