package main

import (
	"context"
	"fmt"
	"strconv"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"

	"github.com/spf13/cobra"
)

// list returns pxperf list: one ListEntries window.
func (c *cli) list() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "list [flags]",
		short: "list entries in memory",
		summary: `Lists a window of the entries in memory that match --filter, newest first,
one line each (id, time, method, status, duration, bytes received, url), then
the size of the whole filtered view. The filter syntax is tail's (pxperf tail
--help).`,
		examples: []string{
			"list --filter 'is:error' --limit 20",
			"list --oldest-first --offset 100 --limit 50 --json",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	filterText := fs.String("filter", "", "which entries, for example 'status:5xx host:*.example.com'")
	offset := fs.Uint64("offset", 0, "skip this many entries of the view")
	limit := fs.Int("limit", 50, "most entries to show, 1..1000")
	oldestFirst := fs.Bool("oldest-first", false, "oldest first instead of newest first")
	asJSON := fs.Bool("json", false, "print the ListEntries response as protojson")
	bodies := fs.Bool("bodies", false, "include response bodies (with --json)")
	completeFlag(cmd, "filter", completeFilter)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		if *limit < 1 || *limit > 1000 {
			return usageError("list: --limit %d: want 1..1000", *limit)
		}
		f, err := parseFilter(*filterText)
		if err != nil {
			return err
		}
		req := &pxperfv1.ListEntriesRequest{Filter: f, Offset: *offset, PageSize: int32(*limit), IncludeBodies: *bodies}
		if *oldestFirst {
			req.Order = pxperfv1.Order_ORDER_OLDEST_FIRST
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		uctx, cancel := conn.unary(ctx)
		defer cancel()
		resp, err := cl.ListEntries(uctx, req)
		if err != nil {
			return conn.rpcError("list", err)
		}
		if *asJSON {
			return writeJSON(c.stdout, resp, true)
		}
		for _, e := range resp.GetEntries() {
			fmt.Fprintln(c.stdout, entryLine(e))
		}
		n := uint64(len(resp.GetEntries()))
		if n == 0 {
			fmt.Fprintf(c.stdout, "no entries shown of %d matching\n", resp.GetTotalSize())
		} else {
			fmt.Fprintf(c.stdout, "entries %d-%d of %d matching (ids %d..%d in memory)\n",
				*offset+1, *offset+n, resp.GetTotalSize(), resp.GetOldestId(), resp.GetNewestId())
		}
		return nil
	})
	return cmd
}

// get returns pxperf get: GetEntry.
func (c *cli) get() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "get [flags] ID",
		short: "print one entry",
		summary: `Prints one entry, whole, as indented protojson (with its bodies, base64 in
response_body.data and request_body.data), from memory or the archive; with
--body only the raw response body, with --request-body only the raw request
body. Exit code 1 when no entry has that id.`,
		examples: []string{
			"get 42",
			"get 42 --body > body.bin",
			"get 42 --request-body > upload.bin",
		},
		minArgs: 1,
		maxArgs: 1,
	})
	fs := cmd.Flags()
	body := fs.Bool("body", false, "print only the response body, as raw bytes")
	requestBody := fs.Bool("request-body", false, "print only the request body, as raw bytes")
	curl := addCurlFlags(fs)
	cmd.ValidArgsFunction = c.completeEntryID(conn)
	cmd.RunE = c.runE(conn, func(ctx context.Context, pos []string) error {
		if *body && *requestBody || (*body || *requestBody) && curl.used() {
			return usageError("get: --body, --request-body and --curl each print one thing; give one of them")
		}
		id, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil || id == 0 {
			return usageError("get: %q is not an entry id (a number from 1)", pos[0])
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		uctx, cancel := conn.unary(ctx)
		defer cancel()
		e, err := cl.GetEntry(uctx, id)
		if err != nil {
			return conn.rpcError("get", err)
		}
		switch {
		case curl.used():
			return c.printCurl(ctx, cl, conn, e, curl)
		case *body:
			_, err := c.stdout.Write(e.GetResponseBody().GetData())
			return err
		case *requestBody:
			_, err := c.stdout.Write(e.GetRequestBody().GetData())
			return err
		}
		return writeJSON(c.stdout, e, true)
	})
	return cmd
}
