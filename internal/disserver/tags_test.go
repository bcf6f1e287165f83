package disserver

import (
	"testing"

	"github.com/edgegw/edgegw/internal/dis"
)

func TestTags(t *testing.T) {
	e := startEnv(t, nil)
	e.mustStatus(201, e.do("POST", streamsPath, map[string]any{"stream_name": "s", "partition_count": 1, "tags": []dis.Tag{{Key: "env", Value: "dev"}}}))
	e.createStream("t", 1)
	id := streamID(t, e, "s")
	tagsPath := "/v2/" + testProject + "/stream/" + id + "/tags"
	tags := func() []dis.Tag {
		var r dis.StreamTagsResponse
		e.mustStatus(200, e.do("GET", tagsPath, nil)).decode(t, &r)
		return r.Tags
	}
	runCases(t, e, []apiCase{
		{name: "add a tag answers 204", method: "POST", path: tagsPath, body: map[string]any{"tag": dis.Tag{Key: "team", Value: "iot"}}, status: 204, check: emptyBody},
		{name: "an existing key gets the new value", method: "POST", path: tagsPath, body: map[string]any{"tag": dis.Tag{Key: "env", Value: "prod"}}, status: 204},
		{name: "tag is required", method: "POST", path: tagsPath, body: map[string]any{}, status: 400, code: "DIS.4300", msg: "tag"},
		{name: "bad key", method: "POST", path: tagsPath, body: map[string]any{"tag": dis.Tag{Key: "a b", Value: "x"}}, status: 400, code: "DIS.4300"},
		{name: "unknown stream id is DIS.4603", method: "POST", path: "/v2/" + testProject + "/stream/nope/tags", body: map[string]any{"tag": dis.Tag{Key: "k", Value: "v"}}, status: 400, code: "DIS.4603"},
		{name: "stream names are not ids", method: "GET", path: "/v2/" + testProject + "/stream/s/tags", status: 400, code: "DIS.4603"},
		{name: "batch create", method: "POST", path: tagsPath + "/action", body: dis.BatchTagsRequest{Action: "create", Tags: []dis.Tag{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}}, status: 204},
		{name: "batch with an unknown action is DIS.4605", method: "POST", path: tagsPath + "/action", body: dis.BatchTagsRequest{Action: "update", Tags: []dis.Tag{{Key: "a"}}}, status: 400, code: "DIS.4605"},
		{name: "batch delete of a missing key is DIS.4604", method: "POST", path: tagsPath + "/action", body: dis.BatchTagsRequest{Action: "delete", Tags: []dis.Tag{{Key: "zz"}}}, status: 400, code: "DIS.4604"},
		{name: "batch delete", method: "POST", path: tagsPath + "/action", body: dis.BatchTagsRequest{Action: "delete", Tags: []dis.Tag{{Key: "a"}}}, status: 204},
		{name: "delete one tag", method: "DELETE", path: tagsPath + "/b", status: 204, check: emptyBody},
		{name: "delete a missing tag is DIS.4604", method: "DELETE", path: tagsPath + "/b", status: 400, code: "DIS.4604"},
		{name: "more than 10 tags is DIS.4601", method: "POST", path: tagsPath + "/action", body: dis.BatchTagsRequest{Action: "create", Tags: tenTags()}, status: 400, code: "DIS.4601"},
	})
	got := tags()
	if len(got) != 2 || got[0] != (dis.Tag{Key: "env", Value: "prod"}) || got[1] != (dis.Tag{Key: "team", Value: "iot"}) {
		t.Fatalf("tags %+v", got)
	}
	e.mustStatus(204, e.do("POST", "/v2/"+testProject+"/stream/"+streamID(t, e, "t")+"/tags", map[string]any{"tag": dis.Tag{Key: "env", Value: "dev"}}))
	var l dis.ListTagsResponse
	e.mustStatus(200, e.do("GET", "/v2/"+testProject+"/stream/tags", nil)).decode(t, &l)
	if len(l.Tags) != 2 || l.Tags[0].Key != "env" || len(l.Tags[0].Values) != 2 || l.Tags[0].Values[0] != "dev" || l.Tags[0].Values[1] != "prod" {
		t.Fatalf("list tags %+v", l)
	}
	e = e.restart()
	if got := tags(); len(got) != 2 {
		t.Fatalf("tags after restart %+v", got)
	}
}

func tenTags() []dis.Tag {
	var tags []dis.Tag
	for i := range 10 {
		tags = append(tags, dis.Tag{Key: "x" + string(rune('a'+i)), Value: "v"})
	}
	return tags
}
