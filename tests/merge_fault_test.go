package tests

import (
	"context"
	"strings"
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
// PREPARE with gatePrepare until the source's pass 1 is prepared, and kills the target's sidecar.
// With targetPrepared it then lets that PREPARE finish (its backend does not notice the client
// is gone until it answers): both pass-1 halves are prepared, neither committed, no sidecar runs
// — what a sidecar killed between PREPARE TRANSACTION and COMMIT PREPARED leaves. Without, it
// terminates that backend: only the source's half is prepared, the target's transaction aborted
// (a sidecar killed between the two PREPAREs). Either way nothing of pass 1 is visible.
func killBetweenPrepareAndCommit(t *testing.T, p *pair, targetPrepared bool) {
	t.Helper()
	release := gatePrepare(t, p.b)
	before := [2]string{digest(t, p.a), digest(t, p.b)}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	const held = `FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE 'PREPARE TRANSACTION %'`
	p.b.WaitFor(t, time.Minute, "the source's pass 1 prepared and the target's PREPARE held by the gate", func() bool {
		return preparedCount(t, p.a, "_p1_s_%") == 1 && harness.QueryOne[int64](t, p.b, "", "SELECT count(*) "+held) == 1
	})
	p.car.kill()
	if !targetPrepared {
		p.b.Exec(t, "", "SELECT pg_terminate_backend(pid) "+held)
		p.b.WaitFor(t, 30*time.Second, "the target's pass-1 session gone", func() bool {
			return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'PREPARE TRANSACTION %'") == 0
		})
	}
	release()
	if targetPrepared {
		p.b.WaitFor(t, 30*time.Second, "the target's pass 1 prepared after its sidecar died", func() bool {
			return preparedCount(t, p.b, "_p1_t") == 1
		})
	} else if n := preparedCount(t, p.b, "%"); n != 0 {
		t.Fatalf("the target holds %d prepared transactions, want none", n)
	}
	if n := preparedCount(t, p.a, "_p1_s_%"); n != 1 {
		t.Fatalf("the source holds %d prepared pass-1 transactions, want 1", n)
	}
	if after := [2]string{digest(t, p.a), digest(t, p.b)}; after != before {
		t.Fatalf("prepared but uncommitted, pass 1 is visible on a node")
	}
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
	scenario(t)
	t.Parallel()
	p := mergePair(t, "--lease", "3s")
	killBetweenPrepareAndCommit(t, p, true)
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
	scenario(t)
	t.Parallel()
	p := mergePair(t, "--lease", "3s")
	killBetweenPrepareAndCommit(t, p, true)
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

// Killed between the two PREPAREs (the target's transaction aborted, the source's half prepared
// alone), then cancel_init: the source's half is rolled back (its gid names the target's xid,
// which did not commit), so both nodes are exactly as before the merge, UNINITIALIZED, without a
// prepared transaction, subscription, slot or publication.
func TestMergeKilledWithOnlyTheSourcePreparedThenCancelledLeavesBothAsBefore(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := mergePair(t, "--lease", "3s")
	before := [2]string{digest(t, p.a), digest(t, p.b)}
	killBetweenPrepareAndCommit(t, p, false)
	dbaQuery[int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	waitMergeState(t, p.b, "node_b", "uninitialized", 2*time.Minute)
	if st := mergeNodeState(t, p.a, "node_a"); st != "uninitialized" {
		t.Fatalf("node_a is %s after the cancel", st)
	}
	if after := [2]string{digest(t, p.a), digest(t, p.b)}; after != before {
		t.Fatalf("a cancelled merge whose target never prepared changed rows")
	}
	if d := harness.QueryOne[string](t, p.b, "", `SELECT coalesce(detail->>'prepared_resolved', '') FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'init.cancelled' ORDER BY at DESC LIMIT 1`); d != "1" {
		t.Errorf("init.cancelled's prepared_resolved is %q, want 1 (the source's half, rolled back)", d)
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
// on the target, says so (init.merge_not_atomic in the sidecar's log and in events, "atomic":
// false in the merge's result) and completes: both SYNCHRONIZED, equal row by row, every row once.
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
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.events WHERE node = 'node_b' AND event = 'init.merge_not_atomic'"); n != 1 {
		t.Errorf("%d init.merge_not_atomic events on node_b, want 1", n)
	}
	if atomic := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(result->>'atomic', '') FROM steep_repl.merges WHERE merge_id = $1",
		lastMergeID(t, p.b, false)); atomic != "false" {
		t.Errorf("the merge's result says atomic %q, want false", atomic)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_prepared_xacts"); n != 0 {
		t.Errorf("%d prepared transactions on node_b", n)
	}
}

// stateOf is the init state of node n on its own cluster, with its last error when FAILED.
func stateOf(t testing.TB, n *harness.Node, node string) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", `SELECT init_state || coalesce(': ' || last_error, '') FROM steep_repl.nodes WHERE name = $1`, node)
}

// cancel_init on the merge's source (its link, init_merge_link) while both links are CATCHING_UP
// cancels the merge's links on both nodes: node_a UNINITIALIZED, no subscription, slot,
// publication or prepared transaction left on either node, the merged rows kept on both;
// node_b, still catching up, fails at its next tick (its subscription disappeared) and
// cancel_init there ends it too. The merge run again then finds nothing to move and links both
// nodes again. The supervisors are idle (naptime 1 h) and ticked by hand, so the links stay
// CATCHING_UP until the cancel.
func TestMergeCancelledOnTheSourceTearsDownBothLinks(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := mergePair(t)
	naptime := func(v string) {
		for _, n := range []*harness.Node{p.a, p.b} {
			n.Exec(t, "", "ALTER SYSTEM SET steep_repl.naptime = '"+v+"'")
			n.Exec(t, "", "SELECT pg_reload_conf()")
		}
	}
	naptime("1h")
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	p.b.WaitFor(t, 2*time.Minute, "the merge job subscribed both ways", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs WHERE kind = 'init.merge' AND state = 'succeeded'") == 1
	})
	for _, x := range []struct {
		n    *harness.Node
		node string
	}{{p.a, "node_a"}, {p.b, "node_b"}} {
		x.n.Exec(t, "", "SELECT steep_repl.tick()")
		if st := stateOf(t, x.n, x.node); st != "catching_up" {
			t.Fatalf("%s is %s after a tick, want catching_up", x.node, st)
		}
	}
	startSidecar(t, p.a, "sidecar_a")
	dbaQuery[int64](t, p.a, "SELECT steep_repl.cancel_init('node_a')")
	waitMergeState(t, p.a, "node_a", "uninitialized", time.Minute)
	noLinks := func(why string) {
		t.Helper()
		for _, n := range []*harness.Node{p.a, p.b} {
			for _, q := range []string{"SELECT count(*) FROM pg_subscription", "SELECT count(*) FROM pg_replication_slots",
				"SELECT count(*) FROM pg_publication", "SELECT count(*) FROM pg_prepared_xacts"} {
				if c := harness.QueryOne[int64](t, n, "", q); c != 0 {
					t.Errorf("%s %s: %s = %d", n.Name, why, q, c)
				}
			}
		}
	}
	noLinks("after the cancel on node_a")
	checkMerged(t, p)
	p.b.Exec(t, "", "SELECT steep_repl.tick()")
	if st := stateOf(t, p.b, "node_b"); !strings.HasPrefix(st, "failed: ") || !strings.Contains(st, "sr_node_a_node_b disappeared") {
		t.Fatalf("node_b after its subscription was dropped: %s, want failed saying it disappeared", st)
	}
	dbaQuery[int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	// The cancel job finishes its row just after the state moves: start_init refuses until then.
	p.b.WaitFor(t, time.Minute, "node_b uninitialized and its cancel job done", func() bool {
		return stateOf(t, p.b, "node_b") == "uninitialized" &&
			harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs WHERE state IN ('queued', 'running')") == 0
	})
	noLinks("after the cancel on node_b")
	checkMerged(t, p)

	naptime("200ms")
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	if moved := harness.QueryOne[string](t, p.b, "", `SELECT format('%s %s', result->>'to_local', result->>'to_peer') FROM steep_repl.merges
		WHERE merge_id = $1`, lastMergeID(t, p.b, false)); moved != "0 0" {
		t.Errorf("the merge after the cancel moved %s rows (to_local to_peer), want 0 0", moved)
	}
	checkMerged(t, p)
	p.a.Exec(t, "", "INSERT INTO parent VALUES (5000, 'after a')")
	p.b.Exec(t, "", "INSERT INTO parent VALUES (6000, 'after b')")
	p.waitEqual(t, 30*time.Second)
}
