package service

import (
	"context"
	"errors"
	"strconv"
	"unicode/utf16"

	"github.com/pxperf/pxperf/cluster"
	"github.com/pxperf/pxperf/config"
	"github.com/pxperf/pxperf/engine"
	"github.com/pxperf/pxperf/perf/archive"
	"github.com/pxperf/pxperf/perf/filter"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/resources"
	"github.com/pxperf/pxperf/perf/store"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// errorCodes maps domain errors to status codes. It is walked in order with
// errors.Is, so wrapped errors are found; the first match wins.
var errorCodes = []struct {
	err  error
	code codes.Code
}{
	{cluster.ErrUnavailable, codes.Unavailable}, // before the context's errors it may wrap
	{cluster.ErrConfigChanged, codes.Aborted},
	{cluster.ErrTooLarge, codes.ResourceExhausted},
	{cluster.ErrForeign, codes.FailedPrecondition},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{store.ErrNotFound, codes.NotFound},
	{store.ErrFuture, codes.OutOfRange},
	{store.ErrCompacted, codes.OutOfRange},
	{store.ErrInvalidEntry, codes.InvalidArgument},
	{store.ErrInvalidConfig, codes.InvalidArgument},
	{filter.ErrInvalid, codes.InvalidArgument},
	{config.ErrInvalid, codes.InvalidArgument},
	{archive.ErrNotFound, codes.NotFound},
	{archive.ErrInvalidConfig, codes.InvalidArgument},
	{archive.ErrNotLive, codes.FailedPrecondition},
	{archive.ErrClosed, codes.Unavailable},
	{engine.ErrRateLimited, codes.ResourceExhausted},
	{resources.ErrLimit, codes.ResourceExhausted},
	{resources.ErrNotFound, codes.NotFound},
	{resources.ErrClosed, codes.Unavailable},
	{resources.ErrInvalidConfig, codes.InvalidArgument},
	{hub.ErrInvalidConfig, codes.InvalidArgument},
}

// toStatus turns a domain error into a gRPC status error. Errors that are
// already statuses pass through; unknown errors become INTERNAL.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if re, ok := errors.AsType[*engine.RateError](err); ok && re.RetryAfter() > 0 {
		st := status.New(codes.ResourceExhausted, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(re.RetryAfter())}); derr == nil {
			st = d
		}
		return st.Err()
	}
	for _, ec := range errorCodes {
		if errors.Is(err, ec.err) {
			return status.Error(ec.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// invalidField returns INVALID_ARGUMENT naming one field, with a BadRequest
// detail.
func invalidField(field, description string) error {
	return badRequest(field+": "+description, []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: description},
	})
}

// badRequest returns INVALID_ARGUMENT with msg, a BadRequest holding
// violations, and any further details.
func badRequest(msg string, violations []*errdetails.BadRequest_FieldViolation, more ...protoadapt.MessageV1) error {
	st := status.New(codes.InvalidArgument, msg)
	details := append([]protoadapt.MessageV1{&errdetails.BadRequest{FieldViolations: violations}}, more...)
	if d, err := st.WithDetails(details...); err == nil {
		st = d
	}
	return st.Err()
}

// filterSyntax returns INVALID_ARGUMENT for a filter query that does not
// parse: a BadRequest naming filter.query, and an ErrorInfo (reason
// FILTER_SYNTAX) whose metadata locates the offending token, so that a UI
// can mark it: its byte offset ("offset"), its offset in UTF-16 code units
// as JavaScript counts ("utf16_offset") and its text ("token").
func filterSyntax(se *filter.SyntaxError) error {
	const field = "filter.query"
	pos := min(max(se.Pos, 0), len(se.Input))
	return badRequest(field+": "+se.Error(),
		[]*errdetails.BadRequest_FieldViolation{{Field: field, Description: se.Error()}},
		&errdetails.ErrorInfo{
			Reason: "FILTER_SYNTAX",
			Domain: "pxperf.v1",
			Metadata: map[string]string{
				"offset":       strconv.Itoa(pos),
				"utf16_offset": strconv.Itoa(len(utf16.Encode([]rune(se.Input[:pos])))),
				"token":        se.Token,
			},
		})
}

// outOfRange returns OUT_OF_RANGE for a resume position that is no longer
// kept, carrying the oldest id still available in an ErrorInfo detail
// (metadata key "oldest_id").
func outOfRange(msg string, oldest uint64) error {
	st := status.New(codes.OutOfRange, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   "ENTRIES_EVICTED",
		Domain:   "pxperf.v1",
		Metadata: map[string]string{"oldest_id": strconv.FormatUint(oldest, 10)},
	}); err == nil {
		st = d
	}
	return st.Err()
}
