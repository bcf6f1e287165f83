package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/gateway"
)

// loadConfig reads the config file. An invalid file is a usage error (exit 2).
// When the file is the default one and does not exist, optional says whether
// built-in defaults may be used instead.
func loadConfig(path string, explicit, optional bool) (config.Config, error) {
	cfg, err := config.Load(path)
	if err == nil {
		return cfg, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if optional && !explicit {
			return config.Default(), nil
		}
		return config.Config{}, usagef("config file %s not found; run from the edgegw directory or pass -c FILE", path)
	}
	return config.Config{}, usageError{err}
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "edgegw run [-c FILE] [--check-config]", stderr)
	path := fs.String("c", config.DefaultPath, "config file")
	check := fs.Bool("check-config", false, "validate the config file and exit (0 valid, 2 invalid)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, isSet(fs, "c"), false)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "%s: valid\n", *path)
		return nil
	}
	log := gateway.NewLogger(cfg.Log, stderr)
	applyMemoryLimit(cfg, log)
	return runGateway(ctx, cfg, *path, log)
}

func cmdConfigCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config check", "edgegw config check [-c FILE]", stderr)
	path := fs.String("c", config.DefaultPath, "config file")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := loadConfig(*path, true, false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: valid\n", *path)
	return nil
}

func cmdDISServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dis serve", "edgegw dis serve [--listen ADDR] [--data-dir DIR] [-c FILE]", stderr)
	path := fs.String("c", config.DefaultPath, "config file: the gateway's (its dis.builtin section configures the server) or a standalone server file")
	listen := fs.String("listen", "", "listen address (default dis.builtin.listen)")
	dataDir := fs.String("data-dir", "", "data directory (default dis.builtin.data_dir)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	sc, logCfg, err := loadDISServeConfig(*path, isSet(fs, "c"))
	if err != nil {
		return err
	}
	if *listen != "" {
		sc.Listen = *listen
	}
	if *dataDir != "" {
		sc.DataDir = *dataDir
	}
	if err := sc.Validate(); err != nil {
		return usageError{err}
	}
	log := gateway.NewLogger(logCfg, stderr)
	srv, err := disserver.New(sc, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("listen on %s: %w", sc.Listen, err)
	}
	log.Info("DIS-compatible server ready", "addr", ln.Addr().String(), "data_dir", sc.DataDir)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		srv.Shutdown(context.Background())
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// isSet reports whether the flag was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
