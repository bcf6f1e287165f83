// Command edgegw is the MQTT → DIS edge gateway: run, config check, dis
// serve|tail|streams|put, status, reload, buffer stats, passwd and version
// (topUsage lists them; "edgegw COMMAND -h" gives each one's flags).
//
// Every command reads the same config file (-c, default configs/edgegw.yaml)
// for its endpoint and credentials. Exit codes: 0 success, 1 runtime failure,
// 2 bad usage or invalid config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=... -X main.date=...".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line or the config: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

const topUsage = `edgegw: MQTT ingestion gateway for the Data Ingestion Service (DIS)

Usage:
  edgegw run [-c FILE] [--check-config]     run the gateway
  edgegw config check [-c FILE]             validate the config file and exit
  edgegw dis serve [flags]                  run the DIS-compatible server alone
  edgegw dis tail STREAM [flags]            print a stream's records as they arrive
  edgegw dis streams list|create|describe|delete   manage DIS streams
  edgegw dis put STREAM [DATA ...]          write records to a stream (or lines of stdin)
  edgegw status [-o text|json]              ask the running gateway how it is doing
  edgegw reload                             make the running gateway re-read its config (like SIGHUP)
  edgegw buffer stats                       what a stopped gateway's buffer holds
  edgegw passwd [-cost N]                   print the bcrypt hash of a password (stdin or prompt) for mqtt.users
  edgegw version                            print the version

Every command reads its settings from -c FILE (default configs/edgegw.yaml).
Run "edgegw COMMAND -h" for a command's flags.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdout, stderr)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "edgegw: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "edgegw: %v\n", err)
		return exitFailure
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "config":
		if len(rest) > 0 && isHelp(rest[0]) {
			fmt.Fprint(stdout, configUsage)
			return nil
		}
		if len(rest) == 0 || rest[0] != "check" {
			fmt.Fprint(stderr, configUsage)
			return usagef("usage: edgegw config check [-c FILE]")
		}
		return cmdConfigCheck(rest[1:], stdout, stderr)
	case "dis":
		if len(rest) > 0 && isHelp(rest[0]) {
			fmt.Fprint(stdout, disUsage)
			return nil
		}
		if len(rest) == 0 {
			fmt.Fprint(stderr, disUsage)
			return usagef("usage: edgegw dis serve|tail|streams|put ...")
		}
		switch rest[0] {
		case "serve":
			return cmdDISServe(ctx, rest[1:], stdout, stderr)
		case "tail":
			return cmdDISTail(ctx, rest[1:], stdout, stderr)
		case "streams":
			return cmdDISStreams(ctx, rest[1:], stdout, stderr)
		case "put":
			return cmdDISPut(ctx, rest[1:], os.Stdin, stdout, stderr)
		}
		fmt.Fprint(stderr, disUsage)
		return usagef("unknown command \"dis %s\"; use serve, tail, streams or put", rest[0])
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "reload":
		return cmdReload(ctx, rest, stdout, stderr)
	case "buffer":
		return cmdBuffer(rest, stdout, stderr)
	case "passwd":
		return cmdPasswd(rest, os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "edgegw %s (commit %s, built %s)\n", version, commit, date)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, topUsage)
		return nil
	}
	fmt.Fprint(stderr, topUsage)
	return usagef("unknown command %q", cmd)
}

const configUsage = `Usage: edgegw config check [-c FILE]

Validates the config file (default configs/edgegw.yaml) and exits: 0 when it
is valid, 2 with every problem (key, line, what to write instead) when not.
`

const disUsage = `Usage: edgegw dis COMMAND ...

  serve                       run the DIS-compatible server alone
  tail STREAM                 print a stream's records (progress line on a terminal)
  streams list|create|describe|delete   manage streams
  put STREAM [DATA ...]       write records (or the lines of stdin)

Every command reads the DIS endpoint and credentials from -c FILE.
Run "edgegw dis COMMAND -h" for a command's flags.
`

// isHelp reports whether arg asks for help instead of naming a subcommand.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints its usage to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses flags that may come before or after positional arguments
// ("dis tail telemetry --from latest" and "dis tail --from latest telemetry").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
