package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/downlink"
)

// downlinkParts is the cloud-to-device path: the broker's delivery hook and
// the downlink that publishes through it.
type downlinkParts struct {
	delivery *broker.Delivery
	d        *downlink.Downlink // nil without downlink routes
}

// startDownlink installs the delivery hook on the bound broker and, when
// the config has downlink routes, starts the downlink. Run calls it after
// the broker is bound and before it accepts connections, so the hook sees
// every connection (it also repairs MQTT 5 flow control for device-to-
// device messages, so it is installed without a downlink too). The stop it
// appends to stops runs before the broker closes: the downlink commits its
// checkpoints for what it handed to a still-running broker.
func (g *Gateway) startDownlink(ctx context.Context, stops *[]func()) error {
	var err error
	if g.dl.delivery, err = broker.NewDelivery(g.broker, broker.DeliveryOptions{}); err != nil {
		return err
	}
	if len(g.cfg.Downlink.Routes) == 0 {
		return nil
	}
	opts, err := g.downlinkOptions()
	if err != nil {
		return err
	}
	g.dl.d, err = downlink.New(g.client, opts)
	if err != nil {
		return err
	}
	g.ops.downlink = g.dl.d.Stats // the admin API's view (ops.go), read only after Ready
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); g.dl.d.Run(dctx) }()
	*stops = append(*stops, func() { cancel(); <-done })
	g.log.Info("downlink started", "app", opts.App, "routes", len(opts.Routes), "start", opts.Start)
	return nil
}

func (g *Gateway) downlinkOptions() (downlink.Options, error) {
	c := g.cfg.Downlink
	opts := downlink.Options{
		App: c.App, Start: c.StartPosition,
		CommitEvery: c.CommitEveryRecords, CommitInterval: c.CommitInterval.D(), AckTimeout: c.AckTimeout.D(),
		PollMin: c.PollInterval.D(), PollMax: c.PollIntervalMax.D(), MaxFetchBytes: int(c.MaxFetchBytes),
		BackoffInitial: c.BackoffInitial.D(), BackoffMax: c.BackoffMax.D(),
		DiscoveryInterval: c.DiscoveryInterval.D(),
		OnDrop:            c.OnDrop, MaxAttempts: c.MaxAttempts,
		Publish: func(topic string, payload []byte, retain bool, qos byte) (int, func() bool, error) {
			res, err := g.dl.delivery.Deliver(topic, payload, retain, qos)
			return res.Dropped, res.Settled, err
		},
		// Durable: the downlink checkpoints past a dead-lettered record, so
		// its dead letter is in the buffer (when dead_letter.stream is set)
		// before the reader moves on.
		DeadLetter: func(dl downlink.DeadLetter) {
			g.dead.send(context.Background(), true, deadLetter{Stream: dl.Stream, Source: "downlink", Code: dl.Code, Reason: dl.Reason,
				Topic: dl.Topic, Key: dl.PartitionKey, Timestamp: dl.Timestamp}, dl.Data)
		},
		Logger: g.log.With("component", "downlink"),
	}
	if opts.App == "" {
		opts.App = downlink.AppName(g.cfg.Gateway.ID)
	}
	if c.StartPosition == downlink.StartTimestamp {
		t, err := time.Parse(time.RFC3339, c.StartTimestamp)
		if err != nil {
			return opts, fmt.Errorf("downlink.start_timestamp: %w", err)
		}
		opts.StartTime = t
	}
	for _, r := range c.Routes {
		route := downlink.Route{
			Stream: r.Stream, Topic: r.Topic, QoS: byte(r.QoS), Retain: r.Retain,
			Transform: r.Transform, UnwrapField: r.UnwrapField, Partitions: r.Partitions, KeyPrefix: r.KeyPrefix,
		}
		if r.Match != nil {
			route.MatchField, route.MatchValue = r.Match.Field, r.Match.Value
			if route.MatchValue == "" {
				route.MatchValue = g.cfg.Gateway.ID // records addressed to this gateway
			}
		}
		opts.Routes = append(opts.Routes, route)
	}
	return opts, nil
}

// DownlinkStats returns the downlink's counters; ok is false when the
// config has no downlink routes. Safe from any goroutine after Ready.
func (g *Gateway) DownlinkStats() (st downlink.Stats, ok bool) {
	if g.dl.d == nil {
		return st, false
	}
	return g.dl.d.Stats(), true
}
