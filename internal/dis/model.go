// Package dis is the wire model of the Data Ingestion Service (DIS) REST API and
// a client for it.
//
// The types here are shared by the client (used by the uplink, the downlink and
// the CLI) and by the DIS-compatible server in internal/disserver, so both sides
// agree on field names and JSON types by construction. The JSON types follow what
// the official SDKs decode strictly (../shared/dis-api/GO-SDK-WIRE.md): every
// sequence_number and partition_id is a JSON string, counts are integers,
// timestamps are integer epoch milliseconds.
package dis

import (
	"fmt"
	"strconv"
	"strings"
)

// Stream types (stream_type).
const (
	StreamTypeCommon   = "COMMON"
	StreamTypeAdvanced = "ADVANCED"
)

// Source data types (data_type).
const (
	DataTypeBLOB = "BLOB"
	DataTypeJSON = "JSON"
	DataTypeCSV  = "CSV"
)

// Stream statuses.
const (
	StreamCreating    = "CREATING"
	StreamRunning     = "RUNNING"
	StreamTerminating = "TERMINATING"
	StreamTerminated  = "TERMINATED"
)

// Partition statuses.
const (
	PartitionCreating = "CREATING"
	PartitionActive   = "ACTIVE"
	PartitionDeleted  = "DELETED"
	PartitionExpired  = "EXPIRED"
)

// Cursor types (cursor-type).
const (
	CursorAtSequenceNumber    = "AT_SEQUENCE_NUMBER"
	CursorAfterSequenceNumber = "AFTER_SEQUENCE_NUMBER"
	CursorTrimHorizon         = "TRIM_HORIZON"
	CursorLatest              = "LATEST"
	CursorAtTimestamp         = "AT_TIMESTAMP"
)

// CheckpointLastRead is the only checkpoint type DIS defines.
const CheckpointLastRead = "LAST_READ"

// TimestampTypeCreateTime is the timestamp_type GetRecords reports.
const TimestampTypeCreateTime = "CreateTime"

// Tag is a stream tag (§5.1.1 Table 5-4).
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// SysTag is an enterprise-project tag (§5.1.1).
type SysTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// CSVProperties describes CSV source data (§5.1.1).
type CSVProperties struct {
	Delimiter string `json:"delimiter"`
}

// CreateStreamRequest is the body of POST /v2/{project_id}/streams (§5.1.1).
type CreateStreamRequest struct {
	StreamName                 string         `json:"stream_name"`
	PartitionCount             int            `json:"partition_count"`
	StreamType                 string         `json:"stream_type,omitempty"`
	DataType                   string         `json:"data_type,omitempty"`
	DataDuration               *int           `json:"data_duration,omitempty"`
	AutoScaleEnabled           *bool          `json:"auto_scale_enabled,omitempty"`
	AutoScaleMinPartitionCount *int64         `json:"auto_scale_min_partition_count,omitempty"`
	AutoScaleMaxPartitionCount *int           `json:"auto_scale_max_partition_count,omitempty"`
	DataSchema                 string         `json:"data_schema,omitempty"`
	CSVProperties              *CSVProperties `json:"csv_properties,omitempty"`
	CompressionFormat          string         `json:"compression_format,omitempty"`
	Tags                       []Tag          `json:"tags,omitempty"`
	SysTags                    []SysTag       `json:"sys_tags,omitempty"`
}

// StreamInfo is one entry of ListStreamsResponse.StreamInfoList (§5.1.2 Table 5-11).
type StreamInfo struct {
	StreamID                   string   `json:"stream_id,omitempty"`
	StreamName                 string   `json:"stream_name"`
	CreateTime                 int64    `json:"create_time"`
	RetentionPeriod            int      `json:"retention_period"`
	Status                     string   `json:"status"`
	StreamType                 string   `json:"stream_type"`
	DataType                   string   `json:"data_type"`
	PartitionCount             int      `json:"partition_count"`
	AutoScaleEnabled           bool     `json:"auto_scale_enabled"`
	AutoScaleMinPartitionCount int      `json:"auto_scale_min_partition_count"`
	AutoScaleMaxPartitionCount int      `json:"auto_scale_max_partition_count"`
	Tags                       []Tag    `json:"tags"`
	SysTags                    []SysTag `json:"sys_tags,omitempty"`
}

