package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgegw/edgegw/internal/config"
	"github.com/edgegw/edgegw/internal/dis"
	"github.com/edgegw/edgegw/internal/gateway"
)

const streamsUsage = `edgegw dis streams list|create|describe|delete ...

  list                       list the project's streams
  create STREAM [flags]      create a stream
  describe STREAM            show a stream and its partitions
  delete STREAM --yes        delete a stream and all its data

The DIS endpoint and credentials come from the dis section of -c FILE.`

func cmdDISStreams(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: "+streamsUsage)
		return usagef("dis streams needs a subcommand: list, create, describe or delete")
	}
	switch args[0] {
	case "list":
		return streamsList(ctx, args[1:], stdout, stderr)
	case "create":
		return streamsCreate(ctx, args[1:], stdout, stderr)
	case "describe":
		return streamsDescribe(ctx, args[1:], stdout, stderr)
	case "delete":
		return streamsDelete(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "Usage: "+streamsUsage)
		return nil
	}
	fmt.Fprintln(stderr, "Usage: "+streamsUsage)
	return usagef("unknown command \"dis streams %s\"; use list, create, describe or delete", args[0])
}

// disClientFrom loads the config named by -c and builds the DIS client.
func disClientFrom(path string, explicit bool) (*dis.Client, error) {
	cfg, err := loadConfig(path, explicit, true)
	if err != nil {
		return nil, err
	}
	c, err := gateway.NewDISClient(cfg.DIS, "")
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// disCall bounds one CLI request to DIS.
func disCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Minute)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func streamsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dis streams list", "edgegw dis streams list [-o text|json] [-c FILE]", stderr)
	path := fs.String("c", config.DefaultPath, "config file (its dis section gives the endpoint and credentials)")
	output := fs.String("o", "text", "output format: text (a table) or json")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dis streams list takes no arguments (got %q)", pos)
	}
	if *output != "text" && *output != "json" {
		return usagef("-o %q: use text or json", *output)
	}
	c, err := disClientFrom(*path, isSet(fs, "c"))
	if err != nil {
		return err
	}
	ctx, cancel := disCall(ctx)
	defer cancel()
	var all []dis.StreamInfo
	start := ""
	for {
		// 100 per page: the largest page DIS allows (§5.1.2).
		page, err := c.ListStreams(ctx, start, 100)
		if err != nil {
			return fmt.Errorf("list streams at %s: %w", c.Endpoint(), err)
		}
		all = append(all, page.StreamInfoList...)
		if !page.HasMoreStreams || len(page.StreamInfoList) == 0 {
			break
		}
		start = page.StreamInfoList[len(page.StreamInfoList)-1].StreamName
	}
	if *output == "json" {
		if all == nil {
			all = []dis.StreamInfo{}
		}
		return printJSON(stdout, all)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tDATA\tPARTITIONS\tRETENTION\tSTATUS\tCREATED")
	for _, s := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%dh\t%s\t%s\n", s.StreamName, s.StreamType, s.DataType, s.PartitionCount,
			s.RetentionPeriod, s.Status, time.UnixMilli(s.CreateTime).Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func streamsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dis streams create", "edgegw dis streams create STREAM [--partitions N] [--type COMMON|ADVANCED] [--data-type BLOB|JSON|CSV] [--retention HOURS] [--schema FILE] [-c FILE]", stderr)
	path := fs.String("c", config.DefaultPath, "config file (its dis section gives the endpoint and credentials)")
	partitions := fs.Int("partitions", 1, "number of partitions (1-50 for COMMON)")
	typ := fs.String("type", "COMMON", "stream type: COMMON or ADVANCED")
	dataType := fs.String("data-type", "BLOB", "data type: BLOB, JSON or CSV")
	retention := fs.Int("retention", 24, "how long DIS keeps records, in hours (24-168)")
	schema := fs.String("schema", "", "file with the Avro schema of JSON or CSV records")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("dis streams create needs exactly one STREAM argument (got %d)", len(pos))
	}
	req := &dis.CreateStreamRequest{StreamName: pos[0], PartitionCount: *partitions,
		StreamType: strings.ToUpper(*typ), DataType: strings.ToUpper(*dataType), DataDuration: retention}
	if *schema != "" {
		b, err := os.ReadFile(*schema)
		if err != nil {
			return usagef("--schema: %v", err)
		}
		req.DataSchema = string(b)
	}
	c, err := disClientFrom(*path, isSet(fs, "c"))
	if err != nil {
		return err
	}
	ctx, cancel := disCall(ctx)
	defer cancel()
	if err := c.CreateStream(ctx, req); err != nil {
		return fmt.Errorf("create stream %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "created stream %s (%d partitions, %s, %s, %dh)\n", pos[0], *partitions, req.StreamType, req.DataType, *retention)
	return nil
}

func streamsDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dis streams describe", "edgegw dis streams describe STREAM [-o text|json] [-c FILE]", stderr)
	path := fs.String("c", config.DefaultPath, "config file (its dis section gives the endpoint and credentials)")
	output := fs.String("o", "text", "output format: text or json (DIS's describe-stream document)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("dis streams describe needs exactly one STREAM argument (got %d)", len(pos))
	}
	if *output != "text" && *output != "json" {
		return usagef("-o %q: use text or json", *output)
	}
	c, err := disClientFrom(*path, isSet(fs, "c"))
	if err != nil {
		return err
	}
	ctx, cancel := disCall(ctx)
	defer cancel()
	d, err := c.DescribeStreamAll(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("describe stream %s: %w", pos[0], err)
	}
	if *output == "json" {
		return printJSON(stdout, d)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\n", d.StreamName)
	fmt.Fprintf(tw, "id\t%s\n", d.StreamID)
	fmt.Fprintf(tw, "status\t%s\n", d.Status)
	fmt.Fprintf(tw, "type\t%s, data %s\n", d.StreamType, d.DataType)
	fmt.Fprintf(tw, "retention\t%dh\n", d.RetentionPeriod)
	fmt.Fprintf(tw, "partitions\t%d writable, %d readable\n", d.WritablePartitionCount, d.ReadablePartitionCount)
	fmt.Fprintf(tw, "created\t%s\n", time.UnixMilli(d.CreateTime).Local().Format(time.DateTime))
	if d.DataSchema != "" {
		fmt.Fprintf(tw, "schema\t%s\n", oneLine(d.DataSchema, 200))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tSTATUS\tSEQUENCE RANGE\tHASH RANGE")
	for _, p := range d.Partitions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.PartitionID, p.Status, p.SequenceNumberRange, p.HashRange)
	}
	return tw.Flush()
}

func streamsDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dis streams delete", "edgegw dis streams delete STREAM --yes [-c FILE]", stderr)
	path := fs.String("c", config.DefaultPath, "config file (its dis section gives the endpoint and credentials)")
	yes := fs.Bool("yes", false, "confirm: the stream and every record in it are deleted")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("dis streams delete needs exactly one STREAM argument (got %d)", len(pos))
	}
	if !*yes {
		return usagef("deleting stream %s removes it and all its records; add --yes to confirm", pos[0])
	}
	c, err := disClientFrom(*path, isSet(fs, "c"))
	if err != nil {
		return err
	}
	ctx, cancel := disCall(ctx)
	defer cancel()
	if err := c.DeleteStream(ctx, pos[0]); err != nil {
		return fmt.Errorf("delete stream %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "deleted stream %s\n", pos[0])
	return nil
}
