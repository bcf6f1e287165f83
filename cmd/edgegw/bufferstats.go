package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/config"
)

const bufferStatsUsage = `edgegw buffer stats [--dir DIR] [-o text|json] [-c FILE]

Opens the buffer (buffer.dir in the config, or --dir) read-only and prints
what it holds per stream. The gateway must be stopped: the buffer allows one
process at a time. For a running gateway use "edgegw status".`

func cmdBuffer(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "stats" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stdout, "Usage: "+bufferStatsUsage)
			return nil
		}
		return usagef("usage: %s", strings.SplitN(bufferStatsUsage, "\n", 2)[0])
	}
	fs := newFlagSet("buffer stats", bufferStatsUsage, stderr)
	path := fs.String("c", config.DefaultPath, "config file (its buffer.dir names the buffer)")
	dir := fs.String("dir", "", "buffer directory (default buffer.dir)")
	output := fs.String("o", "text", "output format: text or json")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("buffer stats takes no arguments (got %q)", pos)
	}
	if *output != "text" && *output != "json" {
		return usagef("-o %q: use text or json", *output)
	}
	cfg, err := loadConfig(*path, isSet(fs, "c"), true)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = cfg.Buffer.Dir
	}
	// Badger's own messages are noise here; its errors come back as errors.
	b, err := buffer.Open(buffer.Options{Dir: *dir, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("%w\nthe buffer is in use, probably by a running gateway; stop it first, or use \"edgegw status\" for live numbers", err)
		}
		return err
	}
	defer b.Close()
	st := b.Stats()
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "buffer %s: %d records, %s of %s; disk %s\n\n", *dir, st.Records,
		humanBytes(st.Bytes), humanBytes(int64(cfg.Buffer.MaxBytes)), humanBytes(st.DiskUsage))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tRECORDS\tBYTES\tOLDEST\tHEAD SEQ\tNEXT SEQ")
	for _, name := range slices.Sorted(maps.Keys(st.Streams)) {
		s := st.Streams[name]
		oldest := "-"
		if s.Records > 0 {
			oldest = s.OldestAge.Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\n", name, s.Records, humanBytes(s.Bytes), oldest, s.Head, s.Next)
	}
	return tw.Flush()
}
