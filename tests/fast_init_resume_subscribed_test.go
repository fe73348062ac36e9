package tests

import (
	"context"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// A sidecar killed after it enabled the subscription and before the init went CATCHING_UP
// (held there: the test locks the node's row during the indexing step, which _init_subscribed
// then waits for, and kills the sidecar and ends its session) leaves a copy that is complete and applying: the
// retried job does not copy again (no init.fast_restarted; the rows keep the row versions the
// first attempt wrote), it records init.fast_subscribe_resumed and takes the init on to
// SYNCHRONIZED, equal by row hash, with its catalog as before.
func TestFastInitSidecarKilledAfterSubscribingGoesOnWithoutCopyingAgain(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.car.kill()
	p.car = startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	p.addResumeTables(t, 3000)
	catalog := targetCatalog(t, p)
	ctx := context.Background()
	// The node's row is locked while an index build is held by the gate (the steps before the
	// indexing lock that row too; tick() skips a locked one), then the gate is opened.
	gate, err := p.b.Pool(t, "").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Release()
	if _, err := gate.Exec(ctx, "SELECT pg_advisory_lock($1)", indexGateKey); err != nil {
		t.Fatal(err)
	}
	p.startFastInit(t, `{"parallel": 2, "split_threshold": 16384}`)
	p.b.WaitFor(t, 120*time.Second, "the gated index build waiting", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted", indexGateKey) > 0
	})
	lock, err := p.b.Pool(t, "").Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, "SELECT 1 FROM steep_repl.nodes WHERE name = 'node_b' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Exec(ctx, "SELECT pg_advisory_unlock($1)", indexGateKey); err != nil {
		t.Fatal(err)
	}
	var waiting int32
	p.b.WaitFor(t, 90*time.Second, "the subscription enabled and the sidecar waiting to record it", func() bool {
		waiting = harness.QueryOne[int32](t, p.b, "", `SELECT coalesce(max(pid), 0) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%_init_subscribed%'`)
		return waiting != 0 && harness.QueryOne[bool](t, p.b, "", "SELECT bool_and(subenabled) FROM pg_subscription")
	})
	p.car.kill()
	// A killed client's backend waiting on a lock does not notice until it is granted: end it.
	harness.QueryOne[bool](t, p.b, "", "SELECT pg_terminate_backend($1, 10000)", waiting)
	copiedBy := harness.QueryOne[int64](t, p.b, "", "SELECT txid_current()")
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if st := harness.QueryOne[string](t, p.b, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'"); st != "copying" {
		t.Fatalf("node_b is %s after the kill, want still copying", st)
	}
	before := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM rz_events WHERE xmin::text::bigint < $1", copiedBy)
	p.car = startSidecar(t, p.b, "sidecar_b3", "--lease", "3s")
	p.waitState(t, "synchronized", 90*time.Second)
	logEvents(t, p)
	p.waitEqual(t, 60*time.Second)
	if n := eventCount(t, p.b, "init.fast_subscribe_resumed"); n != 1 {
		t.Fatalf("%d init.fast_subscribe_resumed events, want 1", n)
	}
	if n := eventCount(t, p.b, "init.fast_restarted"); n != 0 {
		t.Fatalf("%d init.fast_restarted events, want none: the copy started over", n)
	}
	if after := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM rz_events WHERE xmin::text::bigint < $1", copiedBy); after != before || before == 0 {
		t.Fatalf("%d rows of rz_events from the first attempt, %d before the retry: the copy started over", after, before)
	}
	assertCatalogRestored(t, p, catalog)
	p.assertStatePath(t, "preparing copying catching_up synchronized")
}
