package disserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/dis"
)

// apiCase is one row of an endpoint table: a request and what must come back.
type apiCase struct {
	name   string
	method string
	path   string
	body   any
	hdr    []string
	status int
	code   string // DIS error code expected, "" for success
	msg    string // substring of the error message
	check  func(t *testing.T, r reply)
}

func runCases(t *testing.T, e *env, cases []apiCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body, tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if tc.code != "" {
				if got := r.errCode(t); got != tc.code {
					t.Fatalf("error_code %s, want %s; body %s", got, tc.code, r.body)
				}
				if tc.msg != "" && !strings.Contains(r.errMsg(t), tc.msg) {
					t.Fatalf("error_msg %q does not mention %q", r.errMsg(t), tc.msg)
				}
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("reply has no X-Request-Id")
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

const streamsPath = "/v2/" + testProject + "/streams"

func emptyBody(t *testing.T, r reply) {
	if len(r.body) != 0 {
		t.Errorf("body %q, want empty", r.body)
	}
}

func TestCreateStream(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.Quotas.CommonPartitions = 8; c.Quotas.AdvancedPartitions = 2 })
	schema := `{"type":"record","name":"r","fields":[{"name":"temp","type":"double"}]}`
	runCases(t, e, []apiCase{
		{name: "minimal body creates with 201 and no body", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "s1", "partition_count": 3}, status: 201, check: emptyBody},
		{name: "every field accepted", method: "POST", path: streamsPath, body: map[string]any{
			"stream_name": "full-Stream_2", "partition_count": 1, "stream_type": "ADVANCED", "data_type": "JSON",
			"data_duration": 72, "data_schema": schema, "auto_scale_enabled": true, "auto_scale_min_partition_count": 1,
			"auto_scale_max_partition_count": 2, "compression_format": "snappy", "csv_properties": map[string]string{"delimiter": ","},
			"tags":     []map[string]string{{"key": "origin", "value": "create"}},
			"sys_tags": []map[string]string{{"key": "_sys_enterprise_project_id", "value": "0b3c3bde-1c79-4e8a-9c6c-5b2d5d6b3a11"}},
		}, status: 201},
		{name: "fields real SDKs send beyond the reference are accepted", method: "POST", path: streamsPath,
			// The Java SDK's CreateStreamRequest always sends is_private (a primitive boolean), twice (requests.go).
			body: map[string]any{"stream_name": "extra", "partition_count": 1, "obs_destination_descriptor": []any{}, "is_private": false, "private": false}, status: 201},
		{name: "a field no client sends is DIS.4300 naming it", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "extra2", "partition_count": 1, "tag": nil}, status: 400, code: "DIS.4300", msg: `Unknown field "tag"`},
		{name: "trailing slash routes like no slash", method: "POST", path: streamsPath + "/",
			body: map[string]any{"stream_name": "slash", "partition_count": 1}, status: 201},
		{name: "duplicate name is DIS.4307", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "s1", "partition_count": 1}, status: 400, code: "DIS.4307"},
		{name: "name with a dot is DIS.4300 naming stream_name", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "a.b", "partition_count": 1}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "name of 65 characters is refused", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": strings.Repeat("a", 65), "partition_count": 1}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "missing name is refused", method: "POST", path: streamsPath,
			body: map[string]any{"partition_count": 1}, status: 400, code: "DIS.4300", msg: "stream_name"},
		{name: "zero partitions is refused", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 0}, status: 400, code: "DIS.4300", msg: "partition_count"},
		{name: "partition_count as a string names the field", method: "POST", path: streamsPath,
			body: `{"stream_name":"z","partition_count":"3"}`, status: 400, code: "DIS.4300", msg: "partition_count"},
		{name: "malformed JSON is DIS.4300", method: "POST", path: streamsPath,
			body: `{"stream_name":`, status: 400, code: "DIS.4300"},
		{name: "empty body is DIS.4202", method: "POST", path: streamsPath, body: "", status: 400, code: "DIS.4202"},
		{name: "unknown stream_type", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "stream_type": "PREMIUM"}, status: 400, code: "DIS.4300", msg: "stream_type"},
		{name: "unknown data_type", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "data_type": "XML"}, status: 400, code: "DIS.4300", msg: "data_type"},
		{name: "data_duration below 24", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "data_duration": 23}, status: 400, code: "DIS.4300", msg: "data_duration"},
		{name: "data_duration above 72", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "data_duration": 73}, status: 400, code: "DIS.4300", msg: "data_duration"},
		{name: "invalid Avro schema is DIS.4360", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "data_type": "JSON", "data_schema": `{"type":"recrd"}`}, status: 400, code: "DIS.4360"},
		{name: "unknown compression_format", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "compression_format": "lzma"}, status: 400, code: "DIS.4300", msg: "compression_format"},
		{name: "bad tag key", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "tags": []map[string]string{{"key": "a b", "value": "v"}}}, status: 400, code: "DIS.4300", msg: "tags[0].key"},
		{name: "csv delimiter of two characters names the field", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "data_type": "CSV", "csv_properties": map[string]string{"delimiter": ";;"}}, status: 400, code: "DIS.4300", msg: "csv_properties.delimiter"},
		{name: "sys_tags key other than _sys_enterprise_project_id", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "sys_tags": []map[string]string{{"key": "owner", "value": "0"}}}, status: 400, code: "DIS.4300", msg: "sys_tags[0].key"},
		{name: "sys_tags value that is not a UUID", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "sys_tags": []map[string]string{{"key": "_sys_enterprise_project_id", "value": "abc"}}}, status: 400, code: "DIS.4300", msg: "sys_tags[0].value"},
		{name: "tag value with a space", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "tags": []map[string]string{{"key": "k", "value": "a b"}}}, status: 400, code: "DIS.4300", msg: "tags[0].value"},
		{name: "repeated tag key", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "tags": []map[string]string{{"key": "k", "value": "a"}, {"key": "k", "value": "b"}}}, status: 400, code: "DIS.4300", msg: "tags[1].key"},
		{name: "eleven tags is DIS.4601", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "tags": elevenTags()}, status: 400, code: "DIS.4601"},
		{name: "auto scale with max below min", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "z", "partition_count": 1, "auto_scale_enabled": true, "auto_scale_min_partition_count": 3, "auto_scale_max_partition_count": 2}, status: 400, code: "DIS.4300", msg: "auto_scale_max_partition_count"},
		{name: "common partitions beyond the quota is DIS.4308", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "big", "partition_count": 5}, status: 400, code: "DIS.4308"},
		{name: "advanced partitions have their own quota", method: "POST", path: streamsPath,
			body: map[string]any{"stream_name": "adv", "partition_count": 2, "stream_type": "ADVANCED"}, status: 400, code: "DIS.4308"},
		{name: "bad project id is DIS.4117", method: "POST", path: "/v2/bad.project/streams",
			body: map[string]any{"stream_name": "z", "partition_count": 1}, status: 400, code: "DIS.4117"},
		{name: "X-Project-Id must match the path", method: "POST", path: streamsPath, hdr: []string{"X-Project-Id", "other"},
			body: map[string]any{"stream_name": "z", "partition_count": 1}, status: 400, code: "DIS.4117"},
		{name: "unknown path is 404", method: "GET", path: "/v2/" + testProject + "/nothing", status: 404, code: "APIGW.0101"},
		{name: "wrong method is 405", method: "PATCH", path: streamsPath, status: 405, code: "APIGW.0101"},
	})
}

