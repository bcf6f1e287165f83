package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/mqtttest"
)

// Relative TLS and schema file paths are taken from the config file's
// folder, whatever the working directory.
func TestRelativePathsFollowTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	pki := mqtttest.NewPKI(t, "cfg")
	for src, dst := range map[string]string{pki.ServerCert: "server.pem", pki.ServerKey: "server-key.pem", pki.CAFile: "ca.pem"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tls", dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	schemaText := `{"type":"record","name":"T","fields":[{"name":"temp","type":"int"}]}`
	if err := os.WriteFile(filepath.Join(dir, "t.avsc"), []byte(schemaText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgText := `
mqtt:
  listeners:
    - name: mtls
      type: tls
      address: 127.0.0.1:8883
      tls: {cert_file: tls/server.pem, key_file: tls/server-key.pem, client_ca_file: tls/ca.pem, identity_from_cn: true}
streams:
  - name: telemetry
    data_type: JSON
    data_schema_file: t.avsc
routes:
  - {topic: "#", stream: telemetry}
` + builtinNoAuth
	path := filepath.Join(dir, "edgegw.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // anywhere but the config's folder
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tl := cfg.MQTT.Listeners[0].TLS
	if tl.CertFile != filepath.Join(dir, "tls/server.pem") || tl.ClientCAFile != filepath.Join(dir, "tls/ca.pem") {
		t.Fatalf("TLS paths not resolved: %+v", tl)
	}
	if got := cfg.Streams[0].DataSchemaFile; got != filepath.Join(dir, "t.avsc") {
		t.Fatalf("data_schema_file = %s", got)
	}
	// Parse (no file) leaves them to the working directory: here, missing.
	if _, err := Parse([]byte(cfgText)); err == nil || !strings.Contains(err.Error(), "mqtt.listeners[0].tls.cert_file") {
		t.Fatalf("Parse from another directory: %v", err)
	}
}

// The rule for where a stream's schema comes from.
func TestStreamSchemaSource(t *testing.T) {
	cfg, err := Parse([]byte(`
streams:
  - name: made          # created by the gateway: its create-time schema, BLOB by default
  - name: existing      # exists in DIS: fetched from DIS
    create: false
  - name: pinned        # exists, but validated with the schema in config
    create: false
    data_type: CSV
routes:
  - {topic: "#", stream: made}
` + builtinNoAuth))
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.SchemaConfig()
	got := map[string]string{}
	for _, s := range sc.Streams {
		got[s.Name] = s.DataType
	}
	if got["made"] != "BLOB" || got["existing"] != "" || got["pinned"] != "CSV" {
		t.Fatalf("data types %v: want made BLOB (config), existing empty (from DIS), pinned CSV (config)", got)
	}
}
