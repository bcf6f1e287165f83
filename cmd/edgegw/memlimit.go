package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/edgegw/edgegw/internal/config"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from
// gateway.memory_limit unless GOMEMLIMIT is set (the environment wins, as
// for any Go program). Badger's table builders churn the heap; without a
// limit the heap grows to several times its live set (internal/buffer's
// package comment has the measurements).
func applyMemoryLimit(cfg config.Config, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("Go memory limit from GOMEMLIMIT", "limit", v)
		return
	}
	if m := cfg.Gateway.MemoryLimit; m > 0 {
		debug.SetMemoryLimit(int64(m))
		log.Info("Go memory limit", "limit", m.String(), "key", "gateway.memory_limit")
	}
}