// ListStreamsResponse is the body of GET /v2/{project_id}/streams (§5.1.2).
type ListStreamsResponse struct {
	TotalNumber    int64        `json:"total_number"`
	StreamNames    []string     `json:"stream_names"`
	HasMoreStreams bool         `json:"has_more_streams"`
	StreamInfoList []StreamInfo `json:"stream_info_list"`
}

// PartitionResult describes one partition in DescribeStreamResponse (§5.1.4 Table 5-20).
type PartitionResult struct {
	Status              string `json:"status"`
	PartitionID         string `json:"partition_id"`
	HashRange           string `json:"hash_range"`
	SequenceNumberRange string `json:"sequence_number_range,omitempty"`
	ParentPartitions    string `json:"parent_partitions,omitempty"`
}

// UpdatePartitionCount is one scaling operation in the stream's log (§5.1.4).
type UpdatePartitionCount struct {
	CreateTimestamp      int64 `json:"create_timestamp"`
	SrcPartitionCount    int   `json:"src_partition_count"`
	TargetPartitionCount int   `json:"target_partition_count"`
	ResultCode           int   `json:"result_code"`
	ResultMsg            int   `json:"result_msg"`
	AutoScale            bool  `json:"auto_scale"`
}

// DescribeStreamResponse is the body of GET /v2/{project_id}/streams/{stream_name} (§5.1.4).
type DescribeStreamResponse struct {
	StreamID                   string                 `json:"stream_id"`
	StreamName                 string                 `json:"stream_name"`
	CreateTime                 int64                  `json:"create_time"`
	LastModifiedTime           int64                  `json:"last_modified_time"`
	RetentionPeriod            int                    `json:"retention_period"`
	Status                     string                 `json:"status"`
	StreamType                 string                 `json:"stream_type"`
	DataType                   string                 `json:"data_type"`
	DataSchema                 string                 `json:"data_schema,omitempty"`
	CompressionFormat          string                 `json:"compression_format,omitempty"`
	CSVProperties              *CSVProperties         `json:"csv_properties,omitempty"`
	WritablePartitionCount     int                    `json:"writable_partition_count"`
	ReadablePartitionCount     int                    `json:"readable_partition_count"`
	Partitions                 []PartitionResult      `json:"partitions"`
	HasMorePartitions          bool                   `json:"has_more_partitions"`
	UpdatePartitionCounts      []UpdatePartitionCount `json:"update_partition_counts"`
	Tags                       []Tag                  `json:"tags"`
	SysTags                    []SysTag               `json:"sys_tags,omitempty"`
	AutoScaleEnabled           bool                   `json:"auto_scale_enabled"`
	AutoScaleMinPartitionCount int                    `json:"auto_scale_min_partition_count"`
	AutoScaleMaxPartitionCount int                    `json:"auto_scale_max_partition_count"`
}

// PutRecordsRequest is the body of POST /v2/{project_id}/records (§5.4.1).
type PutRecordsRequest struct {
	StreamName string                   `json:"stream_name"`
	StreamID   string                   `json:"stream_id,omitempty"`
	Records    []PutRecordsRequestEntry `json:"records"`
}

// PutRecordsRequestEntry is one record to upload. Data is raw bytes; it travels
// as standard base64 in JSON (encoding/json does that for []byte). An empty string
// in any of the optional fields means absent (COMPAT-NOTES fact 19).
type PutRecordsRequestEntry struct {
	Data            []byte `json:"data"`
	PartitionKey    string `json:"partition_key,omitempty"`
	PartitionID     string `json:"partition_id,omitempty"`
	ExplicitHashKey string `json:"explicit_hash_key,omitempty"`
	Timestamp       int64  `json:"timestamp,omitempty"`
}

// PutRecordsResponse is the reply to PutRecords: one entry per request record,
// in request order (§5.4.1 Table 5-92).
type PutRecordsResponse struct {
	FailedRecordCount int                     `json:"failed_record_count"`
	Records           []PutRecordsResultEntry `json:"records"`
}

