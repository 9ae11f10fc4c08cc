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
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
//	   in part), or its replay got no response; health: the server is not
//	   SERVING, or does not know the --service
//	2  usage: unknown command or flag, bad argument, value or filter
//	   (cobra's flag and argument errors included)
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

// cli is what every command is given: the environment and the standard
// streams, and what the command line did with them.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// helped records that a help text was asked for and shown: cobra then
	// returns nil, and run returns flag.ErrHelp instead, as it did before
	// cobra, so that callers can tell help from a command that ran.
	helped bool
}

// Annotations of a command that [cli.writeUsage] reads.
const (
	// annUsage is the whole help text of the root and of the groups.
	annUsage = "pxperf/usage"
	// annFlags heads a command's list of flags.
	annFlags = "pxperf/flags"
	// annExamples heads a command's examples; "Examples" when unset.
	annExamples = "pxperf/examples"
)

// helpWidth is the width help texts wrap flag descriptions at.
const helpWidth = 100

// connNote heads the flags of a client command.
const connNote = "Flags (flags and arguments may be mixed; the connection flags --server, --token,\n--tls, --tls-ca, --client-cert, --client-key and --timeout also read " + connEnvNames + ")"

// run builds the command tree for this one call, with cobra, and runs
// args with it. A usage error has exit code 2; --help returns flag.ErrHelp.
func (c *cli) run(ctx context.Context, args []string) error {
	if args == nil {
		// cobra reads os.Args when it is given nil.
		args = []string{}
	}
	root := c.root()
	root.SetArgs(args)
	root.SetIn(c.stdin)
	// Completion scripts and __complete answers go to stdout; help and
	// usage go to stderr, written by writeUsage.
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		return err
	}
	if c.helped {
		return flag.ErrHelp
	}
	return nil
}

// root returns the pxperf command with every command under it.
func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "pxperf",
		Short: "keeps a live view of a busy HTTP proxy's traffic responsive",
		// Any argument reaches RunE, which names an unknown command in the
		// words it always has.
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		Annotations:       map[string]string{annUsage: usage},
		// Errors are printed once, by main; usage by writeUsage.
		SilenceErrors: true,
		SilenceUsage:  true,
		// pxperf completion is ours, with examples and a usage error for
		// an unknown shell.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(cmd *cobra.Command, args []string) error {
			c.writeUsage(cmd)
			if len(args) == 0 {
				return usageError("no command given")
			}
			return usageError("unknown command %q", args[0])
		},
	}
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		c.helped = true
		c.writeUsage(cmd)
	})
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		c.writeUsage(cmd)
		return nil
	})
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		c.writeUsage(cmd)
		return &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", commandName(cmd), err)}
	})
	root.SetHelpCommand(c.helpCommand(root))
	root.AddCommand(
		c.serve(),
		c.publish(),
		c.tail(),
		c.list(),
		c.get(),
		c.replay(),
		c.stats(),
		c.watch(),
		c.group("config", "read or change the config live",
			c.configGet(), c.configSet()),
		c.optimize(),
		c.group("resources", "see and end tracked streams and connections",
			c.resourcesList(), c.resourcesClose()),
		c.group("archive", "archive files; entries read back; HAR export",
			c.archiveFiles(), c.archiveRead(), c.archiveExport()),
		c.completion(),
		c.version(),
		c.health(),
	)
	return root
}

// helpCommand returns pxperf help [COMMAND…], which shows the help of
// COMMAND, or of pxperf when there is no such command. It replaces
// cobra's, which writes to stdout and says "Unknown help topic" there.
func (c *cli) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:         "help [COMMAND…]",
		Short:       "the help of a command: pxperf help config get is pxperf config get --help",
		Long:        "Shows the help of COMMAND, as COMMAND --help does; of pxperf without one.",
		Example:     examples([]string{"help", "help config get"}),
		Args:        cobra.ArbitraryArgs,
		Annotations: map[string]string{annFlags: "Flags"},
		ValidArgsFunction: func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var out []cobra.Completion
			if cmd, rest, err := root.Find(args); err == nil && len(rest) == 0 {
				for _, sub := range cmd.Commands() {
					if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
						out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
					}
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		Run: func(_ *cobra.Command, args []string) {
			cmd, _, err := root.Find(args)
			if err != nil {
				cmd = root
			}
			c.helped = true
			c.writeUsage(cmd)
		},
	}
}

