package disserver

import (
	"strings"
	"testing"
)

// TestTrailingSlashRoutesEveryAPI: every API answers the same with one
// trailing slash as without (the Java SDK adds one after every segment,
// COMPAT-NOTES fact 2). Reads are compared by status and body; writes by
// status, each form on its own fixture.
func TestTrailingSlashRoutesEveryAPI(t *testing.T) {
	e := startEnv(t, nil)
	e.createStream("s", 2)
	e.put("s", putEntry{Data: b64("x"), PartitionID: "0"})
	e.mustStatus(201, e.do("POST", appsPath, map[string]any{"app_name": "a"}))
	e.mustStatus(201, e.do("POST", checkpointsPath, commitBody("a", "s", "0", "1")))
	cur := e.cursor("s", "0", "TRIM_HORIZON")
	p := "/v2/" + testProject
	reads := []string{
		p + "/streams", p + "/streams/s", p + "/streams/s/update_partition_counts",
		"/v1/" + testProject + "/quotas", p + "/apps", p + "/apps/a", p + "/apps/a/streams/s",
		p + "/checkpoints", p + "/records", p + "/cursors",
	}
	queries := map[string]string{
		p + "/apps/a/streams/s": "?checkpoint_type=LAST_READ",
		p + "/checkpoints":      "?app_name=a&stream_name=s&partition_id=0&checkpoint_type=LAST_READ",
		p + "/records":          "?partition-cursor=" + cur,
		p + "/cursors":          "?stream-name=s&partition-id=0&cursor-type=LATEST",
	}
	for _, path := range reads {
		t.Run("GET "+path, func(t *testing.T) {
			plain := e.do("GET", path+queries[path], nil)
			slash := e.do("GET", path+"/"+queries[path], nil)
			if plain.status != 200 || slash.status != plain.status {
				t.Fatalf("status %d without slash, %d with: %s", plain.status, slash.status, slash.body)
			}
			if path != p+"/records" && path != p+"/cursors" && string(plain.body) != string(slash.body) {
				t.Fatalf("bodies differ:\n%s\n%s", plain.body, slash.body)
			}
		})
	}
	writes := []struct {
		method, path string
		body         func(i int) any
		status       int
	}{
		{"POST", p + "/streams", func(i int) any { return map[string]any{"stream_name": "n" + string(rune('0'+i)), "partition_count": 1} }, 201},
		{"PUT", p + "/streams/s", func(i int) any { return map[string]any{"stream_name": "s", "target_partition_count": 2 + i} }, 200},
		{"PUT", "/v3/" + testProject + "/streams/s", func(int) any { return map[string]any{"stream_name": "s", "data_duration": 48} }, 204},
		{"PUT", p + "/streams/s/update", func(int) any { return map[string]any{"auto_scale_enabled": false} }, 200},
		{"POST", p + "/records", func(int) any { return putBody("s", putEntry{Data: b64("y")}) }, 200},
		{"POST", p + "/apps", func(i int) any { return map[string]any{"app_name": "b" + string(rune('0'+i))} }, 201},
		{"POST", p + "/checkpoints", func(int) any { return commitBody("a", "s", "0", "1") }, 201},
		{"DELETE", p + "/checkpoints?app_name=a&stream_name=s&checkpoint_type=LAST_READ", nil, 204},
		{"DELETE", p + "/apps/b0", nil, 204},
		{"DELETE", p + "/streams/n0", nil, 204},
	}
	for _, w := range writes {
		t.Run(w.method+" "+w.path, func(t *testing.T) {
			for i, slash := range []bool{false, true} {
				path := w.path
				if slash {
					base, q, _ := strings.Cut(path, "?")
					path = base + "/"
					if q != "" {
						path += "?" + q
					}
					if w.method == "DELETE" && w.body == nil && strings.Contains(base, "/apps/b0") {
						path = strings.Replace(path, "b0", "b1", 1)
					}
					if w.method == "DELETE" && strings.Contains(base, "/streams/n0") {
						path = strings.Replace(path, "n0", "n1", 1)
					}
				}
				var body any
				if w.body != nil {
					body = w.body(i)
				}
				if r := e.do(w.method, path, body); r.status != w.status {
					t.Fatalf("%s %s: %d %s", w.method, path, r.status, r.body)
				}
			}
		})
	}
	t.Run("POST /v3/auth/tokens/ routes like /v3/auth/tokens", func(t *testing.T) {
		// With auth none the token API is off: both forms reach it and answer its 404, not the unknown-route one.
		a, b := e.do("POST", "/v3/auth/tokens", "{}"), e.do("POST", "/v3/auth/tokens/", "{}")
		if a.status != b.status || a.errMsg(t) != b.errMsg(t) || !strings.Contains(b.errMsg(t), "Token authentication is not enabled") {
			t.Fatalf("%d %s vs %d %s", a.status, a.body, b.status, b.body)
		}
	})
}
