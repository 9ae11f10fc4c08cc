package engine

import (
	"math/rand/v2"
	"testing"

	"buf.build/go/protovalidate"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// wellFormed reports whether e's timestamps and durations are valid
// protobuf values, which store.Check requires and protovalidate does not
// look at (it reads {seconds: 1, nanos: -1} as 999999999ns).
func wellFormed(e *pxperfv1.Entry) bool {
	if e.GetStartTime().CheckValid() != nil && e.StartTime != nil {
		return false
	}
	t := e.GetTimings()
	for _, d := range []*durationpb.Duration{t.GetDns(), t.GetConnect(), t.GetTlsHandshake(), t.GetTimeToFirstByte(), t.GetTotal()} {
		if d != nil && d.CheckValid() != nil {
			return false
		}
	}
	return true
}

// agree checks the fast path against protovalidate: it must never accept
// what protovalidate refuses, and must accept every well-formed entry that
// protovalidate accepts (else it would only be slow).
func agree(t *testing.T, c entryChecker, v protovalidate.Validator, e *pxperfv1.Entry) (valid bool) {
	t.Helper()
	fast, slow := c.ok(e), v.Validate(e) == nil
	if fast && !slow {
		t.Fatalf("fast check accepts what protovalidate refuses (%v): %v", v.Validate(e), e)
	}
	if slow && wellFormed(e) && !fast {
		t.Fatalf("fast check refuses a well-formed entry protovalidate accepts: %v", e)
	}
	return fast
}

// The fast path accepts exactly the well-formed entries protovalidate
// accepts.
func TestEntryCheckerAgreesWithProtovalidate(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	c := newEntryChecker()
	if len(c.methods) < 9 {
		t.Fatalf("methods read from the contract: %v", c.methods)
	}
	r := rand.New(rand.NewPCG(7, 11))
	valid := 0
	for range 20_000 {
		if agree(t, c, v, testentry.Random(r)) {
			valid++
		}
	}
	if valid < 100 {
		t.Errorf("only %d valid entries generated: the test does not exercise acceptance", valid)
	}
}

// FuzzEntryChecker holds the fast path to protovalidate's verdict on any
// entry that decodes.
func FuzzEntryChecker(f *testing.F) {
	v, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	c := newEntryChecker()
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		b, err := proto.Marshal(testentry.Random(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e pxperfv1.Entry
		if proto.Unmarshal(b, &e) != nil {
			return
		}
		agree(t, c, v, &e)
	})
}
