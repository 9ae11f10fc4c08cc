package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/spf13/cobra"
)

// configGet returns pxperf config get: GetConfig, whole or by path.
func (c *cli) configGet() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "get [flags] [PATH…]",
		short: "print the effective config, or the values of some fields",
		summary: `Prints the server's effective config as indented protojson or, given field
paths (memory.max_entries) or groups (throttle), each field as PATH = VALUE, in
the form config set takes.`,
		examples: []string{
			"config get",
			"config get memory.max_entries throttle",
		},
		minArgs: 0,
		maxArgs: -1,
	})
	cmd.ValidArgsFunction = completeConfigGet
	cmd.RunE = c.runE(conn, func(ctx context.Context, paths []string) error {
		// Check the paths, and expand groups into their fields, before calling
		// the server.
		var fields []string
		for _, p := range paths {
			ps, err := client.ConfigFieldPaths(p)
			if err != nil {
				return usageError("config get: %v", err)
			}
			fields = append(fields, ps...)
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		uctx, cancel := conn.unary(ctx)
		defer cancel()
		cfg, err := cl.GetConfig(uctx)
		if err != nil {
			return conn.rpcError("config get", err)
		}
		if len(paths) == 0 {
			return writeJSON(c.stdout, cfg, true)
		}
		if err := writeFields(c.stdout, cfg, fields); err != nil {
			return failure("config get: %v", err)
		}
		return nil
	})
	return cmd
}

// configSet returns pxperf config set: UpdateConfig of the paths given.
func (c *cli) configSet() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "set [flags] PATH=VALUE…",
		short: "change config fields live: PATH=VALUE…",
		summary: `Changes config fields live, all in one UpdateConfig (validated as a whole:
nothing is half-applied), and prints their new effective values. PATH is a
field path as config get shows it (JSON names work too). VALUE is a number,
true/false, an enum name (THROTTLE_MODE_FIXED, or just fixed), a Go duration
(250ms, 1h30m), or for lists a comma list (empty or "" clears). A line config
get prints is a PATH=VALUE. Fields that cannot change live (server.*,
logs.directory…) are refused with exit code 1.`,
		examples: []string{
			"config set memory.max_entries=5000 throttle.mode=THROTTLE_MODE_FIXED",
			"config set throttle.batch_timeout=50ms logs.policies=count,size",
		},
		minArgs: 1,
		maxArgs: -1,
	})
	cmd.ValidArgsFunction = completeConfigSet
	cmd.RunE = c.runE(conn, func(ctx context.Context, assigns []string) error {
		cfg, paths, err := parseAssignments(assigns)
		if err != nil {
			return usageError("config set: %v", err)
		}
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		uctx, cancel := conn.unary(ctx)
		defer cancel()
		resp, err := cl.Service().UpdateConfig(uctx, &pxperfv1.UpdateConfigRequest{
			Config:     cfg,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		})
		if err != nil {
			return conn.rpcError("config set", err)
		}
		if err := writeFields(c.stdout, resp.GetConfig(), paths); err != nil {
			return failure("config set: %v", err)
		}
		return nil
	})
	return cmd
}

// parseAssignments reads config set's PATH=VALUE arguments, parsed by
// [client.ParseConfigField], into a config and its update mask: the paths
// with proto field names, in the order given. A line config get prints,
// "PATH = VALUE", is one such argument.
func parseAssignments(args []string) (*pxperfv1.Config, []string, error) {
	cfg := &pxperfv1.Config{}
	paths := make([]string, 0, len(args))
	for _, a := range args {
		path, value, ok := strings.Cut(a, "=")
		if !ok {
			return nil, nil, fmt.Errorf("%q: want PATH=VALUE, for example memory.max_entries=5000", a)
		}
		path, err := client.ParseConfigField(cfg, strings.TrimSpace(path), value)
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(paths, path) {
			return nil, nil, fmt.Errorf("%s is given twice", path)
		}
		paths = append(paths, path)
	}
	return cfg, paths, nil
}

// writeFields writes the single fields of cfg at paths, as
// [client.ConfigFieldPaths] lists them, one "PATH = VALUE" line each: the
// form config set reads. A blank value (an empty string or list) is
// written "" so that the line does not look cut short.
func writeFields(w io.Writer, cfg *pxperfv1.Config, paths []string) error {
	for _, p := range paths {
		v, err := client.FormatConfigField(cfg, p)
		if err != nil {
			return err
		}
		if v == "" {
			v = `""`
		}
		if _, err := fmt.Fprintf(w, "%s = %s\n", p, v); err != nil {
			return err
		}
	}
	return nil
}
