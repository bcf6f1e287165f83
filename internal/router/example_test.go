package router_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/edgegw/edgegw/internal/router"
)

// The broker's publish hook: route, then dead-letter a *KeyError, skip a
// drop, or hand the record on.
func Example() {
	r, err := router.New(router.Config{
		Routes: []router.Route{
			{Topic: "devices/+/telemetry", Stream: "telemetry", PartitionKey: "{topic.2}"},
			{Topic: "devices/+/events/#", Stream: "events", PartitionKey: "{payload.device.id}", Envelope: true},
		},
	})
	if err != nil {
		panic(err) // config errors are reported by Config.Validate at load
	}
	for _, m := range []*router.Message{
		{Topic: "devices/d1/telemetry", ClientID: "d1", Payload: []byte(`{"temp":21.5}`)},
		{Topic: "devices/d1/events/boot", ClientID: "d1", Payload: []byte(`not json`), Received: time.UnixMilli(0)},
		{Topic: "lights/kitchen", Payload: []byte(`on`)},
	} {
		res, err := r.Route(m)
		var ke *router.KeyError
		switch {
		case errors.As(err, &ke):
			fmt.Printf("%s: dead-letter to %s: %s\n", m.Topic, res.Stream, ke.Reason)
		case res.Dropped():
			fmt.Printf("%s: no route, dropped (%d so far)\n", m.Topic, r.Dropped())
		default:
			fmt.Printf("%s: stream %s key %s data %s\n", m.Topic, res.Stream, res.PartitionKey, res.Data)
		}
	}
	// Output:
	// devices/d1/telemetry: stream telemetry key d1 data {"temp":21.5}
	// devices/d1/events/boot: dead-letter to events: partition key {payload.device.id}: payload is not JSON
	// lights/kitchen: no route, dropped (1 so far)
}
