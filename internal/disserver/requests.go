package disserver

import (
	"encoding/json"

	"github.com/edgegw/edgegw/internal/dis"
)

// Request bodies as the server decodes them. Decoding is strict (an unknown
// field is DIS.4300 naming it), so each type declares, besides the
// reference's fields (the embedded internal/dis request), the fields the
// official clients really send on that endpoint. Those are accepted and
// ignored; each names the client that sends it. Sources: the clients' request
// models (COMPAT-NOTES.md lists the snapshots read):
//
//   - Go SDK v3 (services/dis/v2/model, v0.1.207): sends nothing beyond the
//     reference on any endpoint served here.
//   - Python DIS SDK and go-dis: nothing beyond the reference either
//     (go-dis's empty "stream_id"/"partition_id"/"explicit_hash_key" are
//     reference fields).
//   - Java DIS SDK (iface *Request.java, serialised by a default Jackson
//     ObjectMapper), and through it the Kafka adapter, DIS Agent, Flume,
//     Logstash and Flink plugins: the fields below, plus client_id and
//     generation_id on checkpoint commits (declared in
//     dis.CommitCheckpointRequest).
//
// The values are json.RawMessage so that any JSON value a client sends
// there is accepted unchecked.

// createStreamBody is the body of POST /v2/{project_id}/streams (§5.1.1).
type createStreamBody struct {
	dis.CreateStreamRequest
	// Java DIS SDK, CreateStreamRequest: "is_private" is a primitive boolean,
	// so it is always sent (false by default); Jackson also writes the same
	// value as "private" from the isPrivate()/setPrivate() accessors.
	IsPrivate json.RawMessage `json:"is_private"`
	Private   json.RawMessage `json:"private"`
	// Java DIS SDK, CreateStreamRequest: dedicated-cluster placement, sent
	// when set. This server has one cluster.
	PrivateClusterID        json.RawMessage `json:"private_cluster_id"`
	PrivateClusterTopicName json.RawMessage `json:"private_cluster_topic_name"`
	// Java DIS SDK, CreateStreamRequest: dump tasks created with the stream,
	// sent when set. Dump tasks (§5.5) are not implemented.
	OBSDestinationDescriptor        json.RawMessage `json:"obs_destination_descriptor"`
	MRSDestinationDescriptor        json.RawMessage `json:"mrs_destination_descriptor"`
	UqueryDestinationDescriptor     json.RawMessage `json:"uquery_destination_descriptor"`
	DLIDestinationDescriptor        json.RawMessage `json:"dli_destination_descriptor"`
	CloudtableDestinationDescriptor json.RawMessage `json:"cloudtable_destination_descriptor"`
	DWSDestinationDescriptor        json.RawMessage `json:"dws_destination_descriptor"`
}

// updateAutoScaleBody is the body of
// PUT /v2/{project_id}/streams/{stream_name}/update (§5.1.10).
type updateAutoScaleBody struct {
	dis.UpdateAutoScaleRequest
	// Java DIS SDK, UpdateStreamRequest (DISClient.updateStream sends it to
	// this path): the stream name, and with update_type DATA_TYPE the new
	// data type and schema. Applied like the v3 update stream API's.
	StreamName string  `json:"stream_name"`
	DataType   *string `json:"data_type"`
	DataSchema *string `json:"data_schema"`
	// Java DIS SDK, UpdateStreamRequest before update_type existed: the
	// same change under older names.
	TargetDataType   *string `json:"target_data_type"`
	TargetDataSchema *string `json:"target_data_schema"`
}
