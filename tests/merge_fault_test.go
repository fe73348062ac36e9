package tests

import (
	"context"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// The merge's fault paths around its commit: a sidecar killed between PREPARE TRANSACTION and
// COMMIT PREPARED (then restarted, or the init cancelled), and the path without two-phase commit.

// prepareGateKey is the advisory lock a gate on parent takes (see gatePrepare).
const prepareGateKey = 4242

// gatePrepare holds the target's PREPARE TRANSACTION of pass 1 until the returned release: a
// deferred constraint trigger on node_b's steep_repl.merge_audit_log (the target writes the
// pass's audit rows in its pass transaction) takes advisory lock prepareGateKey shared, and
// PREPARE runs the deferred triggers. The test holds that lock exclusively from a session of its
// own. The source prepares first, so while the gate holds, the source's half is prepared and the
// target's is not yet. (A gate on a user table cannot be used: the merge writes those as their
// owner in a security-restricted operation, where a deferred trigger may not be queued.)
func gatePrepare(t *testing.T, b *harness.Node) (release func()) {
	t.Helper()
	b.Exec(t, "", `CREATE FUNCTION public.prepare_gate() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$;
		CREATE CONSTRAINT TRIGGER prepare_gate AFTER INSERT ON steep_repl.merge_audit_log DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION public.prepare_gate();
		ALTER TABLE steep_repl.merge_audit_log ENABLE ALWAYS TRIGGER prepare_gate`)
	conn, err := b.Pool(t, "").Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_lock($1)", prepareGateKey); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", prepareGateKey); err != nil {
			t.Errorf("release the gate: %v", err)
		}
		conn.Release()
	}
	t.Cleanup(release)
	return release
}

// preparedCount is how many prepared transactions of node_b's merges whose gid ends in suffix n holds.
func preparedCount(t testing.TB, n *harness.Node, suffixLike string) int64 {
	t.Helper()
	return harness.QueryOne[int64](t, n, "", `SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'steep_repl_merge_node_b_%' || $1`, suffixLike)
}

