package disserver

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

func describeAll(t *testing.T, e *env, name string) dis.DescribeStreamResponse {
	t.Helper()
	var d dis.DescribeStreamResponse
	e.mustStatus(200, e.do("GET", streamsPath+"/"+name, nil)).decode(t, &d)
	return d
}

func statuses(d dis.DescribeStreamResponse) string {
	var s []string
	for _, p := range d.Partitions {
		s = append(s, p.Status)
	}
	return strings.Join(s, ",")
}

func TestUpdatePartitionCount(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Quotas.CommonPartitions = 4 })
	e.createStream("s", 3)
	e.put("s", putEntry{Data: b64("on2"), PartitionID: "2"})
	scale := func(n int) map[string]any { return map[string]any{"stream_name": "s", "target_partition_count": n} }
	runCases(t, e, []apiCase{
		{name: "scale down answers 200 with no body", method: "PUT", path: streamsPath + "/s", body: scale(2), status: 200, check: emptyBody},
		{name: "scale up beyond the quota is DIS.4308", method: "PUT", path: streamsPath + "/s", body: scale(5), status: 400, code: "DIS.4308"},
		{name: "zero target is refused", method: "PUT", path: streamsPath + "/s", body: scale(0), status: 400, code: "DIS.4300", msg: "target_partition_count"},
		{name: "stream_name must match the path", method: "PUT", path: streamsPath + "/s", body: map[string]any{"stream_name": "t", "target_partition_count": 1}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "stream_name is mandatory (§5.1.5)", method: "PUT", path: streamsPath + "/s", body: map[string]any{"target_partition_count": 1}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "unknown stream is DIS.4301", method: "PUT", path: streamsPath + "/nope", body: map[string]any{"stream_name": "nope", "target_partition_count": 1}, status: 400, code: "DIS.4301"},
	})
	t.Run("scale-down leaves the partition DELETED and readable, not writable", func(t *testing.T) {
		d := describeAll(t, e, "s")
		if statuses(d) != "ACTIVE,ACTIVE,DELETED" || d.WritablePartitionCount != 2 || d.ReadablePartitionCount != 3 {
			t.Fatalf("%s writable %d readable %d", statuses(d), d.WritablePartitionCount, d.ReadablePartitionCount)
		}
		if d.Partitions[1].HashRange != "[4611686018427387904 : 9223372036854775807]" {
			t.Fatalf("hash ranges not recomputed over 2 partitions: %s", d.Partitions[1].HashRange)
		}
		if recs := e.readAll("s", "2"); len(recs) != 1 || string(recs[0].Data) != "on2" {
			t.Fatalf("DELETED partition reads %v", recs)
		}
		if r := e.put("s", putEntry{Data: b64("x"), PartitionID: "2"}).Records[0]; r.ErrorCode != "DIS.4302" {
			t.Fatalf("write to DELETED partition: %+v", r)
		}
		if len(d.UpdatePartitionCounts) != 1 || d.UpdatePartitionCounts[0].SrcPartitionCount != 3 || d.UpdatePartitionCounts[0].TargetPartitionCount != 2 {
			t.Fatalf("scaling log %+v", d.UpdatePartitionCounts)
		}
	})
	t.Run("partition-key records never route to a DELETED partition", func(t *testing.T) {
		for i := range 50 {
			if r := e.put("s", putEntry{Data: b64("k"), PartitionKey: strings.Repeat("k", i+1)}).Records[0]; r.PartitionID == "shardId-0000000002" || r.Failed() {
				t.Fatalf("key %d routed to %+v", i, r)
			}
		}
	})
	t.Run("scale-up re-activates the partition and its sequence continues", func(t *testing.T) {
		e.mustStatus(200, e.do("PUT", streamsPath+"/s", scale(4)))
		d := describeAll(t, e, "s")
		if statuses(d) != "ACTIVE,ACTIVE,ACTIVE,ACTIVE" || d.WritablePartitionCount != 4 {
			t.Fatalf("%s", statuses(d))
		}
		if r := e.put("s", putEntry{Data: b64("again"), PartitionID: "2"}).Records[0]; r.SequenceNumber != "1" {
			t.Fatalf("re-activated partition assigned %+v, want sequence 1", r)
		}
	})
	runCases(t, e, []apiCase{
		{name: "scaling log of an unknown stream", method: "GET", path: streamsPath + "/nope/update_partition_counts", status: 400, code: "DIS.4301"},
		{name: "auto scale update of an unknown stream", method: "PUT", path: streamsPath + "/nope/update", body: map[string]any{"auto_scale_enabled": false}, status: 400, code: "DIS.4301"},
		{name: "scale with an empty body", method: "PUT", path: streamsPath + "/s", body: "", status: 400, code: "DIS.4202"},
	})
	t.Run("the scaling log endpoint lists every change", func(t *testing.T) {
		var l dis.UpdatePartitionCountsResponse
		e.mustStatus(200, e.do("GET", streamsPath+"/s/update_partition_counts", nil)).decode(t, &l)
		if len(l.UpdatePartitionCounts) != 2 || l.UpdatePartitionCounts[1].TargetPartitionCount != 4 || l.UpdatePartitionCounts[1].ResultCode != 1 {
			t.Fatalf("%+v", l)
		}
	})
}

