package dis

import (
	"context"
	"fmt"
	"net/http"
)

// putRecordsProto sends PutRecords with a protobuf body and decodes the
// protobuf reply (errors come back as JSON either way, COMPAT-NOTES part b).
func (c *Client) putRecordsProto(ctx context.Context, req *PutRecordsRequest) (*PutRecordsResponse, error) {
	path := "/v2/" + c.project + "/records"
	data, err := c.send(ctx, http.MethodPost, path, nil, MarshalPutRecordsRequestProto(req), ContentTypeProtobuf+";charset=utf-8")
	if err != nil {
		return nil, err
	}
	resp, err := UnmarshalPutRecordsResponseProto(data)
	if err != nil {
		return nil, fmt.Errorf("POST %s: decode protobuf reply: %w", path, err)
	}
	if len(resp.Records) != len(req.Records) {
		return nil, fmt.Errorf("PutRecords: DIS answered %d results for %d records", len(resp.Records), len(req.Records))
	}
	return resp, nil
}

// InvalidateAuth drops cached credentials (an IAM token) so the next request
// obtains new ones; every 401 answer does it. A no-op for AK/SK.
func (c *Client) InvalidateAuth() {
	if inv, ok := c.signer.(interface{ Invalidate() }); ok {
		inv.Invalidate()
	}
}

// Signer returns the client's signer (nil without auth), e.g. for a token
// signer's Status.
func (c *Client) Signer() Signer { return c.signer }

// String describes the AK/SK signer without the secret key.
func (s AKSKSigner) String() string { return "AK/SK signer (access key " + s.AccessKey + ")" }

// GoString keeps %#v from printing the secret key.
func (s AKSKSigner) GoString() string { return s.String() }

// Format keeps every fmt verb from printing the secret key.
func (s AKSKSigner) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }
