package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// archiveFiles returns pxperf archive files: every page of ListLogFiles.
func (c *cli) archiveFiles() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "files [flags]",
		short: "list the archive files",
		summary: `Lists the archive files, oldest first: name, size on disk, whether compressed
or being written, and the ids and start times of their first and last entries.`,
		examples: []string{
			"archive files",
			"archive files --json | jq -r .name",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	asJSON := fs.Bool("json", false, "print one protojson LogFile a line")
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		var files []*pxperfv1.LogFile
		req := &pxperfv1.ListLogFilesRequest{PageSize: 1000}
		for {
			uctx, cancel := conn.unary(ctx)
			resp, err := cl.Service().ListLogFiles(uctx, req)
			cancel()
			if err != nil {
				return conn.rpcError("archive files", err)
			}
			files = append(files, resp.GetFiles()...)
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		if *asJSON {
			for _, f := range files {
				if err := writeJSON(c.stdout, f, false); err != nil {
					return failure("archive files: %v", err)
				}
			}
			return nil
		}
		stamp := func(t *timestamppb.Timestamp) string {
			if t == nil {
				return "-"
			}
			return t.AsTime().Local().Format(time.DateTime)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSIZE\tSTATE\tIDS\tFIRST\tLAST")
		for _, f := range files {
			state := "closed"
			switch {
			case f.GetCurrent():
				state = "current"
			case f.GetCompressed():
				state = "compressed"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d..%d\t%s\t%s\n", f.GetName(), humanBytes(f.GetSizeBytes()), state,
				f.GetFirstId(), f.GetLastId(), stamp(f.GetStartTime()), stamp(f.GetEndTime()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(files) == 0 {
			fmt.Fprintln(c.stdout, "no archive files yet")
		}
		return nil
	})
	return cmd
}

// rangeFlags choose the archived entries archive read and export take.
type rangeFlags struct {
	from, to     uint64
	since, until string
	filter       string
}

// addRangeFlags defines the range and filter flags on fs.
func addRangeFlags(fs *pflag.FlagSet) *rangeFlags {
	r := &rangeFlags{}
	fs.Uint64Var(&r.from, "from", 0, "first id")
	fs.Uint64Var(&r.to, "to", 0, "last id, with --from (0: no end)")
	fs.StringVar(&r.since, "since", "", "earliest start time, RFC 3339 (2026-11-27T10:00:00Z) or a duration ago (90m)")
	fs.StringVar(&r.until, "until", "", "end of the time range (exclusive), with --since; same forms")
	fs.StringVar(&r.filter, "filter", "", "which entries, in tail's filter syntax")
	return r
}

// request builds the ReadArchive request; now is the time durations are
// counted back from.
func (r *rangeFlags) request(op string, now time.Time) (*pxperfv1.ReadArchiveRequest, error) {
	f, err := parseFilter(r.filter)
	if err != nil {
		return nil, err
	}
	req := &pxperfv1.ReadArchiveRequest{Filter: f}
	switch {
	case (r.from > 0) == (r.since != ""):
		return nil, usageError("%s: give --from ID or --since TIME", op)
	case r.from > 0:
		if r.until != "" {
			return nil, usageError("%s: --until goes with --since; with --from use --to", op)
		}
		if r.to != 0 && r.to < r.from {
			return nil, usageError("%s: --to %d is before --from %d", op, r.to, r.from)
		}
		req.Range = &pxperfv1.ReadArchiveRequest_Ids{Ids: &pxperfv1.IdRange{FirstId: r.from, LastId: r.to}}
	default:
		if r.to != 0 {
			return nil, usageError("%s: --to goes with --from; with --since use --until", op)
		}
		tr := &pxperfv1.TimeRange{}
		start, err := parseTime(r.since, now)
		if err != nil {
			return nil, usageError("%s: --since: %v", op, err)
		}
		tr.StartTime = timestamppb.New(start)
		if r.until != "" {
			end, err := parseTime(r.until, now)
			if err != nil {
				return nil, usageError("%s: --until: %v", op, err)
			}
			if !end.After(start) {
				return nil, usageError("%s: --until %s is not after --since %s", op, r.until, r.since)
			}
			tr.EndTime = timestamppb.New(end)
		}
		req.Range = &pxperfv1.ReadArchiveRequest_Times{Times: tr}
	}
	return req, nil
}

// parseTime reads an RFC 3339 time, or a duration before now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor a duration ago (90m)", s)
}

// readArchive streams the entries req selects to fn, in archive order.
func readArchive(ctx context.Context, conn *connFlags, op string, req *pxperfv1.ReadArchiveRequest, fn func(*pxperfv1.Entry) error) error {
	cl, err := conn.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.Service().ReadArchive(ctx, req)
	if err != nil {
		return conn.rpcError(op, err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return conn.rpcError(op, err)
		}
		for _, e := range resp.GetEntries() {
			if err := fn(e); err != nil {
				return failure("%s: %v", op, err)
			}
		}
	}
}

// archiveRead returns pxperf archive read: ReadArchive as JSON Lines.
func (c *cli) archiveRead() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "read [flags] --from ID [--to ID] | --since TIME [--until TIME]",
		short: "read archived entries back as JSON Lines",
		summary: `Reads entries back from the archive files, by id or start-time range,
optionally filtered, and prints one protojson Entry a line (the archive's own
format). An entry completed after it was first archived appears twice; the
later line is its final state.`,
		examples: []string{
			"archive read --from 1 --to 500",
			"archive read --since 1h --filter 'status:5xx' | jq .url",
			"archive read --since 2026-11-27T10:00:00Z --until 2026-11-27T11:00:00Z",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	rf := addRangeFlags(fs)
	bodies := fs.Bool("bodies", false, "include response bodies")
	completeFlag(cmd, "filter", completeFilter)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		req, err := rf.request("archive read", time.Now())
		if err != nil {
			return err
		}
		req.IncludeBodies = *bodies
		return readArchive(ctx, conn, "archive read", req, func(e *pxperfv1.Entry) error {
			return writeJSON(c.stdout, e, false)
		})
	})
	return cmd
}

