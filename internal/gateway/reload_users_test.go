package gateway

import (
	"net/http"
	"slices"
	"testing"

	"github.com/edgegw/edgegw/internal/broker"
	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// A reload (POST /api/v1/reload, as SIGHUP) applies mqtt.users: an added user
// logs in, a changed password applies to the next login, and the device
// already connected with the old password stays connected.
func TestReloadAppliesUsersWithoutDroppingConnections(t *testing.T) {
	const token = "reload-users-token"
	base := testConfig(t, t.TempDir())
	base.Admin.Token = token
	base.MQTT.Anonymous = "never"
	base.MQTT.Users = []broker.User{mustUser(t, "d1", "pw1")}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	next := base
	r := startGateway(t, base)
	r.gw.SetConfigSource(func() (config.Config, error) { return next, next.Validate() })
	login := func(id, user, pw string) error {
		c, _, err := mqtttest.DialV5(r.mqttAddr(), mqtttest.V5Options{ClientID: id, Username: user, Password: pw})
		if err == nil {
			c.Close()
		}
		return err
	}

	d1 := mqtttest.ConnectV5(t, r.mqttAddr(), mqtttest.V5Options{ClientID: "d1", Username: "d1", Password: "pw1"})
	if login("d2-early", "d2", "pw2") == nil {
		t.Fatal("d2 logged in before it was configured")
	}
	next.MQTT.Users = []broker.User{mustUser(t, "d1", "pw1-new"), mustUser(t, "d2", "pw2")}
	code, res := postReload(t, r, token)
	if code != http.StatusOK || !slices.Equal(res.Applied, []string{"mqtt users and acl"}) || len(res.RestartNeeded) != 0 {
		t.Fatalf("reload = %d %+v", code, res)
	}
	if err := login("d2", "d2", "pw2"); err != nil {
		t.Fatalf("added user: %v", err)
	}
	if login("d1-old", "d1", "pw1") == nil {
		t.Fatal("d1's old password still accepted after the reload")
	}
	if err := login("d1-new", "d1", "pw1-new"); err != nil {
		t.Fatalf("d1's new password: %v", err)
	}
	if code, _, err := d1.PublishQoS1("devices/d1/telemetry", payload("d1", 0)); err != nil || code != 0 || isClosed(d1.Lost()) {
		t.Fatalf("the connection made before the reload: code 0x%02x, %v, lost %v", code, err, isClosed(d1.Lost()))
	}
}
