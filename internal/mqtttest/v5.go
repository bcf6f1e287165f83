package mqtttest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// V5 is an MQTT 5 test client (eclipse/paho.golang) on one connection, with
// no reconnect: Lost reports the end of the connection, so a test can tell a
// client that was dropped from one that was not.
type V5 struct {
	*paho.Client
	// Messages receives every PUBLISH delivered to the client.
	Messages chan *paho.Publish

	lostOnce sync.Once
	lost     chan struct{}
	lostErr  error
}

// V5Options are the CONNECT fields a test sets.
type V5Options struct {
	ClientID string
	Username string
	Password string
	// TLS dials with TLS when set.
	TLS *tls.Config
	// ReceiveMaximum is announced when set.
	ReceiveMaximum uint16
}

// DialV5 connects to addr (host:port). On a refused CONNECT it returns the
// CONNACK (with its reason code) and an error.
func DialV5(addr string, o V5Options) (*V5, *paho.Connack, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if o.TLS != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, o.TLS)
		if err == nil {
			// paho writes from several goroutines; tls.Conn is not safe for that.
			conn = packets.NewThreadSafeConn(conn)
		}
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, nil, err
	}
	v := &V5{Messages: make(chan *paho.Publish, 1024), lost: make(chan struct{})}
	v.Client = paho.NewClient(paho.ClientConfig{
		Conn:          conn,
		PacketTimeout: 10 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case v.Messages <- pr.Packet:
			default: // a test that does not read them does not care
			}
			return true, nil
		}},
		OnClientError:      func(err error) { v.setLost(err) },
		OnServerDisconnect: func(d *paho.Disconnect) { v.setLost(fmt.Errorf("server sent DISCONNECT 0x%02x", d.ReasonCode)) },
	})
	cp := &paho.Connect{ClientID: o.ClientID, KeepAlive: 30, CleanStart: true}
	if o.Username != "" {
		cp.Username, cp.UsernameFlag = o.Username, true
	}
	if o.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(o.Password), true
	}
	if o.ReceiveMaximum > 0 {
		rm := o.ReceiveMaximum
		cp.Properties = &paho.ConnectProperties{ReceiveMaximum: &rm}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ca, err := v.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	return v, ca, nil
}

// ConnectV5 is DialV5 that fails the test on error and disconnects at cleanup.
func ConnectV5(t testing.TB, addr string, o V5Options) *V5 {
	t.Helper()
	v, _, err := DialV5(addr, o)
	if err != nil {
		t.Fatalf("MQTT 5 connect %s as %q: %v", addr, o.ClientID, err)
	}
	t.Cleanup(v.Close)
	return v
}

// Close sends DISCONNECT (normal) and closes the connection.
func (v *V5) Close() { _ = v.Disconnect(&paho.Disconnect{ReasonCode: 0}) }

func (v *V5) setLost(err error) {
	v.lostOnce.Do(func() { v.lostErr = err; close(v.lost) })
}

// Lost is closed when the connection fails or the server disconnects.
func (v *V5) Lost() <-chan struct{} { return v.lost }

// LostErr is why the connection was lost (after Lost is closed).
func (v *V5) LostErr() error { <-v.lost; return v.lostErr }

// PublishQoS1 publishes and waits for the PUBACK, returning its reason code
// and reason string. err is set only when no PUBACK arrived.
func (v *V5) PublishQoS1(topic string, payload []byte, props ...paho.UserProperty) (code byte, reason string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p := &paho.Publish{Topic: topic, QoS: 1, Payload: payload}
	if len(props) > 0 {
		p.Properties = &paho.PublishProperties{User: props}
	}
	pr, err := v.Publish(ctx, p)
	if pr == nil {
		if err == nil {
			err = fmt.Errorf("no PUBACK")
		}
		return 0, "", err
	}
	if pr.Properties != nil {
		reason = pr.Properties.ReasonString
	}
	return pr.ReasonCode, reason, nil
}

// SubscribeOne subscribes to one filter and returns the SUBACK reason code.
func (v *V5) SubscribeOne(filter string, qos byte) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sa, err := v.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if sa == nil {
		return 0, err
	}
	return sa.Reasons[0], nil
}
