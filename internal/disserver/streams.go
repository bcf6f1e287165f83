package disserver

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/hamba/avro/v2"

	"github.com/edgegw/edgegw/internal/dis"
)

// streamMeta is the persisted description of a stream.
type streamMeta struct {
	ID                string                     `json:"id"`
	SID               uint64                     `json:"sid"`
	Project           string                     `json:"project"`
	Name              string                     `json:"name"`
	CreateTime        int64                      `json:"create_time"`
	LastModified      int64                      `json:"last_modified"`
	StreamType        string                     `json:"stream_type"`
	DataType          string                     `json:"data_type"`
	DataSchema        string                     `json:"data_schema,omitempty"`
	CompressionFormat string                     `json:"compression_format,omitempty"`
	CSV               *dis.CSVProperties         `json:"csv,omitempty"`
	RetentionHours    int                        `json:"retention_hours"`
	AutoScale         bool                       `json:"auto_scale"`
	AutoMin           int64                      `json:"auto_min"`
	AutoMax           int64                      `json:"auto_max"`
	Tags              []dis.Tag                  `json:"tags,omitempty"`
	SysTags           []dis.SysTag               `json:"sys_tags,omitempty"`
	Active            int                        `json:"active"` // partitions 0..Active-1 are ACTIVE
	Partitions        []partMeta                 `json:"partitions"`
	Scaling           []dis.UpdatePartitionCount `json:"scaling,omitempty"`
	LastScale         int64                      `json:"last_scale,omitempty"`
}

// partMeta is the persisted state of one partition.
type partMeta struct {
	Status    string `json:"status"`
	HashStart int64  `json:"hash_start"`
	HashEnd   int64  `json:"hash_end"`
	DeletedAt int64  `json:"deleted_at,omitempty"` // epoch ms it became DELETED
}

// stream is a stream in memory. mu guards meta, parts (the slice) and deleted.
type stream struct {
	sid     uint64 // immutable copy of meta.SID, readable without mu
	id      string // immutable copy of meta.ID, readable without mu
	mu      sync.RWMutex
	meta    streamMeta
	parts   []*partition
	deleted bool
	rr      int // round-robin cursor for records without key; writer goroutine only
}

// partition is the runtime state of one partition.
type partition struct {
	idx int
	// Owned by the writer goroutine (and load, before it starts).
	assign      int64 // next sequence number to assign
	lastArrival int64
	lastIndex   int64
	bucket      *tokenBucket // bytes; created on first use
	recBucket   *tokenBucket // records
	// Shared.
	committed atomic.Int64 // one past the last durable record: readers stop here
	first     atomic.Int64 // first retained sequence number
}

var (
	streamNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	appNameRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)
	tagKeyRe     = regexp.MustCompile(`^[A-Za-z0-9_\-\x{4E00}-\x{9FFF}]{1,36}$`)
	tagValueRe   = regexp.MustCompile(`^[A-Za-z0-9_.\-\x{4E00}-\x{9FFF}]{0,43}$`)
	uuidRe       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

const maxTags = 10 // DIS.4601: at most 10 tags per resource

// maxScalingLog bounds the scaling log kept per stream: with no cooldown a
// client could otherwise grow the stream's metadata without end.
const maxScalingLog = 100

// hashRange returns partition i's hash range among n ACTIVE partitions with
// the formula the SDKs use for client-side routing (COMPAT-NOTES fact 17):
// avg = MaxInt64/n, partition 0 is [0, avg], partition i is (i·avg, (i+1)·avg],
// and the last one extends to MaxInt64.
func hashRange(i, n int) (start, end int64) {
	avg := int64(math.MaxInt64) / int64(n)
	if i > 0 {
		start = int64(i)*avg + 1
	}
	end = int64(i+1) * avg
	if i == n-1 {
		end = math.MaxInt64
	}
	return start, end
}

// partitionForHash returns the ACTIVE partition whose range holds h.
func partitionForHash(h int64, n int) int {
	avg := int64(math.MaxInt64) / int64(n)
	idx := h / avg
	if idx > 0 && h%avg == 0 {
		idx--
	}
	if idx >= int64(n) { // h above n·avg: the extended last range
		idx = int64(n) - 1
	}
	return int(idx)
}

