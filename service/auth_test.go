package service_test

import (
	"context"
	"testing"

	"github.com/pxperf/pxperf/auth"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/service"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// With tokens, each real RPC needs its role: view reads, publish
// publishes, admin changes; health stays open.
func TestAuthRoles(t *testing.T) {
	const (
		viewTok    = "view-token-0123456789"
		publishTok = "publish-token-0123456789"
		adminTok   = "admin-token-0123456789"
	)
	tokens, err := auth.NewTokens(map[string]auth.Identity{
		viewTok:    {Name: "ui", Roles: []auth.Role{auth.RoleView}},
		publishTok: {Name: "proxy", Roles: []auth.Role{auth.RolePublish}},
		adminTok:   {Name: "ops", Roles: []auth.Role{auth.RoleAdmin}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, nil, service.Options{Tokens: tokens})
	ctx := testContext(t)
	svc := h.client.Service()
	calls := map[string]func(context.Context) error{
		"Publish": func(ctx context.Context) error {
			_, err := svc.Publish(ctx, &pxperfv1.PublishRequest{Entries: entriesN(1)})
			return err
		},
		"GetStats": func(ctx context.Context) error {
			_, err := svc.GetStats(ctx, &pxperfv1.GetStatsRequest{})
			return err
		},
		"UpdateConfig": func(ctx context.Context) error {
			_, err := svc.UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
				Config:     &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 500}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"memory.max_entries"}},
			})
			return err
		},
		"CloseResource": func(ctx context.Context) error {
			_, err := svc.CloseResource(ctx, &pxperfv1.CloseResourceRequest{Id: "no-such-resource"})
			return err
		},
	}
	tests := []struct {
		token string
		want  map[string]codes.Code
	}{
		{"", map[string]codes.Code{"Publish": codes.Unauthenticated, "GetStats": codes.Unauthenticated, "UpdateConfig": codes.Unauthenticated, "CloseResource": codes.Unauthenticated}},
		{"not-a-known-token-xyz", map[string]codes.Code{"Publish": codes.Unauthenticated, "GetStats": codes.Unauthenticated, "UpdateConfig": codes.Unauthenticated, "CloseResource": codes.Unauthenticated}},
		{viewTok, map[string]codes.Code{"Publish": codes.PermissionDenied, "GetStats": codes.OK, "UpdateConfig": codes.PermissionDenied, "CloseResource": codes.PermissionDenied}},
		{publishTok, map[string]codes.Code{"Publish": codes.OK, "GetStats": codes.PermissionDenied, "UpdateConfig": codes.PermissionDenied, "CloseResource": codes.PermissionDenied}},
		// Admin passes auth; CloseResource then finds no such resource.
		{adminTok, map[string]codes.Code{"Publish": codes.OK, "GetStats": codes.OK, "UpdateConfig": codes.OK, "CloseResource": codes.NotFound}},
	}
	for _, tt := range tests {
		callCtx := ctx
		if tt.token != "" {
			callCtx = metadata.AppendToOutgoingContext(ctx, "authorization", "bearer "+tt.token)
		}
		for name, want := range tt.want {
			if got := status.Code(calls[name](callCtx)); got != want {
				t.Errorf("token %q: %s = %v, want %v", tt.token, name, got, want)
			}
		}
	}
	hc := healthpb.NewHealthClient(h.rawConn(t))
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health without a token: %v", err)
	}
}
