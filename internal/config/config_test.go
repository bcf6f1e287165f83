package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGoodFilesLoad(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yml")
	files = append(files, "../../configs/edgegw.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

// Every bad file fails with exactly the lines of its .err file, in any order:
// all problems at once, each naming its key.
func TestBadFilesReportEveryProblem(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) == 0 {
		t.Fatal("no bad fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wantB, err := os.ReadFile(strings.TrimSuffix(f, ".yml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, perr := Parse(data)
			if perr == nil {
				t.Fatal("Parse accepted a bad file")
			}
			got := strings.Split(strings.TrimSpace(perr.Error()), "\n")
			for _, want := range strings.Split(strings.TrimSpace(string(wantB)), "\n") {
				if !containsLine(got, want) {
					t.Errorf("missing error line:\n  %s\ngot:\n  %s", want, strings.Join(got, "\n  "))
				}
			}
			if n := len(strings.Split(strings.TrimSpace(string(wantB)), "\n")); len(got) != n {
				t.Errorf("got %d error lines, want %d:\n  %s", len(got), n, strings.Join(got, "\n  "))
			}
		})
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

func TestDefaultsFillOmittedKeys(t *testing.T) {
	cfg, err := Parse([]byte("streams:\n  - name: s1\nroutes:\n  - {topic: a/+, stream: s1}\n" + builtinNoAuth))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Streams[0]
	if !s.Create || s.PartitionCount != 1 || s.StreamType != "COMMON" || s.DataType != "BLOB" || s.DataDuration != 24 {
		t.Errorf("stream defaults not applied: %+v", s)
	}
	if cfg.Uplink.Linger.D() != 20*time.Millisecond || cfg.Buffer.Sync != "batch" || cfg.MQTT.Anonymous != "never" {
		t.Errorf("section defaults not applied: %+v %+v anonymous %q (want never: only an explicit key grants it)", cfg.Uplink, cfg.Buffer, cfg.MQTT.Anonymous)
	}
	if !cfg.DIS.Builtin.Enabled || cfg.DIS.Builtin.Server.Listen != "127.0.0.1:9180" {
		t.Errorf("built-in DIS defaults not applied: %+v", cfg.DIS.Builtin)
	}
}

func TestUnknownKeyInsideStreamIsReported(t *testing.T) {
	// Stream has its own UnmarshalYAML (for defaults); the key check must
	// still look inside it.
	_, err := Parse([]byte("streams:\n  - name: s1\n    partitions: 3\n"))
	if err == nil || !strings.Contains(err.Error(), "streams[0].partitions: unknown key (line 3)") {
		t.Fatalf("got %v", err)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "512": 512, "4KiB": 4096, "1MiB": 1 << 20, "2GiB": 2 << 30, "4MB": 4e6, "7 B": 7} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "10XB", "99999999999GiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
	if s := ByteSize(4 << 20).String(); s != "4MiB" {
		t.Errorf("String = %s", s)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that fails Validate: %v", verr)
			}
		}
	})
}
