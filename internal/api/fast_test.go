package api

import "testing"

func TestCopyRangeSQLQuotesAndBoundsTheRange(t *testing.T) {
	tbl := FastTable{Schema: "My Schema", Name: "t", Columns: []string{"id", "odd col"}}
	if got, want := copyRangeSQL(tbl, 0, -1), `COPY (SELECT "id", "odd col" FROM "My Schema"."t") TO STDOUT`; got != want {
		t.Fatalf("whole table:\n got %s\nwant %s", got, want)
	}
	want := `COPY (SELECT "id", "odd col" FROM "My Schema"."t" WHERE ctid OPERATOR(pg_catalog.>=) '(10,0)'::pg_catalog.tid AND ctid OPERATOR(pg_catalog.<) '(20,0)'::pg_catalog.tid) TO STDOUT`
	if got := copyRangeSQL(tbl, 10, 20); got != want {
		t.Fatalf("range:\n got %s\nwant %s", got, want)
	}
}

func TestInitTableStateTextShowsTheChunksOfASplitTable(t *testing.T) {
	if got := (InitTable{SyncState: "copying", ChunksTotal: 8, ChunksDone: 3}).StateText(); got != "copying 3/8 chunks" {
		t.Fatalf("split table: %q", got)
	}
	if got := (InitTable{SyncState: "ready", ChunksTotal: 1, ChunksDone: 1}).StateText(); got != "ready" {
		t.Fatalf("one chunk: %q", got)
	}
}
