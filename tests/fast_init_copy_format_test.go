package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// copyFormatEvent is the sidecar's init.fast_copy_format event: how many tables go binary, and
// which go as text (auto only).
func copyFormatEvent(t testing.TB, s *sidecar) (binary int, text []any) {
	t.Helper()
	ev := s.events("init.fast_copy_format")
	if len(ev) != 1 {
		t.Fatalf("%d init.fast_copy_format events, want 1", len(ev))
	}
	n, _ := ev[0]["binary_tables"].(float64)
	text, _ = ev[0]["text"].([]any)
	return int(n), text
}

// copy_format auto (the default) copies in COPY's binary format between servers of the same
// major, table by table where the column types match: a column that is integer on the source
// and bigint here (a schema difference the DBA confirmed) goes as text, which binary could not
// read (an int4 is not an int8 in binary). Both end equal.
func TestFastInitCopiesInBinaryWhereTheTypesMatchAndInTextWhereTheyDiffer(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.a.Exec(t, "", "CREATE TABLE widened (id int PRIMARY KEY, n int NOT NULL, tags text[] NOT NULL, doc jsonb)")
	p.b.Exec(t, "", "CREATE TABLE widened (id int PRIMARY KEY, n bigint NOT NULL, tags text[] NOT NULL, doc jsonb)")
	p.a.Exec(t, "", `INSERT INTO widened SELECT g, g * 3, ARRAY['a' || g, 'b'], jsonb_build_object('g', g) FROM generate_series(1, 5000) g`)
	p.startFastInit(t, `{"parallel": 2, "schema_sync": "manual", "confirm": true}`)
	p.waitState(t, "synchronized", 120*time.Second)
	tables := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_tables WHERE node = 'node_b'")
	binary, text := copyFormatEvent(t, p.car)
	if fmt.Sprint(text) != `["public"."widened"]` || int64(binary) != tables-1 {
		t.Fatalf("%d of %d tables binary, as text %v: want every one but widened binary", binary, tables, text)
	}
	if got := harness.QueryOne[int64](t, p.b, "", "SELECT sum(n)::bigint FROM widened"); got != 3*5000*5001/2 {
		t.Fatalf("widened.n sums to %d here", got)
	}
	p.a.Exec(t, "", "ALTER TABLE widened ALTER n TYPE bigint") // so the row hashes compare
	p.waitEqual(t, 60*time.Second)
}
