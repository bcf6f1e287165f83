package dis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signer adds authentication to a request just before it is sent. body is the
// exact request body (nil for none). A Signer must be safe for concurrent use.
type Signer interface {
	Sign(req *http.Request, body []byte) error
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Endpoint is the API base URL, e.g. https://dis.cn-north-4.myhuaweicloud.com
	// or http://127.0.0.1:9180. Any path is ignored, as the official SDKs do.
	Endpoint  string
	ProjectID string
	// Signer authenticates requests; nil sends them unauthenticated (the built-in
	// server in auth: none mode).
	Signer Signer
	// Timeout bounds each request; 0 means 30 s.
	Timeout time.Duration
	// HTTPClient overrides the transport (tests, TLS settings).
	HTTPClient *http.Client
	// UserAgent is sent on every request.
	UserAgent string
	// Protobuf sends PutRecords as protobuf (application/x-protobuf) instead
	// of JSON: no base64, so about a quarter fewer bytes on the wire.
	Protobuf bool
}

// Client calls the DIS REST API. It is safe for concurrent use. It does not
// retry: callers (the uplink, the downlink) own their retry policies because
// they differ (per record vs. per request, ordering constraints).
type Client struct {
	base    *url.URL
	project string
	signer  Signer
	hc      *http.Client
	ua      string
	proto   bool
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("DIS endpoint %q: want http://host[:port] or https://host[:port]", cfg.Endpoint)
	}
	if cfg.ProjectID == "" {
		return nil, errors.New("DIS project id is empty")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		timeout := cfg.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		hc = &http.Client{
			Timeout: timeout,
			// Never follow redirects: DIS does not send them, and a redirect to
			// another host must not carry a signed request there.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "edgegw"
	}
	return &Client{base: &url.URL{Scheme: u.Scheme, Host: u.Host}, project: cfg.ProjectID, signer: cfg.Signer, hc: hc, ua: ua, proto: cfg.Protobuf}, nil
}

// Endpoint returns the base URL the client talks to.
func (c *Client) Endpoint() string { return c.base.String() }

// ProjectID returns the project the client's requests are scoped to.
func (c *Client) ProjectID() string { return c.project }

// CreateStream creates a stream (POST /v2/{project_id}/streams).
func (c *Client) CreateStream(ctx context.Context, req *CreateStreamRequest) error {
	return c.do(ctx, http.MethodPost, "/v2/"+c.project+"/streams", nil, req, nil)
}

// DeleteStream deletes a stream (DELETE /v2/{project_id}/streams/{name}).
func (c *Client) DeleteStream(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v2/"+c.project+"/streams/"+url.PathEscape(name), nil, nil, nil)
}

