package main

// The client commands: everything but serve. Each talks to a running
// server through package client, one connection per command, and prints
// its results to stdout and diagnostics to stderr.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/filter"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Exit codes of the client commands (main uses [exitCode]):
//
//	0  success; also tail and stats --watch stopped with Ctrl-C, and --help
//	1  the command ran and failed: publish had rejected entries or read
//	   none; the server refused the request itself: NOT_FOUND (get,
//	   resources close), INVALID_ARGUMENT (config set out of range),
//	   FAILED_PRECONDITION (a field that is not live, the archive off),
//	   OUT_OF_RANGE (tail --from older than anything kept), ALREADY_EXISTS;
//	   an optimize action failed; an input file cannot be read; an entry
//	   cannot be sent again (replay, get --curl: a tunnel, a body recorded
//	   in part), or its replay got no response
//	2  usage: unknown command or flag, bad argument, value or filter
//	3  the server could not be reached or the call failed: UNAVAILABLE,
//	   DEADLINE_EXCEEDED (--timeout), RESOURCE_EXHAUSTED, ABORTED (a stream
//	   ended by the server, for example by resources close), INTERNAL,
//	   UNKNOWN, UNIMPLEMENTED, CANCELLED, DATA_LOSS
//	4  not allowed: UNAUTHENTICATED (no or unknown --token) or
//	   PERMISSION_DENIED (the token lacks the role)
//
// Errors that are not an [exitError] (those of serve) exit 2, as before.
const (
	exitFailure = 1
	exitUsage   = 2
	exitRPC     = 3
	exitDenied  = 4
)

// exitError is an error that tells main which exit code to use.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failure returns an error with exit code 1.
func failure(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, args...)}
}

// usageError returns an error with exit code 2.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode returns the process exit code for err, the result of run: 0 for
// nil and for --help, the code of an [exitError], else 2.
func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return exitUsage
}

// codeExit maps a gRPC status code to an exit code; see the table above.
func codeExit(c codes.Code) int {
	switch c {
	case codes.OK:
		return 0
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists:
		return exitFailure
	case codes.Unauthenticated, codes.PermissionDenied:
		return exitDenied
	default:
		return exitRPC
	}
}

// cli is what every client command is given.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// runClient runs the client command args[0] with its arguments.
func runClient(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr}
	return c.run(ctx, args)
}

// run dispatches args to a command.
func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("no command given")
	}
	rest := args[1:]
	switch args[0] {
	case "publish":
		return c.publish(ctx, rest)
	case "tail":
		return c.tail(ctx, rest)
	case "list":
		return c.list(ctx, rest)
	case "get":
		return c.get(ctx, rest)
	case "replay":
		return c.replay(ctx, rest)
	case "stats":
		return c.stats(ctx, rest)
	case "watch":
		return c.watch(ctx, rest)
	case "optimize":
		return c.optimize(ctx, rest)
	case "config":
		return c.group(ctx, "config", rest, []subcommand{
			{"get", "print the effective config, or the values of some fields", c.configGet},
			{"set", "change config fields live: PATH=VALUE…", c.configSet},
		})
	case "resources":
		return c.group(ctx, "resources", rest, []subcommand{
			{"list", "list tracked resources (streams, connections, workers, files)", c.resourcesList},
			{"close", "end one tracked resource", c.resourcesClose},
		})
	case "archive":
		return c.group(ctx, "archive", rest, []subcommand{
			{"files", "list the archive files", c.archiveFiles},
			{"read", "read archived entries back as JSON Lines", c.archiveRead},
			{"export", "write archived entries as a HAR 1.2 document", c.archiveExport},
		})
	}
	return usageError("unknown command %q", args[0])
}

// subcommand is one command of a group such as config.
type subcommand struct {
	name    string
	summary string
	run     func(context.Context, []string) error
}

// group runs the subcommand of group named by args[0].
func (c *cli) group(ctx context.Context, group string, args []string, subs []subcommand) error {
	help := func() {
		fmt.Fprintf(c.stderr, "Usage: pxperf %s COMMAND [flags]\n\nCommands:\n", group)
		for _, s := range subs {
			fmt.Fprintf(c.stderr, "  %-8s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(c.stderr, "\nExample:\n  pxperf %s %s --help\n", group, subs[0].name)
	}
	if len(args) == 0 {
		help()
		return usageError("%s: no command given", group)
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:])
		}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		help()
		return flag.ErrHelp
	}
	help()
	return usageError("%s: unknown command %q", group, args[0])
}

