package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgegw/edgegw/internal/admin"
	"github.com/edgegw/edgegw/internal/config"
)

const statusUsage = `edgegw status [-c FILE] [-o text|json] [--url URL] [--token TOKEN]

Asks a running gateway's admin API (admin.listen in the config file) how it is
doing and prints a summary table, or the whole status document with -o json.
The bearer token comes from --token, EDGEGW_ADMIN_TOKEN, admin.token_file or
admin.token, in that order.

Exit codes: 0 the gateway is ready, 1 it is not ready or could not be reached
(the reasons are printed), 2 bad usage or config.`

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", statusUsage, stderr)
	path := fs.String("c", config.DefaultPath, "config file (its admin section names the admin API)")
	output := fs.String("o", "text", "output format: text (a summary table) or json (the whole status document)")
	rawURL := fs.String("url", "", "admin API base URL (default: from admin.listen)")
	token := fs.String("token", "", "bearer token (default: from the environment or the config; a flag shows in ps, so prefer EDGEGW_ADMIN_TOKEN)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the gateway's answer")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("status takes no arguments (got %q)", pos)
	}
	if *output != "text" && *output != "json" {
		return usagef("-o %q: use text or json", *output)
	}
	base, tok, err := adminTarget(*path, isSet(fs, "c"), *rawURL, *token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	body, err := adminRequest(ctx, http.MethodGet, base+"/api/v1/status", tok)
	if err != nil {
		return err
	}
	var st admin.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("the admin API at %s answered something that is not a status document: %w", base, err)
	}
	if *output == "json" {
		_, err = stdout.Write(body)
	} else {
		err = printStatus(stdout, &st)
	}
	if err != nil {
		return err
	}
	if !st.Ready.Ready {
		return fmt.Errorf("gateway %s is not ready: %s", st.Gateway.ID, strings.Join(st.Ready.Reasons, "; "))
	}
	return nil
}

// adminTarget works out the admin API's base URL and token from the flags and
// the config file.
func adminTarget(path string, explicit bool, rawURL, token string) (base, tok string, err error) {
	if rawURL != "" && token != "" {
		return strings.TrimRight(rawURL, "/"), token, nil // the config file is not needed
	}
	cfg, err := loadConfig(path, explicit, true)
	if err != nil {
		return "", "", err
	}
	if token == "" {
		if token, err = cfg.Admin.AdminToken(); err != nil {
			return "", "", usageError{err}
		}
	}
	if rawURL != "" {
		return strings.TrimRight(rawURL, "/"), token, nil
	}
	if cfg.Admin.Listen == "" {
		return "", "", usagef("admin.listen is empty in %s, so the gateway serves no admin API; set it, or pass --url", path)
	}
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		return "", "", usagef("admin.listen %q: %v", cfg.Admin.Listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1" // listening everywhere: this machine is one of them
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), token, nil
}

// adminRequest calls the admin API and returns the body of a 2xx answer.
func adminRequest(ctx context.Context, method, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, usageError{err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the gateway's admin API (is the gateway running? admin.listen in the config): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read the admin API's answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, errors.New("the admin API refused the bearer token; pass --token, or set EDGEGW_ADMIN_TOKEN or admin.token / admin.token_file")
	case resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusUnprocessableEntity:
		return nil, fmt.Errorf("the admin API answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func printStatus(w io.Writer, st *admin.Status) error {
	ready := "READY"
	if !st.Ready.Ready {
		ready = "NOT READY: " + strings.Join(st.Ready.Reasons, "; ")
	}
	var ls []string
	for _, l := range st.MQTT.Listeners {
		ls = append(ls, l.Address+" ("+l.Name+")")
	}
	rejected := uint64(0)
	var reasons []string
	for _, k := range slices.Sorted(maps.Keys(st.Ingest.Rejected)) {
		if v := st.Ingest.Rejected[k]; v > 0 {
			rejected += v
			reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
		}
	}
	rej := fmt.Sprint(rejected)
	if len(reasons) > 0 {
		rej += " (" + strings.Join(reasons, ", ") + ")"
	}
	in, out := st.MQTT.PublishesReceived, st.MQTT.PublishesSent

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "gateway\t%s, version %s, up %s, %s\n", st.Gateway.ID, st.Gateway.Version,
		(time.Duration(st.Gateway.UptimeSeconds) * time.Second).String(), ready)
	fmt.Fprintf(tw, "mqtt\t%s; %d clients; publishes in %d (QoS 0/1/2: %d/%d/%d), out %d\n",
		strings.Join(ls, ", "), st.MQTT.ClientsConnected, in.Total(), in.QoS0, in.QoS1, in.QoS2, out.Total())
	fmt.Fprintf(tw, "ingest\taccepted %d; rejected %s; unrouted %d; dead letters %d\n",
		st.Ingest.Accepted, rej, st.Ingest.Unrouted, st.DeadLetters.Total)
	fmt.Fprintf(tw, "buffer\t%d records, %s of %s; disk %s\n", st.Buffer.Records,
		humanBytes(st.Buffer.Bytes), humanBytes(st.Buffer.MaxBytes), humanBytes(st.Buffer.DiskUsageBytes))
	fmt.Fprintf(tw, "dis\t%s\n", st.Uplink.Endpoint)
	if d := st.Downlink; d != nil {
		var lag uint64
		for _, p := range d.Partitions {
			lag += p.Lag
		}
		fmt.Fprintf(tw, "downlink\t%s, %d partitions, lag %d records\n", d.State, len(d.Partitions), lag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tUPLINK\tBUFFERED\tOLDEST\tSENT\tRETRIED\tDEAD-LETTERED\tFAILED REQUESTS\tLAST ERROR")
	names := slices.Sorted(maps.Keys(st.Uplink.Streams))
	for _, name := range names {
		u, b := st.Uplink.Streams[name], st.Buffer.Streams[name]
		oldest := "-"
		if b.Records > 0 {
			oldest = (time.Duration(b.OldestAgeSeconds*1000) * time.Millisecond).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\n", name, u.State, b.Records, oldest,
			u.Sent, u.Retried, u.DeadLettered, u.FailedRequests, oneLine(u.LastError, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n := len(st.Errors); n > 0 {
		e := st.Errors[n-1]
		kind := "error"
		if e.Level == "WARN" {
			kind = "warning"
		}
		fmt.Fprintf(w, "\nlast %s (%s): %s %s\n", kind, e.Time.Local().Format(time.DateTime), e.Message, oneLine(e.Attrs, 200))
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// oneLine shortens s to at most n runes on one line, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
