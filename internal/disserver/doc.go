package disserver

// Compatibility decisions. Where the reference (../shared/dis-api) and the
// official clients disagree, the clients win (COMPAT-NOTES.md). The choices
// this server makes, and why:
//
//   - Error bodies carry both key pairs, error_code/error_msg (reference, Go
//     SDK v3) and errorCode/message (Java, go-dis). Statuses follow §6.1: 400
//     for DIS.4xxx, 403 DIS.4116, 500 DIS.5000; plus 401 APIGW.0301 for bad
//     credentials, 413 for bodies or record counts over the limits, 404/405
//     APIGW.0101 for unknown routes, 429 and 503 as below.
//   - sequence_number and partition_id are JSON strings everywhere, also
//     where the reference's examples show numbers (Go SDK decodes strictly).
//   - Throttling is per record, DIS.4303 inside HTTP 200 (what the SDKs
//     retry), not the reference's HTTP 400. The request-level limit and
//     injected request faults are HTTP 429. Once a partition throttles a
//     record in a request, its later records in that request fail too.
//   - Request bodies are decoded strictly: a field no client sends is
//     DIS.4300 "Unknown field "x" in the body; remove it." (with its path
//     when nested, e.g. records[1].x), as are malformed JSON, wrong JSON
//     types, missing required fields and unknown enum values. The fields
//     official clients send beyond the reference are declared per endpoint
//     and accepted (requests.go names the client of each): the Java SDK's
//     CreateStreamRequest always sends "is_private" and, through Jackson's
//     isPrivate() accessor, "private", plus private-cluster and dump-task
//     fields when set; its PutRecords entries may carry "extended_info";
//     its checkpoint commits carry client_id/generation_id (Kafka adapter);
//     its updateStream sends stream_name and data_type/data_schema (older
//     versions target_data_type/target_data_schema) to …/update, which
//     applies them. The Go SDK v3, Python SDK and go-dis send only reference
//     fields. The dump-task descriptors are ignored (dump tasks are not
//     implemented).
//   - Cursors are unpadded base64url of the reference's GetCursor JSON layout,
//     always AT_SEQUENCE_NUMBER with the position resolved when issued; the
//     Kafka adapter decodes them. Std base64, padding and '+' sent as ' ' are
//     accepted.
//   - sequence_number_range is [first : next) with an exclusive end ("[0 : 0]"
//     when empty), absent for EXPIRED partitions.
//   - Scaling keeps ACTIVE partitions at indexes 0..n-1 (client-side routing
//     computes the index from the hash): scale-down marks the highest DELETED,
//     scale-up re-activates them with their sequence numbers continuing.
//     Hash ranges are recomputed over the ACTIVE set with the SDK formula.
//   - Quotas answer {"quotas":{"resources":[{type,quota,used}…]}}: the
//     reference's table and example disagree (COMPAT-NOTES C8).
//   - GET …/update_partition_counts returns {"update_partition_counts":[…]}
//     (the reference documents no response, C9).
//   - An app "in use" (DIS.4331) is one that committed a checkpoint in the
//     last 5 minutes; deleting an app deletes its checkpoints.
//   - AT_TIMESTAMP below retention answers DIS.4300 "timestamp is expired,
//     timestamp should be larger than N" with N a minute inside retention,
//     so the Java SDK's immediate retry with N succeeds.
//   - Stream status is always RUNNING (creation and deletion are immediate),
//     so DIS.4205 is never returned.
//   - Tags (§5.7.1-5.7.5): adding an existing key replaces its value.
//   - Not implemented: tag filtering of resources (§5.7.6), monitoring (§5.6), dump tasks (§5.5),
//     the Kafka adapter's consumer-group coordinator, validation of
//     X-Security-Token (temporary credentials are accepted if the AK/SK
//     signature verifies).
//   - AK/SK: besides the two forms of COMPAT-NOTES fact 9, the scoped form
//     is accepted under the name V11-HMAC-SHA256 (the Java DIS SDK's default
//     when derivation.key.switch is unset, and the SDKs' HKDF derivation-key
//     variants), and with the Python SDK's quirks (Host signed without its
//     port, an empty query value written as a bare key). See
//     internal/dis/sign.go.
