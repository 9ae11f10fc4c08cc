package service

import (
	"context"
	"fmt"
	"testing"

	"github.com/pxperf/pxperf/cluster"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The cluster's errors reach producers with the code that says what to
// do: retry, make the entry smaller, or give the cluster its own stream.
func TestClusterErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("%w: no acknowledgement: %w", cluster.ErrUnavailable, context.DeadlineExceeded), codes.Unavailable},
		{fmt.Errorf("entry 3 is 2000000 bytes encoded: %w", cluster.ErrTooLarge), codes.ResourceExhausted},
		{fmt.Errorf("stream PXPERF: %w", cluster.ErrForeign), codes.FailedPrecondition},
		{fmt.Errorf("%w: retry", cluster.ErrConfigChanged), codes.Aborted},
	} {
		if got := status.Code(toStatus(tc.err)); got != tc.want {
			t.Errorf("toStatus(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
