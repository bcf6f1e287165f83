package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// The mqtt section reaches the broker: a WebSocket listener from the config
// carries publishes to DIS, the CONNACK announces the configured receive
// maximum and maximum packet size, a packet over max_packet_size ends the connection; and a second
// gateway whose WebSocket listener cannot bind fails to start, naming the
// listener (mochi's own WebSocket listener would only log it).
func TestMQTTSectionReachesTheBroker(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MQTT.Listeners = append(cfg.MQTT.Listeners, config.Listener{Name: "web", Type: "ws", Address: "127.0.0.1:0"})
	cfg.MQTT.ReceiveMaximum = 7
	cfg.MQTT.MaxPacketSize = 2048
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, cfg)
	wsAddr := gw.gw.MQTTAddr("web").String()

	ws := mqtttest.Connect(t, wsAddr, "over-ws", func(o *paho3.ClientOptions) {
		o.Servers = []*url.URL{{Scheme: "ws", Host: wsAddr, Path: "/mqtt"}}
	})
	if tok := ws.Publish("devices/w1/telemetry", 1, false, "from a browser"); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over WebSocket: %v", tok.Error())
	}
	if recs := readAll(t, gw, "telemetry", 1); string(recs[0].Data) != "from a browser" || recs[0].PartitionKey != "w1" {
		t.Fatalf("record %q key %q", recs[0].Data, recs[0].PartitionKey)
	}

	c, ca, err := mqtttest.DialV5(gw.mqttAddr(), mqtttest.V5Options{ClientID: "limits"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ca.Properties == nil || ca.Properties.ReceiveMaximum == nil || *ca.Properties.ReceiveMaximum != 7 {
		t.Errorf("CONNACK properties %+v, want receive maximum 7 (mqtt.receive_maximum)", ca.Properties)
	}
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 2048 {
		t.Errorf("CONNACK properties %+v, want maximum packet size 2048 (mqtt.max_packet_size)", ca.Properties)
	}
	go c.PublishQoS1("devices/big/telemetry", make([]byte, 4096)) // no PUBACK comes: the connection ends
	select {
	case <-c.Lost():
	case <-time.After(15 * time.Second):
		t.Fatal("a 4 KiB publish over mqtt.max_packet_size 2 KiB did not end the connection")
	}

	taken := testConfig(t, t.TempDir())
	taken.MQTT.Listeners = append(taken.MQTT.Listeners, config.Listener{Name: "web2", Type: "ws", Address: wsAddr})
	if err := taken.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = New(taken, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `MQTT listener "web2" (ws on `+wsAddr+`)`) ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run with a WebSocket port in use: %v, want an error naming listener web2 and the cause", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run did not return at once on the bind failure")
	}
}