// archiveExport returns pxperf archive export --har: ReadArchive as one
// HAR document.
func (c *cli) archiveExport() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "export --har [flags] --from ID [--to ID] | --since TIME [--until TIME]",
		short: "write archived entries as a HAR 1.2 document",
		summary: `Writes archived entries, by id or start-time range and optionally filtered,
as a HAR 1.2 document on standard output, for browser devtools and HAR
viewers. Each entry appears once, in its final state, with its bodies; the
pxperf id is in _id. --har is required: it names the format.`,
		examples: []string{
			"archive export --har --since 1h > last-hour.har",
			"archive export --har --from 1 --filter 'is:error' > errors.har",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	rf := addRangeFlags(fs)
	har := fs.Bool("har", false, "write HAR 1.2 (required; the only format so far)")
	completeFlag(cmd, "filter", completeFilter)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		if !*har {
			c.writeUsage(cmd)
			return usageError("archive export: give the format: --har")
		}
		req, err := rf.request("archive export", time.Now())
		if err != nil {
			return err
		}
		req.IncludeBodies = true
		// Hold the entries so that a completed entry replaces its first line.
		var entries []*pxperfv1.Entry
		at := map[uint64]int{}
		err = readArchive(ctx, conn, "archive export", req, func(e *pxperfv1.Entry) error {
			if i, ok := at[e.GetId()]; ok {
				entries[i] = e
				return nil
			}
			at[e.GetId()] = len(entries)
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return err
		}
		hw := newHARWriter(c.stdout)
		for _, e := range entries {
			hw.write(e)
		}
		if err := hw.close(); err != nil {
			return failure("archive export: %v", err)
		}
		fmt.Fprintf(c.stderr, "archive export: %d entries\n", len(entries))
		return nil
	})
	return cmd
}
