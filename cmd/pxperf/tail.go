package main

import (
	"context"
	"fmt"
	"slices"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"

	"github.com/spf13/cobra"
)

// tail returns pxperf tail: a Subscribe stream printed as it comes.
func (c *cli) tail() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "tail [flags]",
		short: "stream entries as they arrive",
		summary: `Streams entries matching --filter as they are published, one line each
(id, time, method, status, duration, bytes received, url) or with --json one
protojson Entry a line. Entries completed after they were first sent are
printed again in their final state. Runs until Ctrl-C or --count entries;
gaps (entries that left memory before they could be sent) are reported on
standard error.

Filter syntax (DevTools style; every term must match; README "Filters"):
  method:GET,POST  status:404 status:>=400 status:4xx status:500-599
  host:*.example.com (glob) host:example (substring)  url:/api/
  regex:^https://api\. or /v[0-9]+\/users/ (RE2 on the url)
  is:pending|completed|failed  is:tunnel  is:error  proxy:direct|upstream
  slower-than:200ms  larger-than:10k  smaller-than:1M  mime:json
  body:text (in the bodies)  word or "some words" (url, error, headers)
  -term excludes what it matches; OR separates alternatives`,
		examples: []string{
			"tail --filter 'status:>=400 method:POST host:*.example.com'",
			"tail --filter 'host:api.example.com -status:304 OR is:failed'",
			"tail --last 20 --json | jq .url",
			"tail --from 1200 --count 100",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	filterText := fs.String("filter", "", "which entries to show, for example 'status:>=400 slower-than:1s'")
	from := fs.Uint64("from", 0, "start at this id (resume); not with --last")
	last := fs.Uint("last", 0, "start with the last N matching entries (1..100000), then live ones")
	count := fs.Uint64("count", 0, "stop after this many entries (0: run until Ctrl-C)")
	asJSON := fs.Bool("json", false, "print one protojson Entry a line")
	bodies := fs.Bool("bodies", false, "include response bodies (with --json)")
	completeFlag(cmd, "filter", completeFilter)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		f, err := parseFilter(*filterText)
		if err != nil {
			return err
		}
		req := &pxperfv1.SubscribeRequest{Filter: f, IncludeBodies: *bodies}
		switch {
		case *from > 0 && *last > 0:
			return usageError("tail: give --from or --last, not both")
		case *last > 100000:
			return usageError("tail: --last %d: want 1..100000", *last)
		case *from > 0:
			req.Start = &pxperfv1.SubscribeRequest_StartId{StartId: *from}
		case *last > 0:
			req.Start = &pxperfv1.SubscribeRequest_Tail{Tail: uint32(*last)}
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()

		var printed, next uint64
		show := func(e *pxperfv1.Entry) error {
			printed++
			if *asJSON {
				return writeJSON(c.stdout, e, false)
			}
			_, err := fmt.Fprintln(c.stdout, entryLine(e))
			return err
		}
		done := func() bool { return *count > 0 && printed >= *count }
		for msg, err := range cl.Subscribe(ctx, req) {
			if err != nil {
				if ctx.Err() != nil {
					return nil // stopped by the user
				}
				op := "tail"
				if next > 0 {
					op = fmt.Sprintf("tail (resume with --from %d)", next)
				}
				return conn.rpcError(op, err)
			}
			switch ev := msg.GetEvent().(type) {
			case *pxperfv1.SubscribeResponse_Batch:
				for _, e := range slices.Concat(ev.Batch.GetEntries(), ev.Batch.GetUpdates()) {
					if err := show(e); err != nil {
						return failure("tail: %v", err)
					}
					if done() {
						return nil
					}
				}
				if n := ev.Batch.GetUpdatesLost(); n > 0 {
					fmt.Fprintf(c.stderr, "tail: %d updates to earlier entries were lost; re-read them with pxperf list\n", n)
				}
				next = ev.Batch.GetNextId()
			case *pxperfv1.SubscribeResponse_Gap:
				g := ev.Gap
				fmt.Fprintf(c.stderr, "tail: gap: entries %d..%d left memory before they could be sent (pxperf archive read --from %d --to %d)\n",
					g.GetFirstMissedId(), g.GetLastMissedId(), g.GetFirstMissedId(), g.GetLastMissedId())
				next = g.GetLastMissedId() + 1
			case *pxperfv1.SubscribeResponse_Progress:
				next = ev.Progress.GetNextId()
			case *pxperfv1.SubscribeResponse_SnapshotEnd:
				next = ev.SnapshotEnd.GetNextId()
				if !*asJSON {
					fmt.Fprintln(c.stderr, "tail: end of snapshot; live entries follow")
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		return failure("tail: the server ended the stream; resume with --from %d", next)
	})
	return cmd
}
