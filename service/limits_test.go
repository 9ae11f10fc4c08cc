package service_test

import (
	"fmt"
	"strings"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func entriesN(n int) []*pxperfv1.Entry {
	es := make([]*pxperfv1.Entry, n)
	for i := range es {
		es[i] = entry("GET", fmt.Sprintf("http://example.com/%d", i), 200)
	}
	return es
}

// Publish beyond cleanup.producer_rate_limit is refused with
// RESOURCE_EXHAUSTED and a RetryInfo; nothing of the refused call is
// stored. The limit changes live.
func TestProducerRateLimitPublish(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) { c.Cleanup.ProducerRateLimit = 100 })
	ctx := testContext(t)
	h.publish(t, ctx, entriesN(100)...)

	// As many again: refused unless a whole second has passed, which a
	// loaded machine running -race can take over the first call.
	_, err := h.client.Publish(ctx, entriesN(100)...)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "100 entries/s") {
		t.Fatalf("Publish past the limit = %v, want RESOURCE_EXHAUSTED naming the limit", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("details %v, want a RetryInfo with a positive delay", st.Details())
	}

	_, err = h.client.Publish(ctx, entriesN(101)...)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "smaller batches") {
		t.Errorf("Publish of a batch larger than the limit = %v, want RESOURCE_EXHAUSTED asking for smaller batches", err)
	}

	stats := h.stats(t, ctx)
	if got := stats.GetStore().GetAccepted(); got != 100 {
		t.Errorf("accepted = %d, want 100: refused calls must store nothing", got)
	}
	if got := stats.GetResources().GetRateLimited(); got != 2 {
		t.Errorf("rate_limited = %d, want 2", got)
	}

	if _, err := h.client.Service().UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Cleanup: &pxperfv1.CleanupConfig{ProducerRateLimit: 0}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"cleanup.producer_rate_limit"}},
	}); err != nil {
		t.Fatal(err)
	}
	h.publish(t, ctx, entriesN(1000)...)
}

// PublishStream is slowed, not refused: every entry of a stream that
// publishes faster than the limit is accepted.
func TestProducerRateLimitStream(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) { c.Cleanup.ProducerRateLimit = 2000 })
	ctx := testContext(t)
	ps, err := h.client.Service().PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := ps.Send(&pxperfv1.PublishStreamRequest{Entries: entriesN(1000)}); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := ps.CloseAndRecv()
	if err != nil {
		t.Fatalf("PublishStream: %v", err)
	}
	if sum.GetAccepted() != 3000 {
		t.Errorf("accepted %d, want 3000", sum.GetAccepted())
	}
	if h.stats(t, ctx).GetResources().GetRateLimited() == 0 {
		t.Error("rate_limited = 0, want the stream counted as slowed")
	}
}
