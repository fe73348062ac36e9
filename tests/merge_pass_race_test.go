package tests

import (
	"context"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// Pass 1 of a merge writes a row on the losing node only where that node still holds the
// version the plan read (#13): the plan takes no lock, so a user's write on the loser between
// the plan and pass 1 is a later write and must survive. The merge is held right after its plan
// (the move to COPYING, whose init_progress update waits on an advisory lock the test holds);
// meanwhile a user on node_b (the target, which prefer-source makes the loser of every
// conflict) updates a conflicting row, deletes another, and inserts a key the plan read as on
// node_a only. After the merge both nodes are equal by row hash and hold each of those writes
// (the update's value, the delete's absence, the insert's value), the other planned rows are
// moved, and no audit row says pass 1 moved the three keys to node_b.
func TestMergePass1KeepsAUsersWriteMadeOnTheLoserAfterThePlan(t *testing.T) {
	t.Parallel()
	p := mergePair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", `CREATE TABLE race (id int PRIMARY KEY, v text NOT NULL);
			INSERT INTO race SELECT g, 'same ' || g FROM generate_series(1, 10) g;
			GRANT SELECT ON race TO dba`)
	}
	// 11-13 conflict (prefer-source: node_a's version goes to node_b), 20-21 are on node_a only.
	p.a.Exec(t, "", "INSERT INTO race VALUES (11, 'a 11'), (12, 'a 12'), (13, 'a 13'), (20, 'a 20'), (21, 'a 21')")
	p.b.Exec(t, "", "INSERT INTO race VALUES (11, 'b 11'), (12, 'b 12'), (13, 'b 13')")
	p.b.Exec(t, "", `CREATE FUNCTION public.race_hold() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
		BEGIN PERFORM pg_advisory_xact_lock(741301); RETURN NEW; END $$;
		CREATE TRIGGER race_hold BEFORE UPDATE ON steep_repl.init_progress FOR EACH ROW
		WHEN (NEW.message = 'merge: moving rows' AND OLD.message IS DISTINCT FROM NEW.message) EXECUTE FUNCTION public.race_hold()`)
	ctx := context.Background()
	hold, err := p.b.Pool(t, "").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Release()
	if _, err := hold.Exec(ctx, "SELECT pg_advisory_lock(741301)"); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			if _, err := hold.Exec(ctx, "SELECT pg_advisory_unlock(741301)"); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer release()

	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source", "freeze_timeout": 120}')`)
	p.b.WaitFor(t, 3*time.Minute, "the merge held after its plan", func() bool {
		if st := mergeNodeState(t, p.b, "node_b"); st == "failed" {
			t.Fatalf("the merge failed: %s", harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'"))
		}
		return harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 741301`) == 1
	})
	// Held where meant: planned (its merge recorded), nothing moved yet.
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.merges WHERE NOT dry_run"); n != 1 {
		t.Fatalf("merges recorded while held: %d, want 1", n)
	}
	if got := harness.QueryOne[string](t, p.b, "", "SELECT string_agg(format('%s %s', id, v), ', ' ORDER BY id) FROM race WHERE id > 10"); got != "11 b 11, 12 b 12, 13 b 13" {
		t.Fatalf("node_b's rows while the merge is held: %s, want pass 1 not started", got)
	}
	// The user's writes on the loser, after the plan.
	p.b.Exec(t, "", `UPDATE race SET v = 'user upd' WHERE id = 11; DELETE FROM race WHERE id = 12; INSERT INTO race VALUES (20, 'user ins')`)
	release()

	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	p.waitEqual(t, time.Minute)
	if ha, hb := tableHashes(t, p.a, "race"), tableHashes(t, p.b, "race"); ha != hb {
		t.Fatalf("race differs by row hash: node_a %s, node_b %s", ha, hb)
	}
	want := []string{"11 user upd", "13 a 13", "20 user ins", "21 a 21"}
	for _, n := range []*harness.Node{p.a, p.b} {
		got := rowsOf(t, n, "SELECT format('%s %s', id, v) FROM race WHERE id > 10 ORDER BY id")
		wantLines(t, n.Name+": race's rows after the merge", got, want)
	}
	// The audit: the three keys were not moved to node_b (to_local) by pass 1; 13 and 21 were.
	got := rowsOf(t, p.b, `SELECT format('%s %s', key->>'id', resolution) FROM steep_repl.merge_audit_log
		WHERE table_name = 'race' AND resolution = 'to_local' ORDER BY (key->>'id')::int`)
	wantLines(t, "node_b: race's keys audited as moved to node_b", got, []string{"13 to_local", "21 to_local"})
}
