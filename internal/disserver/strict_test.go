package disserver

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/internal/dis"
)

// unknownField is a request whose body has one field no client sends.
func unknownField(name, method, path, body, field string) apiCase {
	return apiCase{name: name, method: method, path: path, body: body, status: http.StatusBadRequest, code: "DIS.4300",
		msg: `Unknown field "` + field + `" in the body; remove it.`}
}

// TestUnknownFieldsAreRefused: every endpoint that takes a JSON body answers
// 400 DIS.4300 naming a field it does not know, with its path when nested.
func TestUnknownFieldsAreRefused(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	e.mustStatus(http.StatusCreated, e.do("POST", appsPath, map[string]any{"app_name": "a"}))
	tagsPath := "/v2/" + testProject + "/stream/" + streamID(t, e, "s") + "/tags"
	runCases(t, e, []apiCase{
		unknownField("create stream", "POST", streamsPath, `{"stream_name":"n","partition_count":1,"foo":1}`, "foo"),
		unknownField("create stream, nested in tags", "POST", streamsPath, `{"stream_name":"n","partition_count":1,"tags":[{"key":"k","value":"v","colour":"red"}]}`, "tags[0].colour"),
		unknownField("create stream, nested in csv_properties", "POST", streamsPath, `{"stream_name":"n","partition_count":1,"csv_properties":{"delimiter":",","quote":"'"}}`, "csv_properties.quote"),
		unknownField("update partition count", "PUT", streamsPath+"/s", `{"stream_name":"s","target_partition_count":2,"foo":true}`, "foo"),
		unknownField("update stream (v3)", "PUT", "/v3/"+testProject+"/streams/s", `{"stream_name":"s","data_duration":48,"retention":48}`, "retention"),
		unknownField("update auto scale", "PUT", streamsPath+"/s/update", `{"auto_scale_enabled":true,"auto_scale_step":2}`, "auto_scale_step"),
		unknownField("put records", "POST", recordsPath, `{"stream_name":"s","records":[{"data":"eA=="}],"batch":1}`, "batch"),
		unknownField("put records, in the second record", "POST", recordsPath, `{"stream_name":"s","records":[{"data":"eA=="},{"data":"eA==","ttl":5}]}`, "records[1].ttl"),
		unknownField("create app", "POST", appsPath, `{"app_name":"b","owner":"me"}`, "owner"),
		unknownField("commit checkpoint", "POST", checkpointsPath, `{"app_name":"a","checkpoint_type":"LAST_READ","stream_name":"s","partition_id":"0","sequence_number":"0","offset":"0"}`, "offset"),
		unknownField("create tag", "POST", tagsPath, `{"tag":{"key":"k","value":"v","scope":"x"}}`, "tag.scope"),
		unknownField("batch tags", "POST", tagsPath+"/action", `{"action":"create","tags":[{"key":"k","value":"v"}],"force":true}`, "force"),
		{name: "unknown field before a bad type: the first problem in the body is named", method: "POST", path: appsPath,
			body: `{"zzz":1,"app_name":5}`, status: 400, code: "DIS.4300", msg: `Unknown field "zzz"`},
	})
	// None of the refused requests changed anything.
	var l dis.ListStreamsResponse
	e.mustStatus(http.StatusOK, e.do("GET", streamsPath, nil)).decode(t, &l)
	if l.TotalNumber != 1 {
		t.Fatalf("refused create stream requests created streams: %+v", l)
	}
	if d := describeAll(t, e, "s"); len(d.Partitions) != 1 || d.RetentionPeriod != 24 || d.AutoScaleEnabled {
		t.Fatalf("refused updates changed the stream: %+v", d)
	}
	if r := e.readAll("s", "0"); len(r) != 0 {
		t.Fatalf("refused PutRecords wrote %d records", len(r))
	}
}

