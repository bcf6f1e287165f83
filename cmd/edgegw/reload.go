package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/gateway"
)

// runGateway runs the gateway on cfg until ctx is done. SIGHUP re-reads the
// config file at path and applies what can change live (gateway.Reload);
// SIGHUP is caught only while the gateway runs, so for every other command it
// keeps its default meaning.
func runGateway(ctx context.Context, cfg config.Config, path string, log *slog.Logger) error {
	gw := gateway.New(cfg, log)
	gw.SetVersion(version)
	gw.SetConfigSource(func() (config.Config, error) { return config.Load(path) })

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				gw.Reload(ctx) // logs its outcome
			}
		}
	}()
	return gw.Run(ctx)
}
