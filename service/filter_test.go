package service_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The filter language reaches every client through Filter.query, and the
// structured fields it adds select what they say, over the wire: bodies
// are searched although the store holds them apart from their entries.
func TestListEntriesFilterLanguage(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	withBody := func(e *pxperfv1.Entry, body string, received int64) *pxperfv1.Entry {
		e.ResponseBody = &pxperfv1.Body{Data: []byte(body), ContentType: "application/json"}
		e.BytesReceived = received
		return e
	}
	health := entry("GET", "http://b.example.org/v1/health", 404)
	health.RequestBody = &pxperfv1.Body{Data: []byte("probe=NEEDLE")}
	tunnel := entry("CONNECT", "db.example.com:443", 200)
	tunnel.Tunnel = true
	h.publish(t, ctx,
		withBody(entry("GET", "http://a.example.com/v1/users", 200), `{"user":"ann"}`, 300), // 1
		withBody(entry("POST", "http://a.example.com/v2/orders", 503), `{"order":7}`, 5000), // 2
		health, // 3
		withBody(entry("GET", "http://cdn.example.com/x.png", 200), "PNG", 20000), // 4
		tunnel, // 5
	)
	svc := h.client.Service()
	tests := []struct {
		name   string
		filter *pxperfv1.Filter
		want   []uint64 // newest first, as ListEntries returns them
	}{
		{"query OR", &pxperfv1.Filter{Query: "status:5xx OR host:b.example.org"}, []uint64{3, 2}},
		{"query exclusion", &pxperfv1.Filter{Query: "-host:cdn -is:tunnel"}, []uint64{3, 2, 1}},
		{"query size", &pxperfv1.Filter{Query: "larger-than:1k"}, []uint64{4, 2}},
		{"query regex", &pxperfv1.Filter{Query: `/v[12]\/(users|orders)/`}, []uint64{2, 1}},
		{"query body", &pxperfv1.Filter{Query: "body:ORDER"}, []uint64{2}},
		{"query request body", &pxperfv1.Filter{Query: "body:needle"}, []uint64{3}},
		{"query tunnel", &pxperfv1.Filter{Query: "is:tunnel"}, []uint64{5}},
		{"query beside fields", &pxperfv1.Filter{Methods: []string{"GET"}, Query: "-url:/health"}, []uint64{4, 1}},
		{"structured body and any_of", &pxperfv1.Filter{AnyOf: []*pxperfv1.Filter{{BodyText: "ann"}, {MinSize: proto.Int64(10000)}}}, []uint64{4, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice: the second is answered from the store's view cache.
			for range 2 {
				resp, err := svc.ListEntries(ctx, &pxperfv1.ListEntriesRequest{Filter: tt.filter})
				if err != nil {
					t.Fatalf("ListEntries: %v", err)
				}
				var got []uint64
				for _, e := range resp.GetEntries() {
					got = append(got, e.GetId())
				}
				if !cmp.Equal(got, tt.want) {
					t.Errorf("ids = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// A query that does not parse is INVALID_ARGUMENT naming filter.query, with
// the token's position in an ErrorInfo.
func TestFilterQuerySyntaxError(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	_, err := h.client.Service().ListEntries(ctx, &pxperfv1.ListEntriesRequest{Filter: &pxperfv1.Filter{Query: "hôst:x status:>=700"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	if got := fieldViolations(err); !cmp.Equal(got, []string{"filter.query"}) {
		t.Errorf("field violations = %v, want [filter.query]", got)
	}
	var info *errdetails.ErrorInfo
	for _, d := range status.Convert(err).Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	want := map[string]string{"offset": "8", "utf16_offset": "7", "token": "status:>=700"}
	if info.GetReason() != "FILTER_SYNTAX" || !cmp.Equal(info.GetMetadata(), want) {
		t.Errorf("ErrorInfo = %v, want reason FILTER_SYNTAX and metadata %v", info, want)
	}
}

// The contract's nesting rules are enforced at the edge.
func TestFilterNestingRefused(t *testing.T) {
	h := newHarness(t, nil)
	ctx := testContext(t)
	for _, f := range []*pxperfv1.Filter{
		{AnyOf: []*pxperfv1.Filter{{AnyOf: []*pxperfv1.Filter{{Host: "a"}}}}},
		{Exclude: []*pxperfv1.Filter{{Exclude: []*pxperfv1.Filter{{Host: "a"}}}}},
		{AnyOf: []*pxperfv1.Filter{{Query: "host:a"}}},
		{MinSize: proto.Int64(5), MaxSize: proto.Int64(4)},
	} {
		_, err := h.client.Service().ListEntries(ctx, &pxperfv1.ListEntriesRequest{Filter: f})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListEntries(filter %v) = %v, want INVALID_ARGUMENT", f, err)
		}
	}
}
