package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// indexGateKey is the advisory lock the gated index build of addIndexGate waits on.
const indexGateKey = 4214

// addResumeTables creates, on both nodes, three tables larger than the tests' split_threshold
// (so their primary keys are dropped too) with secondary and unique indexes and a foreign key,
// rows on the source; on the target, rz_events also has an index whose expression, for the row
// with id 1, waits for the shared advisory lock indexGateKey: a test holding it exclusively
// holds that one build.
func (p *pair) addResumeTables(t testing.TB, rows int) {
	t.Helper()
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "CREATE TABLE rz_parent (id int PRIMARY KEY, code text NOT NULL UNIQUE, v text)")
		n.Exec(t, "", "CREATE INDEX rz_parent_v ON rz_parent (v)")
		n.Exec(t, "", "CREATE TABLE rz_child (id int PRIMARY KEY, parent_id int REFERENCES rz_parent (id), note text)")
		n.Exec(t, "", "CREATE INDEX rz_child_note ON rz_child (note)")
		n.Exec(t, "", "CREATE TABLE rz_events (id int PRIMARY KEY, payload text NOT NULL)")
		n.Exec(t, "", "CREATE INDEX rz_events_payload ON rz_events (payload)")
	}
	p.a.Exec(t, "", "INSERT INTO rz_parent SELECT g, 'c' || g, md5(g::text) FROM generate_series(1, $1) g", rows)
	p.a.Exec(t, "", "INSERT INTO rz_child SELECT g, g, md5(g::text) FROM generate_series(1, $1) g", rows)
	p.a.Exec(t, "", "INSERT INTO rz_events SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, $1) g", rows)
	p.b.Exec(t, "", fmt.Sprintf(`CREATE FUNCTION gate_key(k int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
		BEGIN
			IF k = 1 THEN
				PERFORM pg_advisory_lock_shared(%d);
				PERFORM pg_advisory_unlock_shared(%d);
			END IF;
			RETURN k;
		END $$`, indexGateKey, indexGateKey))
	p.b.Exec(t, "", "CREATE INDEX rz_events_gated ON rz_events (gate_key(id))")
}

