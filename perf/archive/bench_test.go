package archive

import (
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	kpgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protojson"
)

// BenchmarkEncode encodes one entry of about 300 bytes.
func BenchmarkEncode(b *testing.B) {
	e := smallEntry(123456)
	size := len(appendEntry(nil, e, nil, nil))
	b.Run("pxperf", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = appendEntry(buf[:0], e, nil, nil)
		}
	})
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		opts := protojson.MarshalOptions{UseProtoNames: true}
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			var err error
			if buf, err = opts.MarshalAppend(buf[:0], e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(size))
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkArchiveThroughput appends 300-byte entries in batches of 100
// and waits until they are written and fsynced (Close). baseline is the
// machine's limit for the same entries: encoding/json and a sequential
// bufio write to one file, then fsync. The entries/s figures compare.
func BenchmarkArchiveThroughput(b *testing.B) {
	const batch = 100
	pool := make([]Item, 100_000)
	for i := range pool {
		pool[i] = Item{Entry: smallEntry(uint64(i + 1))}
	}
	b.Logf("line size %d bytes", len(appendEntry(nil, pool[0].Entry, nil, nil)))
	run := func(b *testing.B, cfg Config) {
		b.ReportAllocs()
		cfg.Dir = b.TempDir()
		a, err := Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i += batch {
			j := i % len(pool)
			if err := a.Append(pool[j:min(j+batch, len(pool), j+b.N-i)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		if st := a.Stats(); st.EntriesWritten != uint64(b.N) {
			b.Fatalf("wrote %d entries, want %d", st.EntriesWritten, b.N)
		}
	}
	b.Run("archive", func(b *testing.B) {
		run(b, Config{MaxSize: 10 << 20})
	})
	b.Run("archive_zstd", func(b *testing.B) {
		run(b, Config{MaxSize: 10 << 20, Compress: true})
	})
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		f, err := os.Create(filepath.Join(b.TempDir(), "baseline.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		w := bufio.NewWriterSize(f, 256<<10)
		b.ResetTimer()
		for i := range b.N {
			line, err := json.Marshal(pool[i%len(pool)].Entry)
			if err != nil {
				b.Fatal(err)
			}
			w.Write(line)
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}

// BenchmarkCompress compresses 16 MiB of realistic archive lines (entries
// with headers, varied URLs, a third with an HTML or JSON body). MB/s is
// the speed; ratio is the uncompressed size over the compressed size.
func BenchmarkCompress(b *testing.B) {
	raw := realJSONL(16 << 20)
	b.Logf("%d bytes, %d lines", len(raw), bytes.Count(raw, []byte("\n")))
	for _, c := range []struct {
		name string
		new  func(io.Writer) (io.WriteCloser, error)
	}{
		{"stdgzip", func(w io.Writer) (io.WriteCloser, error) {
			return stdgzip.NewWriterLevel(w, stdgzip.DefaultCompression)
		}},
		{"kpgzip", func(w io.Writer) (io.WriteCloser, error) { return kpgzip.NewWriterLevel(w, kpgzip.DefaultCompression) }},
		{"kpgzip_fastest", func(w io.Writer) (io.WriteCloser, error) { return kpgzip.NewWriterLevel(w, kpgzip.BestSpeed) }},
		{"zstd", func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w, zstdOptions()...) }},
		{"zstd_8MiB_window", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20))
		}},
		{"zstd_default", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				w, err := c.new(&out)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(raw); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw))/float64(out.Len()), "ratio")
		})
	}
}

