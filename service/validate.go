package service

import (
	"context"
	"errors"
	"strings"

	"buf.build/go/protovalidate"
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
	msg, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "cannot validate %T: not a proto message", m)
	}
	fvs, err := violations(v, msg, prefix)
	if err != nil {
		return status.Errorf(codes.Internal, "validating %s: %v", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	if len(fvs) == 0 {
		return nil
	}
	return badRequest("invalid request: "+describe(fvs), fvs)
}

// violations returns the rules msg breaks, with field paths under prefix.
// The error is for rules that cannot be evaluated, a bug in the proto.
func violations(v protovalidate.Validator, msg proto.Message, prefix string) ([]*errdetails.BadRequest_FieldViolation, error) {
	err := v.Validate(msg)
	if err == nil {
		return nil, nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return nil, err
	}
	fvs := make([]*errdetails.BadRequest_FieldViolation, 0, len(verr.Violations))
	for _, viol := range verr.Violations {
		field := protovalidate.FieldPathString(viol.Proto.GetField())
		if prefix != "" {
			field = strings.TrimSuffix(prefix+"."+field, ".")
		}
		desc := viol.Proto.GetMessage()
		if desc == "" {
			desc = "breaks rule " + viol.Proto.GetRuleId()
		}
		fvs = append(fvs, &errdetails.BadRequest_FieldViolation{Field: field, Description: desc})
	}
	return fvs, nil
}

// describe joins violations into one line: "field: description; …".
func describe(fvs []*errdetails.BadRequest_FieldViolation) string {
	var b strings.Builder
	for i, fv := range fvs {
		if i > 0 {
			b.WriteString("; ")
		}
		if fv.Field != "" {
			b.WriteString(fv.Field)
			b.WriteString(": ")
		}
		b.WriteString(fv.Description)
	}
	return b.String()
}
