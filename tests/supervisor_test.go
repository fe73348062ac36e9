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
	assertSupervisorTicksIn(t, n, "")
}

// assertSupervisorTicksIn is assertSupervisorTicks in database db.
func assertSupervisorTicksIn(t *testing.T, n *harness.Node, db string) {
	t.Helper()
	id := harness.QueryOne[int64](t, n, db, "SELECT steep_repl.enqueue_job('noop')")
	n.Exec(t, db, "SELECT * FROM steep_repl.claim_job('ghost', '{noop}', '10 milliseconds')")
	n.WaitFor(t, 10*time.Second, "supervisor tick() requeues the expired lease", func() bool {
		return harness.QueryOne[string](t, n, db, "SELECT state FROM steep_repl.jobs WHERE id = $1", id) == "queued"
	})
}

const launcherPIDSQL = `SELECT coalesce((SELECT pid FROM pg_stat_activity
  WHERE backend_type = 'steep_repl launcher'), 0)`

// TestSupervisorWaitsForAMissingDatabase: with steep_repl.database naming a database that does
// not exist, the launcher says so once and waits (no worker exits, no restart every few seconds);
// once the database is created and the server reloaded, the supervisor runs tick() in it.
func TestSupervisorWaitsForAMissingDatabase(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, map[string]string{"steep_repl.naptime": "200ms", "steep_repl.database": "later"})
	n.WaitFor(t, 10*time.Second, "the launcher", func() bool {
		return harness.QueryOne[int32](t, n, "", launcherPIDSQL) != 0
	})
	launcher := harness.QueryOne[int32](t, n, "", launcherPIDSQL)
	const missing = `database "later" does not exist`
	// 15 s of a missing database (the supervisor used to exit FATAL and be restarted every 5 s).
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if got := harness.QueryOne[int32](t, n, "", launcherPIDSQL); got != launcher {
			t.Fatalf("launcher pid changed from %d to %d", launcher, got)
		}
		if got := harness.QueryOne[int32](t, n, "", supervisorPIDSQL); got != 0 {
			t.Fatalf("a supervisor (pid %d) runs though its database does not exist", got)
		}
	}
	if c := n.LogCount(missing); c != 1 {
		t.Fatalf("%q logged %d times in 15 s, want once:\n%s", missing, c, n.LogTail(30))
	}
	if c := n.LogCount("steep_repl launcher started"); c != 1 {
		t.Fatalf("the launcher started %d times, want once", c)
	}
	if c := n.LogCount("exited with exit code"); c != 0 {
		t.Fatalf("%d background worker exits logged:\n%s", c, n.LogTail(30))
	}
	if c := n.LogCount("steep_repl supervisor started"); c != 0 {
		t.Fatalf("the supervisor started %d times without its database", c)
	}

	n.CreateDatabase(t, "later")
	n.Exec(t, "later", "CREATE EXTENSION steep_repl CASCADE")
	n.Exec(t, "", "SELECT pg_reload_conf()")
	n.WaitFor(t, 10*time.Second, "the supervisor in database later", func() bool {
		return harness.QueryOne[int32](t, n, "", `SELECT count(*)::int FROM pg_stat_activity
			WHERE backend_type = 'steep_repl supervisor' AND datname = 'later'`) == 1
	})
	assertSupervisorTicksIn(t, n, "later")
	if c := n.LogCount(`database "later" is there now`); c != 1 {
		t.Fatalf("the database's arrival logged %d times, want once", c)
	}
	if c := n.LogCount(missing); c != 1 {
		t.Fatalf("%q logged %d times in all, want once", missing, c)
	}
}

// TestSupervisorGoesWithItsLauncher: a launcher that is terminated takes its supervisor along;
// the launcher the postmaster starts again runs a new one, and there is never two.
func TestSupervisorGoesWithItsLauncher(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.WaitFor(t, 10*time.Second, "supervisor running", func() bool {
		return harness.QueryOne[int32](t, n, "", supervisorPIDSQL) != 0
	})
	pid := harness.QueryOne[int32](t, n, "", supervisorPIDSQL)
	launcher := harness.QueryOne[int32](t, n, "", launcherPIDSQL)
	if !harness.QueryOne[bool](t, n, "", "SELECT pg_terminate_backend($1)", launcher) {
		t.Fatal("pg_terminate_backend returned false")
	}
	// supervisorPIDSQL fails on two supervisors at once (more than one row).
	n.WaitFor(t, 30*time.Second, "a new launcher and a new supervisor", func() bool {
		l := harness.QueryOne[int32](t, n, "", launcherPIDSQL)
		s := harness.QueryOne[int32](t, n, "", supervisorPIDSQL)
		return l != 0 && l != launcher && s != 0 && s != pid
	})
	if alive := harness.QueryOne[bool](t, n, "", "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid); alive {
		t.Fatalf("the old supervisor %d outlived its launcher", pid)
	}
	assertSupervisorTicks(t, n)
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
