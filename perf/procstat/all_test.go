package procstat

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestCPUPercent(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(wall, cpu time.Duration) Reading { return Reading{Time: t0.Add(wall), CPUTime: cpu} }
	tests := []struct {
		name      string
		prev, cur Reading
		want      float64
	}{
		{"idle", at(0, time.Second), at(10*time.Second, time.Second), 0},
		{"half a core", at(0, time.Second), at(10*time.Second, 6*time.Second), 50},
		{"one core", at(0, 0), at(2*time.Second, 2*time.Second), 100},
		{"two cores", at(0, 0), at(time.Second, 2*time.Second), 200},
		{"same time", at(time.Second, 0), at(time.Second, time.Second), 0},
		{"wrong order", at(2*time.Second, 2*time.Second), at(0, 0), 0},
		{"cpu went back", at(0, 2*time.Second), at(time.Second, time.Second), 0},
		{"zero readings", Reading{}, Reading{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CPUPercent(tt.prev, tt.cur); got != tt.want {
				t.Errorf("CPUPercent = %v, want %v", got, tt.want)
			}
		})
	}
}

// Opening files raises the open-file count by as many.
func TestReadAllSeesOpenFiles(t *testing.T) {
	r, err := NewReader()
	if err != nil {
		t.Fatal(err)
	}
	before, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if before.OpenFiles == 0 || before.Threads == 0 {
		t.Fatalf("ReadAll gave OpenFiles %d, Threads %d; want both > 0", before.OpenFiles, before.Threads)
	}
	const n = 20
	dir := t.TempDir()
	for i := range n {
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	after, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if after.OpenFiles < before.OpenFiles+n {
		t.Errorf("open files %d then %d after opening %d, want at least %d", before.OpenFiles, after.OpenFiles, n, before.OpenFiles+n)
	}
}

// Read leaves the counts ReadAll adds at zero, and fills the runtime's
// figures.
func TestReadRuntimeFigures(t *testing.T) {
	r, err := NewReader()
	if err != nil {
		t.Fatal(err)
	}
	// Collect a few times with garbage about, so that the runtime has
	// accounted GC CPU time.
	for range 3 {
		sink = append(sink, make([]byte, 8<<20))
		sink = nil
		runtime.GC()
	}
	before, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if before.OpenFiles != 0 || before.Threads != 0 {
		t.Errorf("Read gave OpenFiles %d, Threads %d; want 0 (ReadAll only)", before.OpenFiles, before.Threads)
	}
	if f := before.GCCPUFraction; !(f > 0 && f <= 1) {
		t.Errorf("GC CPU fraction %v after collecting, want in (0, 1]", f)
	}
	const n = 50
	stop := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	for range n {
		go func() {
			started <- struct{}{}
			<-stop
			done <- struct{}{}
		}()
	}
	for range n {
		<-started
	}
	after, err := r.Read()
	close(stop)
	for range n {
		<-done
	}
	if err != nil {
		t.Fatal(err)
	}
	if after.Goroutines < before.Goroutines+n {
		t.Errorf("goroutines %d then %d after starting %d, want at least %d", before.Goroutines, after.Goroutines, n, before.Goroutines+n)
	}
}
