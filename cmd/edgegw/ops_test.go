package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/internal/admin"
	"github.com/edgegw/edgegw/internal/mqtttest"
)

// Secrets of the operated gateway; no log line may contain any of them.
const (
	testAK         = "AKTESTNOTLOGGED0001"
	testSK         = "sk-test-never-in-a-log-9f8e7d6c5b4a"
	testAdminToken = "admin-token-never-in-a-log-1a2b3c"
	testMQTTPass   = "mqtt-password-never-in-a-log-77"
)

// testMQTTHash is the bcrypt hash of testMQTTPass (cost 4: fast in tests).
var testMQTTHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(testMQTTPass), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

// opsConfig is a gateway config with every port free, data in dir, debug
// logs (the most that could leak), AK/SK auth to the built-in DIS server and
// an admin token. extraRoutes are appended to the routes.
func opsConfig(mqttPort, disPort, adminPort int, dir, extraRoutes string) string {
	return fmt.Sprintf(`gateway: {id: ops-test}
log: {level: debug, format: text}
mqtt:
  listeners: [{name: tcp, type: tcp, address: "127.0.0.1:%d"}]
  users: [{name: dev1, password_hash: %q}]
buffer: {dir: %q}
dis:
  project_id: local
  auth: {mode: aksk, access_key: %s, secret_key: %s}
  builtin:
    enabled: true
    listen: "127.0.0.1:%d"
    data_dir: %q
    auth:
      mode: aksk
      keys: [{access_key: %s, secret_key: %s, projects: ["*"]}]
admin:
  listen: "127.0.0.1:%d"
  token: %s
streams:
  - {name: telemetry, partition_count: 2}
routes:
  - {topic: devices/+/telemetry, stream: telemetry, partition_key: "{topic.2}"}
%s`, mqttPort, testMQTTHash, filepath.Join(dir, "buffer"), testAK, testSK, disPort, filepath.Join(dir, "dis"),
		testAK, testSK, adminPort, testAdminToken, extraRoutes)
}

// cli runs edgegw with args and returns its exit code and combined output.
func cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := edgegw(ctx, args...).CombinedOutput()
	return exitCode(err), string(out)
}

