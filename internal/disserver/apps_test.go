package disserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

const (
	appsPath        = "/v2/" + testProject + "/apps"
	checkpointsPath = "/v2/" + testProject + "/checkpoints"
)

func commitBody(app, stream, partition, seq string) map[string]any {
	return map[string]any{"app_name": app, "checkpoint_type": "LAST_READ", "stream_name": stream, "partition_id": partition, "sequence_number": seq}
}

func TestApps(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Quotas.Apps = 3 })
	e.createStream("s", 2)
	e.createStream("t", 1)
	runCases(t, e, []apiCase{
		{name: "create answers 201 with no body", method: "POST", path: appsPath, body: map[string]any{"app_name": "app1"}, status: 201, check: emptyBody},
		{name: "trailing slash", method: "POST", path: appsPath + "/", body: map[string]any{"app_name": "app2"}, status: 201},
		{name: "existing app is DIS.4330", method: "POST", path: appsPath, body: map[string]any{"app_name": "app1"}, status: 400, code: "DIS.4330"},
		{name: "bad name names app_name", method: "POST", path: appsPath, body: map[string]any{"app_name": "a/b"}, status: 400, code: "DIS.4300", msg: "app_name"},
		{name: "201-character name is refused", method: "POST", path: appsPath, body: map[string]any{"app_name": strings.Repeat("a", 201)}, status: 400, code: "DIS.4300"},
		{name: "third app fits the quota", method: "POST", path: appsPath, body: map[string]any{"app_name": "app3"}, status: 201},
		{name: "fourth app is DIS.4329", method: "POST", path: appsPath, body: map[string]any{"app_name": "app4"}, status: 400, code: "DIS.4329"},
		{name: "describe unknown app is DIS.4332", method: "GET", path: appsPath + "/nope", status: 400, code: "DIS.4332"},
		{name: "delete unknown app is DIS.4332", method: "DELETE", path: appsPath + "/nope", status: 400, code: "DIS.4332"},
	})
	e.mustStatus(201, e.do("POST", checkpointsPath, commitBody("app1", "t", "0", "0")))
	t.Run("describe lists the streams with checkpoints", func(t *testing.T) {
		var a dis.App
		e.mustStatus(200, e.do("GET", appsPath+"/app1", nil)).decode(t, &a)
		if a.AppName != "app1" || a.AppID == "" || a.CreateTime != e.clock.Now().UnixMilli() || strings.Join(a.CommitCheckpointStreamNames, ",") != "t" {
			t.Fatalf("%+v", a)
		}
	})
	t.Run("list pages with an exclusive start and filters by stream", func(t *testing.T) {
		var l dis.ListAppsResponse
		e.mustStatus(200, e.do("GET", appsPath+"?limit=1&start_app_name=app1", nil)).decode(t, &l)
		if len(l.Apps) != 1 || l.Apps[0].AppName != "app2" || !l.HasMoreApp || l.TotalNumber != 3 {
			t.Fatalf("%+v", l)
		}
		e.mustStatus(200, e.do("GET", appsPath+"?stream_name=t", nil)).decode(t, &l)
		if len(l.Apps) != 1 || l.Apps[0].AppName != "app1" || l.TotalNumber != 1 {
			t.Fatalf("%+v", l)
		}
	})
	runCases(t, e, []apiCase{
		{name: "an app that just committed is in use: DIS.4331", method: "DELETE", path: appsPath + "/app1", status: 400, code: "DIS.4331"},
		{name: "an idle app deletes with 204", method: "DELETE", path: appsPath + "/app2", status: 204, check: emptyBody},
		{name: "list limit 201 is refused", method: "GET", path: appsPath + "?limit=201", status: 400, code: "DIS.4200"},
	})
	t.Run("after 5 idle minutes the app deletes, and its checkpoints with it", func(t *testing.T) {
		e.clock.Advance(appInUseMillis*time.Millisecond + time.Millisecond)
		e.mustStatus(204, e.do("DELETE", appsPath+"/app1", nil))
		e.mustStatus(201, e.do("POST", appsPath, map[string]any{"app_name": "app1"}))
		var cp dis.GetCheckpointResponse
		e.mustStatus(200, e.do("GET", checkpointsPath+"?app_name=app1&stream_name=t&partition_id=0&checkpoint_type=LAST_READ", nil)).decode(t, &cp)
		if cp.SequenceNumber != "-1" {
			t.Fatalf("re-created app sees checkpoint %q", cp.SequenceNumber)
		}
	})
}

