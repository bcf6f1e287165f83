// Package dissdk runs the official Huawei Cloud Go SDK (v3, services/dis/v2)
// against the built-in DIS-compatible server with AK/SK authentication. It is
// its own module so the main module does not carry the SDK (~250 MB unpacked).
//
// Run: cd compat/dissdk && go test ./...
package dissdk

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	dis "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dis/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/dis/v2/model"

	"github.com/edgegw/edgegw/internal/disserver"
)

const (
	project = "0123456789abcdef0123456789abcdef"
	ak      = "AKCOMPATTEST"
	sk      = "SKCOMPATTEST"
)

// startServer runs the server on 127.0.0.1 in AK/SK mode with the real clock
// (the SDK signs with time.Now).
func startServer(t *testing.T) string {
	t.Helper()
	cfg := disserver.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Auth.Mode = disserver.AuthAKSK
	cfg.Auth.Keys = []disserver.KeyConfig{{AccessKey: ak, SecretKey: sk, Projects: []string{project}}}
	cfg.FlowControl.Enabled = false
	s, err := disserver.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String()
}

func newClient(t *testing.T, endpoint, ak, sk string) *dis.DisClient {
	t.Helper()
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(project).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	// A fixed User-Agent keeps the SDK from creating ~/.huaweicloud/application_id.
	hc := config.DefaultHttpConfig().WithTimeout(30 * time.Second).WithUserAgent("edgegw-compat/1")
	c, err := dis.DisClientBuilder().WithEndpoints([]string{endpoint}).WithCredential(cred).WithHttpConfig(hc).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	return dis.NewDisClient(c)
}

func ptr[T any](v T) *T { return &v }

// wantCode checks err is the SDK's service error with the DIS code and status.
func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("err %v (%T), want a ServiceResponseError %s", err, err, code)
	}
	if se.StatusCode != status || se.ErrorCode != code || se.ErrorMessage == "" || se.RequestId == "" {
		t.Fatalf("SDK error %+v, want HTTP %d %s with a message and request id", se, status, code)
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("SDK call failed: %v", err)
	}
}

