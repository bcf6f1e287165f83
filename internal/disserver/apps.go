package disserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgegw/edgegw/internal/dis"
)

// appMeta is a persisted consumer app.
type appMeta struct {
	Project    string `json:"project"`
	Name       string `json:"name"`
	ID         string `json:"id"`
	CreateTime int64  `json:"create_time"`
}

// checkpointValue is a persisted checkpoint. The sequence number is opaque
// (COMPAT-NOTES fact 34): stored and returned exactly as committed.
type checkpointValue struct {
	SequenceNumber string `json:"seq"`
	Metadata       string `json:"meta,omitempty"`
	Time           int64  `json:"time"`
}

// appInUseMillis: an app that committed a checkpoint within one cursor
// lifetime (5 min) has a live consumer, and deleting it gives DIS.4331.
const appInUseMillis = dis.CursorTTLMillis

const maxCheckpointMetadata = 1000 // §5.3.1: metadata holds at most 1000 characters

func errAppNotFound(name string) error {
	return dis.NewError(dis.CodeAppNotFound, "app not found. %s", name)
}

// hCreateApp serves POST /v2/{project_id}/apps (§5.2.1).
func (s *Server) hCreateApp(c *call) error {
	var req dis.CreateAppRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	if !appNameRe.MatchString(req.AppName) {
		return bodyError("app_name", "%q must be 1 to 200 letters, digits, '_' or '-'", req.AppName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.project(c.project)
	if _, ok := p.apps[req.AppName]; ok {
		return dis.NewError(dis.CodeAppExists, "app already exist. %s", req.AppName)
	}
	if len(p.apps) >= s.cfg.Quotas.Apps {
		return dis.NewError(dis.CodeAppQuota, "app quota exceeded. %d apps; quota %d", len(p.apps), s.cfg.Quotas.Apps)
	}
	a := &appMeta{Project: c.project, Name: req.AppName, ID: newID(), CreateTime: ms(s.now())}
	b, _ := json.Marshal(a) // strings and an int
	if err := s.syncUpdate(func(txn *badger.Txn) error { return txn.Set(appMetaKey(c.project, a.Name), b) }); err != nil {
		return fmt.Errorf("create app %s: %w", a.Name, err)
	}
	p.apps[a.Name] = a
	return c.empty(http.StatusCreated)
}

func (s *Server) getApp(projectID, name string) (*appMeta, *project, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.projects[projectID]
	if p == nil || p.apps[name] == nil {
		return nil, nil, errAppNotFound(name)
	}
	return p.apps[name], p, nil
}

// appStreams returns the names of the streams an app has checkpoints on.
func (s *Server) appStreams(projectID, app string) ([]string, error) {
	sids := map[uint64]bool{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: checkpointAppPrefix(projectID, app)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if sid, _, ok := checkpointKeySID(it.Item().Key()); ok {
				sids[sid] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := []string{}
	s.mu.RLock()
	if p := s.projects[projectID]; p != nil {
		for name, st := range p.streams {
			if sids[st.sid] {
				names = append(names, name)
			}
		}
	}
	s.mu.RUnlock()
	sort.Strings(names)
	return names, nil
}

func (s *Server) appView(a *appMeta) (dis.App, error) {
	names, err := s.appStreams(a.Project, a.Name)
	if err != nil {
		return dis.App{}, err
	}
	return dis.App{AppName: a.Name, AppID: a.ID, CreateTime: a.CreateTime, CommitCheckpointStreamNames: names}, nil
}

// hListApps serves GET /v2/{project_id}/apps (§5.2.2).
func (s *Server) hListApps(c *call) error {
	limit, err := intParam(c, "limit", 100, 1, 200) // 200 is the documented maximum
	if err != nil {
		return err
	}
	start := c.q("start_app_name")
	filter := c.q("stream_name")
	if filter != "" {
		if _, err := s.getStream(c.project, filter); err != nil {
			return err
		}
	}
	s.mu.RLock()
	var apps []*appMeta
	if p := s.projects[c.project]; p != nil {
		for _, a := range p.apps {
			apps = append(apps, a)
		}
	}
	s.mu.RUnlock()
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	resp := dis.ListAppsResponse{Apps: []dis.App{}}
	for _, a := range apps {
		v, err := s.appView(a)
		if err != nil {
			return err
		}
		if filter != "" && !containsName(v.CommitCheckpointStreamNames, filter) {
			continue
		}
		resp.TotalNumber++
		if start != "" && a.Name <= start {
			continue
		}
		if len(resp.Apps) == limit {
			resp.HasMoreApp = true
			continue
		}
		resp.Apps = append(resp.Apps, v)
	}
	return c.json(http.StatusOK, resp)
}

func containsName(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// hDescribeApp serves GET /v2/{project_id}/apps/{app_name} (§5.2.4).
func (s *Server) hDescribeApp(c *call) error {
	a, _, err := s.getApp(c.project, c.seg[1])
	if err != nil {
		return err
	}
	v, err := s.appView(a)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

// hDeleteApp serves DELETE /v2/{project_id}/apps/{app_name} (§5.2.3). The
// app's checkpoints go with it, in the same transaction.
func (s *Server) hDeleteApp(c *call) error {
	name := c.seg[1]
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[c.project]
	if p == nil || p.apps[name] == nil {
		return errAppNotFound(name)
	}
	if v, ok := p.appCommits.Load(name); ok && ms(s.now())-v.(int64) < appInUseMillis {
		return dis.NewError(dis.CodeAppInUse, "app is using. %s committed a checkpoint less than %d s ago", name, appInUseMillis/1000)
	}
	err := s.syncUpdate(func(txn *badger.Txn) error {
		if err := deletePrefix(txn, checkpointAppPrefix(c.project, name)); err != nil {
			return err
		}
		return txn.Delete(appMetaKey(c.project, name))
	})
	if err != nil {
		return fmt.Errorf("delete app %s: %w", name, err)
	}
	delete(p.apps, name)
	p.appCommits.Delete(name)
	return c.empty(http.StatusNoContent)
}

// deletePrefix deletes every key under prefix inside txn (small key sets:
// one app's checkpoints).
func deletePrefix(txn *badger.Txn, prefix []byte) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	var keys [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// hConsumerState serves GET /v2/{project_id}/apps/{app}/streams/{stream} (§5.2.5).
func (s *Server) hConsumerState(c *call) error {
	appName, streamName := c.seg[1], c.seg[3]
	if ct := c.q("checkpoint_type"); ct != dis.CheckpointLastRead {
		return dis.NewError(dis.CodeInvalidRequest, "Invalid request. checkpoint_type %q must be LAST_READ", ct)
	}
	limit, err := intParam(c, "limit", 100, 1, 1000) // §5.2.5: default 100, 1 to 1000
	if err != nil {
		return err
	}
	if _, _, err := s.getApp(c.project, appName); err != nil {
		return err
	}
	st, err := s.getStream(c.project, streamName)
	if err != nil {
		return err
	}
	after := -1
	if v := c.q("start_partition_id"); v != "" {
		if after, err = dis.ParsePartitionID(v); err != nil {
			return dis.NewError(dis.CodeInvalidPartitionID, "Invalid partition_id. start_partition_id %q", v)
		}
	}
	type row struct {
		idx         int
		status      string
		first, next int64
	}
	var rows []row
	st.mu.RLock()
	sid := st.sid
	hasMore := false
	for i, pm := range st.meta.Partitions {
		if i <= after {
			continue
		}
		if len(rows) == limit {
			hasMore = true
			break
		}
		rows = append(rows, row{i, pm.Status, st.parts[i].first.Load(), st.parts[i].committed.Load()})
	}
	st.mu.RUnlock()
	resp := dis.ConsumerStateResponse{HasMore: hasMore, StreamName: streamName, AppName: appName, PartitionConsumingState: []dis.PartitionConsumingState{}}
	err = s.db.View(func(txn *badger.Txn) error {
		for _, r := range rows {
			cp, err := readCheckpoint(txn, checkpointKey(c.project, appName, sid, r.idx))
			if err != nil {
				return err
			}
			resp.PartitionConsumingState = append(resp.PartitionConsumingState, dis.PartitionConsumingState{
				PartitionID: dis.ShardID(r.idx), SequenceNumber: cp.SequenceNumber,
				LatestOffset: r.next, EarliestOffset: r.first, CheckpointType: dis.CheckpointLastRead, Status: r.status,
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, resp)
}

// readCheckpoint returns a checkpoint, or sequence number "-1" when none.
func readCheckpoint(txn *badger.Txn, key []byte) (checkpointValue, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return checkpointValue{SequenceNumber: "-1"}, nil
	}
	if err != nil {
		return checkpointValue{}, err
	}
	var cp checkpointValue
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &cp) })
	return cp, err
}

// checkpointTarget resolves the app, stream and partition of a checkpoint request.
func (s *Server) checkpointTarget(c *call, app, streamName, streamID, pid string, needPartition bool) (*project, *stream, int, error) {
	if app == "" {
		return nil, nil, 0, bodyError("app_name", "is required")
	}
	if streamName == "" && streamID == "" {
		return nil, nil, 0, bodyError("stream_name", "is required")
	}
	_, p, err := s.getApp(c.project, app)
	if err != nil {
		return nil, nil, 0, err
	}
	st, err := s.getStreamByNameOrID(c.project, streamName, streamID)
	if err != nil {
		return nil, nil, 0, err
	}
	if pid == "" {
		if needPartition {
			return nil, nil, 0, dis.NewError(dis.CodeInvalidPartitionID, "Invalid partition_id. partition_id is required")
		}
		return p, st, -1, nil
	}
	idx, err := dis.ParsePartitionID(pid)
	if err != nil {
		return nil, nil, 0, dis.NewError(dis.CodeInvalidPartitionID, "Invalid partition_id. %q", pid)
	}
	st.mu.RLock()
	n := len(st.parts)
	st.mu.RUnlock()
	if idx >= n {
		return nil, nil, 0, dis.NewError(dis.CodePartitionNotFound, "Partition does not exist. %s", dis.ShardID(idx))
	}
	return p, st, idx, nil
}

func checkCheckpointType(t, field string) error {
	if t != dis.CheckpointLastRead {
		return dis.NewError(dis.CodeBadRequestBody, "Request error. Field %s: %q must be LAST_READ", field, t)
	}
	return nil
}

// hCommitCheckpoint serves POST /v2/{project_id}/checkpoints (§5.3.1). The
// write goes through the writer's group commit and is synced before 201.
func (s *Server) hCommitCheckpoint(c *call) error {
	var req dis.CommitCheckpointRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	if err := checkCheckpointType(req.CheckpointType, "checkpoint_type"); err != nil {
		return err
	}
	if utf8.RuneCountInString(req.Metadata) > maxCheckpointMetadata {
		return bodyError("metadata", "is %d characters; at most %d", utf8.RuneCountInString(req.Metadata), maxCheckpointMetadata)
	}
	p, st, idx, err := s.checkpointTarget(c, req.AppName, req.StreamName, req.StreamID, req.PartitionID, true)
	if err != nil {
		return err
	}
	seq, err := strconv.ParseInt(req.SequenceNumber, 10, 64)
	if err != nil || seq < -1 {
		return dis.NewError(dis.CodeInvalidSequenceNumber, "Invalid sequence_number. %q must be a decimal sequence number", req.SequenceNumber)
	}
	st.mu.RLock()
	next := st.parts[idx].committed.Load()
	sid := st.sid
	expired := st.meta.Partitions[idx].Status == dis.PartitionExpired
	st.mu.RUnlock()
	if expired {
		// Nothing can be read there any more, so no position is worth
		// keeping (COMPAT-NOTES 31: EXPIRED gives DIS.4319).
		return dis.NewError(dis.CodePartitionExpired, "Partition is expired. %s", dis.ShardID(idx))
	}
	// The value is opaque but must be a position that exists; next-to-write
	// is allowed because consumers commit "next to read" (COMPAT-NOTES fact 34).
	if seq > next {
		return dis.NewError(dis.CodeSequenceOutOfRange, "Sequence_number out of range. %d is beyond %d of partition %s", seq, next, dis.ShardID(idx))
	}
	now := ms(s.now())
	b, _ := json.Marshal(checkpointValue{SequenceNumber: req.SequenceNumber, Metadata: req.Metadata, Time: now})
	if err := s.w.submit(&job{sets: []kv{{key: checkpointKey(c.project, req.AppName, sid, idx), value: b}}}); err != nil {
		return fmt.Errorf("commit checkpoint: %w", err)
	}
	p.appCommits.Store(req.AppName, now)
	return c.empty(http.StatusCreated)
}

// hGetCheckpoint serves GET /v2/{project_id}/checkpoints (§5.3.2).
func (s *Server) hGetCheckpoint(c *call) error {
	if err := checkCheckpointType(c.q("checkpoint_type"), "checkpoint_type"); err != nil {
		return err
	}
	app := c.q("app_name")
	_, st, idx, err := s.checkpointTarget(c, app, c.q("stream_name"), c.q("stream_id"), c.q("partition_id"), true)
	if err != nil {
		return err
	}
	var cp checkpointValue
	err = s.db.View(func(txn *badger.Txn) error {
		var err error
		cp, err = readCheckpoint(txn, checkpointKey(c.project, app, st.sid, idx))
		return err
	})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, dis.GetCheckpointResponse{SequenceNumber: cp.SequenceNumber, Metadata: cp.Metadata})
}

// hDeleteCheckpoint serves DELETE /v2/{project_id}/checkpoints (§5.3.3);
// without partition_id it deletes the app's checkpoints of every partition.
func (s *Server) hDeleteCheckpoint(c *call) error {
	if err := checkCheckpointType(c.q("checkpoint_type"), "checkpoint_type"); err != nil {
		return err
	}
	app := c.q("app_name")
	_, st, idx, err := s.checkpointTarget(c, app, c.q("stream_name"), c.q("stream_id"), c.q("partition_id"), false)
	if err != nil {
		return err
	}
	st.mu.RLock()
	n := len(st.parts)
	sid := st.sid
	st.mu.RUnlock()
	var sets []kv
	for i := range n {
		if idx < 0 || i == idx {
			sets = append(sets, kv{key: checkpointKey(c.project, app, sid, i), delete: true})
		}
	}
	if err := s.w.submit(&job{sets: sets}); err != nil {
		return fmt.Errorf("delete checkpoint: %w", err)
	}
	return c.empty(http.StatusNoContent)
}
