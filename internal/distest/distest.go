// Package distest holds helpers for tests that read back what reached a DIS
// endpoint, through its HTTP API.
package distest

import (
	"context"
	"fmt"
	"time"

	"github.com/edgegw/edgegw/internal/dis"
)

// PartitionRecords are the records of one partition in sequence order.
type PartitionRecords struct {
	PartitionID string
	Records     []dis.Record
}

// ReadStream reads every readable partition of stream from TRIM_HORIZON to
// the current end.
func ReadStream(ctx context.Context, c *dis.Client, stream string) ([]PartitionRecords, error) {
	desc, err := c.DescribeStreamAll(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", stream, err)
	}
	var out []PartitionRecords
	for _, p := range desc.Partitions {
		if p.Status != dis.PartitionActive && p.Status != dis.PartitionDeleted {
			continue
		}
		cur, err := c.GetCursor(ctx, dis.CursorRequest{StreamName: stream, PartitionID: p.PartitionID, CursorType: dis.CursorTrimHorizon})
		if err != nil {
			return nil, fmt.Errorf("cursor %s/%s: %w", stream, p.PartitionID, err)
		}
		pr := PartitionRecords{PartitionID: p.PartitionID}
		for {
			resp, err := c.GetRecords(ctx, cur, 0)
			if err != nil {
				return nil, fmt.Errorf("records %s/%s: %w", stream, p.PartitionID, err)
			}
			pr.Records = append(pr.Records, resp.Records...)
			cur = resp.NextPartitionCursor
			if len(resp.Records) == 0 {
				break
			}
		}
		out = append(out, pr)
	}
	return out, nil
}

// Count returns the number of records in prs.
func Count(prs []PartitionRecords) int {
	n := 0
	for _, p := range prs {
		n += len(p.Records)
	}
	return n
}

// WaitForCount polls stream until it holds at least want records or timeout
// passes, and returns the last read.
func WaitForCount(ctx context.Context, c *dis.Client, stream string, want int, timeout time.Duration) ([]PartitionRecords, error) {
	deadline := time.Now().Add(timeout)
	for {
		prs, err := ReadStream(ctx, c, stream)
		if err == nil && Count(prs) >= want {
			return prs, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return prs, err
			}
			return prs, fmt.Errorf("stream %s has %d records after %s, want %d", stream, Count(prs), timeout, want)
		}
		select {
		case <-ctx.Done():
			return prs, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