// command describes a client command for its --help.
type command struct {
	name     string   // as typed, for example "config set"
	synopsis string   // what follows the name, for example "[flags] ID"
	summary  string   // what it does
	examples []string // command lines, without "pxperf "
}

// flags returns a flag set for cmd whose usage, printed on --help and on
// a flag error, shows cmd's synopsis, summary, examples and flags.
func (c *cli) flags(cmd command) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: pxperf %s %s\n\n%s\n\nExamples:\n", cmd.name, cmd.synopsis, cmd.summary)
		for _, ex := range cmd.examples {
			fmt.Fprintf(c.stderr, "  pxperf %s\n", ex)
		}
		fmt.Fprintf(c.stderr, "\nFlags (flags and arguments may be mixed; the connection flags --server, --token,\n--tls, --tls-ca, --client-cert, --client-key and --timeout also read %s):\n", connEnvNames)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args with fs, letting flags and positional arguments mix
// ("get 12 --json"); "--" ends the flags. It checks that there are
// between minArgs and maxArgs positional arguments (maxArgs < 0: any
// number) and applies the environment to conn's flags. A usage error has
// exit code 2; --help returns flag.ErrHelp.
func (c *cli) parse(fs *flag.FlagSet, conn *connFlags, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", fs.Name(), err)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < minArgs:
		fs.Usage()
		return nil, usageError("%s: missing argument", fs.Name())
	case maxArgs >= 0 && len(pos) > maxArgs:
		fs.Usage()
		return nil, usageError("%s: unexpected argument %q", fs.Name(), pos[maxArgs])
	}
	if conn != nil {
		if err := conn.applyEnv(fs, c.getenv); err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
	}
	return pos, nil
}

// connEnvNames lists the environment variables of the connection flags,
// for help texts.
const connEnvNames = "PXPERF_<NAME>"

// connFlags are the flags every client command has: where the server is
// and how to reach it.
type connFlags struct {
	server  string
	token   string
	tls     bool
	tlsCA   string
	tlsCert string
	tlsKey  string
	timeout time.Duration
}

// addConnFlags defines the connection flags on fs.
func addConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.server, "server", client.DefaultAddress, "server address, host:port")
	fs.StringVar(&c.token, "token", "", "bearer token, for a server started with --tokens (prefer PXPERF_TOKEN: a flag shows in ps)")
	fs.BoolVar(&c.tls, "tls", false, "use TLS, verifying the server against the system roots (implied by --tls-ca, --client-cert)")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "use TLS, verifying the server against these CA certificates (PEM)")
	// Not --tls-cert and --tls-key: those, and their PXPERF_TLS_CERT and
	// PXPERF_TLS_KEY, are the server's own certificate for serve.
	fs.StringVar(&c.tlsCert, "client-cert", "", "client certificate (PEM), for mutual TLS")
	fs.StringVar(&c.tlsKey, "client-key", "", "private key of --client-cert (PEM)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "deadline of each unary call (0: none); streams have none")
	return c
}

// applyEnv sets each connection flag not given in fs from PXPERF_<NAME>,
// with [applyEnv] over a flag set that holds only them: a command's other
// flags (--filter, --count) are not read from the environment.
func (c *connFlags) applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	only := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	only.SetOutput(io.Discard)
	for _, name := range []string{"server", "token", "tls", "tls-ca", "client-cert", "client-key", "timeout"} {
		f := fs.Lookup(name)
		only.Var(f.Value, f.Name, f.Usage)
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if only.Lookup(f.Name) != nil && err == nil {
			// Mark it as given, with the value it already has.
			err = only.Set(f.Name, f.Value.String())
		}
	})
	if err != nil {
		return err
	}
	return applyEnv(only, getenv)
}

// dial returns a client for the server the flags name. It does not
// connect: the first call does.
func (c *connFlags) dial() (*client.Client, error) {
	cfg := client.Config{Address: c.server, Token: c.token}
	if c.tls || c.tlsCA != "" || c.tlsCert != "" || c.tlsKey != "" {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		cfg.TLS = tc
	}
	if cfg.Token != "" && cfg.TLS == nil {
		if loopback, _ := auth.IsLoopback(c.server); !loopback {
			return nil, usageError("--token to %s without TLS would send the token in clear text; add --tls-ca (or --tls)", c.server)
		}
	}
	cl, err := client.New(cfg)
	if err != nil {
		return nil, usageError("--server: %v", err)
	}
	return cl, nil
}

