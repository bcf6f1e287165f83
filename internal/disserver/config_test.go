package disserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigFileGood(t *testing.T) {
	c, err := LoadConfigFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Mode != AuthAny || len(c.Auth.Keys) != 2 || c.Auth.Users[0].Domain != "example" || c.Auth.TokenTTL != 24*time.Hour ||
		c.FlowControl.Advanced.BytesPerSecond != 5242880 || c.JanitorInterval != time.Minute || c.Limits.MaxFetchBytes != 2097152 {
		t.Fatalf("%+v", c)
	}
}

func TestLoadConfigFileBadNamesEveryKey(t *testing.T) {
	_, err := LoadConfigFile("testdata/bad.yml")
	if err == nil {
		t.Fatal("bad.yml accepted")
	}
	for _, key := range []string{
		"listen:", "data_dir:", "auth.mode:", "auth.keys[0]:", "auth.keys[0].projects:", "auth.token_ttl:",
		"quotas.common_partitions:", "limits.max_record_bytes:", "flow_control.common.bytes_per_second:",
		"flow_control.common.records_per_second:", "faults.fail_every_nth_record:", "janitor_interval:",
	} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

func TestLoadConfigFileUnknownKey(t *testing.T) {
	_, err := LoadConfigFile("testdata/unknown.yml")
	if err == nil || !strings.Contains(err.Error(), "data_dri") {
		t.Fatalf("unknown key not reported: %v", err)
	}
}

func TestValidateAuthNeedsCredentials(t *testing.T) {
	t.Setenv(EnvAccessKey, "")
	t.Setenv(EnvSecretKey, "")
	for mode, key := range map[string]string{AuthAKSK: "auth.keys", AuthToken: "auth.users", AuthAny: "auth.keys"} {
		c := DefaultConfig()
		c.Auth.Mode = mode
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("mode %s without credentials: %v", mode, err)
		}
	}
	t.Setenv(EnvAccessKey, "AK")
	t.Setenv(EnvSecretKey, "SK")
	c := DefaultConfig()
	c.Auth.Mode = AuthAKSK
	if err := c.Validate(); err != nil {
		t.Errorf("environment key pair not counted: %v", err)
	}
}

// TestUnsetAuthModeFollowsCredentials: a config file that leaves auth.mode
// out gets any when it configures credentials (keys, users or the
// environment pair) and is refused, naming the key and the fix, otherwise.
func TestUnsetAuthModeFollowsCredentials(t *testing.T) {
	write := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "dis.yml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv(EnvAccessKey, "")
	t.Setenv(EnvSecretKey, "")
	for name, text := range map[string]string{
		"keys":  "auth:\n  keys:\n    - {access_key: AK, secret_key: SK, projects: ['*']}\n",
		"users": "auth:\n  users:\n    - {name: u, password: p, projects: ['*']}\n",
	} {
		c, err := LoadConfigFile(write(t, "data_dir: d\n"+text))
		if err != nil || c.Auth.Mode != AuthAny {
			t.Errorf("%s without a mode: %q, %v; want any", name, c.Auth.Mode, err)
		}
	}
	_, err := LoadConfigFile(write(t, "data_dir: d\n"))
	want := "auth.mode: not set and no credentials configured; set mode: none for local development (no credentials are checked), or add auth.keys / auth.users"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("no mode, no credentials: %v", err)
	}
	if c, err := LoadConfigFile(write(t, "data_dir: d\nauth: {mode: none}\n")); err != nil || c.Auth.Mode != AuthNone {
		t.Fatalf("explicit none: %q, %v", c.Auth.Mode, err)
	}
	if err := FileDefaults().Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("FileDefaults without credentials validated: %v", err)
	}

	t.Setenv(EnvAccessKey, "AK")
	t.Setenv(EnvSecretKey, "SK")
	if c, err := LoadConfigFile(write(t, "data_dir: d\n")); err != nil || c.Auth.Mode != AuthAny {
		t.Fatalf("environment pair without a mode: %q, %v; want any", c.Auth.Mode, err)
	}
	c := FileDefaults()
	c.DataDir = t.TempDir()
	s, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	if s.cfg.Auth.Mode != AuthAny {
		t.Fatalf("New kept mode %q for an unset mode with credentials", s.cfg.Auth.Mode)
	}
}
