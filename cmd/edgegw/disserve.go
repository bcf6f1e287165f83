package main

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/disserver"
)

// loadDISServeConfig reads the -c FILE of `edgegw dis serve`. It takes two
// forms: the gateway's config file, whose dis.builtin section configures the
// server (as in the shipped configs/edgegw.yaml), or a standalone server
// file with listen, data_dir, auth, … at the top (internal/disserver/testdata/
// good.yml). A standalone server must not need the gateway's MQTT routes to
// be valid, so a file with none of the gateway file's top-level keys (dis,
// mqtt, routes, …) is read in the second form.
func loadDISServeConfig(path string, explicit bool) (disserver.Config, config.Log, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return disserver.Config{}, config.Log{}, usagef("read config %s: %v", path, err)
	}
	if err == nil && !hasGatewayKey(data) {
		sc, err := disserver.LoadConfigFile(path)
		if err != nil {
			return disserver.Config{}, config.Log{}, usageError{err}
		}
		return sc, config.Default().Log, nil
	}
	missing := err != nil
	cfg, err := loadConfig(path, explicit, true)
	if err != nil {
		return disserver.Config{}, config.Log{}, err
	}
	sc := cfg.DIS.Builtin.Server
	if missing {
		// No file: nothing said auth.mode none, so the server runs only
		// with credentials from the environment (mode any).
		sc.Auth.Mode = ""
		sc.ResolveAuthMode()
		if sc.Auth.Mode == "" {
			return disserver.Config{}, config.Log{}, usagef("no config file %s and no credentials: the DIS server does not run without authentication unless a file says auth.mode: none; "+
				"pass -c FILE (e.g. configs/edgegw.yaml), or set %s and %s", path, disserver.EnvAccessKey, disserver.EnvSecretKey)
		}
	}
	return sc, cfg.Log, nil
}

// hasGatewayKey reports whether data is a YAML mapping with a top-level key
// of the gateway's config file. Anything else (not YAML, not a mapping, an
// empty file) answers false.
func hasGatewayKey(data []byte) bool {
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	return hasKeyOf(top, reflect.TypeFor[config.Config]())
}

// hasKeyOf reports whether top holds a YAML key of struct type t, the keys
// of its inline fields included.
func hasKeyOf(top map[string]yaml.Node, t reflect.Type) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			if hasKeyOf(top, f.Type) {
				return true
			}
			continue
		}
		if _, ok := top[name]; ok && name != "" && name != "-" {
			return true
		}
	}
	return false
}
