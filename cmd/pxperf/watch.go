package main

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/spf13/cobra"
)

// watch returns pxperf watch: the terminal monitor.
func (c *cli) watch() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "watch [flags]",
		short: "live terminal monitor: table, detail, stats",
		summary: `A live terminal monitor. At the top: the ingest rate, the memory in use
against the budget (each with a sparkline of the last minute), the score,
subscribers and active alerts. Below: the filter, then a table of the
entries matching it (id, time, method, status, duration, bytes received,
proxy decision, url), newest at the bottom, coloured by status class. It
gets the rows on screen only: at the bottom it follows new entries, which
the server streams as a live view (an update at most every --refresh, or
every second when that is longer); scrolled up it holds its place and asks
for its rows every --refresh.

Keys: ↑/↓ select, PgUp/PgDn page, Home oldest, End newest (follow), / edit
the filter (Enter applies, Esc cancels; the filter syntax is tail's), Enter
the selected entry's details (headers, body, timings; Esc closes), p pause
and resume the table, q or Ctrl-C quit. NO_COLOR=1 turns colour off.`,
		examples: []string{
			"watch",
			"watch --filter 'status:>=400' --refresh 1s",
			"watch --server pxperf.internal:50051 --tls-ca ca.pem",
		},
		minArgs: 0,
		maxArgs: 0,
	})
	fs := cmd.Flags()
	filterText := fs.String("filter", "", "the filter to start with, for example 'status:>=400 host:*.example.com'")
	refresh := fs.Duration("refresh", 250*time.Millisecond, "time between table refreshes, 50ms..10s")
	completeFlag(cmd, "filter", completeFilter)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		if *refresh < 50*time.Millisecond || *refresh > 10*time.Second {
			return usageError("watch: --refresh %v: want 50ms..10s", *refresh)
		}
		f, err := parseFilter(*filterText)
		if err != nil {
			return err
		}
		in, out, ok := c.terminal()
		if !ok {
			return usageError("watch: needs a terminal on standard input and output; for scripts use pxperf list or pxperf tail")
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		// Fail before taking over the screen when the server is not there.
		uctx, cancel := conn.unary(ctx)
		_, err = cl.Service().GetStats(uctx, &pxperfv1.GetStatsRequest{})
		cancel()
		if err != nil {
			return conn.rpcError("watch", err)
		}

		ctx, stop := context.WithCancel(ctx)
		defer stop()
		// The model's live view sends to the program, which is made after
		// the model; it sends only once the program runs.
		var p *tea.Program
		m := newWatchModel(ctx, watchConfig{
			server:     conn.server,
			refresh:    *refresh,
			filterText: *filterText,
			filter:     f,
			list:       cl.ListEntries,
			get:        cl.GetEntry,
			subscribe:  cl.Subscribe,
			send:       func(msg tea.Msg) { p.Send(msg) },
			unary:      conn.unary,
		})
		// The context ends the program (main cancels it on SIGINT and SIGTERM);
		// Ctrl-C in the terminal is a key, since the terminal is in raw mode.
		p = tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithoutSignalHandler())
		var wg sync.WaitGroup
		wg.Go(func() { statsLoop(ctx, cl.Service(), p.Send) })
		_, err = p.Run()
		stop()
		wg.Wait()
		switch {
		case err == nil, errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil:
			return nil
		}
		return failure("watch: %v", err)
	})
	return cmd
}

// terminal returns standard input and output when both are terminals.
func (c *cli) terminal() (in io.Reader, out io.Writer, ok bool) {
	fin, ok1 := c.stdin.(*os.File)
	fout, ok2 := c.stdout.(*os.File)
	if !ok1 || !ok2 || !term.IsTerminal(fin.Fd()) || !term.IsTerminal(fout.Fd()) {
		return nil, nil, false
	}
	return fin, fout, true
}

// statsInterval is how often the header's stats come: the sparklines hold
// a minute of them.
const statsInterval = time.Second

// statsLoop sends the messages of a WatchStats stream to send, opening it
// again a second after it fails, until ctx ends.
func statsLoop(ctx context.Context, svc pxperfv1.PerformanceServiceClient, send func(tea.Msg)) {
	for ctx.Err() == nil {
		stream, err := svc.WatchStats(ctx, &pxperfv1.WatchStatsRequest{Interval: durationpb.New(statsInterval)})
		for err == nil {
			var msg *pxperfv1.WatchStatsResponse
			if msg, err = stream.Recv(); err == nil {
				send(statsMsg{msg})
			}
		}
		if ctx.Err() != nil {
			return
		}
		send(statsErrMsg{err})
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
