package procstat

import (
	"runtime"
	"runtime/debug"
	"testing"
)

var sink [][]byte

// The readings are real: allocating and keeping 64 MiB raises RSS and the
// live heap by about that much.
func TestReadSeesAllocation(t *testing.T) {
	r, err := NewReader()
	if err != nil {
		t.Fatal(err)
	}
	// Return what earlier runs freed, so that the allocation below needs new
	// resident pages rather than reusing the heap's.
	debug.FreeOSMemory()
	before, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if before.RSS == 0 || before.HeapLive == 0 || before.HeapGoal == 0 || before.MemoryLimit == 0 || before.GoTotal == 0 {
		t.Fatalf("reading has zero fields: %+v", before)
	}
	const grow = 64 << 20
	for range grow / (1 << 20) {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i) // touch every page so it is resident
		}
		sink = append(sink, b)
	}
	runtime.GC()
	after, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	sink = nil
	if after.RSS < before.RSS+grow*3/4 {
		t.Errorf("RSS grew %d bytes, want at least %d", int64(after.RSS)-int64(before.RSS), grow*3/4)
	}
	if after.HeapLive < before.HeapLive+grow*3/4 {
		t.Errorf("live heap grew %d bytes, want at least %d", int64(after.HeapLive)-int64(before.HeapLive), grow*3/4)
	}
}

// CPU time is real: spinning for a while adds to it, and shows as CPU use
// between the two readings.
func TestReadSeesCPU(t *testing.T) {
	r, err := NewReader()
	if err != nil {
		t.Fatal(err)
	}
	before, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 200_000_000 {
		x ^= i
	}
	after, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if after.CPUTime <= before.CPUTime {
		t.Errorf("CPU time %v then %v after spinning (x=%d), want it to grow", before.CPUTime, after.CPUTime, x)
	}
	if got := CPUPercent(before, after); got <= 0 {
		t.Errorf("CPUPercent after spinning = %v, want > 0", got)
	}
}
