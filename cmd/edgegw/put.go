package main

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
)

const putUsage = `edgegw dis put STREAM [--key KEY | --partition ID] [DATA ...] [-c FILE]

Writes records to a DIS stream: each DATA argument is one record; with none,
each line of standard input is one record. Prints one line per record with its
partition and sequence number. Exit code 1 if DIS refused any record.`

// putBatch is records per PutRecords request: the DIS limit (§5.3.1).
const putBatch = 500

func cmdDISPut(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("dis put", putUsage, stderr)
	path := fs.String("c", config.DefaultPath, "config file (its dis section gives the endpoint and credentials)")
	key := fs.String("key", "", "partition key of every record (records with one key keep their order)")
	partition := fs.String("partition", "", "partition id for every record (0 or shardId-0000000000); exclusive with --key")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return usagef("dis put needs a STREAM argument")
	}
	if *key != "" && *partition != "" {
		return usagef("--key and --partition are exclusive")
	}
	stream, data := pos[0], pos[1:]
	c, err := disClientFrom(*path, isSet(fs, "c"))
	if err != nil {
		return err
	}

	var batch []dis.PutRecordsRequestEntry
	failed, sent := 0, 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		cctx, cancel := disCall(ctx)
		defer cancel()
		resp, err := c.PutRecords(cctx, &dis.PutRecordsRequest{StreamName: stream, Records: batch})
		if err != nil {
			return fmt.Errorf("put %d records to %s (after %d sent): %w", len(batch), stream, sent, err)
		}
		for i, r := range resp.Records {
			if r.Failed() {
				failed++
				fmt.Fprintf(stdout, "record %d: refused: %s %s\n", sent+i+1, r.ErrorCode, r.ErrorMessage)
				continue
			}
			fmt.Fprintf(stdout, "record %d: %s seq=%s\n", sent+i+1, r.PartitionID, r.SequenceNumber)
		}
		sent += len(batch)
		batch = batch[:0]
		return nil
	}
	add := func(b []byte) error {
		batch = append(batch, dis.PutRecordsRequestEntry{Data: b, PartitionKey: *key, PartitionID: *partition})
		if len(batch) == putBatch {
			return flush()
		}
		return nil
	}

	if len(data) > 0 {
		for _, d := range data {
			if err := add([]byte(d)); err != nil {
				return err
			}
		}
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20+1) // a line may be a whole 1 MiB record
		for sc.Scan() {
			if err := add(append([]byte(nil), sc.Bytes()...)); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read records from standard input: %w (a record is at most 1 MiB)", err)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if sent == 0 {
		return usagef("no records given: pass DATA arguments or lines on standard input")
	}
	if failed > 0 {
		return fmt.Errorf("DIS refused %d of %d records", failed, sent)
	}
	return nil
}
