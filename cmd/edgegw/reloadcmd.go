package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgegw/edgegw/internal/admin"
	"github.com/edgegw/edgegw/internal/config"
)

const reloadUsage = `edgegw reload [-c FILE] [--url URL] [--token TOKEN]

Asks the running gateway (its admin API, admin.listen) to re-read its config
file and apply the routes, MQTT users and ACLs, like SIGHUP does, and prints
what was applied, what needs a restart, or why the new config was refused.

Exit codes: 0 applied, 1 refused or the gateway could not be reached, 2 bad
usage or config.`

func cmdReload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload", reloadUsage, stderr)
	path := fs.String("c", config.DefaultPath, "config file (its admin section names the admin API)")
	rawURL := fs.String("url", "", "admin API base URL (default: from admin.listen)")
	token := fs.String("token", "", "bearer token (default: from the environment or the config; a flag shows in ps, so prefer EDGEGW_ADMIN_TOKEN)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("reload takes no arguments (got %q)", pos)
	}
	base, tok, err := adminTarget(*path, isSet(fs, "c"), *rawURL, *token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	body, err := adminRequest(ctx, http.MethodPost, base+"/api/v1/reload", tok)
	if err != nil {
		return err
	}
	var res admin.ReloadResult
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("the admin API at %s answered something that is not a reload result: %w", base, err)
	}
	if !res.OK() {
		return fmt.Errorf("the gateway refused the new config and keeps the running one:\n  %s", strings.Join(res.Errors, "\n  "))
	}
	if len(res.Applied) == 0 {
		fmt.Fprintln(stdout, "reloaded: nothing that reload applies had changed")
	} else {
		fmt.Fprintf(stdout, "reloaded: applied %s\n", strings.Join(res.Applied, ", "))
	}
	if len(res.RestartNeeded) > 0 {
		fmt.Fprintf(stdout, "changed, effective after a restart: %s\n", strings.Join(res.RestartNeeded, ", "))
	}
	return nil
}
