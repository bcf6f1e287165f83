package dis

import (
	"context"
	"net/http"
	"net/url"
)

// Client calls beyond the core set in client.go.

// UpdatePartitionCount scales a stream to target partitions
// (PUT /v2/{project_id}/streams/{stream_name}, §5.1.5).
func (c *Client) UpdatePartitionCount(ctx context.Context, stream string, target int) error {
	return c.do(ctx, http.MethodPut, "/v2/"+c.project+"/streams/"+url.PathEscape(stream), nil,
		&UpdatePartitionCountRequest{StreamName: stream, TargetPartitionCount: target}, nil)
}