func TestGoSDKAgainstServer(t *testing.T) {
	endpoint := startServer(t)
	c := newClient(t, endpoint, ak, sk)
	const stream = "sdk_stream"
	schema := `{"type":"record","name":"r","fields":[{"name":"temp","type":"double"}]}`

	t.Run("streams", func(t *testing.T) {
		_, err := c.CreateStream(&model.CreateStreamRequest{Body: &model.CreateStreamReq{
			StreamName: stream, PartitionCount: 3,
			StreamType:   ptr(model.GetCreateStreamReqStreamTypeEnum().COMMON),
			DataType:     ptr(model.GetCreateStreamReqDataTypeEnum().JSON),
			DataDuration: ptr(int32(24)), DataSchema: ptr(schema),
			Tags: &[]model.Tag{{Key: ptr("origin"), Value: ptr("create")}},
		}})
		ok(t, err)
		_, err = c.CreateStream(&model.CreateStreamRequest{Body: &model.CreateStreamReq{StreamName: stream, PartitionCount: 1}})
		wantCode(t, err, 400, "DIS.4307")

		l, err := c.ListStreams(&model.ListStreamsRequest{Limit: ptr(int32(10))})
		ok(t, err)
		if l.TotalNumber == nil || *l.TotalNumber != 1 || len(*l.StreamNames) != 1 || (*l.StreamNames)[0] != stream || *l.HasMoreStreams {
			t.Fatalf("ListStreams %+v", l)
		}
		d, err := c.ShowStream(&model.ShowStreamRequest{StreamName: stream, LimitPartitions: ptr(int32(2))})
		ok(t, err)
		if *d.StreamName != stream || len(*d.Partitions) != 2 || !*d.HasMorePartitions || *d.WritablePartitionCount != 3 || *d.RetentionPeriod != 24 || *d.DataSchema != schema {
			t.Fatalf("ShowStream %+v", d)
		}
		next, err := c.ShowStream(&model.ShowStreamRequest{StreamName: stream, StartPartitionId: (*d.Partitions)[1].PartitionId})
		ok(t, err)
		if len(*next.Partitions) != 1 || *(*next.Partitions)[0].PartitionId != "shardId-0000000002" {
			t.Fatalf("second page %+v", next.Partitions)
		}
		_, err = c.ShowStream(&model.ShowStreamRequest{StreamName: "missing"})
		wantCode(t, err, 400, "DIS.4301")
	})

	var seqs []string
	t.Run("records", func(t *testing.T) {
		var entries []model.PutRecordsRequestEntry
		for i := range 10 {
			entries = append(entries, model.PutRecordsRequestEntry{
				Data: base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf(`{"temp":%d}`, i))), PartitionId: ptr("0"),
			})
		}
		entries = append(entries, model.PutRecordsRequestEntry{Data: base64.StdEncoding.EncodeToString([]byte("k")), PartitionKey: ptr("device-1")})
		r, err := c.SendRecords(&model.SendRecordsRequest{Body: &model.PutRecordsRequest{StreamName: stream, Records: entries}})
		ok(t, err)
		if *r.FailedRecordCount != 0 || len(*r.Records) != 11 {
			t.Fatalf("SendRecords %+v", r)
		}
		for i, e := range (*r.Records)[:10] {
			if *e.PartitionId != "shardId-0000000000" || *e.SequenceNumber != strconv.Itoa(i) {
				t.Fatalf("entry %d: %s/%s", i, *e.PartitionId, *e.SequenceNumber)
			}
			seqs = append(seqs, *e.SequenceNumber)
		}
		_, err = c.SendRecords(&model.SendRecordsRequest{Body: &model.PutRecordsRequest{StreamName: "missing", Records: entries[:1]}})
		wantCode(t, err, 400, "DIS.4301")
	})

	t.Run("cursors and reads", func(t *testing.T) {
		ct := model.GetShowCursorRequestCursorTypeEnum()
		cursor := func(typ model.ShowCursorRequestCursorType, seq *string, ts *int64) string {
			t.Helper()
			r, err := c.ShowCursor(&model.ShowCursorRequest{StreamName: stream, PartitionId: "shardId-0000000000", CursorType: &typ, StartingSequenceNumber: seq, Timestamp: ts})
			ok(t, err)
			return *r.PartitionCursor
		}
		read := func(cur string) *model.ConsumeRecordsResponse {
			t.Helper()
			g, err := c.ConsumeRecords(&model.ConsumeRecordsRequest{PartitionCursor: cur, MaxFetchBytes: ptr(int32(1 << 20))})
			ok(t, err)
			return g
		}
		g := read(cursor(ct.TRIM_HORIZON, nil, nil))
		if len(*g.Records) != 10 || *g.NextPartitionCursor == "" {
			t.Fatalf("TRIM_HORIZON read %d records", len(*g.Records))
		}
		for i, rec := range *g.Records {
			data, err := base64.StdEncoding.DecodeString(*rec.Data)
			if err != nil || string(data) != fmt.Sprintf(`{"temp":%d}`, i) || *rec.SequenceNumber != seqs[i] || *rec.TimestampType != "CreateTime" || *rec.Timestamp <= 0 {
				t.Fatalf("record %d: %+v", i, rec)
			}
		}
		if g := read(*g.NextPartitionCursor); len(*g.Records) != 0 || *g.NextPartitionCursor == "" {
			t.Fatalf("read past the end: %d records", len(*g.Records))
		}
		if g := read(cursor(ct.AT_SEQUENCE_NUMBER, ptr("4"), nil)); *(*g.Records)[0].SequenceNumber != "4" {
			t.Fatal("AT_SEQUENCE_NUMBER 4")
		}
		if g := read(cursor(ct.AFTER_SEQUENCE_NUMBER, ptr("4"), nil)); *(*g.Records)[0].SequenceNumber != "5" {
			t.Fatal("AFTER_SEQUENCE_NUMBER 4")
		}
		if g := read(cursor(ct.LATEST, nil, nil)); len(*g.Records) != 0 {
			t.Fatal("LATEST is not at the end")
		}
		if g := read(cursor(ct.AT_TIMESTAMP, nil, ptr(time.Now().Add(-time.Hour).UnixMilli()))); len(*g.Records) != 10 {
			t.Fatal("AT_TIMESTAMP an hour ago does not read everything")
		}
		typ := ct.AT_SEQUENCE_NUMBER
		_, err := c.ShowCursor(&model.ShowCursorRequest{StreamName: stream, PartitionId: "0", CursorType: &typ, StartingSequenceNumber: ptr("99")})
		wantCode(t, err, 400, "DIS.4224")
		_, err = c.ConsumeRecords(&model.ConsumeRecordsRequest{PartitionCursor: "garbage"})
		wantCode(t, err, 400, "DIS.4217")
	})

	t.Run("apps and checkpoints", func(t *testing.T) {
		_, err := c.CreateApp(&model.CreateAppRequest{Body: &model.CreateAppReq{AppName: "sdk_app"}})
		ok(t, err)
		_, err = c.CreateApp(&model.CreateAppRequest{Body: &model.CreateAppReq{AppName: "sdk_app"}})
		wantCode(t, err, 400, "DIS.4330")
		a, err := c.ShowApp(&model.ShowAppRequest{AppName: "sdk_app"})
		ok(t, err)
		if *a.AppName != "sdk_app" || *a.AppId == "" || *a.CreateTime <= 0 {
			t.Fatalf("ShowApp %+v", a)
		}
		_, err = c.ShowApp(&model.ShowAppRequest{AppName: "nope"})
		wantCode(t, err, 400, "DIS.4332")
		l, err := c.ListApp(&model.ListAppRequest{Limit: ptr(int32(10))})
		ok(t, err)
		if *l.TotalNumber != 1 || len(*l.Apps) != 1 {
			t.Fatalf("ListApp %+v", l)
		}

		_, err = c.CommitCheckpoint(&model.CommitCheckpointRequest{Body: &model.CommitCheckpointReq{
			AppName: "sdk_app", CheckpointType: model.GetCommitCheckpointReqCheckpointTypeEnum().LAST_READ,
			StreamName: stream, PartitionId: "0", SequenceNumber: "7", Metadata: ptr("m"),
		}})
		ok(t, err)
		cp, err := c.ShowCheckpoint(&model.ShowCheckpointRequest{StreamName: stream, PartitionId: "shardId-0000000000", AppName: "sdk_app",
			CheckpointType: model.GetShowCheckpointRequestCheckpointTypeEnum().LAST_READ})
		ok(t, err)
		if *cp.SequenceNumber != "7" || *cp.Metadata != "m" {
			t.Fatalf("ShowCheckpoint %+v", cp)
		}
		cs, err := c.ShowConsumerState(&model.ShowConsumerStateRequest{AppName: "sdk_app", StreamName: stream,
			CheckpointType: model.GetShowConsumerStateRequestCheckpointTypeEnum().LAST_READ})
		ok(t, err)
		states := *cs.PartitionConsumingStates
		if len(states) != 3 || *states[0].SequenceNumber != "7" || *states[0].LatestOffset != 10 || *states[1].SequenceNumber != "-1" {
			t.Fatalf("ShowConsumerState %+v", cs)
		}
		_, err = c.DeleteCheckpoint(&model.DeleteCheckpointRequest{StreamName: stream, AppName: "sdk_app",
			CheckpointType: model.GetDeleteCheckpointRequestCheckpointTypeEnum().LAST_READ})
		ok(t, err)
		cp, err = c.ShowCheckpoint(&model.ShowCheckpointRequest{StreamName: stream, PartitionId: "0", AppName: "sdk_app",
			CheckpointType: model.GetShowCheckpointRequestCheckpointTypeEnum().LAST_READ})
		ok(t, err)
		if *cp.SequenceNumber != "-1" {
			t.Fatalf("after delete %+v", cp)
		}
	})

	t.Run("scaling and updates", func(t *testing.T) {
		_, err := c.UpdatePartitionCount(&model.UpdatePartitionCountRequest{StreamName: stream,
			Body: &model.UpdatePartitionCountReq{StreamName: stream, TargetPartitionCount: 2}})
		ok(t, err)
		_, err = c.UpdateStream(&model.UpdateStreamRequest{StreamName: stream, Body: &model.UpdateStreamReq{StreamName: stream, DataDuration: ptr(int32(48))}})
		ok(t, err)
		d, err := c.ShowStream(&model.ShowStreamRequest{StreamName: stream})
		ok(t, err)
		if *d.WritablePartitionCount != 2 || *d.ReadablePartitionCount != 3 || *d.RetentionPeriod != 48 || len(*d.UpdatePartitionCounts) != 1 {
			t.Fatalf("after scaling: %+v", d)
		}
	})

	t.Run("tags", func(t *testing.T) {
		d, err := c.ShowStream(&model.ShowStreamRequest{StreamName: stream})
		ok(t, err)
		id := *d.StreamId
		_, err = c.CreateTag(&model.CreateTagRequest{StreamId: id, Body: &model.CreateTagReq{Tag: &model.Tag{Key: ptr("team"), Value: ptr("iot")}}})
		ok(t, err)
		tags, err := c.ShowStreamTags(&model.ShowStreamTagsRequest{StreamId: id})
		ok(t, err)
		if len(*tags.Tags) != 2 || *(*tags.Tags)[1].Key != "team" {
			t.Fatalf("ShowStreamTags %+v", tags.Tags)
		}
		_, err = c.DeleteTag(&model.DeleteTagRequest{StreamId: id, Key: "team"})
		ok(t, err)
		_, err = c.DeleteTag(&model.DeleteTagRequest{StreamId: id, Key: "team"})
		wantCode(t, err, 400, "DIS.4604")
	})

	t.Run("deletes", func(t *testing.T) {
		_, err := c.DeleteApp(&model.DeleteAppRequest{AppName: "sdk_app"})
		wantCode(t, err, 400, "DIS.4331") // committed a checkpoint moments ago
		_, err = c.CreateApp(&model.CreateAppRequest{Body: &model.CreateAppReq{AppName: "tmp_app"}})
		ok(t, err)
		_, err = c.DeleteApp(&model.DeleteAppRequest{AppName: "tmp_app"})
		ok(t, err)
		_, err = c.DeleteStream(&model.DeleteStreamRequest{StreamName: stream})
		ok(t, err)
		_, err = c.DeleteStream(&model.DeleteStreamRequest{StreamName: stream})
		wantCode(t, err, 400, "DIS.4301")
	})

	t.Run("bad credentials are 401", func(t *testing.T) {
		bad := newClient(t, endpoint, ak, "wrong-secret")
		_, err := bad.ListStreams(&model.ListStreamsRequest{})
		wantCode(t, err, 401, "APIGW.0301")
	})
}
