// Command pxperf runs the pxperf server and talks to it.
//
// Usage:
//
//	pxperf serve [flags]
//
// Every flag can also be set in the environment as PXPERF_ and the flag name
// in upper case with dashes as underscores (--max-entries is
// PXPERF_MAX_ENTRIES); a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"buf.build/go/protovalidate"
	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
	"google.golang.org/protobuf/types/known/durationpb"
)

const usage = `pxperf keeps a live view of a busy HTTP proxy's traffic responsive.

Usage:
  pxperf serve [flags]   run the gRPC server (pxperf serve -h for flags)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pxperf:", err)
		}
		stop()
		os.Exit(2)
	}
}

// run executes the command line args. getenv reads the environment; logs
// and usage go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// serve runs the server until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", cfg.Server.ListenAddress, "address to listen on, host:port (port 0 picks a free one)")
	maxEntries := fs.Uint("max-entries", uint(cfg.Memory.MaxEntries), "most entries kept in memory")
	maxMemory := fs.Uint("max-memory-mb", uint(cfg.Memory.MaxMemoryMb), "memory budget for entries, in MiB")
	maxBody := fs.Uint("max-body-size", uint(cfg.Memory.MaxBodySize), "longest response body kept, in bytes")
	logDir := fs.String("log-dir", cfg.Logs.Directory, "directory of the archive (rotating JSON Lines files)")
	archiveOn := fs.Bool("archive", cfg.Logs.Enabled, "archive every entry to the log directory")
	checkEvery := fs.Duration("cleanup-interval", cfg.Memory.CleanupInterval.AsDuration(), "how often process memory is checked for pressure eviction")
	maxRate := fs.Uint("max-updates-per-second", uint(cfg.Throttle.MaxUpdatesPerSecond), "most messages per second to one subscriber")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the whole run to this file (for go tool pprof)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pxperf serve [flags]\n\nExample:\n  pxperf serve --listen 127.0.0.1:50051 --max-entries 100000\n\nFlags (each also read from PXPERF_<NAME>):\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs, getenv); err != nil {
		return err
	}
	validator, err := protovalidate.New()
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg.Server.ListenAddress = *listen
	cfg.Memory.MaxEntries = uint32(min(*maxEntries, 1<<32-1))
	cfg.Memory.MaxMemoryMb = uint32(min(*maxMemory, 1<<32-1))
	cfg.Memory.MaxBodySize = uint32(min(*maxBody, 1<<32-1))
	cfg.Memory.CleanupInterval = durationpb.New(*checkEvery)
	cfg.Logs.Directory = *logDir
	cfg.Logs.Enabled = *archiveOn
	cfg.Throttle.MaxUpdatesPerSecond = uint32(min(*maxRate, 1<<32-1))
	if err := config.Validate(validator, cfg); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return serveConfig(ctx, cfg, log, getenv("GOMEMLIMIT") == "")
}

// setMemoryLimit sets the Go soft memory limit from cfg's memory budget.
func setMemoryLimit(cfg *pxperfv1.Config, log *slog.Logger) {
	limit := service.MemoryLimit(cfg)
	debug.SetMemoryLimit(limit)
	log.Info("Go soft memory limit set from the memory budget", "limit_bytes", limit)
}

// applyEnv sets each flag not given on the command line from PXPERF_<NAME>.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := "PXPERF_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// serveConfig serves cfg until ctx ends. With memLimit, it keeps the Go soft
// memory limit in step with the memory budget, also when UpdateConfig
// changes it; without (GOMEMLIMIT is set), the operator's limit stands.
func serveConfig(ctx context.Context, cfg *pxperfv1.Config, log *slog.Logger, memLimit bool) error {
	lis, err := net.Listen("tcp", cfg.GetServer().GetListenAddress())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv, err := service.New(cfg, log)
	if err != nil {
		lis.Close()
		return err
	}
	if memLimit {
		setMemoryLimit(cfg, log)
		srv.Service().OnConfigChange(func(c *pxperfv1.Config) { setMemoryLimit(c, log) })
	} else {
		log.Info("Go soft memory limit kept from GOMEMLIMIT")
	}
	if host, _, _ := net.SplitHostPort(lis.Addr().String()); !net.ParseIP(host).IsLoopback() {
		log.Warn("listening on a non-loopback address without authentication: anyone who can reach it can read and change everything", "addr", lis.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		srv.Shutdown()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	srv.Shutdown()
	if err := <-errc; err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
