package schema

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

const tempSchema = `{"type":"record","name":"T","fields":[{"name":"temp","type":"int"}]}`
const humSchema = `{"type":"record","name":"T","fields":[{"name":"hum","type":"int"}]}`

// fixtureDIS is a FetchFunc backed by a table the test changes, counting calls.
type fixtureDIS struct {
	mu      sync.Mutex
	streams map[string]StreamSchema
	fail    map[string]error
	calls   map[string]int
}

func newFixtureDIS() *fixtureDIS {
	return &fixtureDIS{streams: map[string]StreamSchema{}, fail: map[string]error{}, calls: map[string]int{}}
}

func (f *fixtureDIS) set(stream string, s StreamSchema, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams[stream], f.fail[stream] = s, err
}

func (f *fixtureDIS) count(stream string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[stream]
}

func (f *fixtureDIS) fetch(ctx context.Context, stream string) (StreamSchema, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[stream]++
	if err := f.fail[stream]; err != nil {
		return StreamSchema{}, err
	}
	s, ok := f.streams[stream]
	if !ok {
		return StreamSchema{}, dis.NewError("DIS.4301", "stream %s not found", stream)
	}
	return s, nil
}

// startRegistry runs r in the bubble until the test ends.
func startRegistry(t *testing.T, r *Registry) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
}

func codeOf(err error) Code {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Code
	}
	return ""
}

func TestRegistryConfigSchemaNeedsNoFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dis := newFixtureDIS()
		cfg := Config{Streams: []StreamConfig{{Name: "telemetry", DataType: JSON, DataSchema: tempSchema}}}
		r, err := NewRegistry(cfg, dis.fetch, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Before Run: the config schema is already in force.
		err = r.Validate("telemetry", []byte(`{"temp":"hot"}`))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Stream != "telemetry" || ve.Path != "$.temp" {
			t.Fatalf("want a validation error for $.temp naming the stream, got %v", err)
		}
		if err.Error() != `stream telemetry: $.temp: want int, got string "hot"` {
			t.Fatalf("Error() = %q", err)
		}
		startRegistry(t, r)
		time.Sleep(time.Hour) // virtual time: many refresh intervals
		synctest.Wait()
		if n := dis.count("telemetry"); n != 0 {
			t.Fatalf("a config schema was fetched %d times", n)
		}
	})
}

func TestRegistryNoSchemaPolicy(t *testing.T) {
	t.Run("accept takes payloads unvalidated and counts them", func(t *testing.T) {
		r, err := NewRegistry(Config{}, nil, nil, "telemetry")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := r.Validate("telemetry", []byte("not json")); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Validate("other", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := r.Unvalidated(); got != 3 {
			t.Fatalf("Unvalidated() = %d, want 3", got)
		}
	})
	t.Run("reject refuses with ErrNoSchema", func(t *testing.T) {
		r, err := NewRegistry(Config{NoSchema: NoSchemaReject}, nil, nil, "telemetry")
		if err != nil {
			t.Fatal(err)
		}
		err = r.Validate("telemetry", []byte(`{"temp":1}`))
		if !errors.Is(err, ErrNoSchema) || !strings.Contains(err.Error(), "telemetry") {
			t.Fatalf("want ErrNoSchema naming the stream, got %v", err)
		}
		var ve *ValidationError
		if errors.As(err, &ve) {
			t.Fatal("a missing schema is not the payload's fault and must not be a ValidationError")
		}
	})
}

func TestRegistryFetchesAndRefreshes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFixtureDIS()
		d.set("telemetry", StreamSchema{DataType: "JSON", DataSchema: tempSchema}, nil)
		r, err := NewRegistry(Config{RefreshInterval: time.Minute}, d.fetch, nil, "telemetry")
		if err != nil {
			t.Fatal(err)
		}
		startRegistry(t, r)
		synctest.Wait() // the first fetch runs at once
		if codeOf(r.Validate("telemetry", []byte(`{"temp":1}`))) != "" {
			t.Fatal("valid payload refused after the first fetch")
		}
		if codeOf(r.Validate("telemetry", []byte(`{"hum":1}`))) != CodeMissing {
			t.Fatal("the fetched schema is not in force")
		}
		st := r.Status()
		if len(st) != 1 || st[0].Source != SourceDIS || !st[0].Known || st[0].DataType != JSON || st[0].Err != nil {
			t.Fatalf("status %+v", st)
		}

		// The operator changes the schema in DIS; one interval later it applies.
		d.set("telemetry", StreamSchema{DataType: "JSON", DataSchema: humSchema}, nil)
		time.Sleep(time.Minute - time.Second)
		synctest.Wait()
		if codeOf(r.Validate("telemetry", []byte(`{"temp":1}`))) != "" {
			t.Fatal("the schema changed before the refresh interval")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if codeOf(r.Validate("telemetry", []byte(`{"hum":1}`))) != "" {
			t.Fatal("the new schema did not apply after the interval")
		}
		if n := d.count("telemetry"); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
	})
}