// objectOids are the oids of the target's public indexes (pg_class) and constraints
// (pg_constraint), by kind and name.
func objectOids(t testing.TB, n *harness.Node) map[string]int64 {
	t.Helper()
	rows, err := n.Pool(t, "").Query(context.Background(), `
		SELECT 'index ' || c.relname, c.oid::int8 FROM pg_class c
		WHERE c.relkind IN ('i', 'I') AND c.relnamespace = 'public'::regnamespace
		UNION ALL
		SELECT 'constraint ' || c.conrelid::regclass || '.' || c.conname, c.oid::int8 FROM pg_constraint c
		WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'f', 'x')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var oid int64
		if err := rows.Scan(&name, &oid); err != nil {
			t.Fatal(err)
		}
		out[name] = oid
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A sidecar killed during the indexing step (one index build held by a gate lock, the other
// objects of its stage re-created, the foreign keys still to come) leaves the copy done: the
// retried job neither copies again nor drops and rebuilds what was re-created before the kill
// (those objects keep their oids), it re-creates only the rest and subscribes from the slot's
// LSN. The node ends SYNCHRONIZED, equal by row hash, with its catalog as before the init.
func TestFastInitSidecarKilledDuringIndexingResumesWithTheObjectsNotYetRebuilt(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.car.kill()
	p.car = startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	p.addResumeTables(t, 6000)
	before := catalogFingerprint(t, p.b)
	initial := objectOids(t, p.b)

	ctx := context.Background()
	gate, err := p.b.Pool(t, "").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Release()
	if _, err := gate.Exec(ctx, "SELECT pg_advisory_lock($1)", indexGateKey); err != nil {
		t.Fatal(err)
	}
	p.startFastInit(t, `{"parallel": 2, "split_threshold": 16384}`)
	waiter := func() int32 {
		return harness.QueryOne[int32](t, p.b, "", `SELECT coalesce((SELECT pid FROM pg_locks
			WHERE locktype = 'advisory' AND objid = $1 AND NOT granted LIMIT 1), 0)`, indexGateKey)
	}
	p.b.WaitFor(t, 120*time.Second, "the gated index build waiting, the rest of its stage re-created, the foreign keys pending", func() bool {
		if p.state(t) == "failed" {
			t.Fatal("the init failed")
		}
		return waiter() != 0 &&
			harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects WHERE kind <> 'foreign_key'") == 1 &&
			harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects WHERE kind = 'foreign_key'") > 0
	})
	pending := harness.QueryOne[string](t, p.b, "", "SELECT string_agg(kind || ' ' || name, ', ' ORDER BY name) FROM steep_repl.init_fast_objects")
	rebuilt := objectOids(t, p.b)
	for _, name := range []string{"index rz_parent_v", "index rz_child_note", "index rz_events_payload", "constraint rz_parent.rz_parent_pkey",
		"constraint rz_parent.rz_parent_code_key", "constraint rz_events.rz_events_pkey"} {
		if rebuilt[name] == 0 || rebuilt[name] == initial[name] {
			t.Fatalf("%s: oid %d before the init, %d before the kill: the fixture did not drop and re-create it (pending: %s)",
				name, initial[name], rebuilt[name], pending)
		}
	}
	t.Logf("killing the sidecar with %d objects re-created and pending: %s", len(rebuilt), pending)

	p.car.kill()
	killedAt := harness.QueryOne[int64](t, p.b, "", "SELECT txid_current()")
	// The killed sidecar's session would build the index once let through: a dead host's
	// session ends instead.
	p.b.Exec(t, "", "SELECT pg_terminate_backend($1)", waiter())
	p.b.WaitFor(t, 10*time.Second, "the gated build's session gone", func() bool { return waiter() == 0 })
	if _, err := gate.Exec(ctx, "SELECT pg_advisory_unlock($1)", indexGateKey); err != nil {
		t.Fatal(err)
	}
	p.car = startSidecar(t, p.b, "sidecar_b3", "--lease", "3s")
	p.waitState(t, "synchronized", 120*time.Second)
	logEvents(t, p)
	p.waitEqual(t, 60*time.Second)

	if after := catalogFingerprint(t, p.b); after != before {
		t.Fatalf("the target's catalog differs from before the init:\n%s", diffLines(before, after))
	}
	now := objectOids(t, p.b)
	for name, oid := range rebuilt {
		if now[name] != oid {
			t.Errorf("%s was re-created before the kill (oid %d) and again after it (oid %d)", name, oid, now[name])
		}
	}
	for name := range initial {
		if _, ok := rebuilt[name]; !ok && (now[name] == 0 || now[name] == initial[name]) {
			t.Errorf("%s, pending at the kill: oid %d before the init, %d at the end", name, initial[name], now[name])
		}
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects"); n != 0 {
		t.Fatalf("%d dropped objects still recorded", n)
	}
	for _, ev := range []struct {
		name string
		want int64
	}{{"init.fast_indexing_resumed", 1}, {"init.fast_resumed", 0}, {"init.fast_restarted", 0}} {
		if n := eventCount(t, p.b, ev.name); n != ev.want {
			t.Fatalf("%d %s events, want %d", n, ev.name, ev.want)
		}
	}
	if fresh := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM rz_events WHERE xmin::text::bigint >= $1", killedAt); fresh != 0 {
		t.Fatalf("%d rows of rz_events written after the kill: the copy started over", fresh)
	}
	_, done, total, _, finished := indexingRow(t, p)
	if !finished || done != total {
		t.Fatalf("the indexing step ended with %d/%d objects (finished %v), want every one", done, total, finished)
	}
	assertHolderGone(t, p)
	p.assertStatePath(t, "preparing copying catching_up synchronized")
}
