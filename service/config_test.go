package service_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func TestUpdateConfigShrinkEvictsAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	for i := range 10 {
		h.publish(t, ctx, entry("GET", fmt.Sprintf("http://example.com/%d", i), 200))
	}
	resp, err := h.client.Service().UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 4}},
		UpdateMask: mask("memory.max_entries"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetConfig().GetMemory(); got.GetMaxEntries() != 4 || got.GetMaxMemoryMb() != testMemoryMB {
		t.Errorf("effective memory config = %v, want max_entries 4 and the rest unchanged", got)
	}
	list, err := h.client.ListEntries(ctx, &pxperfv1.ListEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if list.GetTotalSize() != 4 || list.GetOldestId() != 7 {
		t.Errorf("after shrinking: %d entries from id %d, want 4 from 7", list.GetTotalSize(), list.GetOldestId())
	}
	got, err := h.client.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, resp.GetConfig(), protocmp.Transform()); diff != "" {
		t.Errorf("GetConfig differs from the UpdateConfig answer (-get +update):\n%s", diff)
	}
}

func TestUpdateConfigBodySizeAppliesToNewEntries(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	if _, err := h.client.Service().UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxBodySize: 3}},
		UpdateMask: mask("memory.max_body_size"),
	}); err != nil {
		t.Fatal(err)
	}
	e := entry("GET", "http://example.com/", 200)
	e.ResponseBody = &pxperfv1.Body{Data: []byte("hello")}
	id := h.publish(t, ctx, e)[0]
	got, err := h.client.GetEntry(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if b := got.GetResponseBody(); string(b.GetData()) != "hel" || !b.GetTruncated() || b.GetOriginalSize() != 5 {
		t.Errorf("body = %q truncated %v original %d; want hel, true, 5", b.GetData(), b.GetTruncated(), b.GetOriginalSize())
	}
}

// An open stream follows a throttle change from its next message on.
func TestUpdateConfigSeenByOpenStream(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	h.publish(t, ctx, entry("GET", "http://example.com/first", 200))
	sub := h.subscribe(t, ctx, &pxperfv1.SubscribeRequest{Start: &pxperfv1.SubscribeRequest_StartId{StartId: 1}})
	sub.recv(t)
	if _, err := h.client.Service().UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Throttle: &pxperfv1.ThrottleConfig{MaxBatchSize: 2, BatchSize: 2}},
		UpdateMask: mask("throttle.max_batch_size", "throttle.batch_size"),
	}); err != nil {
		t.Fatal(err)
	}
	batch := make([]*pxperfv1.Entry, 9)
	for i := range batch {
		batch[i] = entry("GET", fmt.Sprintf("http://example.com/%d", i), 200)
	}
	h.publish(t, ctx, batch...)
	for got := 0; got < 9; {
		n := len(sub.recv(t).GetBatch().GetEntries())
		if n > 2 {
			t.Fatalf("batch of %d entries after max_batch_size became 2", n)
		}
		got += n
	}
}

func TestUpdateConfigReplaceAll(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	cfg, err := h.client.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Throttle.MaxUpdatesPerSecond = 7
	resp, err := h.client.Service().UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{Config: cfg, UpdateMask: mask("*")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(resp.GetConfig(), cfg, protocmp.Transform()); diff != "" {
		t.Errorf("config after * (-got +want):\n%s", diff)
	}
}

func TestUpdateConfigRefusals(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) { c.Memory.RedactHeaders = []string{"X-Api-Key"} })
	ctx := testContext(t)
	before, err := h.client.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		req       *pxperfv1.UpdateConfigRequest
		wantCode  codes.Code
		wantField string // BadRequest field or PreconditionFailure subject
	}{
		{"no mask", &pxperfv1.UpdateConfigRequest{}, codes.InvalidArgument, "update_mask"},
		{"unknown path", &pxperfv1.UpdateConfigRequest{UpdateMask: mask("memory.max_entires")}, codes.InvalidArgument, "update_mask.paths[0]"},
		{"path through a scalar", &pxperfv1.UpdateConfigRequest{UpdateMask: mask("memory.max_entries.x")}, codes.InvalidArgument, "update_mask.paths[0]"},
		{"value out of range", &pxperfv1.UpdateConfigRequest{
			Config:     &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{MaxEntries: 0}},
			UpdateMask: mask("memory.max_entries"),
		}, codes.InvalidArgument, "config.memory.max_entries"},
		{"cross-field rule", &pxperfv1.UpdateConfigRequest{
			Config:     &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{LowWater: 0.9}},
			UpdateMask: mask("memory.low_water"),
		}, codes.InvalidArgument, "config.memory"},
		{"cleared group", &pxperfv1.UpdateConfigRequest{UpdateMask: mask("throttle")}, codes.InvalidArgument, "config.throttle"},
		{"not live", &pxperfv1.UpdateConfigRequest{
			Config:     &pxperfv1.Config{Server: &pxperfv1.ServerConfig{ListenAddress: "0.0.0.0:1"}, Memory: &pxperfv1.MemoryConfig{MaxEntries: 5}},
			UpdateMask: mask("memory.max_entries", "server.listen_address"),
		}, codes.FailedPrecondition, "config.server"},
		{"redaction removed", &pxperfv1.UpdateConfigRequest{
			Config:     &pxperfv1.Config{Memory: &pxperfv1.MemoryConfig{RedactHeaders: []string{"X-Other"}}},
			UpdateMask: mask("memory.redact_headers"),
		}, codes.FailedPrecondition, "config.memory.redact_headers"},
		{"log directory", &pxperfv1.UpdateConfigRequest{
			Config:     &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{Directory: "/elsewhere"}},
			UpdateMask: mask("logs.directory"),
		}, codes.FailedPrecondition, "config.logs.directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.Service().UpdateConfig(ctx, tt.req)
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Fatalf("UpdateConfig = %v, want %v", err, tt.wantCode)
			}
			var fields []string
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.BadRequest:
					for _, fv := range d.GetFieldViolations() {
						fields = append(fields, fv.GetField())
					}
				case *errdetails.PreconditionFailure:
					for _, v := range d.GetViolations() {
						fields = append(fields, v.GetSubject())
					}
				}
			}
			if len(fields) == 0 || fields[0] != tt.wantField {
				t.Errorf("fields named = %v, want %s first (error: %v)", fields, tt.wantField, err)
			}
			after, err := h.client.GetConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(after, before, protocmp.Transform()); diff != "" {
				t.Errorf("a refused update changed the config (-after +before):\n%s", diff)
			}
		})
	}
}