// Steps run in order inside one bubble (t.Run is not allowed in a bubble).
func TestRegistryKeepsLastGoodSchema(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFixtureDIS()
		d.set("telemetry", StreamSchema{DataType: "JSON", DataSchema: tempSchema}, nil)
		r, err := NewRegistry(Config{RefreshInterval: time.Minute}, d.fetch, nil, "telemetry")
		if err != nil {
			t.Fatal(err)
		}
		startRegistry(t, r)
		synctest.Wait()

		// Step: a failed fetch keeps the last good validator.
		{
			d.set("telemetry", StreamSchema{}, errors.New("connection refused"))
			time.Sleep(time.Minute)
			synctest.Wait()
			if codeOf(r.Validate("telemetry", []byte(`{"temp":"x"}`))) != CodeType {
				t.Fatal("the last good schema was dropped on a fetch failure")
			}
			if st := r.Status()[0]; st.Err == nil || !st.Known {
				t.Fatalf("status does not show the failure: %+v", st)
			}
		}
		// Step: retries back off from one second, doubling.
		{
			before := d.count("telemetry")
			for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
				time.Sleep(wait)
				synctest.Wait()
			}
			if got := d.count("telemetry") - before; got != 3 {
				t.Fatalf("%d retries in 1+2+4 s, want 3", got)
			}
		}
		// Step: a fetched schema that does not compile keeps the last good one.
		{
			d.set("telemetry", StreamSchema{DataType: "JSON", DataSchema: `{"type":"record"`}, nil)
			time.Sleep(time.Minute)
			synctest.Wait()
			if codeOf(r.Validate("telemetry", []byte(`{"temp":"x"}`))) != CodeType {
				t.Fatal("a broken schema from DIS replaced the last good one")
			}
			if st := r.Status()[0]; st.Err == nil || !strings.Contains(st.Err.Error(), "data_schema") {
				t.Fatalf("status does not show the compile error: %+v", st)
			}
		}
		// Step: recovery applies the new schema.
		{
			d.set("telemetry", StreamSchema{DataType: "JSON", DataSchema: humSchema}, nil)
			time.Sleep(time.Minute)
			synctest.Wait()
			if codeOf(r.Validate("telemetry", []byte(`{"hum":1}`))) != "" {
				t.Fatal("the recovered schema did not apply")
			}
			if st := r.Status()[0]; st.Err != nil {
				t.Fatalf("status still shows an error: %+v", st)
			}
		}
	})
}

func TestRegistryFetchesAStreamFirstSeenInValidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFixtureDIS()
		d.set("late", StreamSchema{DataType: "CSV", DataSchema: csvSchema3, Delimiter: ";"}, nil)
		r, err := NewRegistry(Config{NoSchema: NoSchemaReject}, d.fetch, nil)
		if err != nil {
			t.Fatal(err)
		}
		startRegistry(t, r)
		synctest.Wait()
		if !errors.Is(r.Validate("late", []byte("d1;1;LOW")), ErrNoSchema) {
			t.Fatal("an unknown stream must follow no_schema until fetched")
		}
		synctest.Wait() // Run wakes, fetches, idles
		if err := r.Validate("late", []byte("d1;1;LOW")); err != nil {
			t.Fatalf("after the fetch: %v", err)
		}
		if codeOf(r.Validate("late", []byte("d1;x;LOW"))) != CodeType {
			t.Fatal("the fetched CSV schema with its delimiter is not in force")
		}
	})
}

func TestRegistryAppliesConfigOptionsToDISSchemas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFixtureDIS()
		d.set("rows", StreamSchema{DataType: "CSV", DataSchema: csvSchema3, Delimiter: ";"}, nil)
		cfg := Config{Streams: []StreamConfig{{Name: "rows", CSVDelimiter: "|", CSVHeader: HeaderSkip, AllowUnknownFields: true}}}
		r, err := NewRegistry(cfg, d.fetch, nil) // listed in config: fetched from the start
		if err != nil {
			t.Fatal(err)
		}
		startRegistry(t, r)
		synctest.Wait()
		if err := r.Validate("rows", []byte("header\nd1|1|LOW|0.5|true|extra")); err != nil {
			t.Fatalf("config options were not applied: %v", err)
		}
	})
}

func TestRegistrySharesValidatorsAndStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFixtureDIS()
		d.set("a", StreamSchema{DataType: "JSON", DataSchema: tempSchema}, nil)
		d.set("b", StreamSchema{DataType: "JSON", DataSchema: tempSchema}, nil)
		r, err := NewRegistry(Config{}, d.fetch, nil, "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		m := *r.current.Load()
		if m["a"].v == nil || m["a"].v != m["b"].v {
			t.Fatal("two streams with the same schema should share one compiled validator")
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Run did not return after cancel")
		}
	})
}

// TestRegistryConcurrentValidate validates from many goroutines while the
// schema flips; the race detector checks the copy-on-write map.
func TestRegistryConcurrentValidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFixtureDIS()
		d.set("s", StreamSchema{DataType: "JSON", DataSchema: tempSchema}, nil)
		r, err := NewRegistry(Config{RefreshInterval: time.Second, FetchTimeout: time.Second}, d.fetch, nil, "s")
		if err != nil {
			t.Fatal(err)
		}
		startRegistry(t, r)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 50 {
					err := r.Validate("s", []byte(`{"temp":1}`))
					if c := codeOf(err); c != "" && c != CodeMissing {
						t.Errorf("goroutine %d: %v", g, err)
					}
					r.Validate(fmt.Sprintf("new-%d-%d", g, i%3), []byte("{}"))
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
		for i := range 5 {
			schema := tempSchema
			if i%2 == 0 {
				schema = humSchema
			}
			d.set("s", StreamSchema{DataType: "JSON", DataSchema: schema}, nil)
			time.Sleep(time.Second)
		}
		wg.Wait()
	})
}