func mustCLI(t *testing.T, want string, args ...string) string {
	t.Helper()
	code, out := cli(t, args...)
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("edgegw %s: exit %d, want 0 and output containing %q:\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// An operator's session with a running gateway, as separate processes:
// status, stream management, put, SIGHUP reloads (good and bad), buffer stats,
// and afterwards no secret anywhere in the gateway's log.
func TestOperateRunningGateway(t *testing.T) {
	dir := t.TempDir()
	mqttPort, disPort, adminPort := freePort(t), freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "edgegw.yaml")
	writeCfg := func(extra string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(opsConfig(mqttPort, disPort, adminPort, dir, extra)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("")
	c := []string{"-c", cfgPath}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logs := &lockedBuffer{}
	gw := edgegw(ctx, "run", "-c", cfgPath)
	gw.Stdout, gw.Stderr = logs, logs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Process.Kill()
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", mqttPort)
	waitListening(t, mqttAddr, logs)

	// status: a table for people, JSON for tools, exit 1 with a wrong token.
	out := mustCLI(t, "READY", append([]string{"status"}, c...)...)
	if !strings.Contains(out, "telemetry") || !strings.Contains(out, "ops-test") {
		t.Fatalf("status table lacks the stream or the gateway id:\n%s", out)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(mustCLI(t, `"id"`, append([]string{"status", "-o", "json"}, c...)...)), &st); err != nil || st.Gateway.ID != "ops-test" {
		t.Fatalf("status -o json: %v %+v", err, st.Gateway)
	}
	if code, out := cli(t, append([]string{"status", "--token", "wrong"}, c...)...); code != 1 || !strings.Contains(out, "refused the bearer token") {
		t.Fatalf("status with a wrong token: exit %d\n%s", code, out)
	}
	if code, out := cli(t, append([]string{"status", "-o", "yaml"}, c...)...); code != 2 {
		t.Fatalf("status -o yaml: exit %d, want 2\n%s", code, out)
	}

	// Streams and put, signed with the AK/SK of the config.
	mustCLI(t, "created stream extra", append([]string{"dis", "streams", "create", "extra", "--partitions", "2"}, c...)...)
	out = mustCLI(t, "extra", append([]string{"dis", "streams", "list"}, c...)...)
	if !strings.Contains(out, "telemetry") {
		t.Fatalf("streams list lacks telemetry:\n%s", out)
	}
	out = mustCLI(t, "shardId-0000000001", append([]string{"dis", "streams", "describe", "extra"}, c...)...)
	out = mustCLI(t, "record 3:", append([]string{"dis", "put", "extra", "--key", "k1", "a", "b", "c"}, c...)...)
	if strings.Count(out, "seq=") != 3 {
		t.Fatalf("put printed:\n%s", out)
	}
	mustCLI(t, `"c"`, append([]string{"dis", "tail", "extra", "-n", "3", "-o", "json"}, c...)...)
	if code, out := cli(t, append([]string{"dis", "streams", "delete", "extra"}, c...)...); code != 2 || !strings.Contains(out, "--yes") {
		t.Fatalf("delete without --yes: exit %d\n%s", code, out)
	}
	mustCLI(t, "deleted stream extra", append([]string{"dis", "streams", "delete", "extra", "--yes"}, c...)...)
	if code, out := cli(t, append([]string{"dis", "streams", "describe", "extra"}, c...)...); code != 1 || !strings.Contains(out, "DIS.4301") {
		t.Fatalf("describe a deleted stream: exit %d\n%s", code, out)
	}
	// A request signed with a wrong secret: the server logs the refusal,
	// and must not log the key while doing so.
	wrong := edgegw(ctx, append([]string{"dis", "streams", "list"}, c...)...)
	wrong.Env = append(wrong.Env, "EDGEGW_DIS_SECRET_KEY=wrong-secret-key")
	if out, err := wrong.CombinedOutput(); exitCode(err) != 1 || !strings.Contains(string(out), "signature does not match") {
		t.Fatalf("list with a wrong secret key: exit %d\n%s", exitCode(err), out)
	}
	if code, out := cli(t, append([]string{"buffer", "stats"}, c...)...); code != 1 || !strings.Contains(out, "running gateway") {
		t.Fatalf("buffer stats while running: exit %d\n%s", code, out)
	}

	// A device logs in with its password; a wrong one is refused.
	if _, err := mqtttest.Dial(mqttAddr, "dev-wrong", func(o *paho.ClientOptions) {
		o.SetUsername("dev1").SetPassword(testMQTTPass + "-wrong")
	}); err == nil {
		t.Fatal("a wrong MQTT password was accepted")
	}
	// SIGHUP applies a new route to a connected device without dropping it.
	dev := mqtttest.Connect(t, mqttAddr, "dev-1", func(o *paho.ClientOptions) {
		o.SetUsername("dev1").SetPassword(testMQTTPass)
	})
	publish := func(topic string) {
		t.Helper()
		rs := mqtttest.PublishAll(dev, []string{topic}, [][]byte{[]byte(`{"v":1}`)}, 1, 1, 30*time.Second)
		if err := mqtttest.FirstError(rs); err != nil {
			t.Fatalf("publish to %s: %v", topic, err)
		}
	}
	status := func() admin.Status {
		t.Helper()
		var st admin.Status
		// --url and --token: the config file may be the bad one being refused.
		out := mustCLI(t, "{", "status", "-o", "json", "--url", fmt.Sprintf("http://127.0.0.1:%d", adminPort), "--token", testAdminToken)
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	publish("sensors/s1/data")
	if st := status(); st.Ingest.Unrouted != 1 || st.Ingest.Accepted != 0 {
		t.Fatalf("before reload: unrouted %d accepted %d", st.Ingest.Unrouted, st.Ingest.Accepted)
	}
	writeCfg("  - {topic: sensors/+/data, stream: telemetry}\n")
	if err := gw.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pollStatus(t, status, "the reload", func(st admin.Status) bool { return st.Reload.Succeeded == 1 })
	publish("sensors/s1/data")
	if st := status(); st.Ingest.Accepted != 1 || st.MQTT.ClientsConnected != 1 {
		t.Fatalf("after reload: accepted %d, clients %d", st.Ingest.Accepted, st.MQTT.ClientsConnected)
	}

	// A bad config is refused with its reason and the running one stays.
	writeCfg("  - {topic: sensors/#/bad, stream: telemetry}\n")
	if err := gw.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	st = pollStatus(t, status, "the refusal", func(st admin.Status) bool { return st.Reload.Failed == 1 })
	if !strings.Contains(st.Reload.LastError, "routes[1].topic") {
		t.Fatalf("refusal reason %q does not name the key", st.Reload.LastError)
	}
	publish("sensors/s1/data")
	if st := status(); st.Ingest.Accepted != 2 || st.Reload.Succeeded != 1 {
		t.Fatalf("after a refused reload: accepted %d, reloads %d", st.Ingest.Accepted, st.Reload.Succeeded)
	}

	// edgegw reload does what SIGHUP does, and says what it did.
	writeCfg("")
	if out := mustCLI(t, "reloaded: applied routes", append([]string{"reload"}, c...)...); strings.Contains(out, "restart") {
		t.Fatalf("reload says a restart is needed:\n%s", out)
	}
	writeCfg("  - {topic: sensors/#/bad, stream: telemetry}\n")
	if code, out := cli(t, "reload", "--url", fmt.Sprintf("http://127.0.0.1:%d", adminPort), "--token", testAdminToken); code != 1 || !strings.Contains(out, "routes[1].topic") {
		t.Fatalf("reload of a bad config: exit %d\n%s", code, out)
	}

	if err := gw.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := gw.Wait(); err != nil {
		t.Fatalf("gateway exit after SIGTERM: %v\n%s", err, logs.String())
	}
	writeCfg("") // a valid file again, for the offline command
	mustCLI(t, "STREAM", append([]string{"buffer", "stats"}, c...)...)

	log := logs.String()
	for _, want := range []string{"configuration reloaded", "configuration reload refused", "admin server ready"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for name, secret := range map[string]string{"DIS access key": testAK, "DIS secret key": testSK, "admin token": testAdminToken,
		"MQTT password": testMQTTPass, "MQTT password hash": testMQTTHash} {
		if strings.Contains(log, secret) {
			t.Errorf("the %s appears in the gateway's log", name)
		}
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", log)
	}
}

func pollStatus(t *testing.T, status func() admin.Status, what string, cond func(admin.Status) bool) admin.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s: %+v", what, st.Reload)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}
