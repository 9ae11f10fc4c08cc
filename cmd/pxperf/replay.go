package main

// pxperf replay, and pxperf get --curl: a recorded request sent again, or
// written as a curl command, by package replay.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pxperf/pxperf/auth"
	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/replay"
	"golang.org/x/net/http/httpguts"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// headerFlag collects repeated -H 'Name: value' flags.
type headerFlag struct{ h http.Header }

// String lists the headers given, for the flag's help.
func (f *headerFlag) String() string {
	if f == nil || len(f.h) == 0 {
		return ""
	}
	var b strings.Builder
	for name, vs := range f.h {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s; ", name, v)
		}
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// Type names the value in the flag's help.
func (f *headerFlag) Type() string { return "'Name: value'" }

// Set adds the header s, 'Name: value'.
func (f *headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	switch {
	case !ok || name == "":
		return fmt.Errorf("%q: want 'Name: value'", s)
	case !httpguts.ValidHeaderFieldName(name):
		return fmt.Errorf("%q: %q is not a header name", s, name)
	case !httpguts.ValidHeaderFieldValue(value):
		return fmt.Errorf("%q: the value has characters HTTP does not allow", s)
	}
	if f.h == nil {
		f.h = http.Header{}
	}
	key := textproto.CanonicalMIMEHeaderKey(name)
	f.h[key] = append(f.h[key], value)
	return nil
}

// sendFlags say how a recorded request is sent again: the flags replay
// and get --curl share.
type sendFlags struct {
	header    headerFlag
	through   bool
	proxy     string
	truncated bool
}

// define defines the flags of f on fs.
func (f *sendFlags) define(fs *pflag.FlagSet) {
	// -H as curl has it; pflag wants a long name too, so --H also works,
	// as it did with package flag.
	fs.VarP(&f.header, "H", "H", "a header to send, 'Name: value', instead of the recorded ones of that name (redacted ones too) or besides them; 'Name:' leaves it out; repeatable")
	fs.BoolVar(&f.through, "through-proxy", false, "through the server's recording proxy (proxy.listen_address), which records the exchange")
	fs.StringVar(&f.proxy, "proxy", "", "the recording proxy, http://host:port, with [name:token@] when the server has --tokens; implies --through-proxy (default: the server's proxy.listen_address)")
	fs.BoolVar(&f.truncated, "truncated-body", false, "send what was recorded of a request body that was not recorded whole")
}

// curlFlags are get's flags for --curl.
type curlFlags struct {
	curl bool
	sendFlags
}

// addCurlFlags defines get's --curl and the flags that go with it.
func addCurlFlags(fs *pflag.FlagSet) *curlFlags {
	f := &curlFlags{}
	fs.BoolVar(&f.curl, "curl", false, "print the request as a curl command line (POSIX shell) instead of the entry; redacted headers left out are named in a comment")
	f.define(fs)
	return f
}

// used reports whether any of the curl flags was given.
func (f *curlFlags) used() bool {
	return f.curl || f.through || f.proxy != "" || f.truncated || len(f.header.h) > 0
}

// printCurl implements get --curl: it prints e's request as a curl
// command line.
func (c *cli) printCurl(ctx context.Context, cl *client.Client, conn *connFlags, e *pxperfv1.Entry, f *curlFlags) error {
	if !f.curl {
		return usageError("get: -H, --through-proxy, --proxy and --truncated-body go with --curl")
	}
	px, err := c.recordingProxy(ctx, cl, conn, nil, &f.sendFlags, "get")
	if err != nil {
		return err
	}
	cmd, err := replay.Curl(e, replay.CurlOptions{Header: f.header.h, TruncatedBody: f.truncated, Proxy: px})
	if err != nil {
		return replayError("get", e.GetId(), err)
	}
	_, err = fmt.Fprint(c.stdout, cmd)
	return err
}

// replayError describes why entry id cannot be sent again; exit code 1.
func replayError(op string, id uint64, err error) error {
	hint := ""
	if errors.Is(err, replay.ErrTruncatedBody) {
		hint = "; --truncated-body sends the part that was"
	}
	return failure("%s: entry %d: %v%s", op, id, err, hint)
}

// recordingProxy returns the URL of the recording proxy that f asks for:
// --proxy, or the server's proxy.listen_address with --through-proxy, read
// from cfg, or from the server when cfg is nil; nil when f asks for none.
func (c *cli) recordingProxy(ctx context.Context, cl *client.Client, conn *connFlags, cfg *pxperfv1.Config, f *sendFlags, op string) (*url.URL, error) {
	if f.proxy != "" {
		s := f.proxy
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, usageError("%s: --proxy %q: want http://host:port", op, f.proxy)
		}
		return u, nil
	}
	if !f.through {
		return nil, nil
	}
	if cfg == nil {
		uctx, cancel := conn.unary(ctx)
		defer cancel()
		var err error
		if cfg, err = cl.GetConfig(uctx); err != nil {
			return nil, conn.rpcError(op, err)
		}
	}
	u, err := proxyAddress(conn.server, cfg.GetProxy().GetListenAddress())
	if err != nil {
		return nil, failure("%s: --through-proxy: %v", op, err)
	}
	return u, nil
}

