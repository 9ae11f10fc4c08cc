package archive

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lineSize is the size of one test entry's line.
var lineSize = int64(len(appendEntry(nil, entry(100), nil, nil)))

func TestRotationPolicies(t *testing.T) {
	type step struct {
		set    time.Duration // set the clock to genBase+set first, when not 0
		append []uint64      // ids to append
		at     time.Duration // then tick at genBase+at, when not 0
		rotate bool          // then Rotate
	}
	tests := []struct {
		name   string
		cfg    Config
		steps  []step
		counts []uint64 // entries per file, oldest first
		stats  Stats    // rotation counters
	}{
		{
			name:   "count",
			cfg:    Config{MaxCount: 10},
			steps:  []step{{append: seq(1, 25)}},
			counts: []uint64{10, 10, 5},
			stats:  Stats{RotationsByCount: 2},
		},
		{
			name:   "count exact leaves no current file",
			cfg:    Config{MaxCount: 5},
			steps:  []step{{append: seq(1, 10)}},
			counts: []uint64{5, 5},
			stats:  Stats{RotationsByCount: 2},
		},
		{
			name:   "size, before the line that would pass it",
			cfg:    Config{MaxSize: 3*lineSize + lineSize/2},
			steps:  []step{{append: seq(100, 109)}},
			counts: []uint64{3, 3, 3, 1},
			stats:  Stats{RotationsBySize: 3},
		},
		{
			name: "time since the file started",
			cfg:  Config{Interval: time.Minute},
			steps: []step{
				{append: seq(1, 3), at: 30 * time.Second},
				{append: seq(4, 5), at: 59 * time.Second},
				{at: 60 * time.Second},
				{append: seq(6, 6), at: 61 * time.Second},
			},
			counts: []uint64{5, 1},
			stats:  Stats{RotationsByTime: 1},
		},
		{
			name:   "time checked on a batch too",
			cfg:    Config{Interval: time.Minute},
			steps:  []step{{append: seq(1, 2), at: 10 * time.Second}, {set: 2 * time.Minute, append: seq(3, 3)}},
			counts: []uint64{2, 1},
			stats:  Stats{RotationsByTime: 1},
		},
		{
			name:   "idle time makes no empty file",
			cfg:    Config{Interval: time.Minute},
			steps:  []step{{append: seq(1, 1), at: time.Minute}, {at: 2 * time.Minute}, {at: 10 * time.Minute}},
			counts: []uint64{1},
			stats:  Stats{RotationsByTime: 1},
		},
		{
			name:   "manual",
			cfg:    Config{},
			steps:  []step{{rotate: true}, {append: seq(1, 4), rotate: true}, {rotate: true}, {append: seq(5, 5)}},
			counts: []uint64{4, 1},
			stats:  Stats{RotationsManual: 1},
		},
		{
			name: "combined: the first limit reached wins",
			cfg:  Config{MaxCount: 4, MaxSize: 2*lineSize + 1, Interval: time.Minute},
			steps: []step{
				{append: seq(100, 104), at: 10 * time.Second}, // size: 2, 2, current 1
				{at: 2 * time.Minute},                         // time
				{append: seq(105, 105), rotate: true},         // manual
			},
			counts: []uint64{2, 2, 1, 1},
			stats:  Stats{RotationsBySize: 2, RotationsByTime: 1, RotationsManual: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := open(t, tt.cfg)
			for _, s := range tt.steps {
				if s.set != 0 {
					h.clock.Set(genBase.Add(s.set))
				}
				if len(s.append) > 0 {
					h.append(s.append...)
					h.sync()
				}
				if s.at != 0 {
					h.tickAt(genBase.Add(s.at))
				}
				if s.rotate {
					h.rotate()
				}
			}
			h.sync()
			if diff := cmp.Diff(tt.counts, h.counts()); diff != "" {
				t.Errorf("entries per file (-want +got):\n%s", diff)
			}
			st := h.a.Stats()
			got := Stats{RotationsByCount: st.RotationsByCount, RotationsBySize: st.RotationsBySize,
				RotationsByTime: st.RotationsByTime, RotationsManual: st.RotationsManual}
			if diff := cmp.Diff(tt.stats, got, cmp.AllowUnexported(Stats{})); diff != "" {
				t.Errorf("rotations (-want +got):\n%s", diff)
			}
			if tt.cfg.MaxSize > 0 {
				for _, f := range h.files() {
					if f.Size > tt.cfg.MaxSize {
						t.Errorf("%s is %d bytes, over MaxSize %d", f.Name, f.Size, tt.cfg.MaxSize)
					}
				}
			}
			// Nothing lost, nothing twice, in order.
			var all []uint64
			for _, s := range tt.steps {
				all = append(all, s.append...)
			}
			if diff := cmp.Diff(all, h.ids(Query{})); diff != "" {
				t.Errorf("entries read back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAlignedRotation(t *testing.T) {
	h := open(t, Config{Interval: time.Hour, AlignToClock: true})
	at := func(hh, mm, ss int) time.Time { return time.Date(2026, 11, 27, hh, mm, ss, 0, time.UTC) }
	h.clock.Set(at(10, 59, 0))
	h.append(1)
	h.tickAt(at(10, 59, 59))
	if n := h.a.Stats().RotationsByTime; n != 0 {
		t.Fatalf("rotated at 10:59:59: %d rotations", n)
	}
	h.tickAt(at(11, 0, 0))
	if n := h.a.Stats().RotationsByTime; n != 1 {
		t.Fatalf("rotations at 11:00:00 = %d, want 1 (one minute after the file started)", n)
	}
	h.clock.Set(at(11, 30, 0))
	h.append(2)
	h.tickAt(at(11, 59, 59))
	h.tickAt(at(12, 0, 0))
	h.clock.Set(at(12, 0, 1))
	h.append(3)
	h.tickAt(at(12, 59, 0))
	h.sync()
	if diff := cmp.Diff([]uint64{1, 1, 1}, h.counts()); diff != "" {
		t.Errorf("entries per file (-want +got):\n%s", diff)
	}
	if n := h.a.Stats().RotationsByTime; n != 2 {
		t.Errorf("rotations = %d, want 2", n)
	}
}

// TestSameSecondRotations: rotations with a clock that does not move, or
// goes back, all keep their files, named in the order written.
func TestSameSecondRotations(t *testing.T) {
	h := open(t, Config{})
	for id := uint64(1); id <= 6; id++ {
		if id == 4 {
			h.clock.Set(genBase.Add(-time.Hour)) // the clock goes back
		}
		h.append(id)
		h.rotate()
	}
	files := h.files()
	if len(files) != 6 {
		t.Fatalf("%d files, want 6: %v", len(files), files)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
		if f.FirstID != uint64(i+1) || f.Entries != 1 {
			t.Errorf("file %d = %+v, want id %d", i, f, i+1)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("names not in the order written: %v", names)
	}
	if want := "pxperf-20261127T100000.000000000Z-000001.jsonl"; names[0] != want {
		t.Errorf("first name = %s, want %s", names[0], want)
	}
	if want := "pxperf-20261127T100000.000000001Z-000002.jsonl"; names[1] != want {
		t.Errorf("second name = %s, want %s", names[1], want)
	}
	// The names stay ahead after a restart too.
	h.close()
	h.reopen()
	h.append(7)
	h.sync()
	files = h.files()
	if last := files[len(files)-1].Name; last <= names[5] || !strings.HasSuffix(last, "-000007.jsonl") {
		t.Errorf("name after restart = %s, want after %s", last, names[5])
	}
	if diff := cmp.Diff(seq(1, 7), h.ids(Query{})); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cfg   Config
		field string
	}{
		{Config{}, "Dir"},
		{Config{Dir: dir, MaxCount: -1}, "MaxCount"},
		{Config{Dir: dir, MaxSize: -1}, "MaxSize"},
		{Config{Dir: dir, Interval: -1}, "Interval"},
		{Config{Dir: dir, AlignToClock: true}, "AlignToClock"},
		{Config{Dir: dir, MaxFiles: -1}, "MaxFiles"},
		{Config{Dir: dir, MaxAge: -1}, "MaxAge"},
		{Config{Dir: dir, MaxTotalBytes: -1}, "MaxTotalBytes"},
		{Config{Dir: dir, FlushInterval: time.Microsecond}, "FlushInterval"},
		{Config{Dir: dir, QueueSize: -1}, "QueueSize"},
		{Config{Dir: dir, QueueSize: 1 << 25}, "QueueSize"},
		{Config{Dir: dir, QueueBytes: 1000}, "QueueBytes"},
	}
	h := open(t, Config{})
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := Open(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Open: %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
			c := tt.cfg
			if c.Dir != "" {
				c.Dir = h.cfg.Dir
			}
			err = h.a.SetConfig(c)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("SetConfig: %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
		})
	}
}

func TestSetConfigLive(t *testing.T) {
	h := open(t, Config{MaxCount: 100})
	h.appendRange(1, 20)
	h.sync()

	cfg := h.a.Config()
	cfg.Dir = t.TempDir()
	if err := h.a.SetConfig(cfg); !errors.Is(err, ErrNotLive) || !strings.Contains(err.Error(), "Dir") {
		t.Errorf("SetConfig(new Dir) = %v, want ErrNotLive naming Dir", err)
	}
	cfg = h.a.Config()
	cfg.QueueSize = 10
	if err := h.a.SetConfig(cfg); !errors.Is(err, ErrNotLive) || !strings.Contains(err.Error(), "QueueSize") {
		t.Errorf("SetConfig(new QueueSize) = %v, want ErrNotLive naming QueueSize", err)
	}

	// A lowered count rotates at the next tick, and applies to the next file.
	cfg = h.a.Config()
	cfg.MaxCount = 8
	if err := h.a.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	h.tickAt(genBase.Add(time.Second))
	h.appendRange(21, 30)
	h.sync()
	if diff := cmp.Diff([]uint64{20, 8, 2}, h.counts()); diff != "" {
		t.Errorf("entries per file (-want +got):\n%s", diff)
	}

	// Retention applies at once.
	cfg.MaxFiles = 2
	if err := h.a.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if diff := cmp.Diff([]uint64{8, 2}, h.counts()); diff != "" {
		t.Errorf("entries per file after MaxFiles=2 (-want +got):\n%s", diff)
	}
	if got := h.a.Config().MaxFiles; got != 2 {
		t.Errorf("Config().MaxFiles = %d", got)
	}
}