func (m *streamMeta) retentionMillis() int64 { return int64(m.RetentionHours) * 3600 * 1000 }

func (s *Server) persistStream(txn *badger.Txn, m *streamMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return txn.Set(streamMetaKey(m.Project, m.Name), b)
}

// getStream finds a stream by name in a project: DIS.4301 if absent.
func (s *Server) getStream(projectID, name string) (*stream, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.projects[projectID]; p != nil {
		if st := p.streams[name]; st != nil {
			return st, nil
		}
	}
	return nil, dis.NewError(dis.CodeStreamNotFound, "The stream does not exist. %s", name)
}

// getStreamByNameOrID applies PutRecords' rule: stream_id is used only when
// stream_name finds nothing (§5.4.1 Table 5-90).
func (s *Server) getStreamByNameOrID(projectID, name, id string) (*stream, error) {
	st, err := s.getStream(projectID, name)
	if err == nil || id == "" {
		return st, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.projects[projectID]; p != nil {
		for _, st := range p.streams {
			if st.id == id {
				return st, nil
			}
		}
	}
	return nil, err
}

// usedPartitions counts a project's ACTIVE partitions by stream type. Caller holds s.mu.
func (p *project) usedPartitions() (common, advanced int) {
	for _, st := range p.streams {
		st.mu.RLock()
		if st.meta.StreamType == dis.StreamTypeAdvanced {
			advanced += st.meta.Active
		} else {
			common += st.meta.Active
		}
		st.mu.RUnlock()
	}
	return common, advanced
}

func (s *Server) quotaFor(streamType string) int {
	if streamType == dis.StreamTypeAdvanced {
		return s.cfg.Quotas.AdvancedPartitions
	}
	return s.cfg.Quotas.CommonPartitions
}

// validateSchema checks data_schema is a valid Avro schema (DIS.4360).
func validateSchema(schema string) error {
	if schema == "" {
		return nil
	}
	if _, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{}); err != nil {
		return dis.NewError(dis.CodeInvalidData, "Invalid data schema. data_schema is not a valid Avro schema: %v", err)
	}
	return nil
}

func validateDataType(field, v string) error {
	switch v {
	case dis.DataTypeBLOB, dis.DataTypeJSON, dis.DataTypeCSV:
		return nil
	}
	return bodyError(field, "%q is not one of BLOB, JSON, CSV", v)
}

func validateDuration(field string, v int) error {
	if v < 24 || v > 72 {
		return bodyError(field, "%d is out of range; use 24 to 72 hours", v)
	}
	return nil
}

func validateAutoScale(enabled bool, min, max int64) error {
	if !enabled {
		return nil
	}
	if min < 1 {
		return bodyError("auto_scale_min_partition_count", "%d must be at least 1 when auto scaling is enabled", min)
	}
	if max < min {
		return bodyError("auto_scale_max_partition_count", "%d must not be less than auto_scale_min_partition_count %d", max, min)
	}
	return nil
}

func validateTags(tags []dis.Tag, sys []dis.SysTag) error {
	if len(tags) > maxTags {
		return dis.NewError("DIS.4601", "The number of resource tags has reached the maximum. %d tags; at most %d", len(tags), maxTags)
	}
	seen := map[string]bool{}
	for i, t := range tags {
		if !tagKeyRe.MatchString(t.Key) {
			return bodyError(fmt.Sprintf("tags[%d].key", i), "%q must be 1 to 36 letters, digits, '_', '-' or CJK characters", t.Key)
		}
		if !tagValueRe.MatchString(t.Value) {
			return bodyError(fmt.Sprintf("tags[%d].value", i), "%q must be at most 43 letters, digits, '.', '_', '-' or CJK characters", t.Value)
		}
		if seen[t.Key] {
			return bodyError(fmt.Sprintf("tags[%d].key", i), "%q is repeated; tag keys are unique", t.Key)
		}
		seen[t.Key] = true
	}
	for i, t := range sys {
		if t.Key != "_sys_enterprise_project_id" {
			return bodyError(fmt.Sprintf("sys_tags[%d].key", i), "must be _sys_enterprise_project_id")
		}
		if !uuidRe.MatchString(t.Value) && t.Value != "0" {
			return bodyError(fmt.Sprintf("sys_tags[%d].value", i), "%q is not an enterprise project id (a UUID)", t.Value)
		}
	}
	return nil
}