func elevenTags() []map[string]string {
	var tags []map[string]string
	for i := range 11 {
		tags = append(tags, map[string]string{"key": "k" + string(rune('a'+i)), "value": "v"})
	}
	return tags
}

func TestListStreams(t *testing.T) {
	e := startEnv(t, nil)
	for _, n := range []string{"c", "a", "b", "d"} {
		e.createStream(n, 1)
	}
	page := func(q string) dis.ListStreamsResponse {
		var l dis.ListStreamsResponse
		e.mustStatus(200, e.do("GET", streamsPath+q, nil)).decode(t, &l)
		return l
	}
	t.Run("all streams sorted by name with details", func(t *testing.T) {
		l := page("")
		if strings.Join(l.StreamNames, ",") != "a,b,c,d" || l.TotalNumber != 4 || l.HasMoreStreams || len(l.StreamInfoList) != 4 {
			t.Fatalf("got %+v", l)
		}
		si := l.StreamInfoList[0]
		if si.StreamName != "a" || si.StreamID == "" || si.Status != "RUNNING" || si.RetentionPeriod != 24 || si.PartitionCount != 1 || si.StreamType != "COMMON" || si.DataType != "BLOB" {
			t.Fatalf("stream info %+v", si)
		}
	})
	t.Run("start_stream_name is exclusive and limit pages", func(t *testing.T) {
		l := page("?limit=2&start_stream_name=a")
		if strings.Join(l.StreamNames, ",") != "b,c" || !l.HasMoreStreams || l.TotalNumber != 4 {
			t.Fatalf("got %+v", l)
		}
		l = page("?limit=2&start_stream_name=c")
		if strings.Join(l.StreamNames, ",") != "d" || l.HasMoreStreams {
			t.Fatalf("got %+v", l)
		}
	})
	t.Run("empty project lists nothing with arrays not null", func(t *testing.T) {
		r := e.mustStatus(200, e.do("GET", "/v2/otherproj/streams", nil))
		if !strings.Contains(string(r.body), `"stream_names":[]`) || !strings.Contains(string(r.body), `"stream_info_list":[]`) {
			t.Fatalf("body %s", r.body)
		}
	})
	runCases(t, e, []apiCase{
		{name: "limit 0 is refused", method: "GET", path: streamsPath + "?limit=0", status: 400, code: "DIS.4200", msg: "limit"},
		{name: "limit 501 is refused", method: "GET", path: streamsPath + "?limit=501", status: 400, code: "DIS.4200", msg: "limit"},
		{name: "empty limit counts as absent", method: "GET", path: streamsPath + "?limit=", status: 200},
	})
}

