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

func TestCopyRangeSQLInBinaryFormat(t *testing.T) {
	tbl := FastTable{Schema: "s", Name: "t", Columns: []string{"id"}, Binary: true}
	if got, want := copyRangeSQL(tbl, 0, 5), `COPY (SELECT "id" FROM "s"."t" WHERE ctid OPERATOR(pg_catalog.<) '(5,0)'::pg_catalog.tid) TO STDOUT (FORMAT binary)`; got != want {
		t.Fatalf("binary:\n got %s\nwant %s", got, want)
	}
}

func TestBinaryCopyOnlyWhenEveryColumnHasTheSameTypeWithBinaryIO(t *testing.T) {
	tgt := FastTable{Columns: []string{"id", "v"}, Types: []string{"integer", "text"}, BinaryIO: true}
	src := SourceColumns{Columns: []string{"v", "id", "extra"}, Types: []string{"text", "integer", "jsonb"}, BinaryIO: true}
	if !BinaryCopy(tgt, src) {
		t.Fatal("same types by name (in another order, with a column the target lacks): binary")
	}
	if BinaryCopy(tgt, SourceColumns{Columns: []string{"id", "v"}, Types: []string{"bigint", "text"}, BinaryIO: true}) {
		t.Fatal("integer here, bigint there: text")
	}
	if BinaryCopy(tgt, SourceColumns{Columns: []string{"id"}, Types: []string{"integer"}, BinaryIO: true}) {
		t.Fatal("a column missing on the source: text")
	}
	if BinaryCopy(tgt, SourceColumns{Columns: []string{"id", "v"}, Types: []string{"integer", "text"}}) {
		t.Fatal("a type without binary I/O on the source: text")
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
