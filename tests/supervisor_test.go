package tests

import (
	"context"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

const supervisorPIDSQL = `SELECT coalesce((SELECT pid FROM pg_stat_activity
  WHERE backend_type = 'steep_repl supervisor'), 0)`

func TestSupervisorRunsAndCanBeWoken(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.WaitFor(t, 10*time.Second, "supervisor in pg_stat_activity", func() bool {
		return harness.QueryOne[int32](t, n, "", supervisorPIDSQL) != 0
	})
	if !harness.QueryOne[bool](t, n, "", "SELECT steep_repl.wake_supervisor()") {
		t.Fatal("wake_supervisor() found no running supervisor")
	}
	if got := harness.QueryOne[string](t, n, "", "SELECT extversion FROM pg_extension WHERE extname = 'steep_repl'"); got == "" {
		t.Fatal("extension not installed")
	}
}

// A job claimed under a tiny lease and never heartbeated is requeued by tick(): seeing that
// happen proves the supervisor is running tick().
func assertSupervisorTicks(t *testing.T, n *harness.Node) {
	t.Helper()
	id := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop')")
	n.Exec(t, "", "SELECT * FROM steep_repl.claim_job('ghost', '{noop}', '10 milliseconds')")
	n.WaitFor(t, 10*time.Second, "supervisor tick() requeues the expired lease", func() bool {
		return harness.QueryOne[string](t, n, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", id) == "queued"
	})
}

func TestSupervisorLogsAndSurvivesAnErrorInTick(t *testing.T) {
	t.Parallel()
	tickErrorsExpected.Store(t.Name(), true)
	n := setupNode(t)
	ctx := context.Background()
	n.WaitFor(t, 10*time.Second, "supervisor running", func() bool {
		return harness.QueryOne[int32](t, n, "", supervisorPIDSQL) != 0
	})
	pid := harness.QueryOne[int32](t, n, "", supervisorPIDSQL)
	original := harness.QueryOne[string](t, n, "", "SELECT pg_get_functiondef('steep_repl.tick(timestamptz)'::regprocedure)")

	n.Exec(t, "", `CREATE OR REPLACE FUNCTION steep_repl.tick(now timestamptz DEFAULT NULL) RETURNS jsonb
		LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'tick broken on purpose by the test'; END $$`)
	n.WaitFor(t, 10*time.Second, "the tick error in the server log", func() bool {
		return n.LogContains("tick broken on purpose by the test") && n.LogContains("steep_repl supervisor: tick failed")
	})
	failed := n.LogCount("steep_repl supervisor: tick failed")
	n.WaitFor(t, 10*time.Second, "three more failing ticks", func() bool {
		return n.LogCount("steep_repl supervisor: tick failed") >= failed+3
	})
	if got := harness.QueryOne[int32](t, n, "", supervisorPIDSQL); got != pid {
		t.Fatalf("supervisor pid changed from %d to %d: it died instead of surviving the error", pid, got)
	}

	if _, err := n.Pool(t, "").Exec(ctx, original); err != nil {
		t.Fatalf("restore tick(): %v", err)
	}
	assertSupervisorTicks(t, n)
	if got := harness.QueryOne[int32](t, n, "", supervisorPIDSQL); got != pid {
		t.Fatalf("supervisor pid changed from %d to %d", pid, got)
	}
}

func TestSupervisorComesBackAfterTerminate(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.WaitFor(t, 10*time.Second, "supervisor running", func() bool {
		return harness.QueryOne[int32](t, n, "", supervisorPIDSQL) != 0
	})
	pid := harness.QueryOne[int32](t, n, "", supervisorPIDSQL)
	if !harness.QueryOne[bool](t, n, "", "SELECT pg_terminate_backend($1)", pid) {
		t.Fatal("pg_terminate_backend returned false")
	}
	n.WaitFor(t, 20*time.Second, "a new supervisor after pg_terminate_backend", func() bool {
		got := harness.QueryOne[int32](t, n, "", supervisorPIDSQL)
		return got != 0 && got != pid
	})
	assertSupervisorTicks(t, n)
}