// commandName is cmd's path without "pxperf ", for messages: "config get".
func commandName(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Name()
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// writeUsage writes cmd's help to stderr: the root's and the groups' text
// as it is, a command's usage line, summary, examples and flags.
func (c *cli) writeUsage(cmd *cobra.Command) {
	w := c.stderr
	if u := cmd.Annotations[annUsage]; u != "" {
		fmt.Fprint(w, u)
		return
	}
	fmt.Fprintf(w, "Usage: %s\n\n", cmd.UseLine())
	if cmd.Long != "" {
		fmt.Fprintf(w, "%s\n\n", cmd.Long)
	}
	heading := cmd.Annotations[annExamples]
	if heading == "" {
		heading = "Examples"
	}
	fmt.Fprintf(w, "%s:\n%s\n", heading, cmd.Example)
	note := cmd.Annotations[annFlags]
	if note == "" {
		note = "Flags"
	}
	fmt.Fprintf(w, "\n%s:\n%s", note, cmd.Flags().FlagUsagesWrapped(helpWidth))
}

// group returns the command name, whose commands are subs, in that order
// in its help.
func (c *cli) group(name, short string, subs ...*cobra.Command) *cobra.Command {
	var help strings.Builder
	fmt.Fprintf(&help, "Usage: pxperf %s COMMAND [flags]\n\nCommands:\n", name)
	for _, s := range subs {
		fmt.Fprintf(&help, "  %-8s %s\n", s.Name(), s.Short)
	}
	fmt.Fprintf(&help, "\nExample:\n  pxperf %s %s --help\n", name, subs[0].Name())
	g := &cobra.Command{
		Use:               name + " COMMAND",
		Short:             short,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		Annotations:       map[string]string{annUsage: help.String()},
		// Reached with no command, or one that is not among subs.
		RunE: func(cmd *cobra.Command, args []string) error {
			c.writeUsage(cmd)
			switch {
			case len(args) == 0:
				return usageError("%s: no command given", name)
			case args[0] == "help":
				c.helped = true
				return nil
			}
			return usageError("%s: unknown command %q", name, args[0])
		},
	}
	g.AddCommand(subs...)
	return g
}

// command describes a client command: its help and its arguments.
type command struct {
	use      string   // the name and what follows it, for example "get [flags] ID"
	short    string   // one line, for its group's help and for completion
	summary  string   // what it does, for its help
	examples []string // command lines, without "pxperf "
	// minArgs and maxArgs bound the positional arguments (maxArgs < 0:
	// any number).
	minArgs, maxArgs int
}

// command returns the cobra command spec describes, with the connection
// flags, which it also returns. Its usage, printed on --help and on a
// usage error, shows the synopsis, summary, examples and flags. Flags and
// positional arguments mix ("get 12 --json"); "--" ends the flags.
// Set RunE with [cli.runE].
func (c *cli) command(spec command) (*cobra.Command, *connFlags) {
	cmd := &cobra.Command{
		Use:         spec.use,
		Short:       spec.short,
		Long:        spec.summary,
		Example:     examples(spec.examples),
		Args:        c.nargs(spec.minArgs, spec.maxArgs),
		Annotations: map[string]string{annFlags: connNote},
	}
	if spec.maxArgs == 0 {
		// Without this cobra would offer file names.
		cmd.ValidArgsFunction = cobra.NoFileCompletions
	}
	return cmd, addConnFlags(cmd.Flags())
}

// examples formats command lines, without "pxperf ", for a command's
// Example.
func examples(lines []string) string {
	var b strings.Builder
	for i, ex := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "  pxperf %s", ex)
	}
	return b.String()
}

// nargs checks that there are between minArgs and maxArgs positional
// arguments (maxArgs < 0: any number); if not, it shows the usage and
// returns a usage error.
func (c *cli) nargs(minArgs, maxArgs int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < minArgs:
			c.writeUsage(cmd)
			return usageError("%s: missing argument", commandName(cmd))
		case maxArgs >= 0 && len(args) > maxArgs:
			c.writeUsage(cmd)
			return usageError("%s: unexpected argument %q", commandName(cmd), args[maxArgs])
		}
		return nil
	}
}

// runE returns a cobra RunE that applies the environment to conn's flags
// (a bad value is a usage error) and then runs fn with the positional
// arguments.
func (c *cli) runE(conn *connFlags, fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := conn.applyEnv(cmd.Flags(), c.getenv); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		return fn(cmd.Context(), args)
	}
}

// connEnvNames lists the environment variables of the connection flags,
// for help texts.
const connEnvNames = "PXPERF_<NAME>"

// connFlagNames are the names of the connection flags.
var connFlagNames = []string{"server", "token", "tls", "tls-ca", "client-cert", "client-key", "timeout"}

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
func addConnFlags(fs *pflag.FlagSet) *connFlags {
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

// applyEnv sets each connection flag not given in fs from PXPERF_<NAME>:
// a command's other flags (--filter, --count) are not read from the
// environment.
func (c *connFlags) applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	for _, name := range connFlagNames {
		if err := setFromEnv(fs, name, getenv); err != nil {
			return err
		}
	}
	return nil
}

// shortTimeout returns --timeout when it was given (on the command line
// or in the environment), else d: for calls that should fail fast by
// default, such as version's and health's.
func (c *connFlags) shortTimeout(fs *pflag.FlagSet, d time.Duration) time.Duration {
	if fs.Changed("timeout") {
		return c.timeout
	}
	return d
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
