// Package schematest loads the golden schema fixtures in
// internal/schema/testdata/golden (layout: that folder's README.md), so the
// schema tests and the broker's integration tests check the same payloads
// against the same expected errors. It is for tests only and has no state.
package schematest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edgegw/edgegw/internal/schema"
)

// Set is one fixture folder: a stream's settings and its payloads.
type Set struct {
	Name string // the folder name
	Dir  string // absolute path of the folder
	// Stream is stream.yaml with data_schema_file already read into
	// DataSchema, so it can go into a schema.Config as it is.
	Stream schema.StreamConfig
	Good   []Payload
	Bad    []Payload
}

// Payload is one payload file. For a bad payload, Code and Detail are what
// schema.ValidationError must say (Detail() is also the MQTT 5 reason string).
type Payload struct {
	Name   string // file name
	Data   []byte
	Code   schema.Code
	Detail string
}

// Dir returns the absolute path of the golden fixtures.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("schematest: cannot locate the source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata", "golden")
}

// Load reads every fixture set under dir, in name order.
func Load(dir string) ([]Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read fixtures: %w", err)
	}
	var sets []Set
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s, err := loadSet(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("fixture %s: %w", e.Name(), err)
		}
		sets = append(sets, s)
	}
	if len(sets) == 0 {
		return nil, fmt.Errorf("no fixture sets in %s", dir)
	}
	return sets, nil
}

func loadSet(dir string) (Set, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Set{}, err
	}
	s := Set{Name: filepath.Base(abs), Dir: abs}
	raw, err := os.ReadFile(filepath.Join(abs, "stream.yaml"))
	if err != nil {
		return Set{}, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&s.Stream); err != nil {
		return Set{}, fmt.Errorf("stream.yaml: %w", err)
	}
	if f := s.Stream.DataSchemaFile; f != "" {
		b, err := os.ReadFile(filepath.Join(abs, f))
		if err != nil {
			return Set{}, fmt.Errorf("stream.yaml data_schema_file: %w", err)
		}
		s.Stream.DataSchema, s.Stream.DataSchemaFile = string(b), ""
	}
	if s.Good, err = loadPayloads(filepath.Join(abs, "good"), false); err != nil {
		return Set{}, err
	}
	if len(s.Good) == 0 {
		return Set{}, errors.New("no good payloads: every set shows at least one payload that passes")
	}
	if s.Bad, err = loadPayloads(filepath.Join(abs, "bad"), true); err != nil {
		return Set{}, err
	}
	return s, nil
}

// loadPayloads reads every file of dir; in bad/ each payload NAME.EXT has its
// expectation in NAME.want and every .want has its payload.
func loadPayloads(dir string, bad bool) ([]Payload, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	wants := map[string]bool{}    // .want files by base name
	payloads := map[string]bool{} // payload files by base name
	var out []Payload
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		if strings.HasSuffix(name, ".want") {
			wants[strings.TrimSuffix(name, ".want")] = true
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		p := Payload{Name: name, Data: data}
		if bad {
			base := strings.TrimSuffix(name, filepath.Ext(name))
			if p.Code, p.Detail, err = readWant(filepath.Join(dir, base+".want")); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			payloads[base] = true
		}
		out = append(out, p)
	}
	for base := range wants {
		if !payloads[base] {
			return nil, fmt.Errorf("%s.want has no payload file", filepath.Join(dir, base))
		}
	}
	slices.SortFunc(out, func(a, b Payload) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// readWant parses "code: CODE\ndetail: DETAIL\n".
func readWant(path string) (schema.Code, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	var code, detail string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "code: "):
			code = strings.TrimPrefix(line, "code: ")
		case strings.HasPrefix(line, "detail: "):
			detail = strings.TrimPrefix(line, "detail: ")
		case line != "":
			return "", "", fmt.Errorf("%s: unexpected line %q", path, line)
		}
	}
	if code == "" || detail == "" {
		return "", "", fmt.Errorf("%s: needs a code: and a detail: line", path)
	}
	return schema.Code(code), detail, nil
}