func TestFromDescribe(t *testing.T) {
	got := FromDescribe(&dis.DescribeStreamResponse{DataType: "CSV", DataSchema: tempSchema, CSVProperties: &dis.CSVProperties{Delimiter: ";"}})
	if got != (StreamSchema{DataType: "CSV", DataSchema: tempSchema, Delimiter: ";"}) {
		t.Fatalf("got %+v", got)
	}
	if got := FromDescribe(&dis.DescribeStreamResponse{DataType: "BLOB"}); got != (StreamSchema{DataType: "BLOB"}) {
		t.Fatalf("got %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "t.avsc")
	if err := os.WriteFile(good, []byte(tempSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"refresh interval too short", Config{RefreshInterval: time.Millisecond}, []string{"refresh_interval: 1ms is too short"}},
		{"negative fetch timeout", Config{FetchTimeout: -time.Second}, []string{"fetch_timeout: -1s is negative"}},
		{"fetch timeout beyond the interval", Config{RefreshInterval: 2 * time.Second, FetchTimeout: 3 * time.Second}, []string{"fetch_timeout: 3s is longer than refresh_interval 2s"}},
		{"unknown no_schema policy", Config{NoSchema: "drop"}, []string{`no_schema: "drop": want accept`}},
		{"a stream needs a name", Config{Streams: []StreamConfig{{DataType: BLOB}}}, []string{"streams[0].name: missing"}},
		{"a stream is configured once", Config{Streams: []StreamConfig{{Name: "a"}, {Name: "a"}}}, []string{`streams[1].name: stream "a" is also configured in streams[0]`}},
		{"an unknown data type", Config{Streams: []StreamConfig{{Name: "a", DataType: "XML"}}}, []string{`streams[0].data_type: "XML": want BLOB, JSON or CSV`}},
		{"a schema needs its data type", Config{Streams: []StreamConfig{{Name: "a", DataSchema: tempSchema}}}, []string{"streams[0].data_type: missing; a schema given in config needs its data_type"}},
		{"inline schema and file are exclusive", Config{Streams: []StreamConfig{{Name: "a", DataType: JSON, DataSchema: tempSchema, DataSchemaFile: good}}}, []string{"streams[0].data_schema_file: set data_schema or data_schema_file, not both"}},
		{"a missing schema file", Config{Streams: []StreamConfig{{Name: "a", DataType: JSON, DataSchemaFile: filepath.Join(dir, "nope.avsc")}}}, []string{"streams[0].data_schema_file: read schema:", "no such file"}},
		{"an invalid schema", Config{Streams: []StreamConfig{{Name: "a", DataType: JSON, DataSchema: `{"type":"record"}`}}}, []string{"streams[0].data_schema: avro:"}},
		{"a bad delimiter on a DIS-sourced stream", Config{Streams: []StreamConfig{{Name: "a", CSVDelimiter: "ab"}}}, []string{`streams[0].csv_delimiter: "ab": want one character`}},
		{"a bad header mode on a DIS-sourced stream", Config{Streams: []StreamConfig{{Name: "a", CSVHeader: "yes"}}}, []string{`streams[0].csv_header: "yes": want none, skip or check`}},
		{"avro binary in a JSON stream", Config{Streams: []StreamConfig{{Name: "a", DataType: JSON, DataSchema: tempSchema, AvroBinary: true}}}, []string{"streams[0].avro_binary: payloads of a JSON stream are text"}},
		{"every problem at once", Config{NoSchema: "x", Streams: []StreamConfig{{DataType: "XML"}}}, []string{"no_schema:", "streams[0].name:", "streams[0].data_type:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("errors are not *ConfigError: %T", err)
			}
			if _, err := NewRegistry(tc.cfg, nil, nil); err == nil {
				t.Error("NewRegistry accepted what Validate refused")
			}
		})
	}
	t.Run("a good config validates and compiles its schemas", func(t *testing.T) {
		cfg := Config{
			RefreshInterval: time.Minute, NoSchema: NoSchemaReject,
			Streams: []StreamConfig{
				{Name: "a", DataType: JSON, DataSchemaFile: good},
				{Name: "b", DataType: "csv", DataSchema: csvSchema3, CSVDelimiter: ";", CSVHeader: HeaderCheck},
				{Name: "c", AllowUnknownFields: true, CSVHeader: HeaderCheck},
				{Name: "d", DataType: BLOB, DataSchema: tempSchema, AvroBinary: true},
			},
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		r, err := NewRegistry(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if codeOf(r.Validate("a", []byte(`{"temp":1.5}`))) != CodeType {
			t.Fatal("the schema file was not used")
		}
		if codeOf(r.Validate("b", []byte("id;temp;level\nd1;1;LOW"))) != "" {
			t.Fatal("the CSV settings were not used")
		}
		if !(r.Status()[2].Stream == "c" && r.Status()[2].Source == SourceDIS && !r.Status()[2].Known) {
			t.Fatalf("an options-only stream waits for DIS: %+v", r.Status())
		}
	})
	t.Run("defaults", func(t *testing.T) {
		d := DefaultConfig()
		if d.RefreshInterval != 5*time.Minute || d.FetchTimeout != 10*time.Second || d.NoSchema != NoSchemaAccept {
			t.Fatalf("defaults changed: %+v", d)
		}
		if err := (Config{}).Validate(); err != nil {
			t.Fatalf("the zero config takes the defaults: %v", err)
		}
	})
}

func TestRegistryCountsOutcomesPerStreamAndCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newFixtureDIS()
		d.set("fetched", StreamSchema{DataType: "JSON", DataSchema: tempSchema}, nil)
		cfg := Config{Streams: []StreamConfig{{Name: "local", DataType: JSON, DataSchema: tempSchema}}}
		r, err := NewRegistry(cfg, d.fetch, nil, "fetched")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{`{"temp":1}`, `{"temp":2}`, `{"temp":"x"}`, `{}`, `{}`, `nope`} {
			r.Validate("local", []byte(p))
		}
		r.Validate("fetched", []byte(`{"temp":1}`)) // before the first fetch: unvalidated
		startRegistry(t, r)
		synctest.Wait()
		r.Validate("fetched", []byte(`{"temp":1.5}`))
		d.set("fetched", StreamSchema{}, errors.New("down"))
		time.Sleep(DefaultRefreshInterval) // a failed refresh keeps the counters
		synctest.Wait()
		r.Validate("fetched", []byte(`{"temp":3000000000}`))

		got := map[string]StreamStatus{}
		for _, st := range r.Status() {
			got[st.Stream] = st
		}
		local, fetched := got["local"], got["fetched"]
		if local.Passed != 2 || local.Unvalidated != 0 || fmt.Sprint(local.Rejected) != "map[missing_field:2 syntax:1 type:1]" {
			t.Fatalf("local: %+v", local)
		}
		if fetched.Passed != 0 || fetched.Unvalidated != 1 || fmt.Sprint(fetched.Rejected) != "map[range:1 type:1]" {
			t.Fatalf("fetched: %+v", fetched)
		}
	})
}

func TestEveryCodeIsCounted(t *testing.T) {
	var c counters
	for _, code := range allCodes {
		c.reject(code)
	}
	for i := range c.rejected {
		if c.rejected[i].Load() != 1 {
			t.Fatalf("code %s has no counter", allCodes[i])
		}
	}
	// Every code the fixtures and tests produce must be one of allCodes.
	known := map[Code]bool{}
	for _, code := range allCodes {
		known[code] = true
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*", "bad", "*.want"))
	if len(files) == 0 {
		t.Fatal("no fixtures found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code, _, _ := strings.Cut(strings.TrimPrefix(string(b), "code: "), "\n")
		if !known[Code(code)] {
			t.Errorf("%s: code %q is not in allCodes", f, code)
		}
	}
}
