package gateway

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/internal/admin"
	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/downlink"
	"github.com/edgegw/edgegw/internal/uplink"
)

// ops is what the gateway keeps for operating it: the admin server, the
// counters and rings only it needs, and the reload state. Everything in it is
// safe for concurrent use.
type ops struct {
	version string
	load    func() (config.Config, error) // re-reads the config file; nil: reload unavailable; guarded by reloadMu
	started time.Time

	srv     *admin.Server // nil when admin.listen is empty
	traffic *broker.Traffic
	// downlink returns the downlink's snapshot; nil when none runs. Set by
	// the downlink's wiring (downlink.go) before Ready; read only after it.
	downlink func() downlink.Stats
	errs     *admin.RecentErrors
	dead     *admin.DeadLetters

	listening atomic.Bool // the broker accepts connections
	stopping  atomic.Bool // Run's context is done

	reloadMu sync.Mutex // serializes reloads; guards reload and running
	reload   admin.ReloadStatus
	running  config.Config // the config the last successful reload applied
}

func newOps() *ops {
	return &ops{
		version: "dev",
		errs:    admin.NewRecentErrors(),
		dead:    admin.NewDeadLetters(),
	}
}

// SetVersion names the running build in metrics and the status API. Call it
// before Run.
func (g *Gateway) SetVersion(v string) { g.ops.version = v }

// SetConfigSource gives the gateway the function that re-reads its config
// file, for Reload (SIGHUP, POST /api/v1/reload). It may be called at any time.
func (g *Gateway) SetConfigSource(load func() (config.Config, error)) {
	g.ops.reloadMu.Lock()
	g.ops.load = load
	g.ops.reloadMu.Unlock()
}

// AdminAddr returns the admin server's bound address (after Ready), or nil
// when it is turned off.
func (g *Gateway) AdminAddr() net.Addr {
	if g.ops.srv == nil {
		return nil
	}
	return g.ops.srv.Addr()
}

