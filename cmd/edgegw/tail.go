package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/gateway"
)

func cmdDISTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dis tail", "edgegw dis tail STREAM [--from trim_horizon|latest] [-n N] [-o text|json] [-c FILE]", stderr)
	path := fs.String("c", config.DefaultPath, "config file (its dis section gives the endpoint and credentials)")
	from := fs.String("from", "trim_horizon", "where to start: trim_horizon (oldest kept record) or latest (only new records)")
	limit := fs.Int("n", 0, "exit after printing this many records (0: run until interrupted)")
	output := fs.String("o", "text", "output format: text or json (one object per line)")
	poll := fs.Duration("poll", 500*time.Millisecond, "pause between reads when the stream has nothing new")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("dis tail needs exactly one STREAM argument (got %d)", len(pos))
	}
	cursorType := map[string]string{"trim_horizon": dis.CursorTrimHorizon, "latest": dis.CursorLatest}[strings.ToLower(*from)]
	if cursorType == "" {
		return usagef("--from %q: use trim_horizon or latest", *from)
	}
	if *output != "text" && *output != "json" {
		return usagef("-o %q: use text or json", *output)
	}
	if *poll <= 0 {
		return usagef("--poll must be positive")
	}
	cfg, err := loadConfig(*path, isSet(fs, "c"), true)
	if err != nil {
		return err
	}
	client, err := gateway.NewDISClient(cfg.DIS, "")
	if err != nil {
		return usageError{err}
	}
	t := &tailer{client: client, stream: pos[0], cursorType: cursorType, limit: *limit, json: *output == "json", poll: *poll, out: stdout,
		progress: newProgress("dis tail "+pos[0], stdout, stderr)}
	err = t.run(ctx)
	t.progress.clear()
	if ctx.Err() != nil {
		return nil // interrupted by the user
	}
	return err
}

// tailer follows every readable partition of a stream.
type tailer struct {
	client     *dis.Client
	stream     string
	cursorType string
	limit      int
	json       bool
	poll       time.Duration
	out        io.Writer
	progress   *progress // a status line on a terminal while records go elsewhere (progress.go)

	printed int
	parts   map[string]*partCursor
	started bool // the first partition list was read
}

type partCursor struct {
	cursor  string
	lastSeq string // last sequence number printed, to resume after a cursor expires
}

// partitionRefresh is how often the partition list is re-read so a scaled
// stream is followed without a restart.
const partitionRefresh = 30 * time.Second

func (t *tailer) run(ctx context.Context) error {
	t.parts = map[string]*partCursor{}
	var refreshed time.Time
	for {
		if time.Since(refreshed) > partitionRefresh {
			if err := t.refreshPartitions(ctx); err != nil {
				return err
			}
			refreshed = time.Now()
		}
		got := 0
		for _, id := range sortedKeys(t.parts) {
			n, err := t.readPartition(ctx, id)
			if err != nil {
				return err
			}
			got += n
			if t.limit > 0 && t.printed >= t.limit {
				return nil
			}
		}
		if got == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(t.poll):
			}
		}
	}
}

func (t *tailer) refreshPartitions(ctx context.Context) error {
	desc, err := t.client.DescribeStreamAll(ctx, t.stream)
	if err != nil {
		return fmt.Errorf("describe stream %s at %s: %w", t.stream, t.client.Endpoint(), err)
	}
	for _, p := range desc.Partitions {
		if p.Status != dis.PartitionActive && p.Status != dis.PartitionDeleted {
			continue
		}
		if _, ok := t.parts[p.PartitionID]; ok {
			continue
		}
		cursorType := t.cursorType
		if t.started {
			cursorType = dis.CursorTrimHorizon // a partition added while tailing: show all of it
		}
		cur, err := t.client.GetCursor(ctx, dis.CursorRequest{StreamName: t.stream, PartitionID: p.PartitionID, CursorType: cursorType})
		if err != nil {
			return fmt.Errorf("get cursor for %s/%s: %w", t.stream, p.PartitionID, err)
		}
		t.parts[p.PartitionID] = &partCursor{cursor: cur}
	}
	t.started = true
	return nil
}

func (t *tailer) readPartition(ctx context.Context, id string) (int, error) {
	pc := t.parts[id]
	resp, err := t.client.GetRecords(ctx, pc.cursor, 0)
	if dis.IsCode(err, dis.CodeExpiredCursor) {
		// Idle for more than 5 minutes: take a new cursor where we stopped.
		req := dis.CursorRequest{StreamName: t.stream, PartitionID: id, CursorType: dis.CursorTrimHorizon}
		if pc.lastSeq != "" {
			req.CursorType, req.StartingSequenceNumber = dis.CursorAfterSequenceNumber, pc.lastSeq
		}
		if pc.cursor, err = t.client.GetCursor(ctx, req); err != nil {
			return 0, fmt.Errorf("renew cursor for %s/%s: %w", t.stream, id, err)
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s/%s: %w", t.stream, id, err)
	}
	pc.cursor = resp.NextPartitionCursor
	for _, r := range resp.Records {
		t.print(id, r)
		t.progress.add(1, int64(len(r.Data)))
		pc.lastSeq = r.SequenceNumber
		if t.limit > 0 && t.printed >= t.limit {
			break
		}
	}
	return len(resp.Records), nil
}

func (t *tailer) print(partition string, r dis.Record) {
	t.printed++
	if t.json {
		line := struct {
			Partition    string `json:"partition_id"`
			Sequence     string `json:"sequence_number"`
			PartitionKey string `json:"partition_key,omitempty"`
			Timestamp    int64  `json:"timestamp"`
			Data         string `json:"data,omitempty"`
			DataBase64   []byte `json:"data_base64,omitempty"`
		}{Partition: partition, Sequence: r.SequenceNumber, PartitionKey: r.PartitionKey, Timestamp: r.Timestamp}
		if printable(r.Data) {
			line.Data = string(r.Data)
		} else {
			line.DataBase64 = r.Data
		}
		b, _ := json.Marshal(line) // plain strings and bytes: cannot fail
		fmt.Fprintf(t.out, "%s\n", b)
		return
	}
	data := string(r.Data)
	if !printable(r.Data) {
		data = "base64:" + base64.StdEncoding.EncodeToString(r.Data)
	}
	key := r.PartitionKey
	if key == "" {
		key = "-"
	}
	ts := time.UnixMilli(r.Timestamp).UTC().Format("15:04:05.000")
	fmt.Fprintf(t.out, "%s %s seq=%s key=%s %s\n", ts, partition, r.SequenceNumber, key, data)
}

// printable reports whether data can be shown as one line of text.
func printable(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if r != ' ' && unicode.IsSpace(r) || !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// sortedKeys returns the partition ids in partition order.
func sortedKeys(m map[string]*partCursor) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ai, aerr := dis.ParsePartitionID(a)
		bi, berr := dis.ParsePartitionID(b)
		if aerr == nil && berr == nil {
			return ai - bi
		}
		return strings.Compare(a, b)
	})
	return keys
}
