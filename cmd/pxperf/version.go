package main

// pxperf version: this client's build, and the server's.

import (
	"context"
	"fmt"
	"io"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/buildinfo"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// versionTimeout bounds the call for the server's build when --timeout
// is not given: version should answer at once.
const versionTimeout = 3 * time.Second

// outputFormats are the values of version's --output.
var outputFormats = []string{"text", "json"}

// version returns pxperf version.
func (c *cli) version() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "version [flags]",
		short: "this client's build, and the server's",
		summary: `Prints this client's build: the first line is "pxperf VERSION" (the release
or module version, "(devel)" for a build from a checkout), then the VCS
revision and its time (-dirty when the checkout had changes) and the Go
version. Then the same for the server at --server, which reports its build
in its stats, unless --client. With --output json: one object with "client"
and "server" (proto field names). When the server cannot be reached within
--timeout (3s unless given), the client's build is printed all the same,
and the exit code is 3 (4 when not allowed), as for every client command.`,
		examples: []string{
			"version",
			"version --client",
			"version --output json | jq -r .server.version",
		},
	})
	fs := cmd.Flags()
	clientOnly := fs.Bool("client", false, "print this client's build only; do not call the server")
	output := fs.StringP("output", "o", "text", "output format: text or json")
	completeValues(cmd, "output", outputFormats...)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		if *output != "text" && *output != "json" {
			return usageError("version: --output %q: give text or json", *output)
		}
		local := clientInfo(buildinfo.Read())
		var server *pxperfv1.ServerInfo
		var callErr error
		if !*clientOnly {
			server, callErr = c.serverInfo(ctx, conn, conn.shortTimeout(fs, versionTimeout))
		}
		var err error
		if *output == "json" {
			err = writeVersionJSON(c.stdout, local, server)
		} else {
			writeVersion(c.stdout, "", local)
			switch {
			case server != nil:
				writeVersion(c.stdout, "server "+conn.server+": ", server)
			case !*clientOnly && callErr == nil:
				// A server from before Stats.server.
				fmt.Fprintf(c.stdout, "server %s: does not report its build (older than this client)\n", conn.server)
			}
		}
		if callErr != nil {
			return callErr
		}
		if err != nil {
			return failure("version: %w", err)
		}
		return nil
	})
	return cmd
}

// clientInfo returns this binary's build as a ServerInfo, the message in
// which the server reports its own.
func clientInfo(b buildinfo.Info) *pxperfv1.ServerInfo {
	info := &pxperfv1.ServerInfo{Version: b.Version, Revision: b.Revision, Modified: b.Modified, GoVersion: b.GoVersion}
	if !b.RevisionTime.IsZero() {
		info.RevisionTime = timestamppb.New(b.RevisionTime)
	}
	return info
}

// serverInfo returns the build of the server conn names, from its stats,
// waiting at most timeout (0: no limit); nil when the server does not
// report it.
func (c *cli) serverInfo(ctx context.Context, conn *connFlags, timeout time.Duration) (*pxperfv1.ServerInfo, error) {
	cl, err := conn.dial()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	cancel := context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	resp, err := cl.Service().GetStats(ctx, &pxperfv1.GetStatsRequest{})
	if err != nil {
		return nil, conn.rpcError("version: the server could not be reached", err)
	}
	return resp.GetStats().GetServer(), nil
}

// writeVersion writes a build for people: "pxperf VERSION" after prefix,
// then its revision and Go version, indented, when known.
func writeVersion(w io.Writer, prefix string, info *pxperfv1.ServerInfo) {
	fmt.Fprintf(w, "%spxperf %s\n", prefix, info.GetVersion())
	if rev := (buildinfo.Info{Revision: info.GetRevision(), Modified: info.GetModified()}).Short(); rev != "" {
		fmt.Fprintf(w, "  revision %s", rev)
		if t := info.GetRevisionTime(); t != nil {
			fmt.Fprintf(w, " (%s)", t.AsTime().UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if g := info.GetGoVersion(); g != "" {
		fmt.Fprintf(w, "  go %s\n", g)
	}
}

// writeVersionJSON writes {"client": …, "server": …} with each build in
// protojson; "server" is left out when there is none.
func writeVersionJSON(w io.Writer, local, server *pxperfv1.ServerInfo) error {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	b, err := opts.Marshal(local)
	if err != nil {
		return err
	}
	out := `{"client":` + string(b)
	if server != nil {
		if b, err = opts.Marshal(server); err != nil {
			return err
		}
		out += `,"server":` + string(b)
	}
	_, err = fmt.Fprintln(w, out+"}")
	return err
}