func TestDescribeStream(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 3)
	e.put("s", putEntry{Data: b64("x"), PartitionID: "1"}, putEntry{Data: b64("y"), PartitionID: "1"})
	describe := func(q string) (dis.DescribeStreamResponse, reply) {
		r := e.mustStatus(200, e.do("GET", streamsPath+"/s"+q, nil))
		var d dis.DescribeStreamResponse
		r.decode(t, &d)
		return d, r
	}
	t.Run("fields and partitions", func(t *testing.T) {
		d, r := describe("")
		if d.StreamName != "s" || d.StreamID == "" || d.Status != "RUNNING" || d.RetentionPeriod != 24 ||
			d.WritablePartitionCount != 3 || d.ReadablePartitionCount != 3 || d.HasMorePartitions || len(d.Partitions) != 3 {
			t.Fatalf("describe %+v", d)
		}
		if d.CreateTime != e.clock.Now().UnixMilli() {
			t.Errorf("create_time %d, want %d", d.CreateTime, e.clock.Now().UnixMilli())
		}
		p0, p1, p2 := d.Partitions[0], d.Partitions[1], d.Partitions[2]
		if p0.PartitionID != "shardId-0000000000" || p0.Status != "ACTIVE" || p0.HashRange != "[0 : 3074457345618258602]" || p0.SequenceNumberRange != "[0 : 0]" {
			t.Errorf("partition 0 %+v", p0)
		}
		if p1.HashRange != "[3074457345618258603 : 6148914691236517204]" || p1.SequenceNumberRange != "[0 : 2]" {
			t.Errorf("partition 1 %+v", p1)
		}
		if p2.HashRange != "[6148914691236517205 : 9223372036854775807]" {
			t.Errorf("partition 2 %+v", p2)
		}
		for _, key := range []string{`"tags":[]`, `"update_partition_counts":[]`, `"has_more_partitions":false`} {
			if !strings.Contains(string(r.body), key) {
				t.Errorf("body lacks %s: %s", key, r.body)
			}
		}
	})
	for _, form := range []string{"shardId-0000000000", "0"} {
		t.Run("start_partitionId is exclusive in form "+form, func(t *testing.T) {
			d, _ := describe("?limit_partitions=1&start_partitionId=" + form)
			if len(d.Partitions) != 1 || d.Partitions[0].PartitionID != "shardId-0000000001" || !d.HasMorePartitions {
				t.Fatalf("got %+v has_more=%v", d.Partitions, d.HasMorePartitions)
			}
		})
	}
	t.Run("empty start_partitionId means from the first (Kafka adapter for partition 0)", func(t *testing.T) {
		d, _ := describe("?limit_partitions=1&start_partitionId=")
		if len(d.Partitions) != 1 || d.Partitions[0].PartitionID != "shardId-0000000000" {
			t.Fatalf("got %+v", d.Partitions)
		}
	})
	runCases(t, e, []apiCase{
		{name: "unknown stream is DIS.4301", method: "GET", path: streamsPath + "/nope", status: 400, code: "DIS.4301"},
		{name: "trailing slash routes", method: "GET", path: streamsPath + "/s/", status: 200},
		{name: "bad start_partitionId is DIS.4201", method: "GET", path: streamsPath + "/s?start_partitionId=shard-x", status: 400, code: "DIS.4201"},
		{name: "limit_partitions 0 is refused", method: "GET", path: streamsPath + "/s?limit_partitions=0", status: 400, code: "DIS.4200"},
		{name: "limit_partitions above 1000 is served, not refused (the reference names no maximum)", method: "GET", path: streamsPath + "/s?limit_partitions=5000", status: 200},
	})
}

