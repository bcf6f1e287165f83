package dis

// Wire types of the APIs beyond the core stream/record model in model.go:
// scaling, stream updates, quotas, consumption state and IAM-style tokens.

// UpdatePartitionCountRequest is the body of PUT /v2/{project_id}/streams/{stream_name} (§5.1.5).
type UpdatePartitionCountRequest struct {
	StreamName           string `json:"stream_name"`
	TargetPartitionCount int    `json:"target_partition_count"`
}

// UpdateStreamRequest is the body of PUT /v3/{project_id}/streams/{stream_name} (§5.1.7).
// The Go SDK v3 also sends the auto-scaling settings here (GO-SDK-WIRE.md §7.5).
type UpdateStreamRequest struct {
	StreamName                 string `json:"stream_name"`
	DataDuration               *int   `json:"data_duration,omitempty"`
	DataType                   string `json:"data_type,omitempty"`
	DataSchema                 string `json:"data_schema,omitempty"`
	AutoScaleEnabled           *bool  `json:"auto_scale_enabled,omitempty"`
	AutoScaleMinPartitionCount *int64 `json:"auto_scale_min_partition_count,omitempty"`
	AutoScaleMaxPartitionCount *int64 `json:"auto_scale_max_partition_count,omitempty"`
}

// UpdateAutoScaleRequest is the body of PUT /v2/{project_id}/streams/{stream_name}/update (§5.1.10).
type UpdateAutoScaleRequest struct {
	AutoScaleEnabled           *bool  `json:"auto_scale_enabled,omitempty"`
	AutoScaleMinPartitionCount *int64 `json:"auto_scale_min_partition_count,omitempty"`
	AutoScaleMaxPartitionCount *int64 `json:"auto_scale_max_partition_count,omitempty"`
	UpdateType                 string `json:"update_type,omitempty"`
}

// UpdatePartitionCountsResponse is the body of
// GET /v2/{project_id}/streams/{stream_name}/update_partition_counts (§5.1.6).
// The reference documents no response body (COMPAT-NOTES C9); this server
// returns the same list describe stream carries.
type UpdatePartitionCountsResponse struct {
	UpdatePartitionCounts []UpdatePartitionCount `json:"update_partition_counts"`
}

// Quota resource types (§5.1.8 Table 5-37).
const (
	QuotaCommonPartition   = "common_partition"
	QuotaAdvancedPartition = "advanced_partition"
	QuotaApp               = "app"
)

// QuotaResource is one quota line (§5.1.8 Table 5-37).
type QuotaResource struct {
	Type  string `json:"type"`
	Quota int    `json:"quota"`
	Used  int    `json:"used"`
}

// QuotasResponse is the body of GET /v1/{project_id}/quotas. The reference's
// table and example disagree (COMPAT-NOTES C8); this follows the example's
// top-level "quotas" key with a "resources" list of every resource type.
type QuotasResponse struct {
	Quotas struct {
		Resources []QuotaResource `json:"resources"`
	} `json:"quotas"`
}

// PartitionConsumingState is one partition of ConsumerStateResponse (§5.2.5 Table 5-77).
// PartitionID and SequenceNumber are strings (GO-SDK-WIRE.md §7.2); SequenceNumber
// is "-1" when the app has no checkpoint for the partition.
type PartitionConsumingState struct {
	PartitionID    string `json:"partition_id"`
	SequenceNumber string `json:"sequence_number"`
	LatestOffset   int64  `json:"latest_offset"`
	EarliestOffset int64  `json:"earliest_offset"`
	CheckpointType string `json:"checkpoint_type"`
	Status         string `json:"status"`
}

// ConsumerStateResponse is the body of GET /v2/{project_id}/apps/{app}/streams/{stream} (§5.2.5).
type ConsumerStateResponse struct {
	HasMore                 bool                      `json:"has_more"`
	StreamName              string                    `json:"stream_name"`
	AppName                 string                    `json:"app_name"`
	PartitionConsumingState []PartitionConsumingState `json:"partition_consuming_states"`
}

// Headers of the IAM-style token API (§3.2).
const (
	HeaderAuthToken    = "X-Auth-Token"
	HeaderSubjectToken = "X-Subject-Token"
)

// TokenRequest is the body of POST /v3/auth/tokens with password identity
// and a project scope (§3.2).
type TokenRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						Name string `json:"name,omitempty"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
		Scope struct {
			Project struct {
				ID   string `json:"id,omitempty"`
				Name string `json:"name,omitempty"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

// NewPasswordTokenRequest builds a password token request scoped to a project.
func NewPasswordTokenRequest(user, password, domain, projectID string) *TokenRequest {
	var r TokenRequest
	r.Auth.Identity.Methods = []string{"password"}
	r.Auth.Identity.Password.User.Name = user
	r.Auth.Identity.Password.User.Password = password
	r.Auth.Identity.Password.User.Domain.Name = domain
	r.Auth.Scope.Project.ID = projectID
	return &r
}

// TokenResponse is the body of a successful token request; the token itself
// travels in the X-Subject-Token header.
type TokenResponse struct {
	Token struct {
		ExpiresAt string   `json:"expires_at"`
		IssuedAt  string   `json:"issued_at"`
		Methods   []string `json:"methods"`
		Project   struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"project"`
		User struct {
			Name   string `json:"name"`
			Domain struct {
				Name string `json:"name,omitempty"`
			} `json:"domain"`
		} `json:"user"`
	} `json:"token"`
}

// CreateTagRequest is the body of POST /v2/{project_id}/stream/{stream_id}/tags (§5.7.1).
type CreateTagRequest struct {
	Tag *Tag `json:"tag"`
}

// BatchTagsRequest is the body of POST /v2/{project_id}/stream/{stream_id}/tags/action (§5.7.4).
type BatchTagsRequest struct {
	Action string `json:"action"` // "create" or "delete"
	Tags   []Tag  `json:"tags"`
}

// StreamTagsResponse is the body of GET /v2/{project_id}/stream/{stream_id}/tags (§5.7.2).
type StreamTagsResponse struct {
	Tags []Tag `json:"tags"`
}

// TagValues is one key of ListTagsResponse with every value it has.
type TagValues struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

// ListTagsResponse is the body of GET /v2/{project_id}/stream/tags (§5.7.5).
type ListTagsResponse struct {
	Tags []TagValues `json:"tags"`
}