// TestOfficialClientExtraFieldsAreAccepted pins the fields official clients
// send beyond the reference (requests.go): each is accepted on its endpoint.
func TestOfficialClientExtraFieldsAreAccepted(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 1)
	e.mustStatus(http.StatusCreated, e.do("POST", appsPath, map[string]any{"app_name": "a"}))
	runCases(t, e, []apiCase{
		// Java DIS SDK CreateStreamRequest, as its Jackson mapper writes a
		// default request: both spellings of the private flag, always.
		{name: "java create stream", method: "POST", path: streamsPath, status: 201,
			body: `{"stream_name":"j1","partition_count":1,"stream_type":"COMMON","data_type":"BLOB","data_duration":24,"is_private":false,"private":false}`},
		{name: "java create stream on a dedicated cluster with dump descriptors", method: "POST", path: streamsPath, status: 201,
			body: `{"stream_name":"j2","partition_count":1,"is_private":true,"private":true,"private_cluster_id":"c1","private_cluster_topic_name":"t1",` +
				`"obs_destination_descriptor":[{"task_name":"o"}],"mrs_destination_descriptor":[],"uquery_destination_descriptor":[],` +
				`"dli_destination_descriptor":[],"cloudtable_destination_descriptor":[],"dws_destination_descriptor":[]}`},
		// Java DIS SDK PutRecordsRequestEntry: extended_info (putFiles).
		{name: "java put records with extended_info", method: "POST", path: recordsPath, status: 200,
			body: `{"stream_name":"s","records":[{"data":"eA==","partition_id":"0","timestamp":1,"extended_info":{"file_name":"f","deliver_data_id":"d","end_flag":true,"seq_num":0}}]}`,
			check: func(t *testing.T, r reply) {
				var resp dis.PutRecordsResponse
				r.decode(t, &resp)
				if resp.FailedRecordCount != 0 || resp.Records[0].SequenceNumber != "0" {
					t.Fatalf("%s", r.body)
				}
			}},
		// go-dis and Python: every reference field, empty strings for unset ones.
		{name: "go-dis put records", method: "POST", path: recordsPath, status: 200,
			body: `{"stream_name":"s","stream_id":"","records":[{"data":"eA==","partition_id":"","explicit_hash_key":"","partition_key":"k"}]}`},
		// Java DIS SDK / Kafka adapter CommitCheckpointRequest: client_id, generation_id.
		{name: "java checkpoint with client_id and generation_id", method: "POST", path: checkpointsPath, status: 201,
			body: `{"app_name":"a","checkpoint_type":"LAST_READ","stream_name":"s","partition_id":"0","sequence_number":"1","metadata":"m","client_id":"c-1","generation_id":3}`},
		// Java DIS SDK UpdateStreamRequest to …/update: stream_name with the
		// auto-scale settings, and the data type change (both generations).
		{name: "java update stream, auto scale", method: "PUT", path: streamsPath + "/s/update", status: 200,
			body: `{"update_type":"AUTO_SCALE","stream_name":"s","auto_scale_enabled":true,"auto_scale_min_partition_count":1,"auto_scale_max_partition_count":2}`},
		{name: "java update stream, data type", method: "PUT", path: streamsPath + "/s/update", status: 200,
			body: `{"update_type":"DATA_TYPE","stream_name":"s","data_type":"JSON","data_schema":"{\"type\":\"record\",\"name\":\"r\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"}`},
		{name: "older java update stream, target_data_type", method: "PUT", path: streamsPath + "/s/update", status: 200,
			body: `{"stream_name":"s","target_data_type":"CSV","target_data_schema":"{\"type\":\"record\",\"name\":\"r\",\"fields\":[{\"name\":\"b\",\"type\":\"int\"}]}"}`},
		{name: "update: a bad target_data_type is named", method: "PUT", path: streamsPath + "/s/update", status: 400, code: "DIS.4300", msg: "target_data_type",
			body: `{"stream_name":"s","target_data_type":"XML"}`},
		{name: "update: stream_name must match the path", method: "PUT", path: streamsPath + "/s/update", status: 400, code: "DIS.4300", msg: "stream_name",
			body: `{"stream_name":"t","update_type":"AUTO_SCALE"}`},
	})
	d := describeAll(t, e, "s")
	if d.DataType != "CSV" || !strings.Contains(d.DataSchema, `"b"`) || !d.AutoScaleEnabled || d.AutoScaleMaxPartitionCount != 2 {
		t.Fatalf("updates via …/update not applied: %+v", d)
	}
	var cp dis.GetCheckpointResponse
	e.mustStatus(http.StatusOK, e.do("GET", checkpointsPath+"?stream_name=s&partition_id=0&app_name=a&checkpoint_type=LAST_READ", nil)).decode(t, &cp)
	if cp.SequenceNumber != "1" || cp.Metadata != "m" {
		t.Fatalf("checkpoint %+v", cp)
	}
}

