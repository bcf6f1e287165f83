// Package gateway wires the components of edgegw into one running gateway:
// broker → router → buffer → uplink → DIS, with the built-in DIS-compatible
// server as the default upstream.
//
// Run starts the components in dependency order and stops them in the reverse
// order on cancellation, so no acknowledged record is lost: the broker stops
// accepting (after which no publish hook runs), the uplink flushes for at most
// uplink.flush_timeout, the buffer commits and closes, and the built-in DIS
// server stops last because the uplink talks to it.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/buffer"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/disserver"
	"github.com/edgegw/edgegw/internal/router"
	"github.com/edgegw/edgegw/internal/schema"
	"github.com/edgegw/edgegw/internal/uplink"
)

// Gateway is one running edgegw.
type Gateway struct {
	cfg config.Config
	log *slog.Logger

	disSrv *disserver.Server
	disLn  net.Listener
	client *dis.Client
	buf    *buffer.Buffer
	router *router.Router
	// schemas validates payloads per stream (schema.go).
	schemas *schema.Registry
	ingest  *ingest
	broker  *broker.Broker
	uplink  *uplink.Uplink
	dead    *deadLetters
	ops     *ops // admin server, metrics, reload (ops.go)
	dl      downlinkParts

	ready chan struct{}
}

// New builds a gateway from a validated config. Nothing is started or bound
// until Run.
func New(cfg config.Config, log *slog.Logger) *Gateway {
	g := &Gateway{cfg: cfg, ready: make(chan struct{}), ops: newOps()}
	g.log = slog.New(g.ops.errs.Handler(log.Handler())) // keeps recent warnings for the status API
	return g
}

// Ready is closed once every component is serving.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// MQTTAddr returns the bound address of the named MQTT listener (after Ready).
func (g *Gateway) MQTTAddr(name string) net.Addr { return g.broker.Addr(name) }

// DISEndpoint returns the DIS base URL the gateway uses (after Ready).
func (g *Gateway) DISEndpoint() string { return g.client.Endpoint() }

// Run starts the gateway and blocks until ctx is cancelled, then shuts down in
// order. It returns an error if a component fails to start.
func (g *Gateway) Run(ctx context.Context) (err error) {
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	// 0. The admin server first and down last: /healthz answers while the
	// rest starts (and /readyz says it is starting) and while it drains.
	stopAdmin, err := g.startAdmin()
	if err != nil {
		return err
	}
	stops = append(stops, stopAdmin)

	// 1. The built-in DIS server, first up and last down: the uplink talks to it.
	endpoint := g.cfg.DIS.Endpoint
	if g.cfg.DIS.Builtin.Enabled {
		if err := g.startBuiltinDIS(); err != nil {
			return err
		}
		stops = append(stops, g.stopBuiltinDIS)
		if endpoint == "" {
			endpoint = "http://" + g.disLn.Addr().String()
		}
	}

	// 2. The DIS client and the configured streams.
	client, err := NewDISClient(g.cfg.DIS, endpoint)
	if err != nil {
		return err
	}
	g.client = client
	if err := g.ensureStreams(ctx); err != nil {
		// DIS may be unreachable at boot on an edge box: buffer now and
		// let the uplink retry. Only the built-in server must work at once.
		if g.cfg.DIS.Endpoint == "" {
			return err
		}
		g.log.Warn("could not check the configured streams in DIS; continuing, the uplink retries", "err", err)
	}

	// 3. The router and the buffer.
	g.router, err = router.New(g.cfg.Routing)
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	g.buf, err = buffer.Open(g.bufferOptions())
	if err != nil {
		return err
	}
	stops = append(stops, func() {
		if err := g.buf.Close(); err != nil {
			g.log.Error("close buffer", "err", err)
		}
	})
	stopSchemas, err := g.startSchemas()
	if err != nil {
		return err
	}
	stops = append(stops, stopSchemas)

	// 4. The broker is bound now (so dead letters have somewhere to go) but
	// accepts connections only once everything behind it runs.
	g.dead = newDeadLetters(g.cfg.DeadLetter.TopicPrefix, g.cfg.DeadLetter.Stream, g.buf, g.log.With("component", "deadletter"))
	g.ingest = newIngest(g.router, g.schemas, g.buf, g.dead, g.log.With("component", "ingest"))
	g.broker, err = broker.New(g.brokerOptions())
	if err != nil {
		return err
	}
	g.dead.publish = g.recordDeadLetters(func(topic string, payload []byte) error { return g.broker.Publish(topic, payload, false, 1) })
	if g.ops.traffic, err = g.broker.CountTraffic(); err != nil {
		return err
	}

	// 5. The uplink drains the buffer.
	g.uplink = uplink.New(g.buf, g.sink(), g.uplinkOptions())
	upCtx, cancelUp := context.WithCancel(context.WithoutCancel(ctx))
	var upWG sync.WaitGroup
	upWG.Add(1)
	go func() { defer upWG.Done(); g.uplink.Run(upCtx) }()
	stops = append(stops, func() {
		fctx, cancel := context.WithTimeout(context.Background(), g.cfg.Uplink.FlushTimeout.D())
		defer cancel()
		if err := g.uplink.Shutdown(fctx); err != nil {
			g.log.Warn("uplink did not drain before the flush deadline", "err", err)
		}
		cancelUp()
		upWG.Wait()
	})

	// 6. Accept devices. Stops run in reverse: the broker closes first, so
	// no publish hook runs while the uplink flushes and the buffer closes.
	stops = append(stops, func() {
		if err := g.broker.Close(); err != nil {
			g.log.Error("close MQTT broker", "err", err)
		}
	})

	if err := g.startDownlink(ctx, &stops); err != nil { // stops before the broker closes
		return err
	}

	if err := g.broker.Start(); err != nil {
		return err
	}
	g.ops.listening.Store(true)

	g.log.Info("edgegw running", "gateway", g.cfg.Gateway.ID, "dis", endpoint, "project", g.cfg.DIS.ProjectID)
	close(g.ready)
	<-ctx.Done()
	g.ops.stopping.Store(true)
	g.log.Info("shutting down")
	return nil
}

