package nodeinit

import (
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
)

func TestPlanChunksSplitsLargeTablesIntoBlockRangesLargestFirst(t *testing.T) {
	tables := []api.FastTable{{Schema: "public", Name: "small"}, {Schema: "public", Name: "big"}}
	sizes := []api.SourceBlocks{{Schema: "public", Name: "small", Blocks: 2, BlockSize: 8192},
		{Schema: "public", Name: "big", Blocks: 25, BlockSize: 8192}}
	got, err := planChunks(tables, sizes, 10*8192)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d chunks, want 4 (3 of big, 1 of small): %+v", len(got), got)
	}
	var next int64
	for _, c := range got[:3] {
		if c.Table.Name != "big" || c.Of != 3 {
			t.Fatalf("the largest chunks come first, all of big: %+v", got)
		}
	}
	// The ranges of big cover every block without a gap; the last one is open-ended.
	ranges := map[int64]int64{}
	for _, c := range got[:3] {
		ranges[c.From] = c.To
	}
	for i := 0; i < 3; i++ {
		to, ok := ranges[next]
		if !ok {
			t.Fatalf("no chunk of big starts at block %d: %+v", next, got)
		}
		if to < 0 {
			if i != 2 {
				t.Fatalf("an open-ended chunk before the last: %+v", got)
			}
			break
		}
		next = to
	}
	if s := got[3]; s.Table.Name != "small" || s.From != 0 || s.To != -1 || s.Of != 1 {
		t.Fatalf("small is one whole-table chunk: %+v", s)
	}
	if _, err := planChunks(tables, sizes[:1], 8192); err == nil {
		t.Fatal("a table missing on the source must be an error")
	}
}