// tlsConfig builds the client TLS config from the flags.
func (c *connFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", c.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return nil, errors.New("--client-cert and --client-key go together: give both for mutual TLS, or neither")
	}
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--client-cert %s with --client-key %s: %w", c.tlsCert, c.tlsKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// unary returns a context for one unary call, with the --timeout deadline.
func (c *connFlags) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// rpcError describes a failed call of op to the user, with the status
// code, the message, any field violations, and a hint where one helps; its
// exit code follows the status code.
func (c *connFlags) rpcError(op string, err error) error {
	st := status.Convert(err)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: %s", op, codeName(st.Code()), st.Message())
	// Field violations the message does not already hold.
	detail := func(field, description string) {
		if line := field + ": " + description; !strings.Contains(st.Message(), line) {
			fmt.Fprintf(&b, "\n  %s", line)
		}
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				detail(v.GetField(), v.GetDescription())
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				detail(v.GetSubject(), v.GetDescription())
			}
		case *errdetails.RetryInfo:
			fmt.Fprintf(&b, "\n  retry after %v", d.GetRetryDelay().AsDuration())
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		fmt.Fprintf(&b, "\n  is a pxperf server running at %s (--server, PXPERF_SERVER), using TLS exactly when this client does (--tls, --tls-ca)?", c.server)
	case codes.Unauthenticated:
		b.WriteString("\n  give a token with PXPERF_TOKEN or --token")
	case codes.DeadlineExceeded:
		fmt.Fprintf(&b, "\n  no answer within --timeout %v", c.timeout)
	}
	return &exitError{code: codeExit(st.Code()), err: errors.New(b.String())}
}

// codeName returns the canonical name of a status code, as in the AIPs:
// NOT_FOUND rather than NotFound.
func codeName(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && 'A' <= r && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteString(strings.ToUpper(string(r)))
	}
	return b.String()
}

// parseFilter parses a --filter value; a syntax error is a usage error
// that shows where.
func parseFilter(s string) (*pxperfv1.Filter, error) {
	f, err := filter.Parse(s)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("--filter: %w", err)}
	}
	return f, nil
}

// writeJSON writes m as protojson with the proto field names (as the
// archive files and config files have them): indented, or on one line.
func writeJSON(w io.Writer, m proto.Message, indent bool) error {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	if indent {
		opts.Multiline, opts.Indent = true, "  "
	}
	b, err := opts.Marshal(m)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// entryLine formats an entry for people: id, start time, method, status,
// total duration, bytes received, url, and the error if any.
func entryLine(e *pxperfv1.Entry) string {
	st := "-"
	switch {
	case e.GetStatusCode() != 0:
		st = fmt.Sprint(e.GetStatusCode())
	case e.GetError().GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED:
		st = "ERR"
	case e.GetState() == pxperfv1.EntryState_ENTRY_STATE_PENDING:
		st = "..."
	}
	dur := "-"
	if t := e.GetTimings().GetTotal(); t != nil {
		dur = fmt.Sprintf("%.1fms", float64(t.AsDuration())/float64(time.Millisecond))
	}
	line := fmt.Sprintf("%-6d %s %-7s %-3s %10s %7s %s", e.GetId(),
		e.GetStartTime().AsTime().Local().Format("15:04:05.000"),
		e.GetMethod(), st, dur, humanBytes(e.GetBytesReceived()), e.GetUrl())
	if err := e.GetError(); err.GetKind() != pxperfv1.ErrorKind_ERROR_KIND_UNSPECIFIED {
		kind := strings.ToLower(strings.TrimPrefix(err.GetKind().String(), "ERROR_KIND_"))
		line += fmt.Sprintf("  (%s: %s)", kind, err.GetMessage())
	}
	return line
}

// humanBytes formats n bytes briefly: 512B, 1.5k, 3.2M, 1.1G.
func humanBytes[T int64 | uint64](n T) string {
	f := float64(n)
	switch {
	case f < 1024:
		return fmt.Sprintf("%dB", n)
	case f < 1<<20:
		return fmt.Sprintf("%.1fk", f/(1<<10))
	case f < 1<<30:
		return fmt.Sprintf("%.1fM", f/(1<<20))
	}
	return fmt.Sprintf("%.1fG", f/(1<<30))
}