func (g *Gateway) startBuiltinDIS() error {
	b := g.cfg.DIS.Builtin
	srv, err := disserver.New(b.Server, g.log.With("component", "dis-server"))
	if err != nil {
		return fmt.Errorf("built-in DIS server: %w", err)
	}
	ln, err := net.Listen("tcp", b.Server.Listen)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("built-in DIS server: listen on %s (dis.builtin.listen): %w", b.Server.Listen, err)
	}
	g.disSrv, g.disLn = srv, ln
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("built-in DIS server stopped", "err", err)
		}
	}()
	g.log.Info("built-in DIS server ready", "addr", ln.Addr().String(), "data_dir", b.Server.DataDir)
	return nil
}

func (g *Gateway) stopBuiltinDIS() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.disSrv.Shutdown(ctx); err != nil {
		g.log.Error("stop built-in DIS server", "err", err)
	}
}

// ensureStreams creates the configured streams that do not exist yet.
func (g *Gateway) ensureStreams(ctx context.Context) error {
	for _, s := range g.cfg.Streams {
		if !s.Create {
			continue
		}
		schemaText, err := streamSchemaText(s)
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.Name, err)
		}
		cctx, cancel := context.WithTimeout(ctx, g.cfg.DIS.Timeout.D())
		d, err := g.client.DescribeStream(cctx, s.Name, "", 1)
		if err == nil {
			g.warnSchemaMismatch(s, schemaText, d)
		}
		if dis.IsCode(err, dis.CodeStreamNotFound) {
			dur := s.DataDuration
			err = g.client.CreateStream(cctx, &dis.CreateStreamRequest{
				StreamName:     s.Name,
				PartitionCount: s.PartitionCount,
				StreamType:     s.StreamType,
				DataType:       s.DataType,
				DataDuration:   &dur,
				DataSchema:     schemaText,
				CSVProperties:  csvProperties(s),
			})
			if err == nil || dis.IsCode(err, dis.CodeStreamExists) {
				g.log.Info("created DIS stream", "stream", s.Name, "partitions", s.PartitionCount)
				err = nil
			}
		}
		cancel()
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.Name, err)
		}
	}
	return nil
}

func (g *Gateway) bufferOptions() buffer.Options {
	b := g.cfg.Buffer
	opts := buffer.Options{
		Dir:      b.Dir,
		Sync:     buffer.SyncMode(b.Sync),
		MaxBytes: int64(b.MaxBytes),
		Overflow: buffer.Overflow(b.Overflow),
		Streams:  map[string]buffer.StreamOptions{},
		Logger:   g.log.With("component", "buffer"),
	}
	for _, s := range g.cfg.Streams {
		age := s.Buffer.MaxAge.D()
		if age == 0 {
			age = b.MaxAge.D()
		}
		if age == 0 {
			// Default to the stream's retention: DIS would refuse older data.
			age = time.Duration(s.DataDuration) * time.Hour
		}
		opts.Streams[s.Name] = buffer.StreamOptions{MaxAge: age, MaxBytes: int64(s.Buffer.MaxBytes), Overflow: buffer.Overflow(s.Buffer.Overflow)}
	}
	return opts
}

func (g *Gateway) uplinkOptions() uplink.Options {
	u := g.cfg.Uplink
	streams := make([]string, 0, len(g.cfg.Streams))
	for _, s := range g.cfg.Streams {
		streams = append(streams, s.Name)
	}
	return uplink.Options{
		Streams:         streams,
		MaxBatchRecords: u.MaxBatchRecords,
		MaxBatchBytes:   int(u.MaxBatchBytes),
		Linger:          u.Linger.D(),
		MaxInFlight:     u.MaxInFlight,
		BackoffInitial:  u.BackoffInitial.D(),
		BackoffMax:      u.BackoffMax.D(),
		Logger:          g.log.With("component", "uplink"),
		DeadLetter: func(rec buffer.Record, code, msg string) {
			g.dead.send(context.Background(), false, deadLetter{Stream: rec.Stream, Source: "dis", Code: code, Reason: msg,
				Key: rec.PartitionKey, Timestamp: rec.Timestamp}, rec.Data)
		},
	}
}

func (g *Gateway) brokerOptions() broker.Options {
	m := g.cfg.MQTT
	ls := make([]broker.ListenerConfig, len(m.Listeners))
	for i, l := range m.Listeners {
		ls[i] = l.BrokerListener()
	}
	return broker.Options{
		Listeners:              ls,
		Auth:                   m.AuthConfig(),
		MaxPacketSize:          uint32(m.MaxPacketSize),
		MaxSessionExpiry:       m.MaxSessionExpiry.D(),
		ReceiveMaximum:         uint16(m.ReceiveMaximum),
		MaxClientWritesPending: int32(m.MaxClientWritesPending),
		Ingester:               g.ingest,
		Logger:                 g.log,
	}
}
