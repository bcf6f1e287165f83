package gateway

import (
	"fmt"
	"os"
	"strings"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
)

// Environment variables that override the DIS credentials in the config file,
// so secrets need not be written into it.
const (
	EnvAccessKey = "EDGEGW_DIS_ACCESS_KEY"
	EnvSecretKey = "EDGEGW_DIS_SECRET_KEY"
)

// NewDISClient builds the DIS client every edgegw command uses (the gateway's
// uplink, `dis tail`, ...) from the dis section. endpoint overrides
// dis.endpoint (the gateway passes the built-in server's bound address).
func NewDISClient(c config.DIS, endpoint string) (*dis.Client, error) {
	if endpoint == "" {
		endpoint = c.Endpoint
	}
	if endpoint == "" && c.Builtin.Enabled {
		endpoint = "http://" + c.Builtin.Server.Listen
	}
	var signer dis.Signer
	switch c.Auth.Mode {
	case "none":
	case "aksk":
		ak, sk, err := credentials(c.Auth)
		if err != nil {
			return nil, err
		}
		signer = &dis.AKSKSigner{AccessKey: ak, SecretKey: sk}
	case "token":
		ts, err := tokenSigner(c, endpoint)
		if err != nil {
			return nil, err
		}
		signer = ts
	default:
		return nil, fmt.Errorf("dis.auth.mode %q is not supported", c.Auth.Mode)
	}
	return dis.NewClient(dis.ClientConfig{
		Endpoint:  endpoint,
		ProjectID: c.ProjectID,
		Signer:    signer,
		Timeout:   c.Timeout.D(),
		UserAgent: "edgegw",
		Protobuf:  c.Body == "protobuf",
	})
}

// credentials resolves the AK/SK pair: environment first, then the secret key
// file, then the config file. The values are never logged.
func credentials(a config.DISAuth) (ak, sk string, err error) {
	ak, sk = a.AccessKey, a.SecretKey
	if a.SecretKeyFile != "" {
		b, err := os.ReadFile(a.SecretKeyFile)
		if err != nil {
			return "", "", fmt.Errorf("dis.auth.secret_key_file: %w", err)
		}
		sk = strings.TrimSpace(string(b))
	}
	if v := os.Getenv(EnvAccessKey); v != "" {
		ak = v
	}
	if v := os.Getenv(EnvSecretKey); v != "" {
		sk = v
	}
	if ak == "" || sk == "" {
		return "", "", fmt.Errorf("dis.auth.mode is aksk but the access key or secret key is empty; set dis.auth.access_key and dis.auth.secret_key (or secret_key_file), or the environment variables %s and %s", EnvAccessKey, EnvSecretKey)
	}
	return ak, sk, nil
}
