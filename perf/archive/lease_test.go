package archive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Ids reserved before a crash are never given again: a restart after a
// crash continues after the lease; one after a clean Close, right after
// the last id appended.
func TestIDLease(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.NextID(); got != 1 {
		t.Fatalf("NextID of an empty archive = %d, want 1", got)
	}
	if err := a.ReserveIDs(10); err != nil {
		t.Fatal(err)
	}
	if err := a.ReserveIDs(5); err != nil { // covered: no write
		t.Fatal(err)
	}

	// A crash: the process dies with ids 1..10 handed out and nothing
	// archived. Another Open of the directory stands for the restart.
	crashed, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := crashed.NextID(); got <= 10 {
		t.Errorf("NextID after a crash = %d, want above the 10 ids handed out", got)
	}
	if err := crashed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// A clean stop after appending ids 1..3: the lease is trimmed to 3.
	dir = t.TempDir()
	clean := mustOpenAndAppend(t, dir, 3)
	if err := clean.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got := again.NextID(); got != 4 {
		t.Errorf("NextID after a clean stop at id 3 = %d, want 4", got)
	}
}

// mustOpenAndAppend opens dir, reserves and appends ids 1..n.
func mustOpenAndAppend(t *testing.T, dir string, n uint64) *Archive {
	t.Helper()
	a, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ReserveIDs(n); err != nil {
		t.Fatal(err)
	}
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Entry: entry(uint64(i) + 1)}
	}
	if err := a.Append(items); err != nil {
		t.Fatal(err)
	}
	return a
}

// A lease that is not a number stops Open with an error naming the file
// and what to do.
func TestIDLeaseDamaged(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, leaseName), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), leaseName) || !strings.Contains(err.Error(), "highest id") {
		t.Fatalf("Open with a damaged lease = %v, want an error naming %s and the fix", err, leaseName)
	}
}
