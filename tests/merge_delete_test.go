package tests

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// A delete made between pass 1 and the write freeze is propagated, never resurrected (#13).
// The test holds a ROW SHARE lock on aaa_gate (identical on both nodes, so pass 1 writes nothing
// to it, and first in the freeze's LOCK list) on node_b: it lets the merge create its
// publications (SHARE UPDATE EXCLUSIVE) and stops the freeze's EXCLUSIVE lock. Once that waits
// on it, pass 1 has committed on both nodes, and nothing of the freeze is locked yet. Then, on both nodes, it
// deletes rows both hold (rows identical before the merge, rows pass 1 copied, rows pass 1
// overwrote), inserts fresh rows and updates others, and changes on one node two rows the other
// deletes; then it lets the freeze go. After the merge both nodes are equal by row hash, every
// deleted row is gone on both, every inserted and updated one is on both as written, and a
// change against a delete wins; the audit and the freeze's result say so.
func TestMergePropagatesADeleteMadeBeforeTheFreezeAndLetsAChangeWinOverADelete(t *testing.T) {
	t.Parallel()
	p := mergePair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "CREATE TABLE aaa_gate (id int PRIMARY KEY); INSERT INTO aaa_gate VALUES (1); GRANT SELECT ON aaa_gate TO dba")
	}
	ctx := context.Background()
	gate, err := p.b.Pool(t, "").Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Rollback(ctx)
	if _, err := gate.Exec(ctx, "LOCK TABLE aaa_gate IN ROW SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source", "freeze_timeout": 120}')`)
	p.b.WaitFor(t, 2*time.Minute, "the freeze's lock waiting on aaa_gate", func() bool {
		if st := mergeNodeState(t, p.b, "node_b"); st == "failed" {
			t.Fatalf("the merge failed: %s", harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'"))
		}
		return harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'aaa_gate'::regclass
			AND mode = 'ExclusiveLock'`) == 1
	})
	// Pass 1 committed: the union is on both nodes (prefer-source: node_a's version of 201..220).
	if got := harness.QueryOne[string](t, p.b, "", "SELECT name FROM parent WHERE id = 205"); got != "a 205" {
		t.Fatalf("parent 205 on node_b before the freeze: %q, want pass 1's copy 'a 205'", got)
	}
	// node_a deletes 205 (pass 1 overwrote node_b's) and 270 (node_b's own, copied by pass 1),
	// with their children; node_b deletes 20 (identical before) and 230 (copied by pass 1).
	p.a.Exec(t, "", "DELETE FROM child WHERE id IN (305, 370, 50); DELETE FROM parent WHERE id IN (205, 270)")
	p.b.Exec(t, "", "DELETE FROM child WHERE id IN (20, 330, 340); DELETE FROM parent WHERE id IN (20, 230)")
	// Changes against those deletes: node_b changes child 50 (identical before), node_a child 340 (copied by pass 1).
	p.b.Exec(t, "", "UPDATE child SET note = 'b changed' WHERE id = 50")
	p.a.Exec(t, "", "UPDATE child SET note = 'a changed' WHERE id = 340")
	p.a.Exec(t, "", "INSERT INTO parent VALUES (7001, 'a new'); INSERT INTO child VALUES (7001, 7001, 'a new'); UPDATE parent SET name = 'a upd' WHERE id = 100")
	p.b.Exec(t, "", "INSERT INTO parent VALUES (8001, 'b new'); INSERT INTO child VALUES (8001, 8001, 'b new'); UPDATE parent SET name = 'b upd' WHERE id = 150")
	if err := gate.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitMergeState(t, p.b, "node_b", "synchronized", 2*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	p.waitEqual(t, time.Minute)

	for _, n := range []*harness.Node{p.a, p.b} {
		if got := harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(format('%s %s', tbl, id), ', ' ORDER BY tbl, id), '')
			FROM (SELECT 'parent' tbl, id FROM parent WHERE id IN (20, 205, 230, 270) UNION ALL
			      SELECT 'child', id FROM child WHERE id IN (20, 305, 330, 370)) x`); got != "" {
			t.Errorf("%s: deleted rows came back: %s", n.Name, got)
		}
		got := harness.QueryOne[string](t, n, "", `SELECT string_agg(s, ', ' ORDER BY s) FROM (
			SELECT format('parent %s %s', id, name) s FROM parent WHERE id IN (100, 150, 7001, 8001)
			UNION ALL SELECT format('child %s %s', id, note) FROM child WHERE id IN (50, 340, 7001, 8001)) x`)
		want := "child 340 a changed, child 50 b changed, child 7001 a new, child 8001 b new, parent 100 a upd, parent 150 b upd, parent 7001 a new, parent 8001 b new"
		if got != want {
			t.Errorf("%s: written rows\n got  %s\n want %s", n.Name, got, want)
		}
	}
	id := lastMergeID(t, p.b, false)
	audit := func(q string) []string {
		rows, err := p.b.Pool(t, "").Query(ctx, `SELECT table_name || ' ' || (key->>'id') || ' ' || category || ' ' || resolution
			FROM steep_repl.merge_audit_log WHERE merge_id = $1 AND `+q+` ORDER BY 1`, id)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := []string{
		"child 20 deleted_during_merge delete_peer", "child 305 deleted_during_merge delete_local", "child 330 deleted_during_merge delete_peer",
		"child 340 update_delete to_local", "child 370 deleted_during_merge delete_local", "child 50 local_only to_peer",
		"parent 20 deleted_during_merge delete_peer", "parent 205 deleted_during_merge delete_local",
		"parent 230 deleted_during_merge delete_peer", "parent 270 deleted_during_merge delete_local",
	}
	if got := audit(`(key->>'id')::int IN (20, 50, 205, 230, 270, 305, 330, 340, 370)`); !slices.Equal(got, want) {
		t.Errorf("audit of the rows deleted during the merge:\n got  %v\n want %v", got, want)
	}
	// The deleted rows' images are kept: node_b's for delete_local, node_a's for delete_peer.
	if n := harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM steep_repl.merge_audit_log WHERE merge_id = $1
		AND ((resolution = 'delete_local' AND local_row IS NULL) OR (resolution = 'delete_peer' AND peer_row IS NULL))`, id); n != 0 {
		t.Errorf("%d delete audit rows lack the deleted row's image", n)
	}
	if got := harness.QueryOne[string](t, p.b, "", `SELECT format('%s %s', result->'freeze'->>'deleted_local', result->'freeze'->>'deleted_peer')
		FROM steep_repl.merges WHERE merge_id = $1`, id); got != "4 4" {
		t.Errorf("the freeze's result deleted_local, deleted_peer: %s, want 4 4", got)
	}
	if ca, cb := conflicts(t, p.a), conflicts(t, p.b); ca != 0 || cb != 0 {
		t.Fatalf("conflicts counted: node_a %d, node_b %d", ca, cb)
	}
}
