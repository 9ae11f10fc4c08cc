package contract

import (
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

func TestRules(t *testing.T) {
	if got := Rules(&pxperfv1.Entry{}, "url").GetString().GetMaxBytes(); got != 8192 {
		t.Errorf("Entry.url max_bytes = %d, want 8192", got)
	}
	if got := Rules(&pxperfv1.Filter{}, "any_of").GetRepeated().GetMaxItems(); got != 16 {
		t.Errorf("Filter.any_of max_items = %d, want 16", got)
	}
	if r := Rules(&pxperfv1.Entry{}, "tunnel"); r == nil || r.GetString().GetMaxBytes() != 0 {
		t.Errorf("Entry.tunnel (no rules) = %v, want empty rules", r)
	}
	defer func() {
		if recover() == nil {
			t.Error("Rules of a field that does not exist did not panic")
		}
	}()
	Rules(&pxperfv1.Entry{}, "no_such_field")
}