// killBetweenPrepareAndCommit starts a prefer-source merge on a mergePair, holds the target's
// PREPARE with gatePrepare until the source's pass 1 is prepared, kills the target's sidecar,
// then lets that PREPARE finish (its backend does not notice the client is gone until it
// answers): both pass-1 transactions are prepared, neither is committed, no sidecar runs —
// what a sidecar killed between PREPARE TRANSACTION and COMMIT PREPARED leaves. It checks
// nothing of pass 1 is visible on either node and returns the digests of before the merge.
func killBetweenPrepareAndCommit(t *testing.T, p *pair) [2]string {
	t.Helper()
	release := gatePrepare(t, p.b)
	before := [2]string{digest(t, p.a), digest(t, p.b)}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	p.b.WaitFor(t, time.Minute, "the source's pass 1 prepared and the target's PREPARE held by the gate", func() bool {
		return preparedCount(t, p.a, "_p1_s_%") == 1 && harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE 'PREPARE TRANSACTION %'`) == 1
	})
	p.car.kill()
	release()
	p.b.WaitFor(t, 30*time.Second, "the target's pass 1 prepared after its sidecar died", func() bool {
		return preparedCount(t, p.b, "_p1_t") == 1
	})
	if n := preparedCount(t, p.a, "_p1_s_%"); n != 1 {
		t.Fatalf("the source holds %d prepared pass-1 transactions, want 1", n)
	}
	if after := [2]string{digest(t, p.a), digest(t, p.b)}; after != before {
		t.Fatalf("prepared but uncommitted, pass 1 is visible on a node")
	}
	return before
}

// mergedDigest is digest of the rows a prefer-source merge of mergePair's data leaves on both
// nodes: the rows both held, node_a's version of the conflicting ones, each node's own rows;
// each key once.
func mergedDigest(t testing.TB, n *harness.Node) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", `WITH p(id, name) AS (
			SELECT g, 'same ' || g FROM generate_series(1, 200) g UNION ALL SELECT g, 'a ' || g FROM generate_series(201, 260) g
			UNION ALL SELECT g, 'b ' || g FROM generate_series(261, 300) g),
		c(id, parent_id, note) AS (
			SELECT g, g, 'same ' || g FROM generate_series(1, 200) g UNION ALL SELECT g, g - 100, 'a ' || g FROM generate_series(301, 360) g
			UNION ALL SELECT g, g - 100, 'b ' || g FROM generate_series(361, 400) g)
		SELECT (SELECT md5(string_agg(steep_repl.row_hash(ROW(id, name, 0::bigint)::parent)::text, ',' ORDER BY id)) FROM p) || '/' ||
			(SELECT md5(string_agg(steep_repl.row_hash(ROW(id, parent_id, note, 0::bigint)::child)::text, ',' ORDER BY id)) FROM c)`)
}

// checkMerged proves both nodes hold exactly the merged rows (mergedDigest) and no prepared transaction.
func checkMerged(t *testing.T, p *pair) {
	t.Helper()
	for _, n := range []*harness.Node{p.a, p.b} {
		if got, want := digest(t, n), mergedDigest(t, n); got != want {
			t.Errorf("%s does not hold exactly the merged rows: %s, want %s", n.Name, got, want)
		}
		if c := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM pg_prepared_xacts"); c != 0 {
			t.Errorf("%s: %d prepared transactions left", n.Name, c)
		}
	}
}

// slotsAre checks that the slots on n are exactly the slots peer's subscriptions use.
func slotsAre(t *testing.T, n, peer *harness.Node) {
	t.Helper()
	slots := harness.QueryOne[string](t, n, "", "SELECT coalesce(string_agg(slot_name::text, ',' ORDER BY slot_name), '') FROM pg_replication_slots")
	subs := harness.QueryOne[string](t, peer, "", "SELECT coalesce(string_agg(subslotname::text, ',' ORDER BY subslotname), '') FROM pg_subscription")
	if slots != subs || slots == "" {
		t.Errorf("slots on %s: %q, want exactly those of %s's subscriptions %q", n.Name, slots, peer.Name, subs)
	}
}

// Killed with both halves of pass 1 prepared, the merge's job, retried by a new sidecar once the
// lease expired, commits both (resolvePrepared) and completes: both nodes SYNCHRONIZED, equal
// row by row, every row once as the merge decided, no prepared transaction and no slot but the
// two links' left.
func TestMergeKilledBetweenPrepareAndCommitCompletesOnRestart(t *testing.T) {
	t.Parallel()
	p := mergePair(t, "--lease", "3s")
	killBetweenPrepareAndCommit(t, p)
	car := startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	p.waitEqual(t, 30*time.Second)
	checkMerged(t, p)
	slotsAre(t, p.a, p.b)
	slotsAre(t, p.b, p.a)
	if ev := car.events("init.merge_prepared_resolved"); len(ev) != 1 || ev[0]["transactions"] != float64(1) {
		t.Errorf("init.merge_prepared_resolved logged %v, want once with 1 (the pair of pass 1)", ev)
	}
	// Replication runs both ways over the links.
	p.a.Exec(t, "", "INSERT INTO parent VALUES (5000, 'after a')")
	p.b.Exec(t, "", "INSERT INTO parent VALUES (6000, 'after b')")
	p.waitEqual(t, 30*time.Second)
}

// Killed with both halves of pass 1 prepared, then cancel_init (run by a new sidecar): both
// halves are decided the same way — the target's was prepared, so both commit — and the links
// are dropped: both nodes hold exactly the merged rows of pass 1, UNINITIALIZED, without a
// prepared transaction, subscription, slot or publication.
func TestMergeKilledBetweenPrepareAndCommitThenCancelledKeepsBothMerged(t *testing.T) {
	t.Parallel()
	p := mergePair(t, "--lease", "3s")
	killBetweenPrepareAndCommit(t, p)
	dbaQuery[int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	waitMergeState(t, p.b, "node_b", "uninitialized", 2*time.Minute)
	if st := mergeNodeState(t, p.a, "node_a"); st != "uninitialized" {
		t.Fatalf("node_a is %s after the cancel", st)
	}
	checkMerged(t, p)
	if d := harness.QueryOne[string](t, p.b, "", `SELECT coalesce(detail->>'prepared_resolved', '') FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'init.cancelled' ORDER BY at DESC LIMIT 1`); d != "1" {
		t.Errorf("init.cancelled's prepared_resolved is %q, want 1 (the pair of pass 1)", d)
	}
	noMergeObjects(t, p)
}

// noMergeObjects checks that neither node holds a subscription, slot, publication, prepared
// transaction or init progress row.
func noMergeObjects(t *testing.T, p *pair) {
	t.Helper()
	for _, n := range []*harness.Node{p.a, p.b} {
		for _, q := range []string{"SELECT count(*) FROM pg_subscription", "SELECT count(*) FROM pg_replication_slots",
			"SELECT count(*) FROM pg_publication", "SELECT count(*) FROM pg_prepared_xacts", "SELECT count(*) FROM steep_repl.init_progress"} {
			if c := harness.QueryOne[int64](t, n, "", q); c != 0 {
				t.Errorf("%s: %s = %d", n.Name, q, c)
			}
		}
	}
}

// The source with max_prepared_transactions = 0: the merge commits each pass on the source, then
// on the target, says so (init.merge_not_atomic in the sidecar's log, "atomic": false in the
// merge's result) and completes: both SYNCHRONIZED, equal row by row, every row once.
func TestMergeWithoutTwoPhaseCommitCompletesNotAtomic(t *testing.T) {
	t.Parallel()
	p := mergePair(t)
	p.a.Exec(t, "", "ALTER SYSTEM SET max_prepared_transactions = 0")
	p.a.Stop(t)
	p.a.Restart(t)
	if v := harness.QueryOne[string](t, p.a, "", "SHOW max_prepared_transactions"); v != "0" {
		t.Fatalf("node_a's max_prepared_transactions is %s", v)
	}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	p.waitEqual(t, 30*time.Second)
	checkMerged(t, p)
	if ev := p.car.events("init.merge_not_atomic"); len(ev) != 1 || ev[0]["level"] != "WARN" {
		t.Errorf("init.merge_not_atomic logged %v, want one warning", ev)
	}
	if atomic := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(result->>'atomic', '') FROM steep_repl.merges WHERE merge_id = $1",
		lastMergeID(t, p.b, false)); atomic != "false" {
		t.Errorf("the merge's result says atomic %q, want false", atomic)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_prepared_xacts"); n != 0 {
		t.Errorf("%d prepared transactions on node_b", n)
	}
}
