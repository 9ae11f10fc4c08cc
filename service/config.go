package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/perf/hub"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// UpdateConfig implements pxperfv1.PerformanceServiceServer. It merges the
// fields named by the mask into the effective config, validates the result
// as a whole, refuses changes to fields that are not live, and only then
// applies it: nothing is half-applied.
func (s *Service) UpdateConfig(_ context.Context, req *pxperfv1.UpdateConfigRequest) (*pxperfv1.UpdateConfigResponse, error) {
	paths := req.GetUpdateMask().GetPaths()
	next, err := s.engine.Update(paths, func(old *pxperfv1.Config) (*pxperfv1.Config, error) {
		next := proto.CloneOf(old)
		// A private copy: next takes values from it, and must share
		// nothing with the request.
		src := &pxperfv1.Config{}
		if req.GetConfig() != nil {
			src = proto.CloneOf(req.GetConfig())
		}
		for i, path := range paths {
			if err := config.ApplyPath(next.ProtoReflect(), src.ProtoReflect(), path); err != nil {
				return nil, invalidField(fmt.Sprintf("update_mask.paths[%d]", i), err.Error())
			}
		}
		if err := checkValid(s.validator, next, "config", "invalid config"); err != nil {
			return nil, err
		}
		if changed := config.StartOnlyChanges(old, next); len(changed) > 0 {
			return nil, notLiveError(changed)
		}
		if dropped := config.DroppedRedactions(old, next); len(dropped) > 0 {
			return nil, redactionError(dropped)
		}
		return next, nil
	})
	if errors.Is(err, hub.ErrInvalidConfig) {
		return nil, invalidField("config.throttle", err.Error())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pxperfv1.UpdateConfigResponse{Config: proto.CloneOf(next)}, nil
}

// OnConfigChange registers fn to be called with the new effective config
// after each successful UpdateConfig. fn must not modify it.
func (s *Service) OnConfigChange(fn func(*pxperfv1.Config)) { s.engine.OnConfigChange(fn) }

// redactionError is FAILED_PRECONDITION for an update that would stop
// redacting headers.
func redactionError(headers []string) error {
	pf := &errdetails.PreconditionFailure{}
	for _, h := range headers {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
			Type:        "REDACTION",
			Subject:     "config.memory.redact_headers",
			Description: "header " + h + " is redacted: it can be added over RPC, never removed; remove it from the config file and restart",
		})
	}
	st := status.Newf(codes.FailedPrecondition, "config.memory.redact_headers: %s would no longer be redacted; redaction can be extended live but not removed (nothing was changed)", strings.Join(headers, ", "))
	if d, err := st.WithDetails(pf); err == nil {
		st = d
	}
	return st.Err()
}

// notLiveError is FAILED_PRECONDITION naming fields that apply at start
// only, with a PreconditionFailure detail.
func notLiveError(fields []string) error {
	pf := &errdetails.PreconditionFailure{}
	for _, f := range fields {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
			Type:        "NOT_LIVE",
			Subject:     "config." + f,
			Description: "applies at start only: restart the server with the new value",
		})
	}
	st := status.Newf(codes.FailedPrecondition, "config.%s cannot change while the server runs; restart it with the new value (nothing was changed)", strings.Join(fields, ", config."))
	if d, err := st.WithDetails(pf); err == nil {
		st = d
	}
	return st.Err()
}
