package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// originDiffers is node_b's update_origin_differs count (PostgreSQL 18's pg_stat_subscription_stats).
func originDiffers(t testing.TB, n *harness.Node) int64 {
	t.Helper()
	return harness.QueryOne[int64](t, n, "", "SELECT coalesce(sum(confl_update_origin_differs), 0)::bigint FROM pg_stat_subscription_stats")
}

// The chunks of a fast init commit under the subscription's replication origin, without moving
// its progress: an update of every copied row on the source afterwards is applied as an update
// of the subscription's own rows (on 18 no update_origin_differs), and, under a write load
// during the init, the nodes end equal, each change applied once. One row changed on the target
// by hand is the control: its update from the source is counted, so a counter that is not
// flushed yet cannot pass for zero.
func TestFastInitCopiesUnderTheSubscriptionOriginSoUpdatesOfCopiedRowsAreNotOriginConflicts(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	const tables = 2
	for i := 1; i <= tables; i++ {
		for _, n := range []*harness.Node{p.a, p.b} {
			n.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		}
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g", i))
	}
	writes, stop := steadyLoad(t, p.a, tables, 5*time.Millisecond)
	before := waitWrites(t, p.a, writes, 50, "before the init starts")
	p.startFastInit(t, `{"parallel": 2, "split_threshold": 65536}`)
	p.waitState(t, "synchronized", 120*time.Second)
	synced := writes.Load()
	after := waitWrites(t, p.a, writes, 50, "after the init") - synced
	stop()
	assertWritesInEveryPhase(t, before, synced-before, after)
	p.waitEqual(t, 60*time.Second)
	pg18 := harness.QueryOne[int32](t, p.b, "", "SELECT current_setting('server_version_num')::int") >= 180000
	if pg18 {
		if n := originDiffers(t, p.b); n != 0 {
			t.Fatalf("%d update_origin_differs conflicts after the init and its write load, want 0", n)
		}
	}
	// Every row of every table updated on the source (a column set to itself is still an update).
	p.a.Exec(t, "", `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT c.relname, (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
		                            AND NOT a.attisdropped AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1) col
		         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' LOOP
			EXECUTE format('UPDATE %I SET %I = %I', r.relname, r.col, r.col);
		END LOOP; END $$`)
	p.waitEqual(t, 60*time.Second)
	if !pg18 {
		return
	}
	p.b.Exec(t, "", "UPDATE artist SET name = name || '!' WHERE artist_id = 1") // the control: a local change
	p.a.Exec(t, "", "UPDATE artist SET name = name || '?' WHERE artist_id = 1")
	p.b.WaitFor(t, 30*time.Second, "the control's update_origin_differs counted", func() bool { return originDiffers(t, p.b) > 0 })
	if n := originDiffers(t, p.b); n != 1 {
		t.Fatalf("%d update_origin_differs conflicts, want only the control's 1: the copied rows do not carry the subscription's origin", n)
	}
	p.waitEqual(t, 30*time.Second)
	// The origin ended at or past the slot's consistent point (the init's result), not before it.
	if ok := harness.QueryOne[bool](t, p.b, "", `SELECT s.remote_lsn >= (j.result->>'lsn')::pg_lsn
		FROM pg_replication_origin_status s JOIN pg_subscription sub ON s.external_id = 'pg_' || sub.oid,
		     steep_repl.jobs j WHERE j.kind = 'init.fast' AND j.state = 'succeeded'`); !ok {
		t.Fatal("the subscription's origin is behind the slot's consistent point")
	}
}
