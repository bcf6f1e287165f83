package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Every command answers -h and --help with its usage on stdout and exit 0,
// and a command group without its subcommand says what it takes and exits
// 2: help text and exit codes a person (and a script) can rely on.
func TestHelpOfEveryCommand(t *testing.T) {
	// In process (run is what main calls): a process per case costs seconds
	// on a loaded machine, and -h returns before any command does work.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		args []string
		want string // in the usage
	}{
		{[]string{}, "edgegw dis streams list|create|describe|delete"},
		{[]string{"run"}, "edgegw run [-c FILE]"},
		{[]string{"config"}, "edgegw config check"},
		{[]string{"config", "check"}, "edgegw config check"},
		{[]string{"dis"}, "streams list|create|describe|delete"},
		{[]string{"dis", "serve"}, "edgegw dis serve"},
		{[]string{"dis", "tail"}, "edgegw dis tail STREAM"},
		{[]string{"dis", "streams"}, "list|create|describe|delete"},
		{[]string{"dis", "streams", "list"}, "edgegw dis streams list"},
		{[]string{"dis", "streams", "create"}, "edgegw dis streams create STREAM"},
		{[]string{"dis", "streams", "describe"}, "edgegw dis streams describe STREAM"},
		{[]string{"dis", "streams", "delete"}, "--yes"},
		{[]string{"dis", "put"}, "edgegw dis put STREAM"},
		{[]string{"status"}, "edgegw status"},
		{[]string{"reload"}, "edgegw reload"},
		{[]string{"buffer", "stats"}, "edgegw buffer stats"},
		{[]string{"passwd"}, "edgegw passwd"},
	} {
		for _, flag := range []string{"-h", "--help"} {
			args := append(append([]string(nil), tc.args...), flag)
			var stdout, stderr strings.Builder
			code := run(ctx, args, &stdout, &stderr)
			usage := stdout.String() + stderr.String()
			if code != 0 {
				t.Errorf("edgegw %s: exit %d, want 0\n%s", strings.Join(args, " "), code, usage)
				continue
			}
			if !strings.Contains(usage, tc.want) || !strings.Contains(usage, "Usage") {
				t.Errorf("edgegw %s: usage lacks %q:\n%s", strings.Join(args, " "), tc.want, usage)
			}
		}
	}
	for _, group := range [][]string{{"config"}, {"dis"}, {"dis", "streams"}, {"buffer"}} {
		var out strings.Builder
		if code := run(ctx, group, &out, &out); code != 2 || !strings.Contains(out.String(), "sage") {
			t.Errorf("edgegw %s: exit %d, want 2 and a usage line\n%s", strings.Join(group, " "), code, out.String())
		}
	}
}