// PutRecordsResultEntry is the outcome of one record. A success carries
// PartitionID and SequenceNumber; a failure carries ErrorCode and ErrorMessage
// (note: error_message, not error_msg).
type PutRecordsResultEntry struct {
	PartitionID    string `json:"partition_id,omitempty"`
	SequenceNumber string `json:"sequence_number,omitempty"`
	ErrorCode      string `json:"error_code,omitempty"`
	ErrorMessage   string `json:"error_message,omitempty"`
}

// Failed reports whether the entry is a per-record failure.
func (e PutRecordsResultEntry) Failed() bool { return e.ErrorCode != "" }

// GetCursorResponse is the body of GET /v2/{project_id}/cursors (§5.4.3).
type GetCursorResponse struct {
	PartitionCursor string `json:"partition_cursor"`
}

// GetRecordsResponse is the body of GET /v2/{project_id}/records (§5.4.2).
// NextPartitionCursor is always present, even when Records is empty.
type GetRecordsResponse struct {
	Records             []Record `json:"records"`
	NextPartitionCursor string   `json:"next_partition_cursor"`
}

// Record is one record returned by GetRecords (§5.4.2 Table 5-98).
type Record struct {
	PartitionKey   string `json:"partition_key,omitempty"`
	SequenceNumber string `json:"sequence_number"`
	Data           []byte `json:"data"`
	Timestamp      int64  `json:"timestamp"`
	TimestampType  string `json:"timestamp_type"`
}

// CreateAppRequest is the body of POST /v2/{project_id}/apps (§5.2.1).
type CreateAppRequest struct {
	AppName string `json:"app_name"`
}

// App describes a consumer app (§5.2.2, §5.2.4).
type App struct {
	AppName                     string   `json:"app_name"`
	AppID                       string   `json:"app_id"`
	CreateTime                  int64    `json:"create_time"`
	CommitCheckpointStreamNames []string `json:"commit_checkpoint_stream_names"`
}

// ListAppsResponse is the body of GET /v2/{project_id}/apps (§5.2.2).
type ListAppsResponse struct {
	HasMoreApp  bool  `json:"has_more_app"`
	Apps        []App `json:"apps"`
	TotalNumber int   `json:"total_number"`
}

// CommitCheckpointRequest is the body of POST /v2/{project_id}/checkpoints (§5.3.1).
// SequenceNumber is opaque to the server (COMPAT-NOTES fact 34).
type CommitCheckpointRequest struct {
	AppName        string `json:"app_name"`
	CheckpointType string `json:"checkpoint_type"`
	StreamName     string `json:"stream_name"`
	StreamID       string `json:"stream_id,omitempty"`
	PartitionID    string `json:"partition_id"`
	SequenceNumber string `json:"sequence_number"`
	Metadata       string `json:"metadata,omitempty"`
	// ClientID and GenerationID are not in the reference: the Java DIS SDK's
	// CommitCheckpointRequest carries them (the Kafka adapter sets them in
	// subscribe mode). The server accepts and ignores them.
	ClientID     string `json:"client_id,omitempty"`
	GenerationID *int64 `json:"generation_id,omitempty"`
}

// GetCheckpointResponse is the body of GET /v2/{project_id}/checkpoints (§5.3.2).
// SequenceNumber is "-1" when no checkpoint exists.
type GetCheckpointResponse struct {
	SequenceNumber string `json:"sequence_number"`
	Metadata       string `json:"metadata"`
}

// ShardIDPrefix is the prefix of the long partition id form.
const ShardIDPrefix = "shardId-"

// ShardID formats a partition index in the long form DIS returns: shardId-%010d.
func ShardID(index int) string {
	return fmt.Sprintf("shardId-%010d", index)
}

// ParsePartitionID accepts both partition id forms ("3" and "shardId-0000000003",
// prefix case-insensitive) and returns the index.
func ParsePartitionID(s string) (int, error) {
	digits := s
	if len(s) > len(ShardIDPrefix) && strings.EqualFold(s[:len(ShardIDPrefix)], ShardIDPrefix) {
		digits = s[len(ShardIDPrefix):]
	}
	if digits == "" || len(digits) > 10 {
		return 0, fmt.Errorf("invalid partition id %q: want a number or shardId-NNNNNNNNNN", s)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid partition id %q: want a number or shardId-NNNNNNNNNN", s)
		}
	}
	n, err := strconv.ParseInt(digits, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid partition id %q: out of range", s)
	}
	return int(n), nil
}
