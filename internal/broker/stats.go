package broker

import (
	"sync/atomic"
)

// counters are plain atomics, so counting costs the hot paths no lock.
type counters struct {
	logins             [len(loginKinds)]atomic.Uint64
	authFailures       [len(failKinds)]atomic.Uint64
	aclDeniedPublish   atomic.Uint64
	aclDeniedSubscribe atomic.Uint64
	aclDeniedDelivery  atomic.Uint64
}

// Stats is a snapshot of the broker's counters since New. Every count only
// grows (Prometheus counters), except ClientsConnected (a gauge).
type Stats struct {
	// ClientsConnected is the number of clients connected now.
	ClientsConnected int64
	// Logins counts accepted logins by how the client authenticated:
	// LoginPassword, LoginCertificate, LoginAnonymous.
	Logins map[string]uint64
	// AuthFailures counts refused logins by reason: FailBadPassword,
	// FailAnonymous, FailNoCertificate, FailRateLimited.
	AuthFailures map[string]uint64
	// ACL denials: publishes refused (MQTT 5: PUBACK 0x87; MQTT 3.1.1 QoS > 0:
	// disconnect; QoS 0: dropped), subscriptions refused (SUBACK 0x87, or 0x80
	// for MQTT 3.1.1), and deliveries of a message to a subscriber whose
	// subscription is wider than its rules (a deny for one topic under an
	// allowed filter, or rules changed by a reload).
	ACLDeniedPublish   uint64
	ACLDeniedSubscribe uint64
	ACLDeniedDelivery  uint64
}

// Stats returns the current counters. It is safe to call from any goroutine.
func (b *Broker) Stats() Stats {
	s := Stats{
		ClientsConnected:   b.ClientsConnected(),
		Logins:             make(map[string]uint64, len(loginKinds)),
		AuthFailures:       make(map[string]uint64, len(failKinds)),
		ACLDeniedPublish:   b.stats.aclDeniedPublish.Load(),
		ACLDeniedSubscribe: b.stats.aclDeniedSubscribe.Load(),
		ACLDeniedDelivery:  b.stats.aclDeniedDelivery.Load(),
	}
	for i, k := range loginKinds {
		s.Logins[k] = b.stats.logins[i].Load()
	}
	for i, k := range failKinds {
		s.AuthFailures[k] = b.stats.authFailures[i].Load()
	}
	return s
}