// Lowering cleanup.max_resources refuses new streams at once and leaves
// open ones alone.
func TestUpdateConfigCleanupLive(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	svc := h.client.Service()
	open, err := openSubscriber(t, ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Cleanup: &pxperfv1.CleanupConfig{MaxResources: 1}},
		UpdateMask: mask("cleanup.max_resources"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := openSubscriber(t, ctx, svc); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second subscriber with max_resources 1 = %v, want RESOURCE_EXHAUSTED", err)
	}
	h.publish(t, ctx, entriesN(1)...)
	for {
		m, err := open.Recv()
		if err != nil {
			t.Fatalf("the open subscriber ended: %v", err)
		}
		if len(m.GetBatch().GetEntries()) > 0 {
			break
		}
	}
}

// Turning monitor.alerts_enabled off clears the active alerts at the next
// sample.
func TestUpdateConfigMonitorLive(t *testing.T) {
	h := newHarness(t, func(c *pxperfv1.Config) {
		fastMonitor(c)
		c.Memory.OverheadMb = 1 // any process holds more besides its store
		c.Monitor.AutoOptimize = false
	})
	ctx := testContext(t)
	h.waitStats(t, "memory_high", func(st *pxperfv1.Stats) bool { return len(st.GetActiveAlerts()) > 0 })
	if _, err := h.client.Service().UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Monitor: &pxperfv1.MonitorConfig{AlertsEnabled: false}},
		UpdateMask: mask("monitor.alerts_enabled"),
	}); err != nil {
		t.Fatal(err)
	}
	h.waitStats(t, "the alerts to clear", func(st *pxperfv1.Stats) bool { return len(st.GetActiveAlerts()) == 0 })
}

// A live change of the logs group reaches the archive: after lowering
// logs.max_count, files rotate at the new count.
func TestUpdateConfigLogsLive(t *testing.T) {
	h := archiveHarness(t, func(c *pxperfv1.Config) { c.Logs.MaxCount = 100 })
	ctx := testContext(t)
	h.publish(t, ctx, entriesN(5)...)
	h.archived(t, 5)
	if _, err := h.client.Service().UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     &pxperfv1.Config{Logs: &pxperfv1.LogsConfig{MaxCount: 2}},
		UpdateMask: mask("logs.max_count"),
	}); err != nil {
		t.Fatal(err)
	}
	h.publish(t, ctx, entriesN(6)...)
	h.archived(t, 11)
	st := h.waitStats(t, "rotations by count", func(st *pxperfv1.Stats) bool {
		return st.GetArchive().GetRotationsByCount() >= 3
	})
	files, err := h.client.Service().ListLogFiles(ctx, &pxperfv1.ListLogFilesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files.GetFiles() {
		if f.GetFirstId() > 5 && f.GetLastId()-f.GetFirstId()+1 > 2 {
			t.Errorf("file %s holds ids %d..%d, more than the new max_count 2", f.GetName(), f.GetFirstId(), f.GetLastId())
		}
	}
	t.Logf("rotations by count: %d", st.GetArchive().GetRotationsByCount())
}
