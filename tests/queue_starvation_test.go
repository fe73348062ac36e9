package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// waitFinished waits up to timeout for job to be finalized and returns its state.
func waitFinished(t *testing.T, n *harness.Node, job int64, timeout time.Duration, what string) string {
	t.Helper()
	var state string
	n.WaitFor(t, timeout, what, func() bool {
		state = jobState(t, n, job)
		return state != "queued" && state != "running"
	})
	return state
}

// Two long jobs fill both slots of a sidecar (--concurrency 2). Without control slots a noop
// waits behind them; with the default one, a noop and an init.cancel queued afterwards each
// finish within 5 s.
func TestQueueControlJobsStartWhileSlowJobsFillEverySlot(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	slow := func() int64 {
		return harness.QueryOne[int64](t, n, "", `SELECT steep_repl.enqueue_job('sleep', '{"seconds": 120}')`)
	}
	s1, s2 := slow(), slow()
	bothRunning := func(owner string) func() bool {
		return func() bool {
			return harness.QueryOne[int64](t, n, "", `SELECT count(*) FROM steep_repl.jobs
				WHERE id IN ($1, $2) AND state = 'running' AND lease_owner = $3`, s1, s2, owner) == 2
		}
	}

	// The starvation the control slots prevent: the noop stays queued.
	starved := startSidecar(t, n, "starved", "--concurrency", "2", "--control-concurrency", "0", "--shutdown-grace", "200ms")
	n.WaitFor(t, 15*time.Second, "both slow jobs running on the starved sidecar", bothRunning("starved"))
	waiting := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop')")
	time.Sleep(3 * time.Second) // what is asserted is that nothing happens meanwhile
	if st := jobState(t, n, waiting); st != "queued" {
		t.Fatalf("without control slots the noop is %s, want still queued behind the slow jobs", st)
	}
	if code := starved.stop(t, 10*time.Second); code != 0 {
		t.Fatalf("sidecar exited %d", code)
	}

	// The default control slot: control jobs run beside the slow ones.
	car := startSidecar(t, n, "car", "--concurrency", "2")
	started := time.Now()
	if st := waitFinished(t, n, waiting, 5*time.Second, "the waiting noop finished"); st != "succeeded" {
		t.Fatalf("the waiting noop %s", st)
	}
	t.Logf("the waiting noop finished %s after the sidecar started", time.Since(started).Round(10*time.Millisecond))
	n.WaitFor(t, 15*time.Second, "both slow jobs running again", bothRunning("car"))
	for _, enqueue := range []string{
		"SELECT steep_repl.enqueue_job('noop')",
		`SELECT steep_repl.enqueue_job('init.cancel', '{"target": "node_a"}', 'node_a')`,
	} {
		id := harness.QueryOne[int64](t, n, "", enqueue)
		asked := time.Now()
		if st := waitFinished(t, n, id, 5*time.Second, "control job finished within 5 s: "+enqueue); st != "succeeded" {
			t.Fatalf("%s: job %s: %s", enqueue, st, jobError(t, n, id))
		}
		t.Logf("%s finished after %s", enqueue, time.Since(asked).Round(10*time.Millisecond))
	}
	if !bothRunning("car")() {
		t.Fatal("the slow jobs did not keep their slots")
	}
	if ev := car.events("sidecar.start"); len(ev) != 1 || ev[0]["control_concurrency"] != 1.0 {
		t.Fatalf("sidecar.start: %v", ev)
	}
}

// A job that runs past its kind's --job-time-limit is cancelled and failed with a clear error,
// at once (no retry); a snapshot generation stopped that way is cleaned up like a failed one:
// its slot is dropped and no exported snapshot pins the xmin horizon.
func TestQueueJobPastItsTimeLimitIsFailedAndCleanedUp(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.Exec(t, "", `CREATE TABLE filler (id bigint PRIMARY KEY, v text NOT NULL);
		INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 50000) g; ANALYZE filler`)
	car := startSidecar(t, n, "car", "--job-time-limit", "sleep=2s", "--job-time-limit", "snapshot.generate=3s")

	id := harness.QueryOne[int64](t, n, "", `SELECT steep_repl.enqueue_job('sleep', '{"seconds": 120}', NULL, 3)`)
	if st := waitFinished(t, n, id, 15*time.Second, "sleep failed at its time limit"); st != "failed" {
		t.Fatalf("sleep past its limit: %s", st)
	}
	got := harness.QueryOne[string](t, n, "", "SELECT format('%s|%s', attempt, error) FROM steep_repl.jobs WHERE id = $1", id)
	if want := fmt.Sprintf("1|job %d (sleep) exceeded its time limit of 2s", id); got != want {
		t.Fatalf("job is %q, want %q", got, want)
	}
	if ev := car.awaitEvents(t, "job.time_limit", 1, 5*time.Second); len(ev) != 1 || ev[0]["time_limit"] != "2s" {
		t.Fatalf("job.time_limit events: %v", ev)
	}
	if c := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.events WHERE event = 'job.failed' AND (detail->>'job')::bigint = $1", id); c != 1 {
		t.Fatalf("%d job.failed events", c)
	}

	// About 3.5 MB at 1 kB/s: the generation would take an hour.
	dir := filepath.Join(t.TempDir(), "snap")
	snap := harness.QueryOne[string](t, n, "", `SELECT steep_repl.generate_snapshot($1, '{"max_rate": 1000, "parallel": 1, "compression": "none"}')`, dir)
	job := harness.QueryOne[int64](t, n, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", snap)
	if st := waitFinished(t, n, job, 30*time.Second, "generation failed at its time limit"); st != "failed" {
		t.Fatalf("throttled generation past its limit: %s", st)
	}
	if e := jobError(t, n, job); e != fmt.Sprintf("job %d (snapshot.generate) exceeded its time limit of 3s", job) {
		t.Fatalf("generation job error %q", e)
	}
	if st := harness.QueryOne[string](t, n, "", "SELECT state FROM steep_repl.snapshots WHERE id = $1", snap); st != "failed" {
		t.Fatalf("snapshot is %s, want failed", st)
	}
	n.WaitFor(t, 10*time.Second, "no slot and no pinned xmin left", func() bool {
		return harness.QueryOne[int64](t, n, "", `SELECT (SELECT count(*) FROM pg_replication_slots)
			+ (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'steep-repl%' AND backend_xmin IS NOT NULL)`) == 0
	})
	if out := car.out.String(); !strings.Contains(out, `"event":"job.time_limit"`) {
		t.Fatalf("no job.time_limit event in the sidecar log")
	}
}