// TestEdgegwClientBodiesAreKnown: every request body edgegw's own DIS client
// (internal/dis) can send, with every field set, decodes strictly into the
// server's type for that endpoint.
func TestEdgegwClientBodiesAreKnown(t *testing.T) {
	one, dur, yes := int64(1), 24, true
	cases := []struct {
		sent any
		into any
	}{
		{&dis.CreateStreamRequest{StreamName: "s", PartitionCount: 1, StreamType: "COMMON", DataType: "JSON", DataDuration: &dur,
			AutoScaleEnabled: &yes, AutoScaleMinPartitionCount: &one, AutoScaleMaxPartitionCount: &dur, DataSchema: "x",
			CSVProperties: &dis.CSVProperties{Delimiter: ","}, CompressionFormat: "gzip", Tags: []dis.Tag{{Key: "k", Value: "v"}},
			SysTags: []dis.SysTag{{Key: "_sys_enterprise_project_id", Value: "0"}}}, &createStreamBody{}},
		{&dis.PutRecordsRequest{StreamName: "s", StreamID: "i", Records: []dis.PutRecordsRequestEntry{{Data: []byte("x"),
			PartitionKey: "k", PartitionID: "0", ExplicitHashKey: "1", Timestamp: 1}}}, &putRequestJSON{}},
		{&dis.CreateAppRequest{AppName: "a"}, &dis.CreateAppRequest{}},
		{&dis.CommitCheckpointRequest{AppName: "a", CheckpointType: "LAST_READ", StreamName: "s", StreamID: "i", PartitionID: "0",
			SequenceNumber: "1", Metadata: "m", ClientID: "c", GenerationID: &one}, &dis.CommitCheckpointRequest{}},
		{&dis.UpdatePartitionCountRequest{StreamName: "s", TargetPartitionCount: 2}, &dis.UpdatePartitionCountRequest{}},
		{&dis.UpdateStreamRequest{StreamName: "s", DataDuration: &dur, DataType: "JSON", DataSchema: "x", AutoScaleEnabled: &yes,
			AutoScaleMinPartitionCount: &one, AutoScaleMaxPartitionCount: &one}, &dis.UpdateStreamRequest{}},
		{&dis.UpdateAutoScaleRequest{AutoScaleEnabled: &yes, AutoScaleMinPartitionCount: &one, AutoScaleMaxPartitionCount: &one,
			UpdateType: "AUTO_SCALE"}, &updateAutoScaleBody{}},
		{&dis.CreateTagRequest{Tag: &dis.Tag{Key: "k", Value: "v"}}, &dis.CreateTagRequest{}},
		{&dis.BatchTagsRequest{Action: "create", Tags: []dis.Tag{{Key: "k", Value: "v"}}}, &dis.BatchTagsRequest{}},
		{dis.NewPasswordTokenRequest("u", "p", "d", "proj"), &dis.TokenRequest{}},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.sent)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeJSON(b, c.into); err != nil {
			t.Errorf("%T %s: %v", c.sent, b, err)
		}
	}
}

func TestUnknownFieldPath(t *testing.T) {
	type inner struct {
		A int `json:"a"`
	}
	type embedded struct {
		E string `json:"e"`
	}
	type outer struct {
		embedded
		In   inner            `json:"in"`
		List []inner          `json:"list"`
		M    map[string]inner `json:"m"`
		Raw  json.RawMessage  `json:"raw"`
		Skip string           `json:"-"`
		Name string
	}
	for body, want := range map[string]string{
		`{"e":"x","in":{"a":1},"list":[{"a":1},{"a":2,"b":3}]}`: "list[1].b",
		`{"in":{"A":1,"z":1}}`: "in.z",
		`{"m":{"k":{"q":1}}}`:  "m.k.q",
		`{"raw":{"anything":[1,{"x":2}]},"NAME":"n","Skip":1}`: "Skip",
		`{"list":"not a list","later":1}`:                      "later",
		`{"e":"x"}`:                                            "",
		`{"in":{"a":`:                                          "",
	} {
		if got := unknownFieldPath([]byte(body), reflect.TypeOf(&outer{})); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}
