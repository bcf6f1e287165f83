package broker

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Close must return while clients are leaving at the same moment, and end
// every connection. (The mochi deadlock closeClientsOf avoids needs a
// client's Clients.Delete to queue in the nanoseconds between two read locks
// of GetByListener: this test exercises the same path but cannot make that
// race happen on demand; the reasoning is in closeClientsOf.) Bounded: 30
// rounds of 40 clients.
func TestCloseWhileClientsLeave(t *testing.T) {
	for round := 0; round < 30; round++ {
		b, _ := startBroker(t, Options{})
		a := addr(b, "tcp")
		var conns []net.Conn
		for i := 0; i < 40; i++ {
			c, err := net.DialTimeout("tcp", a, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			// MQTT 3.1.1 CONNECT, client id "c" + i (anonymous from loopback).
			id := []byte{'c', byte('0' + i/10), byte('0' + i%10)}
			pk := append([]byte{0x10, byte(12 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, byte(len(id))}, id...)
			if _, err := c.Write(pk); err != nil {
				t.Fatal(err)
			}
			ack := make([]byte, 4)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(ack); err != nil || ack[0] != 0x20 {
				t.Fatalf("CONNACK %x: %v", ack, err)
			}
			conns = append(conns, c)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c.Close()
			}()
		}
		done := make(chan struct{})
		go func() {
			<-start
			b.Close()
			close(done)
		}()
		close(start)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Close did not return within 30 s while clients were leaving (deadlock)", round)
		}
		wg.Wait()
	}
}