func TestDeleteStream(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	e.put("s", putEntry{Data: b64("old")})
	runCases(t, e, []apiCase{
		{name: "delete answers 204 with no body", method: "DELETE", path: streamsPath + "/s", status: 204, check: emptyBody},
		{name: "deleted stream is gone", method: "GET", path: streamsPath + "/s", status: 400, code: "DIS.4301"},
		{name: "deleting again is DIS.4301", method: "DELETE", path: streamsPath + "/s", status: 400, code: "DIS.4301"},
	})
	t.Run("a re-created stream of the same name starts empty", func(t *testing.T) {
		e.createStream("s", 1)
		if recs := e.readAll("s", "0"); len(recs) != 0 {
			t.Fatalf("re-created stream holds %d old records", len(recs))
		}
		if err := e.s.runJanitor(); err != nil {
			t.Fatal(err)
		}
		resp := e.put("s", putEntry{Data: b64("new")})
		if resp.Records[0].SequenceNumber != "0" {
			t.Fatalf("first record of re-created stream got %s", resp.Records[0].SequenceNumber)
		}
	})
}

func TestStreamsArePersisted(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("keep", 2)
	e.put("keep", putEntry{Data: b64("a"), PartitionID: "1"})
	e = e.restart()
	var d dis.DescribeStreamResponse
	e.mustStatus(200, e.do("GET", streamsPath+"/keep", nil)).decode(t, &d)
	if len(d.Partitions) != 2 || d.Partitions[1].SequenceNumberRange != "[0 : 1]" {
		t.Fatalf("after restart: %+v", d.Partitions)
	}
	if resp := e.put("keep", putEntry{Data: b64("b"), PartitionID: "1"}); resp.Records[0].SequenceNumber != "1" {
		t.Fatalf("sequence after restart %s, want 1", resp.Records[0].SequenceNumber)
	}
}

func TestJSONTypesAreWhatStrictClientsDecode(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	r := e.mustStatus(200, e.do("POST", "/v2/"+testProject+"/records", map[string]any{
		"stream_name": "s", "records": []putEntry{{Data: b64("x")}},
	}))
	var raw map[string]json.RawMessage
	r.decode(t, &raw)
	if string(raw["failed_record_count"]) != "0" {
		t.Errorf("failed_record_count %s, want integer 0", raw["failed_record_count"])
	}
	if !strings.Contains(string(raw["records"]), `"sequence_number":"0"`) || !strings.Contains(string(raw["records"]), `"partition_id":"shardId-0000000000"`) {
		t.Errorf("records %s: sequence_number and partition_id must be strings", raw["records"])
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("Content-Encoding") != "" {
		t.Error("replies must never be compressed")
	}
	_ = http.StatusOK
}
