package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"

	"github.com/spf13/cobra"
)

// optimize returns pxperf optimize: Optimize.
func (c *cli) optimize() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "optimize [flags] [ACTION…]",
		short: "run optimisations now",
		summary: `Runs the monitor's optimisations now and prints what each did. ACTION is
evict (entries past the memory budget), rotate (the archive file), reclaim
(resources idle past their timeout), slow-throttles (adaptive subscribers) or
release-memory (to the operating system); none runs them all. Exit code 1 when
an action failed.`,
		examples: []string{
			"optimize",
			"optimize evict release-memory",
		},
		minArgs: 0,
		maxArgs: -1,
	})
	cmd.ValidArgsFunction = completeOptimizeActions
	cmd.RunE = c.runE(conn, func(ctx context.Context, names []string) error {
		req := &pxperfv1.OptimizeRequest{}
		for _, name := range names {
			n, err := client.ParseEnum(pxperfv1.OptimizeAction(0).Descriptor(), name)
			if err != nil || n == 0 {
				return usageError("optimize: unknown action %q; give evict, rotate, reclaim, slow-throttles or release-memory", name)
			}
			req.Actions = append(req.Actions, pxperfv1.OptimizeAction(n))
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		uctx, cancel := conn.unary(ctx)
		defer cancel()
		resp, err := cl.Service().Optimize(uctx, req)
		if err != nil {
			return conn.rpcError("optimize", err)
		}
		failed := 0
		for _, r := range resp.GetResults() {
			name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(r.GetAction().String(), "OPTIMIZE_ACTION_")), "_", "-")
			fmt.Fprintf(c.stdout, "%-15s %s\n", name, r.GetSummary())
			if strings.HasPrefix(r.GetSummary(), "failed: ") {
				failed++
			}
		}
		if failed > 0 {
			return failure("optimize: %d of %d actions failed", failed, len(resp.GetResults()))
		}
		return nil
	})
	return cmd
}
