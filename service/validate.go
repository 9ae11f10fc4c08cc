package service

import (
	"context"

	"buf.build/go/protovalidate"
	"github.com/pxperf/pxperf/engine"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// validationInterceptors check every request message against the rules
// annotated in the proto, before the handler sees it. A broken rule is
// INVALID_ARGUMENT with a BadRequest detail that names each field.
//
// go-grpc-middleware's protovalidate interceptor does the same but attaches
// buf.validate.Violations, which generic gRPC clients do not know; AIP-193
// asks for google.rpc.BadRequest.
func validationInterceptors(v protovalidate.Validator) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := validateMessage(v, req, ""); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &validatingStream{ServerStream: ss, v: v})
	}
	return unary, stream
}

type validatingStream struct {
	grpc.ServerStream
	v protovalidate.Validator
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return validateMessage(s.v, m, "")
}

// validateMessage validates m and returns an INVALID_ARGUMENT status error
// listing its violations, with field paths under prefix.
func validateMessage(v protovalidate.Validator, m any, prefix string) error {
	return checkValid(v, m, prefix, "invalid request")
}

// checkValid validates m and returns an INVALID_ARGUMENT status error
// saying what, then listing m's violations with field paths under prefix,
// with a BadRequest detail naming each field.
func checkValid(v protovalidate.Validator, m any, prefix, what string) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "cannot validate %T: not a proto message", m)
	}
	fvs, err := engine.Violations(v, msg, prefix)
	if err != nil {
		return status.Errorf(codes.Internal, "validating %s: %v", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	if len(fvs) == 0 {
		return nil
	}
	details := make([]*errdetails.BadRequest_FieldViolation, len(fvs))
	for i, fv := range fvs {
		details[i] = &errdetails.BadRequest_FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()}
	}
	return badRequest(what+": "+engine.Describe(fvs), details)
}
