package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/spf13/cobra"
)

// stats returns pxperf stats: GetStats, or WatchStats with --watch.
func (c *cli) stats() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "stats [flags]",
		short: "stats, score and alerts",
		summary: `Prints the server's stats: entries and bytes against the budget, archive,
subscribers, resources, process, the 0-100 health score with its parts, and
active alerts. With --watch it keeps printing a sample every --interval, and
alerts and config changes as they happen, until Ctrl-C or --count samples.`,
		examples: []string{
			"stats",
			"stats --watch --interval 2s",
			"stats --json | jq .score.total",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	asJSON := fs.Bool("json", false, "print protojson (with --watch, one message a line)")
	watch := fs.Bool("watch", false, "keep printing samples, alerts and config changes (WatchStats)")
	interval := fs.Duration("interval", 5*time.Second, "with --watch, time between samples, 100ms..1h (0: the server's monitor.stats_update_interval)")
	count := fs.Uint64("count", 0, "with --watch, stop after this many samples (0: until Ctrl-C)")
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		if *interval != 0 && (*interval < 100*time.Millisecond || *interval > time.Hour) {
			return usageError("stats: --interval %v: want 100ms..1h, or 0", *interval)
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		if !*watch {
			uctx, cancel := conn.unary(ctx)
			defer cancel()
			resp, err := cl.Service().GetStats(uctx, &pxperfv1.GetStatsRequest{})
			if err != nil {
				return conn.rpcError("stats", err)
			}
			if *asJSON {
				return writeJSON(c.stdout, resp.GetStats(), true)
			}
			writeStats(c.stdout, resp.GetStats())
			return nil
		}

		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req := &pxperfv1.WatchStatsRequest{}
		if *interval > 0 {
			req.Interval = durationpb.New(*interval)
		}
		stream, err := cl.Service().WatchStats(ctx, req)
		if err != nil {
			return conn.rpcError("stats", err)
		}
		var samples uint64
		for {
			msg, err := stream.Recv()
			if err != nil {
				if ctx.Err() != nil {
					return nil // stopped by the user
				}
				if err == io.EOF {
					return failure("stats: the server ended the stream")
				}
				return conn.rpcError("stats", err)
			}
			if *asJSON {
				if err := writeJSON(c.stdout, msg, false); err != nil {
					return failure("stats: %v", err)
				}
			}
			switch ev := msg.GetEvent().(type) {
			case *pxperfv1.WatchStatsResponse_Stats:
				samples++
				if !*asJSON {
					if samples > 1 {
						fmt.Fprintln(c.stdout)
					}
					writeStats(c.stdout, ev.Stats)
				}
				if *count > 0 && samples >= *count {
					return nil
				}
			case *pxperfv1.WatchStatsResponse_Alert:
				if !*asJSON {
					fmt.Fprintln(c.stdout, alertLine(ev.Alert))
				}
			case *pxperfv1.WatchStatsResponse_ConfigChanged:
				if !*asJSON {
					fmt.Fprintf(c.stdout, "config changed: %s\n", strings.Join(ev.ConfigChanged.GetChangedFields().GetPaths(), ", "))
				}
			}
		}
	})
	return cmd
}

// writeStats writes a summary of s for people.
func writeStats(w io.Writer, s *pxperfv1.Stats) {
	pct := func(a, b uint64) float64 {
		if b == 0 {
			return 0
		}
		return 100 * float64(a) / float64(b)
	}
	fmt.Fprintf(w, "sample      %s, up %v\n", s.GetSampleTime().AsTime().Local().Format(time.DateTime), s.GetUptime().AsDuration().Round(time.Second))
	st := s.GetStore()
	fmt.Fprintf(w, "entries     %d of %d (%.0f%%), ids %d..%d\n", st.GetEntries(), st.GetMaxEntries(), pct(st.GetEntries(), st.GetMaxEntries()), st.GetOldestId(), st.GetNewestId())
	fmt.Fprintf(w, "bytes       %s of %s budget (%.1f%%)", humanBytes(st.GetBytes()), humanBytes(st.GetBudgetBytes()), pct(st.GetBytes(), st.GetBudgetBytes()))
	if st.GetUnderPressure() {
		fmt.Fprint(w, ", under memory pressure")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "ingest      accepted %d, rejected %d, completed %d, evicted %d (count) %d (bytes) %d (pressure)\n",
		st.GetAccepted(), st.GetRejected(), st.GetCompleted(), st.GetEvictedByCount(), st.GetEvictedByBytes(), st.GetEvictedByPressure())
	th := s.GetThrottle()
	fmt.Fprintf(w, "subscribers %d, max lag %d, messages %d, entries sent %d, gaps %d, ingest %.1f/s\n",
		th.GetSubscribers(), th.GetMaxLag(), th.GetMessagesSent(), th.GetEntriesSent(), th.GetGaps(), th.GetIngestRate())
	if a := s.GetArchive(); a != nil {
		fmt.Fprintf(w, "archive     %d files, %s on disk, %d entries written, %d write errors\n",
			a.GetFiles(), humanBytes(a.GetDiskBytes()), a.GetEntriesWritten(), a.GetWriteErrors())
	}
	if c := s.GetCluster(); c != nil {
		state := "connected to " + c.GetServer()
		if !c.GetConnected() {
			state = "cannot publish: " + c.GetLastError()
		}
		entries := uint64(0) // the ids in the stream run without a gap
		if c.GetFirstId() > 0 {
			entries = c.GetLastId() - c.GetFirstId() + 1
		}
		fmt.Fprintf(w, "cluster     %s; stream %d entries in %d messages, %s, ids %d..%d; applied %d, lag %d, %d publish failures\n",
			state, entries, c.GetStreamMessages(), humanBytes(c.GetStreamBytes()), c.GetFirstId(), c.GetLastId(), c.GetAppliedId(), c.GetLag(), c.GetPublishFailures())
	}
	r := s.GetResources()
	fmt.Fprintf(w, "resources   %d live, cleanups %d ok / %d failed, %d idle closed, %d refused\n",
		r.GetLive(), r.GetCleanupsSucceeded(), r.GetCleanupsFailed(), r.GetIdleClosed(), r.GetRefused())
	p := s.GetProcess()
	fmt.Fprintf(w, "process     rss %s, heap %s, %d goroutines, cpu %.1f%%\n",
		humanBytes(p.GetRssBytes()), humanBytes(p.GetHeapLiveBytes()), p.GetGoroutines(), p.GetCpuPercent())
	fmt.Fprintf(w, "score       %.0f/100\n", s.GetScore().GetTotal())
	for _, part := range s.GetScore().GetParts() {
		fmt.Fprintf(w, "  %-10s %4.1f/%-3.0f %s\n", part.GetName(), part.GetPoints(), part.GetMaxPoints(), part.GetExplanation())
	}
	if len(s.GetActiveAlerts()) == 0 {
		fmt.Fprintln(w, "alerts      none")
	}
	for _, a := range s.GetActiveAlerts() {
		fmt.Fprintln(w, alertLine(a))
	}
}

// alertLine formats an alert event.
func alertLine(a *pxperfv1.Alert) string {
	state := strings.ToLower(strings.TrimPrefix(a.GetState().String(), "ALERT_STATE_"))
	return fmt.Sprintf("alert       %s %s: %s (value %.3g, threshold %.3g)", a.GetName(), state, a.GetMessage(), a.GetValue(), a.GetThreshold())
}
