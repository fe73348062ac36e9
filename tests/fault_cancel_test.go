package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// cancel_init is legal in PREPARING, COPYING, CATCHING_UP, REINITIALIZING and FAILED
// (sql/53_init_steps.sql; COPYING and REINITIALIZING have their own tests), a notice in
// UNINITIALIZED, and refused in SYNCHRONIZED and DIVERGED. Each legal cancel leaves no slot,
// subscription, publication, progress row or copied row, and a new init ends equal.

// cancelAndWait cancels node_b's init as the operator and waits for UNINITIALIZED and the job.
func (p *pair) cancelAndWait(t *testing.T) {
	t.Helper()
	job := dbaQuery[int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	p.b.WaitFor(t, 60*time.Second, "node_b uninitialized", func() bool { return p.state(t) == "uninitialized" })
	p.b.WaitFor(t, 30*time.Second, "cancel job done", func() bool { return jobState(t, p.b, job) == "succeeded" })
}

// PREPARING with the init.start job mid-way: the publication is made on the source and CREATE
// SUBSCRIPTION waits on a lock; the cancel stops the job and removes the publication too.
// Then FAILED (a table-sync error: a CHECK on the target refuses a source row): the cancel
// removes the disabled subscription, its slot, the publication and the rows copied.
func TestCancelWhilePreparingAndWhenFailedLeavesNothingAndANewInitEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.car.kill()
	p.car = startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	ctx := context.Background()
	gate, err := p.b.Pool(t, "").Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Rollback(ctx)
	if _, err := gate.Exec(ctx, "LOCK TABLE pg_catalog.pg_subscription IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := p.startInit(t, "{}")
	p.a.WaitFor(t, 30*time.Second, "the publication made on the source", func() bool {
		return harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_publication") == 1
	})
	p.b.WaitFor(t, 30*time.Second, "CREATE SUBSCRIPTION waiting on the lock", func() bool {
		return harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM pg_stat_activity
			WHERE query LIKE 'CREATE SUBSCRIPTION%' AND wait_event_type = 'Lock'`) == 1
	})
	if st := p.state(t); st != "preparing" {
		t.Fatalf("node_b is %s while its subscription is being created, want preparing", st)
	}
	p.cancelAndWait(t)
	if err := gate.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if st := jobState(t, p.b, start); st != "cancelled" {
		t.Fatalf("the init.start job is %s after the cancel, want cancelled", st)
	}
	p.assertNoInitLeftovers(t)

	p.b.Exec(t, "", "ALTER TABLE artist ADD CONSTRAINT no_acdc CHECK (name <> 'AC/DC')")
	p.startInit(t, "{}")
	p.waitState(t, "failed", 60*time.Second)
	reason := harness.QueryOne[string](t, p.b, "", "SELECT last_error FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "sync/apply error") {
		t.Fatalf("failure reason %q", reason)
	}
	p.cancelAndWait(t)
	p.assertNoInitLeftovers(t)

	p.b.Exec(t, "", "ALTER TABLE artist DROP CONSTRAINT no_acdc")
	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
	p.assertOneInitsObjects(t)
}

// CATCHING_UP under a write load: the cancel removes everything (the tables emptied while the
// source keeps writing). SYNCHRONIZED: cancel_init is refused with 55000 and a HINT, and changes
// nothing (no job, no event, the subscription replicates on).
func TestCancelWhileCatchingUpLeavesNothingAndWhenSynchronizedIsRefused(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := loadPair(t)
	_, stop := p.catchingUpUnderLoad(t)
	p.cancelAndWait(t)
	p.assertNoInitLeftovers(t)
	stop()
	p.fastApply(t)

	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 90*time.Second)
	p.waitEqual(t, 60*time.Second)
	events := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.events")
	state, pgErr := dbaState(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	if state != "55000" || !strings.Contains(pgErr.Message, "SYNCHRONIZED") || pgErr.Hint == "" {
		t.Fatalf("cancel_init of a SYNCHRONIZED node: %s %v, want 55000 with a hint", state, pgErr)
	}
	got := harness.QueryOne[string](t, p.b, "", `SELECT format('%s events=%s cancel_jobs=%s subscriptions=%s',
		(SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'), (SELECT count(*) FROM steep_repl.events),
		(SELECT count(*) FROM steep_repl.jobs WHERE kind = 'init.cancel' AND created_at > now() - interval '1 minute'
		   AND state <> 'succeeded'), (SELECT count(*) FROM pg_subscription))`)
	if want := fmt.Sprintf("synchronized events=%d", events) + " cancel_jobs=0 subscriptions=1"; got != want {
		t.Fatalf("after the refused cancel: %s, want %s", got, want)
	}
	p.a.Exec(t, "", "UPDATE load_1 SET n = n + 1 WHERE id <= 100")
	p.waitEqual(t, 30*time.Second)
	p.assertOneInitsObjects(t)
}