// DescribeStream returns a stream's details and up to limit partitions after
// startPartitionID (exclusive; "" for the first page; limit 0 means the server default).
func (c *Client) DescribeStream(ctx context.Context, name, startPartitionID string, limit int) (*DescribeStreamResponse, error) {
	q := url.Values{}
	if startPartitionID != "" {
		q.Set("start_partitionId", startPartitionID)
	}
	if limit > 0 {
		q.Set("limit_partitions", strconv.Itoa(limit))
	}
	var resp DescribeStreamResponse
	if err := c.do(ctx, http.MethodGet, "/v2/"+c.project+"/streams/"+url.PathEscape(name), q, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// DescribeStreamAll returns a stream's details with every partition, following
// has_more_partitions.
func (c *Client) DescribeStreamAll(ctx context.Context, name string) (*DescribeStreamResponse, error) {
	first, err := c.DescribeStream(ctx, name, "", 1000)
	if err != nil {
		return nil, err
	}
	for page := first; page.HasMorePartitions && len(page.Partitions) > 0; {
		next, err := c.DescribeStream(ctx, name, page.Partitions[len(page.Partitions)-1].PartitionID, 1000)
		if err != nil {
			return nil, err
		}
		first.Partitions = append(first.Partitions, next.Partitions...)
		page = next
	}
	first.HasMorePartitions = false
	return first, nil
}

// ListStreams lists up to limit streams after startStreamName (exclusive).
func (c *Client) ListStreams(ctx context.Context, startStreamName string, limit int) (*ListStreamsResponse, error) {
	q := url.Values{}
	if startStreamName != "" {
		q.Set("start_stream_name", startStreamName)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var resp ListStreamsResponse
	if err := c.do(ctx, http.MethodGet, "/v2/"+c.project+"/streams", q, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// PutRecords uploads records (POST /v2/{project_id}/records). A nil error means
// HTTP 200; individual records may still have failed (see Failed on each entry).
// The response is checked to have one entry per request record.
func (c *Client) PutRecords(ctx context.Context, req *PutRecordsRequest) (*PutRecordsResponse, error) {
	if c.proto {
		return c.putRecordsProto(ctx, req)
	}
	var resp PutRecordsResponse
	if err := c.do(ctx, http.MethodPost, "/v2/"+c.project+"/records", nil, req, &resp); err != nil {
		return nil, err
	}
	if len(resp.Records) != len(req.Records) {
		return nil, fmt.Errorf("PutRecords: DIS answered %d results for %d records", len(resp.Records), len(req.Records))
	}
	return &resp, nil
}

// CursorRequest selects the position of a new cursor (GET /v2/{project_id}/cursors).
type CursorRequest struct {
	StreamName  string
	PartitionID string
	CursorType  string // one of the Cursor* constants; "" means AT_SEQUENCE_NUMBER
	// StartingSequenceNumber is used by AT_/AFTER_SEQUENCE_NUMBER.
	StartingSequenceNumber string
	// Timestamp (epoch ms) is used by AT_TIMESTAMP.
	Timestamp int64
}

// GetCursor returns a partition cursor.
func (c *Client) GetCursor(ctx context.Context, r CursorRequest) (string, error) {
	q := url.Values{}
	q.Set("stream-name", r.StreamName)
	q.Set("partition-id", r.PartitionID)
	if r.CursorType != "" {
		q.Set("cursor-type", r.CursorType)
	}
	if r.StartingSequenceNumber != "" {
		q.Set("starting-sequence-number", r.StartingSequenceNumber)
	}
	if r.CursorType == CursorAtTimestamp {
		q.Set("timestamp", strconv.FormatInt(r.Timestamp, 10))
	}
	var resp GetCursorResponse
	if err := c.do(ctx, http.MethodGet, "/v2/"+c.project+"/cursors", q, nil, &resp); err != nil {
		return "", err
	}
	if resp.PartitionCursor == "" {
		return "", errors.New("GetCursor: DIS answered without a partition_cursor")
	}
	return resp.PartitionCursor, nil
}

// GetRecords reads records at cursor. maxFetchBytes 0 means the server default.
func (c *Client) GetRecords(ctx context.Context, cursor string, maxFetchBytes int) (*GetRecordsResponse, error) {
	q := url.Values{}
	q.Set("partition-cursor", cursor)
	if maxFetchBytes > 0 {
		q.Set("max_fetch_bytes", strconv.Itoa(maxFetchBytes))
	}
	var resp GetRecordsResponse
	if err := c.do(ctx, http.MethodGet, "/v2/"+c.project+"/records", q, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// CreateApp creates a consumer app.
func (c *Client) CreateApp(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/v2/"+c.project+"/apps", nil, &CreateAppRequest{AppName: name}, nil)
}

// DescribeApp returns a consumer app.
func (c *Client) DescribeApp(ctx context.Context, name string) (*App, error) {
	var resp App
	if err := c.do(ctx, http.MethodGet, "/v2/"+c.project+"/apps/"+url.PathEscape(name), nil, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// CommitCheckpoint stores an app's checkpoint for one partition.
func (c *Client) CommitCheckpoint(ctx context.Context, req *CommitCheckpointRequest) error {
	if req.CheckpointType == "" {
		req.CheckpointType = CheckpointLastRead
	}
	return c.do(ctx, http.MethodPost, "/v2/"+c.project+"/checkpoints", nil, req, nil)
}

// GetCheckpoint reads an app's checkpoint for one partition; SequenceNumber is
// "-1" (or empty) when none was committed.
func (c *Client) GetCheckpoint(ctx context.Context, app, stream, partitionID string) (*GetCheckpointResponse, error) {
	q := url.Values{}
	q.Set("app_name", app)
	q.Set("stream_name", stream)
	q.Set("partition_id", partitionID)
	q.Set("checkpoint_type", CheckpointLastRead)
	var resp GetCheckpointResponse
	if err := c.do(ctx, http.MethodGet, "/v2/"+c.project+"/checkpoints", q, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// maxResponseBytes bounds what the client reads from a reply: GetRecords pages
// are capped by max_fetch_bytes (a few MB), base64 adds a third.
const maxResponseBytes = 64 << 20

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	data, err := c.send(ctx, method, path, q, body, "application/json")
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
	}
	return nil
}

// send makes one signed request and returns the reply body of a 2xx answer;
// other answers become *Error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte, contentType string) ([]byte, error) {
	u := *c.base
	u.Path = path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("X-Project-Id", c.project)
	if c.signer != nil {
		if err := c.signer.Sign(req, body); err != nil {
			return nil, fmt.Errorf("sign %s %s: %w", method, path, err)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read reply: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		c.InvalidateAuth() // a cached token may have been revoked or expired early
	}
	if resp.StatusCode >= 300 {
		return nil, parseError(resp, data)
	}
	return data, nil
}

func parseError(resp *http.Response, data []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	var b ErrorBody
	if json.Unmarshal(data, &b) == nil {
		switch {
		case b.ErrorCode != "":
			e.Code, e.Message = b.ErrorCode, b.ErrorMsg
		case b.ErrorCode2 != "":
			e.Code, e.Message = b.ErrorCode2, b.Message
		case b.Code != "":
			e.Code, e.Message = b.Code, b.Message
		}
	}
	if e.Code == "" && e.Message == "" {
		e.Message = strings.TrimSpace(string(data))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512] + "…"
		}
	}
	return e
}
