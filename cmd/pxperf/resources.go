package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spf13/cobra"
)

// resourcesList returns pxperf resources list: every page of
// ListResources.
func (c *cli) resourcesList() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "list [flags]",
		short: "list tracked resources (streams, connections, workers, files)",
		summary: `Lists the resources the server tracks, oldest first: subscriber and
publisher streams, client connections, background workers and open files, with
their owner, age, time since they last moved data, and entries and bytes moved.`,
		examples: []string{
			"resources list",
			"resources list --type subscriber --json",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	typ := fs.String("type", "", "only this type: subscriber, publisher, connection, worker or file")
	asJSON := fs.Bool("json", false, "print one protojson Resource a line")
	completeValues(cmd, "type", enumNames(pxperfv1.ResourceType(0).Descriptor(), "RESOURCE_TYPE_")...)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		req := &pxperfv1.ListResourcesRequest{PageSize: 1000}
		if *typ != "" {
			n, err := client.ParseEnum(pxperfv1.ResourceType(0).Descriptor(), *typ)
			if err != nil || n == 0 {
				return usageError("resources list: --type %q: give subscriber, publisher, connection, worker or file", *typ)
			}
			req.Type = pxperfv1.ResourceType(n)
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		var all []*pxperfv1.Resource
		for {
			uctx, cancel := conn.unary(ctx)
			resp, err := cl.Service().ListResources(uctx, req)
			cancel()
			if err != nil {
				return conn.rpcError("resources list", err)
			}
			all = append(all, resp.GetResources()...)
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		if *asJSON {
			for _, r := range all {
				if err := writeJSON(c.stdout, r, false); err != nil {
					return failure("resources list: %v", err)
				}
			}
			return nil
		}
		now := time.Now()
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tOWNER\tAGE\tIDLE\tENTRIES\tBYTES")
		for _, r := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.GetId(), resourceType(r.GetType()), r.GetOwner(),
				since(now, r.GetCreateTime()), since(now, r.GetLastActiveTime()), r.GetEntries(), humanBytes(r.GetBytes()))
		}
		return tw.Flush()
	})
	return cmd
}

// resourcesClose returns pxperf resources close: CloseResource.
func (c *cli) resourcesClose() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "close [flags] ID",
		short: "end one tracked resource",
		summary: `Ends one tracked resource by its id (from resources list). A stream ends
with ABORTED and the reason, which its owner sees; a connection is closed;
workers end only with the server. Exit code 1 when no such resource is open.`,
		examples: []string{
			`resources close sub-12 --reason "stuck dashboard"`,
		},
		minArgs: 1,
		maxArgs: 1,
	})
	fs := cmd.Flags()
	reason := fs.String("reason", "", "why, shown to the resource's owner (at most 256 bytes)")
	cmd.RunE = c.runE(conn, func(ctx context.Context, pos []string) error {
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		uctx, cancel := conn.unary(ctx)
		defer cancel()
		resp, err := cl.Service().CloseResource(uctx, &pxperfv1.CloseResourceRequest{Id: pos[0], Reason: *reason})
		if err != nil {
			return conn.rpcError("resources close", err)
		}
		r := resp.GetResource()
		fmt.Fprintf(c.stdout, "closed %s (%s of %s, %d entries, %s moved)\n", r.GetId(), resourceType(r.GetType()), r.GetOwner(), r.GetEntries(), humanBytes(r.GetBytes()))
		return nil
	})
	return cmd
}

// resourceType names t as --type takes it: subscriber, publisher….
func resourceType(t pxperfv1.ResourceType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "RESOURCE_TYPE_"))
}

// since formats the time from t to now briefly, or "-" when t is unset.
func since(now time.Time, t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	d := now.Sub(t.AsTime())
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