// hCreateStream serves POST /v2/{project_id}/streams (§5.1.1).
func (s *Server) hCreateStream(c *call) error {
	var req createStreamBody
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	if !streamNameRe.MatchString(req.StreamName) {
		return bodyError("stream_name", "%q must be 1 to 64 letters, digits, '_' or '-'", req.StreamName)
	}
	if req.PartitionCount < 1 {
		return bodyError("partition_count", "%d must be at least 1", req.PartitionCount)
	}
	if req.StreamType == "" {
		req.StreamType = dis.StreamTypeCommon
	}
	if req.StreamType != dis.StreamTypeCommon && req.StreamType != dis.StreamTypeAdvanced {
		return bodyError("stream_type", "%q is not one of COMMON, ADVANCED", req.StreamType)
	}
	if req.DataType == "" {
		req.DataType = dis.DataTypeBLOB
	}
	if err := validateDataType("data_type", req.DataType); err != nil {
		return err
	}
	duration := 24 // §5.1.1: default retention
	if req.DataDuration != nil {
		duration = *req.DataDuration
		if err := validateDuration("data_duration", duration); err != nil {
			return err
		}
	}
	if err := validateSchema(req.DataSchema); err != nil {
		return err
	}
	if req.CSVProperties != nil && utf8.RuneCountInString(req.CSVProperties.Delimiter) > 1 {
		return bodyError("csv_properties.delimiter", "%q must be a single character", req.CSVProperties.Delimiter)
	}
	switch req.CompressionFormat {
	case "", "snappy", "gzip", "zip":
	default:
		return bodyError("compression_format", "%q is not one of snappy, gzip, zip", req.CompressionFormat)
	}
	if err := validateTags(req.Tags, req.SysTags); err != nil {
		return err
	}
	var autoEnabled bool
	var autoMin, autoMax int64
	if req.AutoScaleEnabled != nil {
		autoEnabled = *req.AutoScaleEnabled
	}
	if req.AutoScaleMinPartitionCount != nil {
		autoMin = *req.AutoScaleMinPartitionCount
	}
	if req.AutoScaleMaxPartitionCount != nil {
		autoMax = int64(*req.AutoScaleMaxPartitionCount)
	}
	if err := validateAutoScale(autoEnabled, autoMin, autoMax); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.project(c.project)
	if _, ok := p.streams[req.StreamName]; ok {
		return dis.NewError(dis.CodeStreamExists, "The stream already exists. %s", req.StreamName)
	}
	common, advanced := p.usedPartitions()
	used := common
	if req.StreamType == dis.StreamTypeAdvanced {
		used = advanced
	}
	if quota := s.quotaFor(req.StreamType); used+req.PartitionCount > quota {
		return dis.NewError(dis.CodeInsufficientQuota, "Insufficient quota. %s partitions: %d used + %d requested > quota %d", req.StreamType, used, req.PartitionCount, quota)
	}
	now := ms(s.now())
	m := streamMeta{
		ID: newID(), SID: s.lastSID + 1, Project: c.project, Name: req.StreamName,
		CreateTime: now, LastModified: now, StreamType: req.StreamType, DataType: req.DataType,
		DataSchema: req.DataSchema, CompressionFormat: req.CompressionFormat, CSV: req.CSVProperties,
		RetentionHours: duration, AutoScale: autoEnabled, AutoMin: autoMin, AutoMax: autoMax,
		Tags: req.Tags, SysTags: req.SysTags, Active: req.PartitionCount,
	}
	for i := 0; i < req.PartitionCount; i++ {
		hs, he := hashRange(i, req.PartitionCount)
		m.Partitions = append(m.Partitions, partMeta{Status: dis.PartitionActive, HashStart: hs, HashEnd: he})
	}
	err := s.syncUpdate(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(keySID), binary.BigEndian.AppendUint64(nil, m.SID)); err != nil {
			return err
		}
		return s.persistStream(txn, &m)
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", req.StreamName, err)
	}
	s.lastSID = m.SID
	st := &stream{sid: m.SID, id: m.ID, meta: m}
	for i := range m.Partitions {
		st.parts = append(st.parts, &partition{idx: i})
	}
	p.streams[req.StreamName] = st
	s.log.Info("stream created", "project", c.project, "stream", req.StreamName, "partitions", req.PartitionCount)
	return c.empty(http.StatusCreated)
}

