package service

import (
	"context"
	"fmt"
	"slices"
	"strings"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// notLive are the config fields that apply at start only. UpdateConfig
// refuses to change them.
var notLive = []string{
	"server",
	"proxy",
	"logs.enabled",
	"logs.directory",
	"logs.queue_size",
}

// UpdateConfig implements pxperfv1.PerformanceServiceServer. It merges the
// fields named by the mask into the effective config, validates the result
// as a whole, refuses changes to fields that are not live, and only then
// applies it: nothing is half-applied.
func (s *Service) UpdateConfig(_ context.Context, req *pxperfv1.UpdateConfigRequest) (*pxperfv1.UpdateConfigResponse, error) {
	s.cfgMu.Lock() // one update at a time, so none is lost between read and write
	defer s.cfgMu.Unlock()
	old := s.config()
	next := proto.CloneOf(old)
	// A private copy: next takes values from it, and must share nothing
	// with the request.
	src := &pxperfv1.Config{}
	if req.GetConfig() != nil {
		src = proto.CloneOf(req.GetConfig())
	}
	for i, path := range req.GetUpdateMask().GetPaths() {
		if err := applyPath(next.ProtoReflect(), src.ProtoReflect(), path); err != nil {
			return nil, invalidField(fmt.Sprintf("update_mask.paths[%d]", i), err.Error())
		}
	}
	if fvs, err := violations(s.validator, next, "config"); err != nil {
		return nil, status.Errorf(codes.Internal, "validating config: %v", err)
	} else if len(fvs) > 0 {
		return nil, badRequest("invalid config: "+describe(fvs), fvs)
	}
	if changed := changedFields(old, next, notLive); len(changed) > 0 {
		return nil, notLiveError(changed)
	}
	if dropped := droppedRedactions(old, next); len(dropped) > 0 {
		return nil, redactionError(dropped)
	}
	hs := hubSettings(next.GetThrottle())
	if err := hs.Validate(); err != nil {
		return nil, invalidField("config.throttle", err.Error())
	}
	// The archive first: it may still refuse (a limit it cannot take), and
	// nothing must be half-applied.
	if s.archive != nil && !proto.Equal(old.GetLogs(), next.GetLogs()) {
		if err := s.archive.SetConfig(archiveConfig(next.GetLogs())); err != nil {
			return nil, toStatus(err)
		}
	}
	if err := s.store.SetConfig(storeConfig(next.GetMemory())); err != nil {
		return nil, toStatus(err) // validated above: not expected
	}
	if err := s.applyCleanupConfig(next.GetCleanup()); err != nil {
		return nil, toStatus(err) // validated above: not expected
	}
	if err := s.monitor.SetConfig(monitorConfig(next.GetMonitor())); err != nil {
		return nil, toStatus(err) // validated above: not expected
	}
	if err := s.hub.SetSettings(hs); err != nil {
		return nil, toStatus(err) // validated above: not expected
	}
	s.limits.setLimit(next.GetCleanup().GetProducerRateLimit())
	s.mu.Lock()
	s.cfg = next
	observers := s.cfgObservers
	s.mu.Unlock()
	for _, fn := range observers {
		fn(next)
	}
	s.configChanged(req.GetUpdateMask().GetPaths(), next)
	s.log.Info("config updated", "paths", strings.Join(req.GetUpdateMask().GetPaths(), ","))
	return &pxperfv1.UpdateConfigResponse{Config: proto.CloneOf(next)}, nil
}

// OnConfigChange registers fn to be called with the new effective config
// after each successful UpdateConfig. fn must not modify it.
func (s *Service) OnConfigChange(fn func(*pxperfv1.Config)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfgObservers = append(slices.Clip(s.cfgObservers), fn)
}

// applyPath copies the field at path (such as "memory.max_entries", or "*"
// for everything) from src to dst; a field unset in src is cleared in dst.
func applyPath(dst, src protoreflect.Message, path string) error {
	if path == "*" {
		proto.Reset(dst.Interface())
		proto.Merge(dst.Interface(), src.Interface())
		return nil
	}
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		fd := dst.Descriptor().Fields().ByName(protoreflect.Name(seg))
		if fd == nil {
			return fmt.Errorf("%q: %s has no field %q", path, dst.Descriptor().Name(), seg)
		}
		if i == len(segs)-1 {
			if src.Has(fd) {
				dst.Set(fd, src.Get(fd))
			} else {
				dst.Clear(fd)
			}
			return nil
		}
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return fmt.Errorf("%q: %s is not a message, so it has no field %q", path, seg, segs[i+1])
		}
		dst = dst.Mutable(fd).Message()
		src = src.Get(fd).Message()
	}
	return nil
}

// changedFields returns those of paths whose value differs between a and
// b.
func changedFields(a, b *pxperfv1.Config, paths []string) []string {
	var changed []string
	for _, p := range paths {
		va, vb := valueAt(a.ProtoReflect(), p), valueAt(b.ProtoReflect(), p)
		var equal bool
		if m, ok := va.Interface().(protoreflect.Message); ok {
			equal = proto.Equal(m.Interface(), vb.Message().Interface())
		} else {
			equal = va.Equal(vb)
		}
		if !equal {
			changed = append(changed, p)
		}
	}
	return changed
}

// valueAt returns the value at a dotted path of singular fields, which must
// exist in m's type.
func valueAt(m protoreflect.Message, path string) protoreflect.Value {
	segs := strings.Split(path, ".")
	for _, seg := range segs[:len(segs)-1] {
		m = m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(seg))).Message()
	}
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(segs[len(segs)-1])))
}

// droppedRedactions returns the header names redacted under a but not b:
// names UpdateConfig must not remove, so that nobody can turn redaction
// off over RPC. Names compare case-insensitively, as redaction does.
func droppedRedactions(a, b *pxperfv1.Config) []string {
	var dropped []string
	for _, h := range a.GetMemory().GetRedactHeaders() {
		if !slices.ContainsFunc(b.GetMemory().GetRedactHeaders(), func(x string) bool { return strings.EqualFold(x, h) }) {
			dropped = append(dropped, h)
		}
	}
	return dropped
}

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

func fieldMask(paths []string) *fieldmaskpb.FieldMask {
	return &fieldmaskpb.FieldMask{Paths: slices.Clone(paths)}
}