// proxyAddress returns the URL at which a client of the server at server
// (host:port) reaches the server's recording proxy, which listens on
// listen: its own address, or the server's host when it listens on every
// interface.
func proxyAddress(server, listen string) (*url.URL, error) {
	if listen == "" {
		return nil, errors.New("the server runs no recording proxy (proxy.listen_address is empty): start it with serve --proxy-listen, or give --proxy URL")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("the server's proxy.listen_address %q is not host:port; give --proxy URL", listen)
	}
	if port == "0" {
		return nil, fmt.Errorf("the server's recording proxy listens on %s, a port picked at start that its config does not give; give --proxy URL (the server logs it: \"proxy serving\" addr=…)", listen)
	}
	serverHost, _, err := net.SplitHostPort(server)
	if err != nil {
		serverHost = server
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || ip != nil && ip.IsUnspecified():
		host = serverHost
	case isLoopback(host) && !isLoopback(serverHost):
		return nil, fmt.Errorf("the server's recording proxy listens on %s, the server's own loopback, which this machine cannot reach; give --proxy URL", listen)
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, nil
}

// isLoopback reports whether host, a name or an address, is this machine.
func isLoopback(host string) bool {
	ok, _ := auth.IsLoopback(net.JoinHostPort(host, "0"))
	return ok
}

// replay returns pxperf replay: an entry's request sent again, and the
// new exchange recorded.
func (c *cli) replay() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "replay [flags] ID",
		short: "send a recorded request again (get ID --curl prints it)",
		summary: `Sends the request recorded as entry ID again (method, URL, headers and
request body) and records the new exchange as an entry whose replay_of is ID;
prints that entry's line (id, time, method, status, duration, bytes received,
url). By default the request goes directly and this command publishes the
entry. With --through-proxy it goes through the server's recording proxy
(proxy.listen_address, or --proxy URL), which records the exchange itself,
linked by the request header Pxperf-Replay-Of that it takes out.
Headers redacted when recorded (Authorization, Cookie, …) are left out and
named on stderr: give them again with -H. A request body recorded in part is
refused unless --truncated-body; a CONNECT tunnel cannot be replayed.
Redirects are not followed. --timeout bounds each call and the exchange.
Exit code 1 when the exchange got no response, or ended early (the entry
says why). To see the request as a curl command: pxperf get ID --curl.`,
		examples: []string{
			"replay 42",
			"replay 42 -H 'Authorization: Bearer abc123' -H 'Cookie: session=1'",
			"replay 42 --through-proxy",
			"replay 42 --proxy http://127.0.0.1:3128 --timeout 30s",
		},
		minArgs: 1,
		maxArgs: 1,
	})
	fs := cmd.Flags()
	f := &sendFlags{}
	f.define(fs)
	cmd.ValidArgsFunction = c.completeEntryID(conn)
	cmd.RunE = c.runE(conn, func(ctx context.Context, pos []string) error {
		id, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil || id == 0 {
			return usageError("replay: %q is not an entry id (a number from 1)", pos[0])
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		e, cfg, err := c.replayed(ctx, cl, conn, id)
		if err != nil {
			return err
		}
		px, err := c.recordingProxy(ctx, cl, conn, cfg, f, "replay")
		if err != nil {
			return err
		}
		opts := replay.Options{
			Header:        f.header.h,
			TruncatedBody: f.truncated,
			Proxy:         px,
			Timeout:       conn.timeout,
			MaxBodySize:   int(cfg.GetMemory().GetMaxBodySize()),
		}
		// Checked before anything is sent, so that a refusal is not mixed up
		// with the note on headers.
		if _, err := replay.Request(ctx, e, opts); err != nil {
			return replayError("replay", id, err)
		}
		if left := replay.LeftOut(e, f.header.h); len(left) > 0 {
			fmt.Fprintf(c.stderr, "replay: left out, redacted when recorded: %s; give them again with -H 'Name: value'\n", strings.Join(left, ", "))
		}
		var got *pxperfv1.Entry
		if px != nil {
			got, err = c.replayThrough(ctx, cl, conn, e, opts)
		} else {
			got, err = c.replayDirect(ctx, cl, conn, e, opts)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, entryLine(got))
		if got.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED {
			return failure("replay: entry %d, the replay of %d, failed: %s", got.GetId(), id, got.GetError().GetMessage())
		}
		return nil
	})
	return cmd
}

