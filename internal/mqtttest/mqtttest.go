// Package mqtttest holds MQTT client helpers for tests: a paho publisher that
// counts a message as delivered only on a PUBACK seen on the same connection
// (paho completes tokens with a nil error across reconnects, see
// ../shared/LIBRARY-NOTES.md §A4), with a bounded in-flight window.
package mqtttest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Connect opens a paho MQTT 3.1.1 connection to addr (host:port) with
// auto-reconnect off, so a lost connection fails every pending token.
func Connect(t testing.TB, addr, clientID string, opts ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := Dial(addr, clientID, opts...)
	if err != nil {
		t.Fatalf("mqtt connect %s as %s: %v", addr, clientID, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Dial is Connect without a testing.TB, for load generators.
func Dial(addr, clientID string, opts ...func(*paho.ClientOptions)) (paho.Client, error) {
	o := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

// Result is the outcome of one publish.
type Result struct {
	Index int   // position in the publish sequence
	Err   error // nil: PUBACK received
}

// PublishAll publishes payloads[i] to topics[i] (or topics[0] for all) at qos
// with at most window messages in flight, in order, and returns one Result per
// message. It waits at most timeout for all acks.
func PublishAll(c paho.Client, topics []string, payloads [][]byte, qos byte, window int, timeout time.Duration) []Result {
	results := make([]Result, len(payloads))
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	deadline := time.Now().Add(timeout)
	for i, p := range payloads {
		topic := topics[0]
		if len(topics) > 1 {
			topic = topics[i]
		}
		sem <- struct{}{}
		tok := c.Publish(topic, qos, false, p)
		wg.Add(1)
		go func(i int, tok paho.Token) {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = Result{Index: i}
			if !tok.WaitTimeout(time.Until(deadline)) {
				results[i].Err = fmt.Errorf("no PUBACK before the deadline")
				return
			}
			results[i].Err = tok.Error()
		}(i, tok)
	}
	wg.Wait()
	return results
}

// Acked counts results without error.
func Acked(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Err == nil {
			n++
		}
	}
	return n
}

// FirstError returns the first error in rs, or nil.
func FirstError(rs []Result) error {
	for _, r := range rs {
		if r.Err != nil {
			return fmt.Errorf("message %d: %w", r.Index, r.Err)
		}
	}
	return nil
}
