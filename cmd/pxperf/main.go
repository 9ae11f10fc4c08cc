// Command pxperf runs the pxperf server and talks to it.
//
// Usage:
//
//	pxperf serve [flags]
//	pxperf COMMAND [flags] [ARG…]
//
// Every flag of serve, and the connection flags of the client commands,
// can also be set in the environment as PXPERF_ and the flag name in upper
// case with dashes as underscores (--max-entries is PXPERF_MAX_ENTRIES); a
// flag on the command line wins. The command line is parsed by
// spf13/cobra, which also gives pxperf completion SHELL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"buf.build/go/protovalidate"
	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/config"
	"github.com/pxperf/pxperf/engine"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"
)

const usage = `pxperf keeps a live view of a busy HTTP proxy's traffic responsive.

Usage:
  pxperf serve [flags]               run the server (gRPC, and the HTTP gateway)
  pxperf publish [FILE]              publish entries: JSON Lines, or a HAR file with --har
  pxperf tail [--filter F]           stream entries as they arrive
  pxperf list [--filter F]           list entries in memory
  pxperf get ID                      print one entry
  pxperf replay ID                   send a recorded request again (get ID --curl prints it)
  pxperf stats [--watch]             stats, score and alerts
  pxperf watch [--filter F]          live terminal monitor: table, detail, stats
  pxperf config get|set              read or change the config live
  pxperf optimize [ACTION…]          run optimisations now
  pxperf resources list|close        see and end tracked streams and connections
  pxperf archive files|read|export   archive files; entries read back; HAR export
  pxperf completion SHELL            shell completion script: bash, zsh, fish or powershell
  pxperf version [--client]          this client's build, and the server's
  pxperf health [--service NAME]     the server's gRPC health (for container health checks)

Every command takes --help, with examples (so does pxperf help COMMAND).
Client commands reach the server at --server (PXPERF_SERVER, default
127.0.0.1:50051). Filters (F) look like
'status:>=400 method:POST host:*.example.com slower-than:200ms'.
Exit codes: 0 ok, 1 command failed (rejections, not found, refused),
2 usage, 3 server unreachable or RPC error, 4 not authenticated or allowed.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pxperf:", err)
		}
		stop()
		os.Exit(exitCode(err))
	}
}

// run executes the command line args. getenv reads the environment; the
// client commands print their results to stdout; logs, usage and
// diagnostics go to stderr. main exits with [exitCode] of the error. The
// command tree is built anew for each call, so that calls share nothing.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr}
	return c.run(ctx, args)
}

// serve returns pxperf serve, which runs the server until ctx ends, then
// shuts it down gracefully.
func (c *cli) serve() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "run the server (gRPC, and the HTTP gateway)",
		Example: examples([]string{
			"serve --listen 127.0.0.1:50051 --max-entries 100000",
			"serve --config pxperf.yaml --log-level debug",
		}),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected argument %q: serve takes flags only", args[0])
			}
			return nil
		},
		ValidArgsFunction: cobra.NoFileCompletions,
		Annotations: map[string]string{
			annExamples: "Example",
			annFlags:    "Flags (each also read from PXPERF_<NAME>; precedence: flag, environment, --config file, default)",
		},
	}
	sf := defineServeFlags(cmd.Flags())
	completeValues(cmd, "log-level", logLevels...)
	completeValues(cmd, "log-format", logFormats...)
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, opts, err := sf.config(cmd.Flags(), c.getenv)
		if err != nil {
			return err
		}
		return runServe(cmd.Context(), cfg, opts, c.getenv, c.stderr)
	}
	return cmd
}

// logLevels and logFormats are the values of serve's --log-level and
// --log-format.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// runServe runs the server with cfg until ctx ends, then shuts it down
// gracefully.
func runServe(ctx context.Context, cfg *pxperfv1.Config, opts serveOptions, getenv func(string) string, stderr io.Writer) error {
	var err error
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch opts.logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, hopts)
	case "json":
		handler = slog.NewJSONHandler(stderr, hopts)
	default:
		return fmt.Errorf("--log-format: %q is not a log format; write text or json", opts.logFormat)
	}
	log := slog.New(handler)
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	so := service.Options{Log: log}
	if opts.tls.Enabled() {
		if so.Credentials, err = auth.ServerCredentials(opts.tls); err != nil {
			return err
		}
		if so.GatewayTLS, err = auth.ServerTLSConfig(opts.tls); err != nil {
			return err
		}
	}
	if opts.tokens != "" {
		if so.Tokens, err = auth.LoadTokens(opts.tokens); err != nil {
			return err
		}
	}
	return runServer(ctx, cfg, so, getenv("GOMEMLIMIT") == "")
}

// serveOptions are the serve flags that are not part of the config.
type serveOptions struct {
	logLevel   string
	logFormat  string // text or json
	cpuProfile string
	tls        auth.TLSConfig
	tokens     string // token file
}

// serveFlags are serve's flags, defined on a flag set by
// [defineServeFlags]; [serveFlags.config] builds the config from them.
type serveFlags struct {
	defaults *pxperfv1.Config
	file     *string
	// set holds, for each config flag, how it sets its field.
	set  map[string]func(*pxperfv1.Config)
	opts serveOptions
}

// defineServeFlags defines serve's flags on fs: every config flag, with
// the default config's value as its default, and the serveOptions.
func defineServeFlags(fs *pflag.FlagSet) *serveFlags {
	d := config.Default()
	sf := &serveFlags{defaults: d, set: map[string]func(*pxperfv1.Config){}}
	sf.file = fs.String("config", "", "YAML config file (protojson field names); flags and PXPERF_* variables override it")
	// Each config flag, with how it sets its field; defaults are shown in
	// the help but only flags actually given are applied.
	set := sf.set
	opts := &sf.opts
	str := func(name, def, usage string, apply func(*pxperfv1.Config, string)) {
		v := fs.String(name, def, usage)
		set[name] = func(c *pxperfv1.Config) { apply(c, *v) }
	}
	num := func(name string, def uint32, usage string, apply func(*pxperfv1.Config, uint32)) {
		v := fs.Uint(name, uint(def), usage)
		set[name] = func(c *pxperfv1.Config) { apply(c, uint32(min(*v, 1<<32-1))) }
	}
	dur := func(name string, def time.Duration, usage string, apply func(*pxperfv1.Config, *durationpb.Duration)) {
		v := fs.Duration(name, def, usage)
		set[name] = func(c *pxperfv1.Config) { apply(c, durationpb.New(*v)) }
	}
	str("listen", d.Server.ListenAddress, "address to listen on, host:port (port 0 picks a free one)",
		func(c *pxperfv1.Config, v string) { c.Server.ListenAddress = v })
	num("max-entries", d.Memory.MaxEntries, "most entries kept in memory",
		func(c *pxperfv1.Config, v uint32) { c.Memory.MaxEntries = v })
	num("max-memory-mb", d.Memory.MaxMemoryMb, "memory budget for entries, in MiB",
		func(c *pxperfv1.Config, v uint32) { c.Memory.MaxMemoryMb = v })
	num("max-body-size", d.Memory.MaxBodySize, "longest request or response body kept, in bytes",
		func(c *pxperfv1.Config, v uint32) { c.Memory.MaxBodySize = v })
	dur("cleanup-interval", d.Memory.CleanupInterval.AsDuration(), "how often live memory is checked for pressure eviction",
		func(c *pxperfv1.Config, v *durationpb.Duration) { c.Memory.CleanupInterval = v })
	str("log-dir", d.Logs.Directory, "directory of the archive (rotating JSON Lines files)",
		func(c *pxperfv1.Config, v string) { c.Logs.Directory = v })
	archive := fs.Bool("archive", d.Logs.Enabled, "archive every entry to the log directory")
	set["archive"] = func(c *pxperfv1.Config) { c.Logs.Enabled = *archive }
	num("max-updates-per-second", d.Throttle.MaxUpdatesPerSecond, "most messages per second to one subscriber",
		func(c *pxperfv1.Config, v uint32) { c.Throttle.MaxUpdatesPerSecond = v })
	num("max-resources", d.Cleanup.MaxResources, "most open streams of each kind (subscribers, publishers)",
		func(c *pxperfv1.Config, v uint32) { c.Cleanup.MaxResources = v })
	dur("stats-interval", d.Monitor.StatsUpdateInterval.AsDuration(), "how often the monitor samples, scores and alerts",
		func(c *pxperfv1.Config, v *durationpb.Duration) { c.Monitor.StatsUpdateInterval = v })
	str("http-listen", d.Server.HttpListenAddress, "serve the HTTP gateway (Connect, gRPC-Web, REST/JSON for browsers and curl) on this address, host:port (empty: off)",
		func(c *pxperfv1.Config, v string) { c.Server.HttpListenAddress = v })
	list := func(name, usage string, apply func(*pxperfv1.Config, []string)) {
		v := fs.String(name, "", usage)
		set[name] = func(c *pxperfv1.Config) { apply(c, splitList(*v)) }
	}
	list("http-allowed-hosts", "comma-separated host names (or host:port) the HTTP gateway answers besides loopback names and its listen address",
		func(c *pxperfv1.Config, v []string) { c.Server.HttpAllowedHosts = v })
	list("http-cors-origins", "comma-separated origins (https://host[:port]) whose web pages may call the HTTP gateway (CORS; empty: none)",
		func(c *pxperfv1.Config, v []string) { c.Server.HttpCorsOrigins = v })
	str("metrics-listen", d.Server.MetricsAddress, "serve Prometheus metrics at http://ADDR/metrics (host:port; empty: off)",
		func(c *pxperfv1.Config, v string) { c.Server.MetricsAddress = v })
	str("proxy-listen", d.Proxy.ListenAddress, "also run the recording HTTP proxy on this address, host:port (empty: off)",
		func(c *pxperfv1.Config, v string) { c.Proxy.ListenAddress = v })
	str("upstream", d.Proxy.Upstream, "the recording proxy forwards through this proxy, http://[user:pass@]host:port (empty: direct)",
		func(c *pxperfv1.Config, v string) { c.Proxy.Upstream = v })
	str("no-proxy", d.Proxy.NoProxy, "targets the recording proxy reaches directly, bypassing --upstream (NO_PROXY syntax)",
		func(c *pxperfv1.Config, v string) { c.Proxy.NoProxy = v })
	str("allow-targets", d.Proxy.AllowTargets, "targets inside this host (loopback, link-local, pxperf's own ports) the recording proxy may reach all the same (NO_PROXY syntax; pxperf's own ports only with the port)",
		func(c *pxperfv1.Config, v string) { c.Proxy.AllowTargets = v })
	list("nats", "cluster mode: comma-separated NATS URLs, nats://[user:pass@]host:4222 (empty: embedded mode; see README's Beyond one machine)",
		func(c *pxperfv1.Config, v []string) { c.Cluster.Urls = v })
	str("nats-stream", d.Cluster.Stream, "cluster mode: name of the JetStream stream of entries",
		func(c *pxperfv1.Config, v string) { c.Cluster.Stream = v })
	str("nats-subject", d.Cluster.Subject, "cluster mode: subject the entries are published on",
		func(c *pxperfv1.Config, v string) { c.Cluster.Subject = v })
	num("nats-replicas", d.Cluster.Replicas, "cluster mode: replicas of the streams (1, 3 or 5 in a NATS cluster)",
		func(c *pxperfv1.Config, v uint32) { c.Cluster.Replicas = v })
	str("nats-creds", d.Cluster.CredsFile, "cluster mode: NATS credentials file (user JWT and NKey seed)",
		func(c *pxperfv1.Config, v string) { c.Cluster.CredsFile = v })
	str("nats-ca", d.Cluster.CaFile, "cluster mode: PEM file of the CAs of the NATS servers' certificates (tls:// URLs)",
		func(c *pxperfv1.Config, v string) { c.Cluster.CaFile = v })
	fs.StringVar(&opts.tls.CertFile, "tls-cert", "", "serve TLS with this certificate chain (PEM)")
	fs.StringVar(&opts.tls.KeyFile, "tls-key", "", "private key of --tls-cert (PEM)")
	fs.StringVar(&opts.tls.ClientCAFile, "tls-client-ca", "", "require client certificates from these CAs (PEM): mutual TLS")
	fs.StringVar(&opts.tokens, "tokens", "", "bearer-token file (lines of ROLES NAME TOKEN; see README): turns on auth")
	fs.StringVar(&opts.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&opts.logFormat, "log-format", "text", "log format: text (key=value) or json (one object a line, for log collectors)")
	fs.StringVar(&opts.cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file (for go tool pprof)")
	return sf
}

// config builds the config from its sources, each over the one before:
// defaults, the --config file, PXPERF_* environment variables, and flags
// on the command line, which fs has parsed. Only flags given on the
// command line or in the environment override the file. The result is
// validated.
func (sf *serveFlags) config(fs *pflag.FlagSet, getenv func(string) string) (*pxperfv1.Config, serveOptions, error) {
	if err := applyEnv(fs, getenv); err != nil {
		return nil, sf.opts, err
	}
	cfg := sf.defaults
	if *sf.file != "" {
		var err error
		if cfg, err = config.LoadFile(*sf.file, sf.defaults); err != nil {
			return nil, sf.opts, err
		}
	}
	fs.Visit(func(f *pflag.Flag) {
		if apply, ok := sf.set[f.Name]; ok {
			apply(cfg)
		}
	})
	validator, err := protovalidate.New()
	if err != nil {
		return nil, sf.opts, err
	}
	if err := config.Validate(validator, cfg); err != nil {
		return nil, sf.opts, err
	}
	return cfg, sf.opts, nil
}

// serveConfig parses args as serve's flags and builds the config from
// them, as pxperf serve does (see [serveFlags.config]); flag errors are
// written to stderr.
func serveConfig(args []string, getenv func(string) string, stderr io.Writer) (*pxperfv1.Config, serveOptions, error) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := defineServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, sf.opts, err
	}
	if fs.NArg() > 0 {
		return nil, sf.opts, fmt.Errorf("unexpected argument %q: serve takes flags only", fs.Arg(0))
	}
	return sf.config(fs, getenv)
}

// splitList returns the comma-separated items of s, trimmed, without empty
// ones: nil for "".
func splitList(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// setMemoryLimit sets the Go soft memory limit from cfg's memory budget.
func setMemoryLimit(cfg *pxperfv1.Config, log *slog.Logger) {
	limit := engine.MemoryLimit(cfg)
	debug.SetMemoryLimit(limit)
	log.Info("Go soft memory limit set from the memory budget", "limit_bytes", limit)
}

// applyEnv sets each flag of fs not given on the command line from
// PXPERF_<NAME> (but not --help).
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err == nil && f.Name != "help" {
			err = setFromEnv(fs, f.Name, getenv)
		}
	})
	return err
}

// setFromEnv sets the flag name of fs from PXPERF_<NAME> when it was not
// given and the variable is set. The flag then counts as given.
func setFromEnv(fs *pflag.FlagSet, name string, getenv func(string) string) error {
	if fs.Changed(name) {
		return nil
	}
	env := "PXPERF_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	v := getenv(env)
	if v == "" {
		return nil
	}
	if err := fs.Set(name, v); err != nil {
		return fmt.Errorf("%s=%q: %w", env, v, err)
	}
	return nil
}

// runServer serves cfg until ctx ends. With memLimit, it keeps the Go soft
// memory limit in step with the memory budget, also when UpdateConfig
// changes it; without (GOMEMLIMIT is set), the operator's limit stands.
func runServer(ctx context.Context, cfg *pxperfv1.Config, opts service.Options, memLimit bool) (err error) {
	log := opts.Log
	// Every listener first, so that a taken port fails the start before
	// anything runs.
	var listeners []net.Listener
	listen := func(what, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		listeners = append(listeners, l)
		return l, nil
	}
	defer func() {
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
		}
	}()
	lis, err := listen("listen", cfg.GetServer().GetListenAddress())
	if err != nil {
		return err
	}
	hlis, err := listen("http listen", cfg.GetServer().GetHttpListenAddress())
	if err != nil {
		return err
	}
	mlis, err := listen("metrics listen", cfg.GetServer().GetMetricsAddress())
	if err != nil {
		return err
	}
	plis, err := listen("proxy listen", cfg.GetProxy().GetListenAddress())
	if err != nil {
		return err
	}
	// The recording proxy must not be a way into the server's own ports.
	for _, l := range listeners {
		opts.ServedAddrs = append(opts.ServedAddrs, l.Addr())
	}
	srv, err := service.New(cfg, opts)
	if err != nil {
		return err
	}
	if memLimit {
		setMemoryLimit(cfg, log)
		srv.Service().OnConfigChange(func(c *pxperfv1.Config) { setMemoryLimit(c, log) })
	} else {
		log.Info("Go soft memory limit kept from GOMEMLIMIT")
	}
	logSecurity(log, lis.Addr().String(), opts)
	if hlis != nil {
		logSecurity(log, hlis.Addr().String(), opts)
	}
	errc := make(chan error, 4)
	var metrics *http.Server
	if mlis != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		log.Info("serving metrics", "url", "http://"+mlis.Addr().String()+"/metrics")
		go func() {
			if err := metrics.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}
	if plis != nil {
		go func() {
			if err := srv.ServeProxy(plis); err != nil {
				errc <- fmt.Errorf("proxy: %w", err)
			}
		}()
	}
	if hlis != nil {
		go func() {
			if err := srv.ServeGateway(hlis); err != nil {
				errc <- fmt.Errorf("gateway: %w", err)
			}
		}()
	}
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	if metrics != nil {
		metrics.Close()
	}
	srv.Shutdown()
	if err == nil {
		err = <-errc
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// logSecurity says at start-up how the server is reachable and secured,
// and warns when anyone who can reach it could read and change everything.
func logSecurity(log *slog.Logger, addr string, opts service.Options) {
	loopback, _ := auth.IsLoopback(addr)
	tls, tokens := opts.Credentials != nil, opts.Tokens != nil
	switch {
	case loopback && !tls && !tokens:
		log.Info("listening on loopback only, plaintext, without auth: only this machine can connect", "addr", addr)
	case !loopback && !tokens:
		log.Warn("listening on a non-loopback address without authentication: anyone who can reach it can read and change everything; use --tokens (and --tls-cert)", "addr", addr, "tls", tls)
	case !loopback && !tls:
		log.Warn("listening on a non-loopback address without TLS: bearer tokens travel in clear; use --tls-cert and --tls-key", "addr", addr)
	default:
		log.Info("listening", "addr", addr, "tls", tls, "auth", tokens)
	}
}