func TestCheckpoints(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 2)
	e.mustStatus(201, e.do("POST", appsPath, map[string]any{"app_name": "a"}))
	e.put("s", putEntry{Data: b64("x"), PartitionID: "0"}, putEntry{Data: b64("y"), PartitionID: "0"})
	get := func(partition string) dis.GetCheckpointResponse {
		var cp dis.GetCheckpointResponse
		e.mustStatus(200, e.do("GET", checkpointsPath+"?app_name=a&stream_name=s&checkpoint_type=LAST_READ&partition_id="+partition, nil)).decode(t, &cp)
		return cp
	}
	t.Run("no checkpoint reads as -1", func(t *testing.T) {
		if cp := get("0"); cp.SequenceNumber != "-1" {
			t.Fatalf("%+v", cp)
		}
	})
	withMeta := commitBody("a", "s", "shardId-0000000000", "2")
	withMeta["metadata"] = "m1"
	runCases(t, e, []apiCase{
		{name: "commit answers 201 with no body", method: "POST", path: checkpointsPath, body: commitBody("a", "s", "0", "1"), status: 201, check: emptyBody},
		{name: "next-to-write is a valid checkpoint", method: "POST", path: checkpointsPath, body: withMeta, status: 201},
		{name: "beyond next-to-write is DIS.4224", method: "POST", path: checkpointsPath, body: commitBody("a", "s", "0", "3"), status: 400, code: "DIS.4224"},
		{name: "non-numeric sequence is DIS.4216", method: "POST", path: checkpointsPath, body: commitBody("a", "s", "0", "newstram"), status: 400, code: "DIS.4216"},
		{name: "unknown app is DIS.4332", method: "POST", path: checkpointsPath, body: commitBody("zz", "s", "0", "0"), status: 400, code: "DIS.4332"},
		{name: "unknown stream is DIS.4301", method: "POST", path: checkpointsPath, body: commitBody("a", "zz", "0", "0"), status: 400, code: "DIS.4301"},
		{name: "unknown partition is DIS.4302", method: "POST", path: checkpointsPath, body: commitBody("a", "s", "5", "0"), status: 400, code: "DIS.4302"},
		{name: "malformed partition is DIS.4201", method: "POST", path: checkpointsPath, body: commitBody("a", "s", "p0", "0"), status: 400, code: "DIS.4201"},
		{name: "other checkpoint type names the field", method: "POST", path: checkpointsPath,
			body: map[string]any{"app_name": "a", "checkpoint_type": "LAST_COMMIT", "stream_name": "s", "partition_id": "0", "sequence_number": "0"}, status: 400, code: "DIS.4300", msg: "checkpoint_type"},
		{name: "metadata over 1000 characters", method: "POST", path: checkpointsPath,
			body: map[string]any{"app_name": "a", "checkpoint_type": "LAST_READ", "stream_name": "s", "partition_id": "0", "sequence_number": "0", "metadata": strings.Repeat("m", 1001)}, status: 400, code: "DIS.4300", msg: "metadata"},
		{name: "get without checkpoint_type", method: "GET", path: checkpointsPath + "?app_name=a&stream_name=s&partition_id=0", status: 400, code: "DIS.4300", msg: "checkpoint_type"},
		{name: "get of an unknown app", method: "GET", path: checkpointsPath + "?app_name=zz&stream_name=s&partition_id=0&checkpoint_type=LAST_READ", status: 400, code: "DIS.4332"},
		{name: "get without partition", method: "GET", path: checkpointsPath + "?app_name=a&stream_name=s&checkpoint_type=LAST_READ", status: 400, code: "DIS.4201"},
	})
	t.Run("the value is stored exactly as committed", func(t *testing.T) {
		if cp := get("0"); cp.SequenceNumber != "2" || cp.Metadata != "m1" {
			t.Fatalf("%+v", cp)
		}
	})
	t.Run("checkpoints survive a restart", func(t *testing.T) {
		e = e.restart()
		if cp := get("shardId-0000000000"); cp.SequenceNumber != "2" || cp.Metadata != "m1" {
			t.Fatalf("%+v", cp)
		}
	})
	t.Run("consumption state per partition", func(t *testing.T) {
		var cs dis.ConsumerStateResponse
		r := e.mustStatus(200, e.do("GET", appsPath+"/a/streams/s?checkpoint_type=LAST_READ", nil))
		r.decode(t, &cs)
		if len(cs.PartitionConsumingState) != 2 || cs.HasMore || cs.AppName != "a" || cs.StreamName != "s" {
			t.Fatalf("%+v", cs)
		}
		p0, p1 := cs.PartitionConsumingState[0], cs.PartitionConsumingState[1]
		if p0.PartitionID != "shardId-0000000000" || p0.SequenceNumber != "2" || p0.LatestOffset != 2 || p0.EarliestOffset != 0 || p0.Status != "ACTIVE" || p0.CheckpointType != "LAST_READ" {
			t.Errorf("partition 0 %+v", p0)
		}
		if p1.SequenceNumber != "-1" || p1.LatestOffset != 0 {
			t.Errorf("partition 1 %+v", p1)
		}
		if !strings.Contains(string(r.body), `"sequence_number":"-1"`) || !strings.Contains(string(r.body), `"partition_id":"shardId-0000000001"`) {
			t.Errorf("partition_id and sequence_number must be strings: %s", r.body)
		}
		e.mustStatus(200, e.do("GET", appsPath+"/a/streams/s?checkpoint_type=LAST_READ&limit=1&start_partition_id=0", nil)).decode(t, &cs)
		if len(cs.PartitionConsumingState) != 1 || cs.PartitionConsumingState[0].PartitionID != "shardId-0000000001" || cs.HasMore {
			t.Errorf("page after 0: %+v", cs)
		}
	})
	runCases(t, e, []apiCase{
		{name: "consumption state needs checkpoint_type", method: "GET", path: appsPath + "/a/streams/s", status: 400, code: "DIS.4200"},
		{name: "consumption state of unknown app", method: "GET", path: appsPath + "/zz/streams/s?checkpoint_type=LAST_READ", status: 400, code: "DIS.4332"},
		{name: "consumption state with a malformed start_partition_id", method: "GET", path: appsPath + "/a/streams/s?checkpoint_type=LAST_READ&start_partition_id=p1", status: 400, code: "DIS.4201"},
		{name: "consumption state limit 1001 is refused", method: "GET", path: appsPath + "/a/streams/s?checkpoint_type=LAST_READ&limit=1001", status: 400, code: "DIS.4200"},
		{name: "get on an unknown stream", method: "GET", path: checkpointsPath + "?app_name=a&stream_name=zz&partition_id=0&checkpoint_type=LAST_READ", status: 400, code: "DIS.4301"},
		{name: "get on an unknown partition", method: "GET", path: checkpointsPath + "?app_name=a&stream_name=s&partition_id=9&checkpoint_type=LAST_READ", status: 400, code: "DIS.4302"},
		{name: "consumption state of unknown stream", method: "GET", path: appsPath + "/a/streams/zz?checkpoint_type=LAST_READ", status: 400, code: "DIS.4301"},
		{name: "delete of an unknown app's checkpoints", method: "DELETE", path: checkpointsPath + "?app_name=zz&stream_name=s&checkpoint_type=LAST_READ", status: 400, code: "DIS.4332"},
		{name: "delete on an unknown stream", method: "DELETE", path: checkpointsPath + "?app_name=a&stream_name=zz&checkpoint_type=LAST_READ", status: 400, code: "DIS.4301"},
		{name: "delete without checkpoint_type", method: "DELETE", path: checkpointsPath + "?app_name=a&stream_name=s", status: 400, code: "DIS.4300", msg: "checkpoint_type"},
		{name: "delete without app_name", method: "DELETE", path: checkpointsPath + "?stream_name=s&checkpoint_type=LAST_READ", status: 400, code: "DIS.4300", msg: "app_name"},
		{name: "delete on an unknown partition", method: "DELETE", path: checkpointsPath + "?app_name=a&stream_name=s&checkpoint_type=LAST_READ&partition_id=7", status: 400, code: "DIS.4302"},
		{name: "list apps filtered by an unknown stream", method: "GET", path: appsPath + "?stream_name=zz", status: 400, code: "DIS.4301"},
		{name: "describe app with a trailing slash", method: "GET", path: appsPath + "/a/", status: 200},
		{name: "delete one partition's checkpoint", method: "DELETE", path: checkpointsPath + "?app_name=a&stream_name=s&checkpoint_type=LAST_READ&partition_id=0", status: 204, check: emptyBody},
	})
	t.Run("deleted checkpoint reads -1", func(t *testing.T) {
		if cp := get("0"); cp.SequenceNumber != "-1" {
			t.Fatalf("%+v", cp)
		}
	})
	t.Run("delete without partition_id clears every partition", func(t *testing.T) {
		e.mustStatus(201, e.do("POST", checkpointsPath, commitBody("a", "s", "0", "1")))
		e.mustStatus(201, e.do("POST", checkpointsPath, commitBody("a", "s", "1", "0")))
		e.mustStatus(204, e.do("DELETE", checkpointsPath+"?app_name=a&stream_name=s&checkpoint_type=LAST_READ", nil))
		if get("0").SequenceNumber != "-1" || get("1").SequenceNumber != "-1" {
			t.Fatal("checkpoints left after delete without partition_id")
		}
	})
	_ = http.StatusOK
}
