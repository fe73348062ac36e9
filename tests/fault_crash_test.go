package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// The fault matrix, crashes (README, "Fault matrix"): a process of the init dies at the worst moment and
// the init still ends with every row equal.

// COPYING needs no sidecar: the subscription copies and tick() moves the states, so an init
// whose sidecar was SIGKILLed mid-copy reaches SYNCHRONIZED before any sidecar comes back.
func TestSidecarKilledDuringAnAutomaticInitsCopyEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.addSlowTable(t, 3000, 2*time.Millisecond)
	p.startInit(t, `{"parallel": 2}`)
	p.waitCopyingSlow(t)
	p.car.kill()
	p.removeSlowDown(t)
	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
	// A new sidecar finds nothing to redo, and replication goes on.
	car := startSidecar(t, p.b, "sidecar_b2")
	p.a.Exec(t, "", "UPDATE track SET unit_price = unit_price + 1 WHERE track_id % 5 = 0")
	p.waitEqual(t, 30*time.Second)
	if n := len(car.events("job.start")); n != 0 {
		t.Fatalf("the new sidecar ran %d job(s) of a finished init", n)
	}
	p.assertStatePath(t, "preparing copying catching_up synchronized")
	p.assertOneInitsObjects(t)
}

// The source stops without a checkpoint (immediate) while the target catches up under a write
// load; it restarts within source_timeout: the apply worker reconnects, the load's writes arrive,
// SYNCHRONIZED, equal.
func TestSourceCrashDuringCatchingUpReachesSynchronizedAndEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := loadPair(t)
	// The apply worker tries its source again after 1 s instead of 5 (wal_retrieve_retry_interval).
	p.b.Exec(t, "", "ALTER SYSTEM SET wal_retrieve_retry_interval = '1s'")
	p.b.Exec(t, "", "SELECT pg_reload_conf()")
	writes, stop := p.catchingUpUnderLoad(t)
	crashed := time.Now()
	p.a.Crash(t)
	p.b.WaitFor(t, 30*time.Second, "the source seen unreachable", func() bool {
		return harness.QueryOne[bool](t, p.b, "", `SELECT source_unreachable_since IS NOT NULL
			FROM steep_repl.init_progress WHERE node = 'node_b'`)
	})
	msg := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(message, '') FROM steep_repl.init_progress WHERE node = 'node_b'")
	if !strings.Contains(msg, "source node node_a unreachable") {
		t.Fatalf("progress message while the source is down: %q", msg)
	}
	if st := p.state(t); st != "catching_up" {
		t.Fatalf("node_b is %s while its source is down (within source_timeout), want catching_up", st)
	}
	p.a.Restart(t)
	t.Logf("source down for %s", time.Since(crashed).Round(100*time.Millisecond))
	waitWrites(t, p.a, writes, 20, "after the source's restart")
	p.fastApply(t)
	stop()
	restarted := time.Now()
	p.waitState(t, "synchronized", 90*time.Second)
	t.Logf("SYNCHRONIZED %s after the source's restart and the load's end", time.Since(restarted).Round(100*time.Millisecond))
	p.waitEqual(t, 60*time.Second)
	p.assertStatePath(t, "preparing copying catching_up synchronized")
	// The apply worker counted the dropped connection as an error: the source's outage, not the init's.
	got := harness.QueryOne[string](t, p.b, "", `SELECT format('%s of %s', p.errors_forgiven, s.apply_error_count + s.sync_error_count)
		FROM steep_repl.init_progress p JOIN pg_stat_subscription_stats s ON s.subid = p.subscription_oid`)
	if got == "0 of 0" || !strings.HasPrefix(got, strings.Fields(got)[2]+" ") {
		t.Fatalf("subscription errors forgiven as the source's outage: %s, want all of them and at least one", got)
	}
}

// The target stops without a checkpoint mid-copy: its table-sync worker's COPY is rolled back by
// crash recovery and started again after the restart (a new table-sync slot), SYNCHRONIZED, equal.
func TestTargetCrashDuringCopyingEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.addSlowTable(t, 3000, 2*time.Millisecond)
	p.startInit(t, `{"parallel": 2}`)
	p.waitCopyingSlow(t)
	p.b.Crash(t)
	p.b.Restart(t)
	p.removeSlowDown(t)
	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
	p.assertStatePath(t, "preparing copying catching_up synchronized")
	p.assertOneInitsObjects(t)
}

// The target stops without a checkpoint while catching up under a write load: after the restart
// the apply worker resumes from its replication origin (nothing lost, nothing applied twice).
// A soak test (about 50 s with the suite's parallelism, its copy-phase twin stays in make test).
func TestTargetCrashDuringCatchingUpEndsEqual(t *testing.T) {
	requireSoak(t)
	t.Parallel()
	p := loadPair(t)
	writes, stop := p.catchingUpUnderLoad(t)
	p.b.Crash(t)
	waitWrites(t, p.a, writes, 20, "while the target is down")
	p.b.Restart(t)
	if st := p.state(t); st != "catching_up" {
		t.Fatalf("node_b is %s after its restart, want catching_up", st)
	}
	waitWrites(t, p.a, writes, 20, "after the target's restart")
	p.fastApply(t)
	stop()
	p.waitState(t, "synchronized", 90*time.Second)
	p.waitEqual(t, 60*time.Second)
	assertNoSubscriptionErrors(t, p.b)
	p.assertStatePath(t, "preparing copying catching_up synchronized")
}

// kill -9 of the supervisor backend mid-copy: the postmaster restarts every backend (the
// table-sync and apply workers, the sidecar's sessions) and the init still completes, equal.
func TestSupervisorKilledDuringCopyingTheInitStillCompletesEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.addSlowTable(t, 3000, 2*time.Millisecond)
	p.startInit(t, `{"parallel": 2}`)
	p.waitCopyingSlow(t)
	pid := killSupervisor(t, p.b)
	if !p.b.LogContains("terminating any other active server processes") {
		t.Fatalf("the postmaster did not restart its backends after supervisor %d was killed", pid)
	}
	waitServing(t, p.b, 30*time.Second)
	p.removeSlowDown(t)
	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
	p.assertStatePath(t, "preparing copying catching_up synchronized")
	p.assertOneInitsObjects(t)
}
