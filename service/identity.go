package service

import (
	"context"

	"github.com/pxperf/pxperf/auth"
)

// identityName is the authenticated identity of a call, or "" when auth is
// off.
func identityName(ctx context.Context) string {
	id, _ := auth.FromContext(ctx)
	return id.Name
}