func TestScalingCooldown(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.ScalingCooldown = time.Hour })
	e.createStream("s", 1)
	e.mustStatus(200, e.do("PUT", streamsPath+"/s", map[string]any{"stream_name": "s", "target_partition_count": 2}))
	r := e.do("PUT", streamsPath+"/s", map[string]any{"stream_name": "s", "target_partition_count": 3})
	if r.status != 400 || r.errCode(t) != "DIS.4305" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.clock.Advance(time.Hour)
	e.mustStatus(200, e.do("PUT", streamsPath+"/s", map[string]any{"stream_name": "s", "target_partition_count": 3}))
}

func TestRetention(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 2)
	e.put("s", putEntry{Data: b64("old0"), PartitionID: "0"}, putEntry{Data: b64("old1"), PartitionID: "0"})
	e.put("s", putEntry{Data: b64("p1"), PartitionID: "1"})
	oldCursor := e.cursor("s", "0", dis.CursorTrimHorizon)
	e.clock.Advance(23 * time.Hour)
	e.put("s", putEntry{Data: b64("new"), PartitionID: "0"})
	e.mustStatus(200, e.do("PUT", streamsPath+"/s", map[string]any{"stream_name": "s", "target_partition_count": 1}))
	e.clock.Advance(time.Hour + time.Millisecond)
	if err := e.s.runJanitor(); err != nil {
		t.Fatal(err)
	}
	t.Run("records past retention are gone and TRIM_HORIZON starts after them", func(t *testing.T) {
		recs := e.readAll("s", "0")
		if len(recs) != 1 || string(recs[0].Data) != "new" || recs[0].SequenceNumber != "2" {
			t.Fatalf("%+v", recs)
		}
	})
	t.Run("a cursor below the horizon is DIS.4226", func(t *testing.T) {
		// A fresh cursor at an expired position cannot be made (DIS.4224) …
		if r := e.cursorReply("s", "0", dis.CursorAtSequenceNumber, "starting-sequence-number", "0"); r.status != 400 || r.errCode(t) != "DIS.4224" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		// … and one made before expiry, still within its 5 minutes, fails with DIS.4226.
		c, _ := dis.DecodeCursor(oldCursor)
		c.GenerateTimestamp = e.clock.Now().UnixMilli()
		r := e.getRecordsReply(dis.EncodeCursor(c))
		if r.status != 400 || r.errCode(t) != "DIS.4226" || !strings.HasPrefix(r.errMsg(t), "A partition iterator error occurred or a record to which the SN corresponds has expired. Try to obtain the partition iterator again.") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("the sequence range and numbering continue after trimming", func(t *testing.T) {
		d := describeAll(t, e, "s")
		if d.Partitions[0].SequenceNumberRange != "[2 : 3]" {
			t.Fatalf("range %s", d.Partitions[0].SequenceNumberRange)
		}
		if r := e.put("s", putEntry{Data: b64("x"), PartitionID: "0"}).Records[0]; r.SequenceNumber != "3" {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("a DELETED partition whose data aged out is EXPIRED (DIS.4319)", func(t *testing.T) {
		e.clock.Advance(24 * time.Hour)
		if err := e.s.runJanitor(); err != nil {
			t.Fatal(err)
		}
		d := describeAll(t, e, "s")
		if d.Partitions[1].Status != "EXPIRED" || d.Partitions[1].SequenceNumberRange != "" || d.ReadablePartitionCount != 1 {
			t.Fatalf("%+v readable %d", d.Partitions[1], d.ReadablePartitionCount)
		}
		if r := e.cursorReply("s", "1", dis.CursorTrimHorizon); r.status != 400 || r.errCode(t) != "DIS.4319" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		cur := dis.EncodeCursor(dis.Cursor{StreamName: "s", PartitionID: "1", StartingSequenceNumber: "0", GenerateTimestamp: e.clock.Now().UnixMilli()})
		if r := e.getRecordsReply(cur); r.status != 400 || r.errCode(t) != "DIS.4319" {
			t.Fatalf("GetRecords on an EXPIRED partition: %d %s", r.status, r.body)
		}
		e.mustStatus(201, e.do("POST", appsPath, map[string]any{"app_name": "expired-reader"}))
		if r := e.do("POST", checkpointsPath, commitBody("expired-reader", "s", "1", "0")); r.status != 400 || r.errCode(t) != "DIS.4319" {
			t.Fatalf("checkpoint on an EXPIRED partition: %d %s", r.status, r.body)
		}
		cur = dis.EncodeCursor(dis.Cursor{StreamName: "s", PartitionID: "9", StartingSequenceNumber: "0", GenerateTimestamp: e.clock.Now().UnixMilli()})
		if r := e.getRecordsReply(cur); r.status != 400 || r.errCode(t) != "DIS.4302" {
			t.Fatalf("GetRecords on an unknown partition: %d %s", r.status, r.body)
		}
	})
	t.Run("trimming survives a restart", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		if err := e.s.runJanitor(); err != nil {
			t.Fatal(err)
		}
		e = e.restart()
		d := describeAll(t, e, "s")
		if d.Partitions[0].SequenceNumberRange != "[4 : 4]" || d.Partitions[1].Status != "EXPIRED" {
			t.Fatalf("%+v", d.Partitions)
		}
		if r := e.put("s", putEntry{Data: b64("y"), PartitionID: "0"}).Records[0]; r.SequenceNumber != "4" {
			t.Fatalf("sequence reused after trimming everything and restarting: %+v", r)
		}
	})
}

func TestUpdateStream(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	v3 := "/v3/" + testProject + "/streams/s"
	runCases(t, e, []apiCase{
		{name: "v3 update answers 204", method: "PUT", path: v3, body: map[string]any{"stream_name": "s", "data_duration": 48, "data_type": "JSON",
			"data_schema": `{"type":"record","name":"r","fields":[{"name":"a","type":"int"}]}`}, status: 204, check: emptyBody},
		{name: "stream_name is mandatory (§5.1.7)", method: "PUT", path: v3, body: map[string]any{"data_duration": 48}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "stream_name must match the path", method: "PUT", path: v3, body: map[string]any{"stream_name": "t", "data_duration": 48}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "data_duration out of range", method: "PUT", path: v3, body: map[string]any{"stream_name": "s", "data_duration": 100}, status: 400, code: "DIS.4300", msg: "data_duration"},
		{name: "invalid schema is DIS.4360", method: "PUT", path: v3, body: map[string]any{"stream_name": "s", "data_schema": "{"}, status: 400, code: "DIS.4360"},
		{name: "unknown stream is DIS.4301", method: "PUT", path: "/v3/" + testProject + "/streams/nope", body: map[string]any{"stream_name": "nope", "data_duration": 48}, status: 400, code: "DIS.4301"},
		{name: "auto scale settings via v2 update", method: "PUT", path: streamsPath + "/s/update", body: map[string]any{"auto_scale_enabled": true, "auto_scale_min_partition_count": 1, "auto_scale_max_partition_count": 3, "update_type": "AUTO_SCALE"}, status: 200},
		{name: "auto scale min above max", method: "PUT", path: streamsPath + "/s/update", body: map[string]any{"auto_scale_enabled": true, "auto_scale_min_partition_count": 4, "auto_scale_max_partition_count": 3}, status: 400, code: "DIS.4300"},
		{name: "update_type must be AUTO_SCALE", method: "PUT", path: streamsPath + "/s/update", body: map[string]any{"update_type": "OTHER"}, status: 400, code: "DIS.4300", msg: "update_type"},
	})
	d := describeAll(t, e, "s")
	if d.RetentionPeriod != 48 || d.DataType != "JSON" || !strings.Contains(d.DataSchema, `"a"`) || !d.AutoScaleEnabled || d.AutoScaleMaxPartitionCount != 3 {
		t.Fatalf("%+v", d)
	}
}

func TestQuotas(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 3)
	e.mustStatus(201, e.do("POST", streamsPath, map[string]any{"stream_name": "a", "partition_count": 2, "stream_type": "ADVANCED"}))
	e.mustStatus(201, e.do("POST", appsPath, map[string]any{"app_name": "x"}))
	var q dis.QuotasResponse
	e.mustStatus(200, e.do("GET", "/v1/"+testProject+"/quotas", nil)).decode(t, &q)
	want := map[string][2]int{"common_partition": {50, 3}, "advanced_partition": {10, 2}, "app": {100, 1}}
	if len(q.Quotas.Resources) != 3 {
		t.Fatalf("%+v", q)
	}
	for _, r := range q.Quotas.Resources {
		if w := want[r.Type]; r.Quota != w[0] || r.Used != w[1] {
			t.Errorf("%s: quota %d used %d, want %v", r.Type, r.Quota, r.Used, w)
		}
	}
	runCases(t, e, []apiCase{
		{name: "DELETED partitions do not count as used", method: "PUT", path: streamsPath + "/s", body: map[string]any{"stream_name": "s", "target_partition_count": 1}, status: 200},
		{name: "usage after scale-down", method: "GET", path: "/v1/" + testProject + "/quotas", status: 200, check: func(t *testing.T, r reply) {
			if !strings.Contains(string(r.body), `{"type":"common_partition","quota":50,"used":1}`) {
				t.Fatalf("%s", r.body)
			}
		}},
		{name: "a project with nothing uses nothing", method: "GET", path: "/v1/emptyproj/quotas", status: 200, check: func(t *testing.T, r reply) {
			if !strings.Contains(string(r.body), `"used":0}`) || strings.Contains(string(r.body), `"used":1`) {
				t.Fatalf("%s", r.body)
			}
		}},
		{name: "bad project id is DIS.4117", method: "GET", path: "/v1/bad.proj/quotas", status: 400, code: "DIS.4117"},
		{name: "quotas are read-only", method: "PUT", path: "/v1/" + testProject + "/quotas", body: "{}", status: 405, code: "APIGW.0101"},
		{name: "quotas live under v1 only", method: "GET", path: "/v2/" + testProject + "/quotas", status: 404, code: "APIGW.0101"},
	})
}

// TestQuotasAreConfigurable: the quotas endpoint reports, and creation
// enforces, configured limits instead of the defaults.
func TestQuotasAreConfigurable(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Quotas = Quotas{CommonPartitions: 2, AdvancedPartitions: 1, Apps: 1} })
	runCases(t, e, []apiCase{
		{name: "configured limits are reported", method: "GET", path: "/v1/" + testProject + "/quotas", status: 200, check: func(t *testing.T, r reply) {
			for _, w := range []string{`{"type":"common_partition","quota":2,"used":0}`, `{"type":"advanced_partition","quota":1,"used":0}`, `{"type":"app","quota":1,"used":0}`} {
				if !strings.Contains(string(r.body), w) {
					t.Errorf("%s lacks %s", r.body, w)
				}
			}
		}},
		{name: "common fits", method: "POST", path: streamsPath, body: map[string]any{"stream_name": "c", "partition_count": 2}, status: 201},
		{name: "common beyond", method: "POST", path: streamsPath, body: map[string]any{"stream_name": "d", "partition_count": 1}, status: 400, code: "DIS.4308"},
		{name: "advanced fits", method: "POST", path: streamsPath, body: map[string]any{"stream_name": "a", "partition_count": 1, "stream_type": "ADVANCED"}, status: 201},
		{name: "advanced beyond", method: "POST", path: streamsPath, body: map[string]any{"stream_name": "b", "partition_count": 1, "stream_type": "ADVANCED"}, status: 400, code: "DIS.4308"},
		{name: "app fits", method: "POST", path: appsPath, body: map[string]any{"app_name": "x"}, status: 201},
		{name: "app beyond", method: "POST", path: appsPath, body: map[string]any{"app_name": "y"}, status: 400, code: "DIS.4329"},
	})
}

// TestRetentionRunsInTheBackground: nobody calls the janitor here; its own
// ticker removes the expired records and expires the DELETED partition.
func TestRetentionRunsInTheBackground(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.JanitorInterval = time.Second }) // the shortest allowed
	e.createStream("s", 2)
	e.put("s", putEntry{Data: b64("old"), PartitionID: "0"}, putEntry{Data: b64("old"), PartitionID: "1"})
	e.mustStatus(200, e.do("PUT", streamsPath+"/s", map[string]any{"stream_name": "s", "target_partition_count": 1}))
	e.clock.Advance(24*time.Hour + time.Millisecond)
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := describeAll(t, e, "s")
		if d.Partitions[0].SequenceNumberRange == "[1 : 1]" && d.Partitions[1].Status == "EXPIRED" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the background janitor has not run: %+v", d.Partitions)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a correctness wait
	}
}
