package store

import "testing"

// A seq keeps its entries in order across chunk boundaries while entries
// are pushed and popped in any interleaving, frees a chunk once it is
// empty, and its segments cover exactly the positions asked for.
func TestSeq(t *testing.T) {
	for _, tt := range []struct {
		name         string
		push, pop    int // per round
		rounds       int
		wantHeld     int
		wantChunks   int // at most
		segLo, segHi int
	}{
		{"empty", 0, 0, 1, 0, 0, 0, 0},
		{"one chunk", 10, 0, 1, 10, 1, 2, 9},
		{"across chunks", chunkSize + 5, 0, 1, chunkSize + 5, 2, chunkSize - 3, chunkSize + 4},
		{"steady queue", 1000, 1000, 20, 0, 1, 0, 0},
		{"growing queue", 3000, 1000, 10, 20000, 7, 100, 19000},
		{"drain", 5000, 5000, 3, 0, 1, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var q seq
			pushed, popped := 0, 0
			for range tt.rounds {
				for range tt.push {
					q.push(item{size: int64(pushed)}, col{host: uint32(pushed)})
					pushed++
				}
				for range tt.pop {
					it, c := q.pop()
					if it.size != int64(popped) || c.host != uint32(popped) {
						t.Fatalf("pop %d gave item %d, column %d", popped, it.size, c.host)
					}
					popped++
				}
			}
			if q.len() != tt.wantHeld {
				t.Fatalf("len = %d, want %d", q.len(), tt.wantHeld)
			}
			if len(q.chunks) > tt.wantChunks {
				t.Errorf("%d chunks for %d entries, want at most %d", len(q.chunks), q.len(), tt.wantChunks)
			}
			for p := range q.len() {
				if got := q.item(p).size; got != int64(popped+p) {
					t.Fatalf("item(%d) = %d, want %d", p, got, popped+p)
				}
				if got := q.col(p).host; got != uint32(popped+p) {
					t.Fatalf("col(%d) = %d, want %d", p, got, popped+p)
				}
			}
			next := tt.segLo
			q.segments(tt.segLo, tt.segHi, func(p int, sg segment) {
				items, cols := sg.items, sg.cols
				if len(sg.wires) != len(items) {
					t.Fatalf("segment at %d of %d items, %d encoding slots", p, len(items), len(sg.wires))
				}
				if p != next || len(items) != len(cols) || len(items) == 0 {
					t.Fatalf("segment at %d of %d items, %d columns; want it at %d, non-empty", p, len(items), len(cols), next)
				}
				for j := range items {
					if items[j].size != int64(popped+p+j) || cols[j].host != uint32(popped+p+j) {
						t.Fatalf("segment at %d: entry %d is %d/%d, want %d", p, j, items[j].size, cols[j].host, popped+p+j)
					}
				}
				next += len(items)
			})
			if next != tt.segHi {
				t.Errorf("segments covered %d..%d, want ..%d", tt.segLo, next, tt.segHi)
			}
		})
	}
}
