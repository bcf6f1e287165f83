package schema_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/schema"
)

// How the gateway wires the registry and how the publish hook uses it.
func Example() {
	// The DIS client's describe-stream call; here a fixed answer.
	describe := func(ctx context.Context, stream string) (*dis.DescribeStreamResponse, error) {
		return &dis.DescribeStreamResponse{StreamName: stream, DataType: "JSON",
			DataSchema: `{"type":"record","name":"T","fields":[{"name":"temp","type":"int"}]}`}, nil
	}
	fetch := func(ctx context.Context, stream string) (schema.StreamSchema, error) {
		d, err := describe(ctx, stream)
		if err != nil {
			return schema.StreamSchema{}, err
		}
		return schema.FromDescribe(d), nil
	}
	cfg := schema.Config{Streams: []schema.StreamConfig{
		// This stream's schema is in config: in force before DIS answers.
		{Name: "readings", DataType: "CSV", DataSchema: `{"type":"record","name":"R","fields":[{"name":"id","type":"string"},{"name":"v","type":"double"}]}`},
	}}
	reg, err := schema.NewRegistry(cfg, fetch, nil, "telemetry") // "telemetry" comes from DIS
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }() // fetches now, then every refresh_interval
	defer func() { cancel(); <-done }()  // the owner stops it and waits

	// In the publish hook, after routing:
	for _, p := range []struct{ stream, payload string }{
		{"readings", "d1,21.5"},
		{"readings", "d1,warm"},
	} {
		err := reg.Validate(p.stream, []byte(p.payload))
		var ve *schema.ValidationError
		switch {
		case errors.As(err, &ve):
			// MQTT 5: PUBACK 0x99 with reason string ve.Detail(); dead-letter
			// with ve.Error(); count by (ve.Stream, ve.Code).
			fmt.Printf("reject %s [%s]: %s\n", ve.Stream, ve.Code, ve.Detail())
		case errors.Is(err, schema.ErrNoSchema):
			fmt.Println("retry later: schema not known yet")
		default:
			fmt.Println("accept", p.stream)
		}
	}
	// Output:
	// accept readings
	// reject readings [type]: row 1 column 2 (v): want a finite double, got "warm"
}
