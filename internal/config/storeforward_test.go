package config

import (
	"testing"
	"time"
)

func TestStoreForwardKeys(t *testing.T) {
	d := Default()
	if d.Gateway.MemoryLimit != 96<<20 || d.Uplink.MaxInFlight != 4 || d.DIS.Body != "json" {
		t.Fatalf("defaults: memory_limit %s, max_in_flight %d, body %q", d.Gateway.MemoryLimit, d.Uplink.MaxInFlight, d.DIS.Body)
	}
	cfg, err := Load("testdata/storeforward.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.DIS.Auth
	if cfg.Gateway.MemoryLimit != 128<<20 || cfg.Uplink.MaxInFlight != 8 || cfg.DIS.Body != "protobuf" ||
		a.Mode != "token" || a.User != "edge-writer" || a.PasswordFile != "/etc/edgegw/iam-password" || a.Domain != "acme" ||
		a.IAMEndpoint != "https://iam.cn-north-4.myhuaweicloud.com" {
		t.Fatalf("parsed %+v / %+v / %+v", cfg.Gateway, cfg.Uplink, cfg.DIS)
	}
	if b := cfg.Streams[0].Buffer; b.MaxBytes != 64<<20 || b.MaxAge.D() != 6*time.Hour || b.Overflow != "drop_oldest" {
		t.Fatalf("streams[0].buffer %+v", b)
	}
}