// hListStreams serves GET /v2/{project_id}/streams (§5.1.2).
func (s *Server) hListStreams(c *call) error {
	limit, err := intParam(c, "limit", 100, 1, 500) // 100 by default like Kinesis; 500 is the documented maximum
	if err != nil {
		return err
	}
	start := c.q("start_stream_name")
	s.mu.RLock()
	var names []string
	var all []*stream
	if p := s.projects[c.project]; p != nil {
		for name := range p.streams {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, n := range names {
			all = append(all, p.streams[n])
		}
	}
	s.mu.RUnlock()
	resp := dis.ListStreamsResponse{TotalNumber: int64(len(names)), StreamNames: []string{}, StreamInfoList: []dis.StreamInfo{}}
	for i, n := range names {
		if start != "" && n <= start {
			continue
		}
		if len(resp.StreamNames) == limit {
			resp.HasMoreStreams = true
			break
		}
		st := all[i]
		st.mu.RLock()
		m := &st.meta
		resp.StreamNames = append(resp.StreamNames, n)
		resp.StreamInfoList = append(resp.StreamInfoList, dis.StreamInfo{
			StreamID: m.ID, StreamName: m.Name, CreateTime: m.CreateTime, RetentionPeriod: m.RetentionHours,
			Status: dis.StreamRunning, StreamType: m.StreamType, DataType: m.DataType, PartitionCount: m.Active,
			AutoScaleEnabled: m.AutoScale, AutoScaleMinPartitionCount: int(m.AutoMin), AutoScaleMaxPartitionCount: int(m.AutoMax),
			Tags: nonNilTags(m.Tags), SysTags: m.SysTags,
		})
		st.mu.RUnlock()
	}
	return c.json(http.StatusOK, resp)
}

func nonNilTags(t []dis.Tag) []dis.Tag {
	if t == nil {
		return []dis.Tag{}
	}
	return t
}

// hDescribeStream serves GET /v2/{project_id}/streams/{stream_name} (§5.1.4).
func (s *Server) hDescribeStream(c *call) error {
	st, err := s.getStream(c.project, c.seg[1])
	if err != nil {
		return err
	}
	// 100 by default as the Java SDK sends; 1000 is the largest page the
	// Python SDK asks for. The reference names no maximum, so a larger
	// limit is served as 1000 (the page says has_more_partitions) rather
	// than refused; no stream has that many partitions under the quotas.
	limit, err := intParam(c, "limit_partitions", 100, 1, math.MaxInt32)
	if err != nil {
		return err
	}
	limit = min(limit, 1000)
	after := -1
	if v := c.q("start_partitionId"); v != "" {
		if after, err = dis.ParsePartitionID(v); err != nil {
			return dis.NewError(dis.CodeInvalidPartitionID, "Invalid partition_id. start_partitionId %q", v)
		}
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	m := &st.meta
	resp := dis.DescribeStreamResponse{
		StreamID: m.ID, StreamName: m.Name, CreateTime: m.CreateTime, LastModifiedTime: m.LastModified,
		RetentionPeriod: m.RetentionHours, Status: dis.StreamRunning, StreamType: m.StreamType,
		DataType: m.DataType, DataSchema: m.DataSchema, CompressionFormat: m.CompressionFormat,
		CSVProperties: m.CSV, Partitions: []dis.PartitionResult{},
		UpdatePartitionCounts: m.Scaling, Tags: nonNilTags(m.Tags), SysTags: m.SysTags,
		AutoScaleEnabled: m.AutoScale, AutoScaleMinPartitionCount: int(m.AutoMin), AutoScaleMaxPartitionCount: int(m.AutoMax),
	}
	if resp.UpdatePartitionCounts == nil {
		resp.UpdatePartitionCounts = []dis.UpdatePartitionCount{}
	}
	for i, pm := range m.Partitions {
		switch pm.Status {
		case dis.PartitionActive:
			resp.WritablePartitionCount++
			resp.ReadablePartitionCount++
		case dis.PartitionDeleted:
			resp.ReadablePartitionCount++
		}
		if i <= after {
			continue
		}
		if len(resp.Partitions) == limit {
			resp.HasMorePartitions = true
			continue
		}
		pr := dis.PartitionResult{
			Status: pm.Status, PartitionID: dis.ShardID(i),
			HashRange: fmt.Sprintf("[%d : %d]", pm.HashStart, pm.HashEnd),
		}
		if pm.Status != dis.PartitionExpired {
			p := st.parts[i]
			// [earliest : next], exclusive end; [0 : 0] when empty (COMPAT-NOTES open question 1).
			pr.SequenceNumberRange = fmt.Sprintf("[%d : %d]", p.first.Load(), p.committed.Load())
		}
		resp.Partitions = append(resp.Partitions, pr)
	}
	return c.json(http.StatusOK, resp)
}

// hDeleteStream serves DELETE /v2/{project_id}/streams/{stream_name} (§5.1.3).
func (s *Server) hDeleteStream(c *call) error {
	name := c.seg[1]
	s.mu.Lock()
	p := s.projects[c.project]
	var st *stream
	if p != nil {
		st = p.streams[name]
	}
	if st == nil {
		s.mu.Unlock()
		return dis.NewError(dis.CodeStreamNotFound, "The stream does not exist. %s", name)
	}
	st.mu.Lock()
	st.deleted = true
	sid := st.sid
	st.mu.Unlock()
	delete(p.streams, name)
	s.mu.Unlock()
	// Wait until the writer has finished every batch that may still hold
	// records of this stream, so the purge below sees all of them.
	if err := s.w.barrier(); err != nil {
		return err
	}
	err := s.syncUpdate(func(txn *badger.Txn) error {
		if err := txn.Delete(streamMetaKey(c.project, name)); err != nil {
			return err
		}
		return txn.Set(purgeKey(sid), []byte(c.project))
	})
	if err != nil {
		return fmt.Errorf("delete stream %s: %w", name, err)
	}
	s.kickJanitor()
	s.log.Info("stream deleted", "project", c.project, "stream", name)
	return c.empty(http.StatusNoContent)
}

// checkBodyStreamName checks the body's stream_name, mandatory in §5.1.5
// and §5.1.7 (every SDK sends it), against the stream in the path.
func checkBodyStreamName(body, path string) error {
	if body == "" {
		return bodyError("stream_name", "is required and must name the stream in the path %q", path)
	}
	if body != path {
		return bodyError("stream_name", "%q does not match the stream in the path %q", body, path)
	}
	return nil
}

// hUpdatePartitionCount serves PUT /v2/{project_id}/streams/{stream_name}
// (§5.1.5). Scale-up re-activates partitions in index order (ACTIVE
// partitions are always 0..n-1, which client-side routing assumes);
// scale-down marks the highest ones DELETED: readable until their data
// expires, then EXPIRED. Hash ranges are recomputed over the ACTIVE set.
func (s *Server) hUpdatePartitionCount(c *call) error {
	var req dis.UpdatePartitionCountRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	name := c.seg[1]
	if err := checkBodyStreamName(req.StreamName, name); err != nil {
		return err
	}
	if req.TargetPartitionCount < 1 {
		return bodyError("target_partition_count", "%d must be greater than 0", req.TargetPartitionCount)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[c.project]
	var st *stream
	if p != nil {
		st = p.streams[name]
	}
	if st == nil {
		return dis.NewError(dis.CodeStreamNotFound, "The stream does not exist. %s", name)
	}
	common, advanced := p.usedPartitions()
	st.mu.Lock()
	defer st.mu.Unlock()
	m := &st.meta
	src, dst := m.Active, req.TargetPartitionCount
	if src == dst {
		return c.empty(http.StatusOK)
	}
	now := ms(s.now())
	if cd := s.cfg.ScalingCooldown; cd > 0 && m.LastScale > 0 && now-m.LastScale < cd.Milliseconds() {
		return dis.NewError(dis.CodeTooManyStreamRequests, "Too many stream requests. The stream was scaled less than %s ago.", cd)
	}
	used := common
	if m.StreamType == dis.StreamTypeAdvanced {
		used = advanced
	}
	if quota := s.quotaFor(m.StreamType); dst > src && used+dst-src > quota {
		return dis.NewError(dis.CodeInsufficientQuota, "Insufficient quota. %s partitions: %d used + %d more > quota %d", m.StreamType, used, dst-src, quota)
	}
	next := *m
	next.Partitions = append([]partMeta(nil), m.Partitions...)
	for i := range max(dst, len(next.Partitions)) {
		if i >= len(next.Partitions) {
			next.Partitions = append(next.Partitions, partMeta{})
		}
		pm := &next.Partitions[i]
		if i < dst {
			pm.Status = dis.PartitionActive
			pm.DeletedAt = 0
			pm.HashStart, pm.HashEnd = hashRange(i, dst)
		} else if pm.Status == dis.PartitionActive {
			pm.Status = dis.PartitionDeleted
			pm.DeletedAt = now
		}
	}
	next.Active = dst
	next.LastModified = now
	next.LastScale = now
	next.Scaling = append(append([]dis.UpdatePartitionCount(nil), m.Scaling...), dis.UpdatePartitionCount{
		CreateTimestamp: now, SrcPartitionCount: src, TargetPartitionCount: dst, ResultCode: 1,
	})
	if n := len(next.Scaling); n > maxScalingLog {
		next.Scaling = next.Scaling[n-maxScalingLog:]
	}
	if err := s.syncUpdate(func(txn *badger.Txn) error { return s.persistStream(txn, &next) }); err != nil {
		return fmt.Errorf("scale stream %s: %w", name, err)
	}
	*m = next
	for len(st.parts) < len(m.Partitions) {
		st.parts = append(st.parts, &partition{idx: len(st.parts)})
	}
	s.log.Info("stream scaled", "project", c.project, "stream", name, "from", src, "to", dst)
	return c.empty(http.StatusOK)
}

// hScalingLog serves GET /v2/{project_id}/streams/{stream_name}/update_partition_counts (§5.1.6).
func (s *Server) hScalingLog(c *call) error {
	st, err := s.getStream(c.project, c.seg[1])
	if err != nil {
		return err
	}
	st.mu.RLock()
	resp := dis.UpdatePartitionCountsResponse{UpdatePartitionCounts: append([]dis.UpdatePartitionCount{}, st.meta.Scaling...)}
	st.mu.RUnlock()
	return c.json(http.StatusOK, resp)
}

// hUpdateStream serves PUT /v3/{project_id}/streams/{stream_name} (§5.1.7).
func (s *Server) hUpdateStream(c *call) error {
	var req dis.UpdateStreamRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	name := c.seg[1]
	if err := checkBodyStreamName(req.StreamName, name); err != nil {
		return err
	}
	if req.DataDuration != nil {
		if err := validateDuration("data_duration", *req.DataDuration); err != nil {
			return err
		}
	}
	if req.DataType != "" {
		if err := validateDataType("data_type", req.DataType); err != nil {
			return err
		}
	}
	if err := validateSchema(req.DataSchema); err != nil {
		return err
	}
	return s.updateMeta(c, name, http.StatusNoContent, func(m *streamMeta) error {
		if req.DataDuration != nil {
			m.RetentionHours = *req.DataDuration
		}
		if req.DataType != "" {
			m.DataType = req.DataType
		}
		if req.DataSchema != "" {
			m.DataSchema = req.DataSchema
		}
		return applyAutoScale(m, req.AutoScaleEnabled, req.AutoScaleMinPartitionCount, req.AutoScaleMaxPartitionCount)
	})
}

// hUpdateAutoScale serves PUT /v2/{project_id}/streams/{stream_name}/update (§5.1.10).
// The auto-scaling settings are stored and reported; this server does not
// scale by load. The Java SDK's updateStream also sends a data type change
// here (update_type DATA_TYPE), applied like hUpdateStream's.
func (s *Server) hUpdateAutoScale(c *call) error {
	var req updateAutoScaleBody
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	if req.UpdateType != "" && req.UpdateType != "AUTO_SCALE" && req.UpdateType != "DATA_TYPE" {
		return bodyError("update_type", "%q must be AUTO_SCALE or DATA_TYPE", req.UpdateType)
	}
	name := c.seg[1]
	if req.StreamName != "" {
		if err := checkBodyStreamName(req.StreamName, name); err != nil {
			return err
		}
	}
	dataType, dataTypeField := req.DataType, "data_type"
	if dataType == nil {
		dataType, dataTypeField = req.TargetDataType, "target_data_type"
	}
	schema := req.DataSchema
	if schema == nil {
		schema = req.TargetDataSchema
	}
	if dataType != nil {
		if err := validateDataType(dataTypeField, *dataType); err != nil {
			return err
		}
	}
	if schema != nil {
		if err := validateSchema(*schema); err != nil {
			return err
		}
	}
	return s.updateMeta(c, name, http.StatusOK, func(m *streamMeta) error {
		if dataType != nil {
			m.DataType = *dataType
		}
		if schema != nil {
			m.DataSchema = *schema
		}
		return applyAutoScale(m, req.AutoScaleEnabled, req.AutoScaleMinPartitionCount, req.AutoScaleMaxPartitionCount)
	})
}

func applyAutoScale(m *streamMeta, enabled *bool, min, max *int64) error {
	if enabled != nil {
		m.AutoScale = *enabled
	}
	if min != nil {
		m.AutoMin = *min
	}
	if max != nil {
		m.AutoMax = *max
	}
	return validateAutoScale(m.AutoScale, m.AutoMin, m.AutoMax)
}

// updateMeta applies fn to a copy of a stream's metadata, persists it, then
// installs it.
func (s *Server) updateMeta(c *call, name string, status int, fn func(*streamMeta) error) error {
	st, err := s.getStream(c.project, name)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return dis.NewError(dis.CodeStreamNotFound, "The stream does not exist. %s", name)
	}
	next := st.meta
	next.Partitions = append([]partMeta(nil), st.meta.Partitions...)
	if err := fn(&next); err != nil {
		return err
	}
	next.LastModified = ms(s.now())
	if err := s.syncUpdate(func(txn *badger.Txn) error { return s.persistStream(txn, &next) }); err != nil {
		return fmt.Errorf("update stream %s: %w", name, err)
	}
	st.meta = next
	return c.empty(status)
}

// hQuotas serves GET /v1/{project_id}/quotas (§5.1.8).
func (s *Server) hQuotas(c *call) error {
	var common, advanced, apps int
	s.mu.RLock()
	if p := s.projects[c.project]; p != nil {
		common, advanced = p.usedPartitions()
		apps = len(p.apps)
	}
	s.mu.RUnlock()
	var resp dis.QuotasResponse
	resp.Quotas.Resources = []dis.QuotaResource{
		{Type: dis.QuotaCommonPartition, Quota: s.cfg.Quotas.CommonPartitions, Used: common},
		{Type: dis.QuotaAdvancedPartition, Quota: s.cfg.Quotas.AdvancedPartitions, Used: advanced},
		{Type: dis.QuotaApp, Quota: s.cfg.Quotas.Apps, Used: apps},
	}
	return c.json(http.StatusOK, resp)
}

// intParam parses an optional integer query parameter within [lo, hi].
func intParam(c *call, name string, def, lo, hi int) (int, error) {
	v := c.q(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, dis.NewError(dis.CodeInvalidRequest, "Invalid request. %s=%q must be an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}