// BenchmarkCompressFile compresses one rotated file of the default count
// policy's size (about 1000 entries, 450 KiB of realistic lines), as
// housekeeping does after each rotation: with a new encoder per file, and
// with one encoder reset for each file, as the archive keeps (Archive.zw).
func BenchmarkCompressFile(b *testing.B) {
	raw := realJSONL(450 << 10)
	for _, shared := range []bool{false, true} {
		b.Run(map[bool]string{false: "new_encoder", true: "reset_encoder"}[shared], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var out bytes.Buffer
			zw, err := zstd.NewWriter(nil, zstdOptions()...)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				out.Reset()
				if shared {
					zw.Reset(&out)
				} else if zw, err = zstd.NewWriter(&out, zstdOptions()...); err != nil {
					b.Fatal(err)
				}
				if _, err := zw.Write(raw); err != nil {
					b.Fatal(err)
				}
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw))/float64(out.Len()), "ratio")
		})
	}
}

// BenchmarkOpen1GB times Open on 1 GiB of archive files on disk: about
// 550 zstd files of 10 MiB of lines each (their content is one compressed
// chunk written again: Open reads only their sidecars), 4 plain rotated
// files of 10 MiB, and the newest file, 10 MiB of real lines, left as a
// crash leaves it: its sidecar describing all but its last 2000 lines, and
// a torn last line. Each iteration restores that state (not timed), opens
// the archive and checks LastID.
func BenchmarkOpen1GB(b *testing.B) {
	const (
		target  = 1 << 30
		perFile = 10 << 20
		plain   = 4
	)
	dir := b.TempDir()
	chunk := realJSONL(perFile)
	n := uint64(bytes.Count(chunk, []byte("\n")))
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z, zstd.WithEncoderLevel(zstdLevel), zstd.WithEncoderConcurrency(1))
	zw.Write(chunk)
	zw.Close()

	var disk int64
	var id uint64
	i := 0
	add := func(ext string, data []byte) {
		m := meta{Entries: n, Bytes: int64(len(chunk)), MinID: id + 1, MaxID: id + n, Closed: true,
			MinTime: genBase.Add(time.Duration(id) * time.Millisecond), MaxTime: genBase.Add(time.Duration(id+n) * time.Millisecond)}
		stem := stemFor(genBase.Add(time.Duration(i)*time.Minute), id+1)
		writeBench(b, dir, stem+ext, data)
		writeBench(b, dir, stem+metaExt, m.marshal())
		disk += int64(len(data))
		id += n
		i++
	}
	for disk+int64(plain+1)*perFile < target {
		add(zstdExt, z.Bytes())
	}
	for range plain {
		add(plainExt, chunk)
	}
	compressed := i - plain

	// The newest file: real lines, ids going on.
	r := rand.New(rand.NewPCG(3, 4))
	var data []byte
	var offsets []int
	first := id + 1
	for len(data) < perFile {
		id++
		e, body := realEntry(r, id, id%3 == 0)
		data = appendEntry(data, e, body, nil)
		offsets = append(offsets, len(data))
	}
	var pm meta
	prefix := offsets[len(offsets)-2001]
	for line := range bytes.Lines(data[:prefix]) {
		lid, t, has, _ := keyOf(line[:len(line)-1])
		pm.add(lid, t, has, len(line))
	}
	crashMeta := pm.marshal()
	torn := append(bytes.Clone(data), `{"id":"999999999","url":"htt`...)
	newest := stemFor(genBase.Add(time.Duration(i)*time.Minute), first)
	disk += int64(len(torn))
	b.Logf("%d files, %d MiB on disk (%d zstd, %d plain), the newest of %d lines of which Open reads the last 2000, last id %d",
		i+1, disk>>20, compressed, plain+1, len(offsets), id)

	for b.Loop() {
		b.StopTimer()
		writeBench(b, dir, newest+plainExt, torn)
		writeBench(b, dir, newest+metaExt, crashMeta)
		b.StartTimer()
		a, err := Open(Config{Dir: dir})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if got := a.LastID(); got != id {
			b.Fatalf("LastID = %d, want %d", got, id)
		}
		if got := a.Stats().CorruptLines; got != 1 {
			b.Fatalf("CorruptLines = %d, want 1 (the torn line)", got)
		}
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func writeBench(b *testing.B, dir, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		b.Fatal(err)
	}
}