// replayed returns entry id and the server's config, each with a call of
// its own.
func (c *cli) replayed(ctx context.Context, cl *client.Client, conn *connFlags, id uint64) (*pxperfv1.Entry, *pxperfv1.Config, error) {
	uctx, cancel := conn.unary(ctx)
	defer cancel()
	e, err := cl.GetEntry(uctx, id)
	if err != nil {
		return nil, nil, conn.rpcError("replay", err)
	}
	cctx, cancelConfig := conn.unary(ctx)
	defer cancelConfig()
	cfg, err := cl.GetConfig(cctx)
	if err != nil {
		return nil, nil, conn.rpcError("replay", err)
	}
	return e, cfg, nil
}

// replayDirect sends e's request directly and publishes the exchange; it
// returns the entry published, with its id.
func (c *cli) replayDirect(ctx context.Context, cl *client.Client, conn *connFlags, e *pxperfv1.Entry, opts replay.Options) (*pxperfv1.Entry, error) {
	got, err := replay.Do(ctx, e, opts)
	if err != nil {
		return nil, failure("replay: entry %d: %v", e.GetId(), err)
	}
	uctx, cancel := conn.unary(ctx)
	defer cancel()
	results, err := cl.Publish(uctx, got)
	if err != nil {
		return nil, conn.rpcError("replay: publish", err)
	}
	if r := results[0].GetRejection(); r != nil {
		return nil, failure("replay: the server rejected the new exchange's entry: %s", rejectionText(r))
	}
	got.Id = results[0].GetId()
	return got, nil
}

// replayThrough sends e's request through the recording proxy and returns
// the entry the proxy recorded of it, once complete. It watches the
// server's entries from before the request goes, so that the entry cannot
// slip by, and waits for it at most --timeout after the exchange.
func (c *cli) replayThrough(ctx context.Context, cl *client.Client, conn *connFlags, e *pxperfv1.Entry, opts replay.Options) (*pxperfv1.Entry, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.Service().Subscribe(sctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_Tail{Tail: 1}})
	if err != nil {
		return nil, conn.rpcError("replay: subscribe", err)
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil, conn.rpcError("replay: subscribe", err)
		}
		if msg.GetSnapshotEnd() != nil {
			break
		}
	}
	sent, err := replay.Do(ctx, e, opts)
	if err != nil {
		return nil, failure("replay: entry %d: %v", e.GetId(), err)
	}
	if sent.GetState() == pxperfv1.EntryState_ENTRY_STATE_FAILED && sent.GetStatusCode() == 0 {
		// No answer, from the proxy either: it may have recorded nothing.
		return nil, failure("replay: through the recording proxy at %s: %s", opts.Proxy.Redacted(), sent.GetError().GetMessage())
	}
	if conn.timeout > 0 {
		timer := time.AfterFunc(conn.timeout, cancel)
		defer timer.Stop()
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if sctx.Err() != nil && ctx.Err() == nil {
				return nil, failure("replay: the recording proxy at %s recorded no exchange with replay_of %d within --timeout %v; is it this server's proxy, and is it dropping entries (pxperf stats)?",
					opts.Proxy.Redacted(), e.GetId(), conn.timeout)
			}
			return nil, conn.rpcError("replay: subscribe", err)
		}
		b := msg.GetBatch()
		for _, got := range append(b.GetEntries(), b.GetUpdates()...) {
			if got.GetReplayOf() == e.GetId() && got.GetState() != pxperfv1.EntryState_ENTRY_STATE_PENDING {
				return got, nil
			}
		}
	}
}
