package schema_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/schema"
)

// TestFetchFromDIS reads a stream's schema through the DIS client from the
// built-in DIS server, the way the gateway does.
func TestFetchFromDIS(t *testing.T) {
	cfg := disserver.DefaultConfig()
	cfg.DataDir = t.TempDir()
	srv, err := disserver.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c, err := dis.NewClient(dis.ClientConfig{Endpoint: hs.URL, ProjectID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const avsc = `{"type":"record","name":"R","fields":[{"name":"id","type":"string"},{"name":"v","type":"int"}]}`
	err = c.CreateStream(ctx, &dis.CreateStreamRequest{StreamName: "rows", PartitionCount: 1, DataType: "CSV",
		DataSchema: avsc, CSVProperties: &dis.CSVProperties{Delimiter: ";"}})
	if err != nil {
		t.Fatal(err)
	}
	fetch := schema.FetchFromDIS(c)
	got, err := fetch(ctx, "rows")
	if err != nil {
		t.Fatal(err)
	}
	if got != (schema.StreamSchema{DataType: "CSV", DataSchema: avsc, Delimiter: ";"}) {
		t.Fatalf("fetched %+v", got)
	}
	if _, err := fetch(ctx, "missing"); err == nil || !errors.As(err, new(*dis.Error)) {
		t.Fatalf("a missing stream must give the DIS error, got %v", err)
	}
}
