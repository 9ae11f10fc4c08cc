package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// FuzzRead opens an archive whose files hold arbitrary bytes: an older
// plain file without a sidecar, the same bytes as a compressed file, and
// the same bytes as the newest file (being written at a crash) with an
// arbitrary sidecar. Open, Files, Read and Entry must not fail or panic,
// and every whole line that decodes in the older file must be read back.
func FuzzRead(f *testing.F) {
	good := appendEntry(appendEntry(nil, entry(1), nil, nil), entry(2), []byte("body"), []byte("request body"))
	f.Add(good, []byte(nil))
	f.Add(append(bytes.Clone(good), `{"id":"3","url":"torn`...), meta{Entries: 1, Bytes: 10, MinID: 1, MaxID: 1}.marshal())
	f.Add([]byte("\n\n{}\n{\"id\":\"x\"}\nnot json\n"), []byte(`{"closed":true}`))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0}, []byte(`{"bytes":-1}`))
	f.Fuzz(fuzzRead)
}

func fuzzRead(t *testing.T, data, sidecar []byte) {
	{
		dir := t.TempDir()
		write := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("pxperf-20261127T100000.000000000Z-000001.jsonl.zst", data)
		write("pxperf-20261127T100000.000000001Z-000001.jsonl", data)
		write("pxperf-20261127T100000.000000002Z-000001.jsonl", data)
		if sidecar != nil {
			write("pxperf-20261127T100000.000000002Z-000001.meta", sidecar)
		}
		valid := 0
		for line := range bytes.Lines(data) {
			if bytes.HasSuffix(line, []byte("\n")) {
				if _, err := decodeLine(line[:len(line)-1]); err == nil {
					valid++
				}
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer a.Close()
		if err := a.housekeepingDone(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Files(); err != nil {
			t.Fatalf("Files: %v", err)
		}
		n := 0
		if err := a.Read(ctx, Query{}, func(*pxperfv1.Entry) error { n++; return nil }); err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n < valid {
			t.Fatalf("read %d entries, want at least the %d valid lines of the older file", n, valid)
		}
		for _, id := range []uint64{0, 1, 2, 1 << 63} {
			if _, err := a.Entry(ctx, id); err != nil && ctx.Err() != nil {
				t.Fatalf("Entry(%d): %v", id, err)
			}
		}
		if err := a.Read(ctx, Query{FirstID: 1, LastID: 2, Start: genBase}, func(*pxperfv1.Entry) error { return nil }); err != nil {
			t.Fatalf("Read with ranges: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}
