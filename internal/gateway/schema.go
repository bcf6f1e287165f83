package gateway

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/schema"
)

// startSchemas builds the schema registry from the streams and the schema
// section (config.SchemaConfig says which stream's schema comes from where)
// and runs its refresher. The returned stop ends the refresher and waits for
// it; Validate keeps working with the last schemas after that.
func (g *Gateway) startSchemas() (stop func(), err error) {
	reg, err := schema.NewRegistry(g.cfg.SchemaConfig(), schema.FetchFromDIS(g.client), g.log.With("component", "schema"))
	if err != nil {
		return nil, fmt.Errorf("stream schemas: %w", err)
	}
	g.schemas = reg
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = reg.Run(ctx) // returns nil when ctx is done
	}()
	return func() { cancel(); <-done }, nil
}

// streamSchemaText is the Avro schema a stream is created with: data_schema,
// or the contents of data_schema_file.
func streamSchemaText(s config.Stream) (string, error) {
	if s.DataSchemaFile == "" {
		return s.DataSchema, nil
	}
	b, err := os.ReadFile(s.DataSchemaFile)
	if err != nil {
		return "", fmt.Errorf("data_schema_file: %w", err)
	}
	return string(b), nil
}

// csvProperties is the create-stream csv_properties for a CSV stream with a
// delimiter other than DIS's default comma.
func csvProperties(s config.Stream) *dis.CSVProperties {
	if !strings.EqualFold(s.DataType, schema.CSV) || s.CSVDelimiter == "" {
		return nil
	}
	return &dis.CSVProperties{Delimiter: s.CSVDelimiter}
}

// warnSchemaMismatch says when a stream the gateway would create already
// exists in DIS with another data type or schema: the gateway validates with
// its config (create: true), and DIS may refuse what passes, or the reverse.
// Setting create: false makes the gateway take DIS's schema instead.
func (g *Gateway) warnSchemaMismatch(s config.Stream, schemaText string, d *dis.DescribeStreamResponse) {
	dt := d.DataType
	if dt == "" {
		dt = schema.BLOB
	}
	if !strings.EqualFold(dt, s.DataType) || strings.TrimSpace(d.DataSchema) != strings.TrimSpace(schemaText) {
		g.log.Warn("stream exists in DIS with another data type or schema; validating with the config's (set create: false to use DIS's)",
			"stream", s.Name, "dis_data_type", dt, "config_data_type", s.DataType)
	}
}