// startAdmin builds and binds the admin server from the admin section. It
// runs first in Run: until Ready, status reports the gateway as starting.
func (g *Gateway) startAdmin() (stop func(), err error) {
	g.ops.started = time.Now()
	g.ops.running = g.cfg
	a := g.cfg.Admin
	if a.Listen == "" {
		return func() {}, nil
	}
	token, err := a.AdminToken()
	if err != nil {
		return nil, err
	}
	srv, err := admin.New(admin.Options{
		Listen:  a.Listen,
		Token:   token,
		Source:  g.status,
		Reload:  g.Reload,
		Version: g.ops.version,
		Logger:  g.log.With("component", "admin"),
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	g.ops.srv = srv
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.ops.srv.Shutdown(ctx); err != nil {
			g.log.Warn("stop admin server", "err", err)
		}
	}, nil
}

// timedSink observes the latency of every PutRecords request for the
// edgegw_dis_put_records_duration_seconds histogram.
type timedSink struct {
	next uplink.Sink
	srv  *admin.Server
}

func (t timedSink) PutRecords(ctx context.Context, req *dis.PutRecordsRequest) (*dis.PutRecordsResponse, error) {
	start := time.Now()
	resp, err := t.next.PutRecords(ctx, req)
	t.srv.ObservePutRecords(req.StreamName, err, time.Since(start))
	return resp, err
}

// sink returns the uplink's sink: the DIS client, timed when metrics are served.
func (g *Gateway) sink() uplink.Sink {
	if g.ops.srv == nil {
		return g.client
	}
	return timedSink{next: g.client, srv: g.ops.srv}
}

// recordDeadLetters wraps the dead-letter publisher so the admin API keeps
// the recent ones.
func (g *Gateway) recordDeadLetters(publish func(topic string, payload []byte) error) func(string, []byte) error {
	return func(topic string, payload []byte) error {
		g.ops.dead.Add(topic, payload)
		return publish(topic, payload)
	}
}

// status builds the admin snapshot from the components' accessors. It runs
// on admin server goroutines. Until Ready it reports only that the gateway is
// starting: the components are being built by Run (closing ready publishes
// them to this goroutine).
func (g *Gateway) status() admin.Status {
	o := g.ops
	st := admin.Status{
		Gateway: admin.GatewayStatus{
			ID: g.cfg.Gateway.ID, Version: o.version, StartedAt: o.started,
			UptimeSeconds: time.Since(o.started).Seconds(), ShuttingDown: o.stopping.Load(),
		},
		DeadLetters: o.dead.Status(),
		Errors:      o.errs.List(),
	}
	select {
	case <-g.ready:
	default:
		st.Gateway.Starting = true
		return st
	}
	if o.downlink != nil {
		st.Downlink = downlinkStatus(o.downlink())
	}

	// Downstream first: within one snapshot a count never exceeds the count
	// of the stage before it (sent <= appended <= accepted <= received).
	st.Uplink = admin.UplinkStatus{Endpoint: g.client.Endpoint(), Streams: map[string]admin.UplinkStream{}}
	for name, u := range g.uplink.Stats() {
		st.Uplink.Streams[name] = admin.UplinkStream{
			State: string(u.State), Sent: u.Sent, Retried: u.Retried, DeadLettered: u.DeadLettered,
			Requests: u.Requests, FailedRequests: u.FailedRequest, LastError: u.LastError,
		}
	}

	b := g.buf.Stats()
	st.Buffer = admin.BufferStatus{
		Open: g.buf.IsOpen(), Records: b.Records, Bytes: b.Bytes, MaxBytes: int64(g.cfg.Buffer.MaxBytes),
		DiskUsageBytes: b.DiskUsage, DiskFull: b.DiskFull, WriteErrors: b.WriteErrors, Syncs: b.Syncs,
		Streams: make(map[string]admin.BufferStream, len(b.Streams)),
	}
	for name, s := range b.Streams {
		st.Buffer.Streams[name] = admin.BufferStream{
			Records: s.Records, Bytes: s.Bytes, OldestAgeSeconds: s.OldestAge.Seconds(),
			Appended: s.Appended, Acked: s.Acked, Rejected: s.Rejected, DroppedOldest: s.DroppedOldest, Expired: s.Expired,
		}
	}

	in := g.ingest.stats()
	st.Ingest.Accepted = in.Accepted
	st.Ingest.Unrouted = g.router.Dropped()
	st.Ingest.Rejected = make(map[string]uint64, len(admin.RejectReasons))
	for _, r := range admin.RejectReasons {
		st.Ingest.Rejected[r] = in.Refused[r]
	}
	for r, n := range in.Refused {
		st.Ingest.Rejected[r] = n
	}

	st.MQTT.Listening = o.listening.Load()
	for _, l := range g.cfg.MQTT.Listeners {
		if a := g.broker.Addr(l.Name); a != nil {
			st.MQTT.Listeners = append(st.MQTT.Listeners, admin.Listener{Name: l.Name, Address: a.String()})
		}
	}
	bs := g.broker.Stats()
	st.MQTT.ClientsConnected = bs.ClientsConnected
	st.MQTT.Logins, st.MQTT.AuthFailures = bs.Logins, bs.AuthFailures
	st.MQTT.ACLDenied = admin.ACLDenied{Publish: bs.ACLDeniedPublish, Subscribe: bs.ACLDeniedSubscribe, Delivery: bs.ACLDeniedDelivery}
	// Refused by the ACLs before the ingest path sees them (MQTT 5 0x87).
	st.Ingest.Rejected[admin.RejectACLDenied] = bs.ACLDeniedPublish
	if o.traffic != nil {
		t := o.traffic.Stats()
		st.MQTT.PublishesReceived = admin.QoSCounts{QoS0: t.Received[0], QoS1: t.Received[1], QoS2: t.Received[2]}
		st.MQTT.PublishesSent = admin.QoSCounts{QoS0: t.Sent[0], QoS1: t.Sent[1], QoS2: t.Sent[2]}
	}

	for _, sc := range g.SchemaStatus() {
		ss := admin.SchemaStream{Stream: sc.Stream, Source: sc.Source, Known: sc.Known, DataType: sc.DataType,
			Updated: sc.Updated, Passed: sc.Passed, Unvalidated: sc.Unvalidated, Rejected: map[string]uint64{}}
		if sc.Err != nil {
			ss.Error = sc.Err.Error()
		}
		for code, n := range sc.Rejected {
			ss.Rejected[string(code)] = n
		}
		st.Schemas = append(st.Schemas, ss)
	}

	o.reloadMu.Lock()
	st.Reload = o.reload
	o.reloadMu.Unlock()
	return st
}

// logReload logs a reload's outcome once, at the boundary.
func (g *Gateway) logReload(res admin.ReloadResult) {
	if !res.OK() {
		g.log.Error("configuration reload refused; the running configuration stays", "reasons", res.Errors)
		return
	}
	applied := "nothing that reload applies had changed"
	if len(res.Applied) > 0 {
		applied = strings.Join(res.Applied, ", ")
	}
	attrs := []any{"applied", applied}
	if len(res.RestartNeeded) > 0 {
		attrs = append(attrs, "restart_needed", res.RestartNeeded)
		g.log.Warn("configuration reloaded; some changes take effect only after a restart", attrs...)
		return
	}
	g.log.Info("configuration reloaded", attrs...)
}

// downlinkStatus converts the downlink's snapshot for the admin API.
func downlinkStatus(s downlink.Stats) *admin.DownlinkStatus {
	d := &admin.DownlinkStatus{
		App: s.App, State: s.State.String(), Delivered: s.Delivered, Filtered: s.Filtered, Dropped: s.Dropped,
		DeadLettered: s.DeadLettered, ReadErrors: s.ReadErrors, CommitErrors: s.CommitErrors,
		TrimHorizonJumps: s.TrimHorizonJumps, Partitions: make([]admin.DownlinkPartition, len(s.Partitions)),
	}
	for i, p := range s.Partitions {
		d.Partitions[i] = admin.DownlinkPartition{Stream: p.Stream, Partition: p.PartitionID, State: p.State,
			Lag: p.Lag, Delivered: p.Delivered, LastError: p.LastError}
	}
	return d
}
