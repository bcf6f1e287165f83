package buffer

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// Badger writes through the gateway's logger (Options.Logger, the one of
// log.format and log.level): its warnings and errors become lines of that
// logger's format; its per-compaction Info and Debug chatter does not.
func TestBadgerLogsThroughTheGivenLogger(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "buffer")
	opts := badgerOptions(t.TempDir(), false, log)
	opts.Logger.Infof("flushed table %d\n", 1)
	opts.Logger.Debugf("compaction %d\n", 2)
	opts.Logger.Warningf("While compacting level 0: %v\n", "disk slow")
	opts.Logger.Errorf("cannot sync: %s\n", "EIO")
	var levels, msgs []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var line struct{ Level, Msg, Component, Library string }
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("not a line of the given JSON logger: %q", l)
		}
		if line.Component != "buffer" || line.Library != "badger" || strings.Count(l, `"component"`) != 1 {
			t.Errorf("line %q: want the logger's one component key and library badger", l)
		}
		levels, msgs = append(levels, line.Level), append(msgs, line.Msg)
	}
	if strings.Join(levels, ",") != "WARN,ERROR" || msgs[0] != "While compacting level 0: disk slow" || msgs[1] != "cannot sync: EIO" {
		t.Fatalf("badger's log became %q %q, want its warning and error only", levels, msgs)
	}
}
