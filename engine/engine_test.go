package engine

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/pxperf/pxperf/config"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/internal/testentry"
	"github.com/pxperf/pxperf/perf/hub"
	"github.com/pxperf/pxperf/perf/store"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errTestDone = errors.New("test done")

// newEngine returns an engine at the default config with edit applied
// (edit may be nil), its archive in a temporary directory; it is stopped
// and closed when the test ends.
func newEngine(t *testing.T, edit func(*pxperfv1.Config)) *Engine {
	t.Helper()
	cfg := config.Default()
	cfg.Logs.Directory = t.TempDir()
	if edit != nil {
		edit(cfg)
	}
	e, err := New(cfg, Options{BatchBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Stop()
		e.Wait()
		e.Close(errTestDone)
	})
	return e
}

// ingest ingests es and returns each one's id, 0 for those rejected, and
// the rejections by index.
func ingest(t *testing.T, e *Engine, es ...*pxperfv1.Entry) ([]uint64, map[int]*pxperfv1.Rejection) {
	t.Helper()
	ids := make([]uint64, len(es))
	rejected := map[int]*pxperfv1.Rejection{}
	_, err := e.Ingest(t.Context(), "", es, nil, func(i int, id uint64, rej *pxperfv1.Rejection) {
		ids[i] = id
		if rej != nil {
			rejected[i] = rej
		}
	})
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	return ids, rejected
}

// Ingest stores the valid entries of a batch with consecutive ids,
// rejects the others naming the field, archives what it stores, and
// counts both.
func TestIngest(t *testing.T) {
	e := newEngine(t, nil)
	bad := testentry.Proxied(2)
	bad.Method = "BREW"
	ids, rejected := ingest(t, e, testentry.Proxied(1), bad, testentry.Proxied(3))
	if ids[0] == 0 || ids[2] != ids[0]+1 || ids[1] != 0 {
		t.Errorf("ids %v; want consecutive ids for entries 0 and 2, none for 1", ids)
	}
	rej := rejected[1]
	if len(rejected) != 1 || len(rej.GetFieldViolations()) != 1 || rej.GetFieldViolations()[0].GetField() != "method" {
		t.Fatalf("rejections %v; want entry 1's, naming method", rejected)
	}
	got, err := e.Entry(t.Context(), ids[2])
	if err != nil || got.GetUrl() != testentry.Proxied(3).GetUrl() {
		t.Errorf("Entry(%d) = %v, %v; want entry 3 as published", ids[2], got, err)
	}
	if _, err := e.Entry(t.Context(), ids[2]+1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Entry of an id not given = %v; want store.ErrNotFound", err)
	}
	st := e.Stats()
	if st.GetStore().GetAccepted() != 2 || st.GetStore().GetRejected() != 1 || st.GetArchive() == nil {
		t.Errorf("stats: store %v, archive %v; want 2 accepted, 1 rejected, and the archive's stats", st.GetStore(), st.GetArchive())
	}
	if sv := st.GetServer(); sv.GetVersion() == "" || sv.GetGoVersion() != runtime.Version() {
		t.Errorf("stats: server %v; want a version and Go %s", sv, runtime.Version())
	}
}

// Update applies a change to every part at once and tells observers; a
// change the parts cannot take changes nothing.
func TestUpdate(t *testing.T) {
	e := newEngine(t, nil)
	var seen []*pxperfv1.Config
	e.OnConfigChange(func(c *pxperfv1.Config) { seen = append(seen, c) })
	paths := []string{"memory.max_entries", "throttle.max_updates_per_second"}
	next, err := e.Update(paths, func(old *pxperfv1.Config) (*pxperfv1.Config, error) {
		next := proto.CloneOf(old)
		next.Memory.MaxEntries = 2
		next.Throttle.MaxUpdatesPerSecond = 5
		return next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, e, testentry.Proxied(1), testentry.Proxied(2), testentry.Proxied(3))
	if n := e.Store().Stats().Entries; n != 2 || e.Hub().Settings().MaxUpdatesPerSecond != 5 {
		t.Errorf("after the update the store holds %d entries and the hub allows %d msgs/s; want 2 and 5", n, e.Hub().Settings().MaxUpdatesPerSecond)
	}
	if len(seen) != 1 || !proto.Equal(seen[0], next) || !proto.Equal(e.Config(), next) {
		t.Errorf("observers saw %v; want the config applied, once", seen)
	}

	refused := errors.New("refused by the caller")
	for _, tc := range []struct {
		name   string
		change func(*pxperfv1.Config)
		want   error
	}{
		{"the caller's error", nil, refused},
		{"throttle settings the hub refuses", func(c *pxperfv1.Config) { c.Throttle.MaxBatchSize = 0 }, hub.ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.Config()
			_, err := e.Update(nil, func(old *pxperfv1.Config) (*pxperfv1.Config, error) {
				if tc.change == nil {
					return nil, refused
				}
				next := proto.CloneOf(old)
				next.Memory.MaxEntries = 99
				tc.change(next)
				return next, nil
			})
			if !errors.Is(err, tc.want) || e.Config() != before || e.Store().Stats().MaxEntries != 2 || len(seen) != 1 {
				t.Errorf("Update = %v; want %v, and nothing changed", err, tc.want)
			}
		})
	}
}

// Stop ends the subscriptions and the workers; Wait returns once they
// have, and goleak finds nothing left after Close.
func TestStop(t *testing.T) {
	e := newEngine(t, nil)
	sub, err := e.Hub().Subscribe(context.Background(), hub.Request{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ran := make(chan error, 1)
	go func() { ran <- sub.Run(func(hub.Message) error { return nil }) }()
	e.Stop()
	if err := <-ran; !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Run after Stop = %v; want hub.ErrClosed", err)
	}
	e.Wait()
}
