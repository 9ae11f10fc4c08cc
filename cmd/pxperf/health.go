package main

// pxperf health: the standard gRPC health check, for container health
// checks (HEALTHCHECK CMD ["/pxperf", "health"]) and scripts.

import (
	"context"
	"fmt"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// healthTimeout bounds the check when --timeout is not given: a health
// check that hangs is a failed one.
const healthTimeout = 3 * time.Second

// health returns pxperf health.
func (c *cli) health() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "health [flags]",
		short: "the server's gRPC health (for container health checks)",
		summary: `Asks the server at --server for its health with the standard gRPC health
check (grpc.health.v1.Health/Check) of --service, "" (the whole server) by
default, and prints the status: SERVING, NOT_SERVING (while it shuts down,
or, in cluster mode, while it cannot reach the cluster's stream), or
SERVICE_UNKNOWN. The check waits at most --timeout, 3s unless
given. It needs no token. Exit code 0 when SERVING, 1 when not (or the service
is unknown), 3 when the server cannot be reached.`,
		examples: []string{
			"health",
			"health --server pxperf:50051 --service pxperf.v1.PerformanceService",
		},
	})
	fs := cmd.Flags()
	service := fs.String("service", "", `the service to check, such as pxperf.v1.PerformanceService ("": the server as a whole)`)
	completeValues(cmd, "service", pxperfv1.PerformanceService_ServiceDesc.ServiceName)
	cmd.RunE = c.runE(conn, func(ctx context.Context, _ []string) error {
		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		if d := conn.shortTimeout(fs, healthTimeout); d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		resp, err := healthpb.NewHealthClient(cl.Conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
		st := resp.GetStatus()
		switch {
		case status.Code(err) == codes.NotFound:
			// The health service's answer for a service it does not know.
			st = healthpb.HealthCheckResponse_SERVICE_UNKNOWN
		case err != nil:
			return conn.rpcError("health", err)
		}
		fmt.Fprintln(c.stdout, st)
		if st != healthpb.HealthCheckResponse_SERVING {
			return failure("health: %s is %s", serviceName(*service), st)
		}
		return nil
	})
	return cmd
}

// serviceName names a health service for messages.
func serviceName(s string) string {
	if s == "" {
		return "the server"
	}
	return s
}
