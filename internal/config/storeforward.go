package config

import "strings"

// Environment variables for IAM token credentials; they override the file.
const (
	EnvDISUser     = "EDGEGW_DIS_USER"
	EnvDISPassword = "EDGEGW_DIS_PASSWORD"
)

// GatewayRuntime holds process-wide settings of `edgegw run` (gateway.*).
type GatewayRuntime struct {
	// MemoryLimit is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit); 0 leaves the Go default (no limit).
	// The environment variable GOMEMLIMIT, when set, wins.
	MemoryLimit ByteSize `yaml:"memory_limit"`
}

// UplinkFlow holds the uplink's concurrency (uplink.*).
type UplinkFlow struct {
	// MaxInFlight is the number of PutRecords requests in flight per stream;
	// records of one partition key are never in two at once.
	MaxInFlight int `yaml:"max_in_flight"`
}

// DISWire selects the PutRecords body format (dis.*).
type DISWire struct {
	// Body is "json" (the reference's default) or "protobuf" (no base64:
	// about a quarter fewer bytes on the wire).
	Body string `yaml:"body"`
}

// DISTokenAuth holds IAM token credentials (dis.auth.* with mode token).
type DISTokenAuth struct {
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Domain is the account name the IAM user belongs to.
	Domain string `yaml:"domain"`
	// IAMEndpoint is where tokens come from, e.g.
	// https://iam.cn-north-4.myhuaweicloud.com; empty means the DIS endpoint
	// (the built-in server serves the token API itself).
	IAMEndpoint string `yaml:"iam_endpoint"`
}

// Defaults of the store-and-forward keys, each with its reason.
func defaultGatewayRuntime() GatewayRuntime {
	// 96 MiB: Badger's table builders churn the heap, and without a limit the
	// heap grows to several times its live set; at 96 MiB the whole gateway
	// (mochi, buffer, uplink) measured under the 128 MiB RSS target with a
	// backlog of 1M records (peak RssAnon 97 MiB, cmd/edgegw
	// TestSoakMemoryMillionRecordBacklog), while a lower limit costs ingest
	// throughput in GC work.
	return GatewayRuntime{MemoryLimit: 96 << 20}
}

func defaultUplinkFlow() UplinkFlow {
	// 4: with ~50 ms to a cloud region, 4 requests of 500 records carry 40k
	// records/s, more than a small box ingests durably.
	return UplinkFlow{MaxInFlight: 4}
}

func defaultDISWire() DISWire {
	// json: what the reference documents first and every DIS endpoint takes.
	return DISWire{Body: "json"}
}

// validateStoreForward checks the keys above.
func (c *Config) validateStoreForward(bad func(key, format string, args ...any)) {
	if m := c.Gateway.MemoryLimit; m != 0 && m < 32<<20 {
		bad("gateway.memory_limit", "%s is too small; use 0 (no limit) or at least 32MiB (Badger's memtables alone take ~20 MiB)", m)
	}
	if n := c.Uplink.MaxInFlight; n < 1 || n > 64 {
		bad("uplink.max_in_flight", "%d is out of range; use 1 to 64", n)
	}
	switch c.DIS.Body {
	case "json", "protobuf":
	default:
		bad("dis.body", "%q is not allowed; use one of: json, protobuf", c.DIS.Body)
	}
	a := c.DIS.Auth
	if a.Password != "" && a.PasswordFile != "" {
		bad("dis.auth.password_file", "set either dis.auth.password or dis.auth.password_file, not both")
	}
	if e := a.IAMEndpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		bad("dis.auth.iam_endpoint", "%q must start with https:// (or http://), e.g. https://iam.cn-north-4.myhuaweicloud.com", e)
	}
	if a.Mode != "token" && (a.User != "" || a.Password != "" || a.PasswordFile != "" || a.Domain != "" || a.IAMEndpoint != "") {
		bad("dis.auth.mode", "is %q but IAM token credentials (user, password, domain, iam_endpoint) are set; use mode: token or remove them", a.Mode)
	}
}
