package disserver

import (
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
