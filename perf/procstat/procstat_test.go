package procstat

import (
	"runtime"
	"runtime/debug"
	"sync"
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
	if after.Live() != after.HeapLive+after.Stacks || after.Stacks == 0 {
		t.Errorf("Live() = %d with live heap %d and stacks %d; want their sum, stacks above 0", after.Live(), after.HeapLive, after.Stacks)
	}
}

// Stacks are real: a thousand goroutines parked deep in their stacks
// raise them by at least what those frames hold.
func TestReadSeesStacks(t *testing.T) {
	r, err := NewReader()
	if err != nil {
		t.Fatal(err)
	}
	before, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	const n, depth = 1000, 64 // each frame of deep holds over 256 bytes
	release := make(chan struct{})
	var parked sync.WaitGroup
	var done sync.WaitGroup
	for range n {
		parked.Add(1)
		done.Go(func() { deep(depth, parked.Done, release) })
	}
	parked.Wait()
	after, err := r.Read()
	close(release)
	done.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if grew := int64(after.Stacks) - int64(before.Stacks); grew < n*depth*256 {
		t.Errorf("stacks grew %d bytes with %d goroutines %d frames deep, want at least %d", grew, n, depth, n*depth*256)
	}
}

// deep recurses depth frames of a few hundred bytes each, then calls
// parked and waits for release.
func deep(depth int, parked func(), release <-chan struct{}) byte {
	var pad [256]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		parked()
		<-release
		return pad[0]
	}
	return deep(depth-1, parked, release) + pad[depth%len(pad)]
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
