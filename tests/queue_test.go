package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

func jobState(t *testing.T, n *harness.Node, id int64) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", id)
}

func TestEveryJobRunsExactlyOnceWithThreeSidecars(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	const jobs = 200
	n.Exec(t, "", "SELECT steep_repl.enqueue_job('noop') FROM generate_series(1, $1)", jobs)
	cars := []*sidecar{
		startSidecar(t, n, "car1", "--concurrency", "2"),
		startSidecar(t, n, "car2", "--concurrency", "2"),
		startSidecar(t, n, "car3", "--concurrency", "2"),
	}
	n.WaitFor(t, 60*time.Second, "all jobs finalized", func() bool {
		return harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.jobs WHERE finalized_at IS NULL") == 0
	})
	bad := harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(format('%s:%s/%s', id, state, attempt), ' '), '')
		FROM steep_repl.jobs WHERE state <> 'succeeded' OR attempt <> 1`)
	if bad != "" {
		t.Fatalf("jobs not succeeded on their first attempt: %s", bad)
	}
	// Exactly once, as the sidecars saw it: one start and one success per job across all three.
	// The last success is logged just after its row is finished.
	n.WaitFor(t, 5*time.Second, "every success logged", func() bool {
		logged := 0
		for _, c := range cars {
			logged += len(c.events("job.succeeded"))
		}
		return logged >= jobs
	})
	starts, successes := map[float64]int{}, map[float64]int{}
	for _, c := range cars {
		for _, e := range c.events("job.start") {
			starts[e["job"].(float64)]++
		}
		for _, e := range c.events("job.succeeded") {
			successes[e["job"].(float64)]++
		}
	}
	if len(starts) != jobs || len(successes) != jobs {
		t.Fatalf("%d jobs started and %d succeeded, want %d each", len(starts), len(successes), jobs)
	}
	for id, c := range starts {
		if c != 1 || successes[id] != 1 {
			t.Fatalf("job %v started %d times and succeeded %d times", id, c, successes[id])
		}
	}
}

func TestKilledSidecarsJobIsRequeuedAndFinishedByAnother(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	first := startSidecar(t, n, "doomed", "--lease", "1500ms")
	id := harness.QueryOne[int64](t, n, "", `SELECT steep_repl.enqueue_job('sleep', '{"seconds": 2}')`)
	n.WaitFor(t, 15*time.Second, "job running on the first sidecar", func() bool {
		return harness.QueryOne[string](t, n, "", "SELECT coalesce(lease_owner, '') FROM steep_repl.jobs WHERE id = $1", id) == "doomed"
	})
	first.kill()
	second := startSidecar(t, n, "survivor", "--lease", "1500ms")
	n.WaitFor(t, 30*time.Second, "job finished after the kill", func() bool {
		st := jobState(t, n, id) // one read: two could see queued, then running
		return st != "running" && st != "queued"
	})
	got := harness.QueryOne[string](t, n, "", "SELECT format('%s attempt=%s', state, attempt) FROM steep_repl.jobs WHERE id = $1", id)
	if got != "succeeded attempt=2" {
		t.Fatalf("job is %q, want succeeded on attempt 2", got)
	}
	reason := harness.QueryOne[string](t, n, "", "SELECT errors->0->>'error' FROM steep_repl.jobs WHERE id = $1", id)
	if !strings.Contains(reason, "doomed stopped heartbeating") {
		t.Fatalf("first attempt's recorded error %q does not name the dead worker", reason)
	}
	if len(second.awaitEvents(t, "job.succeeded", 1, 5*time.Second)) != 1 {
		t.Fatalf("the second sidecar did not finish the job")
	}
}

func TestJobFailsWithItsErrorAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	startSidecar(t, n, "car", "--lease", "3s")
	id := harness.QueryOne[int64](t, n, "", `SELECT steep_repl.enqueue_job('sleep',
		'{"seconds": 0, "fail": "disk on fire", "retry": true}', NULL, 2)`)
	n.WaitFor(t, 30*time.Second, "job failed", func() bool { return jobState(t, n, id) == "failed" })
	got := harness.QueryOne[string](t, n, "", `SELECT format('%s|%s|%s', attempt, error, jsonb_array_length(errors))
		FROM steep_repl.jobs WHERE id = $1`, id)
	if got != "2|disk on fire|2" {
		t.Fatalf("job is %q, want 2 attempts, the error text and 2 recorded errors", got)
	}
	ev := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.events WHERE event = 'job.failed' AND (detail->>'job')::bigint = $1", id)
	if ev != 1 {
		t.Fatalf("%d job.failed events, want 1", ev)
	}
}

func TestExpiredLeasesAreRetriedWithBackoffThenFailed(t *testing.T) {
	t.Parallel()
	// Drive the clock by hand: tick(now) and claim_job(..., now) take the time as an argument.
	// The supervisor stays idle: its own tick, on the real clock, would reap these year-2000
	// leases concurrently.
	n := setupNodeWith(t, idleSupervisor)
	id := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop', '{}', NULL, 2, '2000-01-01')")
	claim := func(at string) {
		t.Helper()
		got := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.claim_job('w', '{noop}', '1 minute', $1)", at)
		if got != 1 {
			t.Fatalf("claim at %s found no job", at)
		}
	}
	claim("2000-01-01 00:00")
	n.Exec(t, "", "SELECT steep_repl.tick('2000-01-01 00:02')")
	got := harness.QueryOne[string](t, n, "", "SELECT format('%s %s %s', state, attempt, scheduled_at - '2000-01-01 00:02'::timestamptz) FROM steep_repl.jobs WHERE id = $1", id)
	if got != "queued 1 00:00:02" {
		t.Fatalf("after the first expiry: %q, want queued, attempt 1, backoff 2 s", got)
	}
	if c := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.claim_job('w', '{noop}', '1 minute', '2000-01-01 00:02:01')"); c != 0 {
		t.Fatal("a job was claimable before its backoff ended")
	}
	claim("2000-01-01 00:02:03")
	n.Exec(t, "", "SELECT steep_repl.tick('2000-01-01 00:05')")
	got = harness.QueryOne[string](t, n, "", "SELECT format('%s %s %s', state, attempt, error) FROM steep_repl.jobs WHERE id = $1", id)
	if got != "failed 2 lease expired on attempt 2 of 2: worker w stopped heartbeating" {
		t.Fatalf("after max attempts: %q", got)
	}
}

func TestCancelOfRunningJobIsObservedWithinOneHeartbeat(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	const lease = 3 * time.Second // heartbeat every second
	car := startSidecar(t, n, "car", "--lease", lease.String())
	id := harness.QueryOne[int64](t, n, "", `SELECT steep_repl.enqueue_job('sleep', '{"seconds": 120}')`)
	n.WaitFor(t, 15*time.Second, "job running", func() bool { return jobState(t, n, id) == "running" })
	if st := harness.QueryOne[string](t, n, "", "SELECT steep_repl.cancel_job($1)", id); st != "running" {
		t.Fatalf("cancel_job returned %q for a running job", st)
	}
	asked := time.Now()
	n.WaitFor(t, lease/3+time.Second, "job cancelled within one heartbeat", func() bool { return jobState(t, n, id) == "cancelled" })
	t.Logf("cancel observed after %s", time.Since(asked).Round(10*time.Millisecond))
	if len(car.awaitEvents(t, "job.cancelled", 1, 5*time.Second)) != 1 {
		t.Fatal("sidecar did not log job.cancelled")
	}
	// Cancelling again is harmless.
	if st := harness.QueryOne[string](t, n, "", "SELECT steep_repl.cancel_job($1)", id); st != "cancelled" {
		t.Fatalf("second cancel returned %q", st)
	}
}

func TestCancelOfQueuedJobIsImmediate(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	id := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop')")
	if st := harness.QueryOne[string](t, n, "", "SELECT steep_repl.cancel_job($1)", id); st != "cancelled" {
		t.Fatalf("cancel_job of a queued job returned %q", st)
	}
	if c := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.claim_job('w', '{noop}')"); c != 0 {
		t.Fatal("a cancelled job was claimed")
	}
}

func TestSigtermReleasesRunningJobsForAnotherSidecar(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	car := startSidecar(t, n, "leaving", "--shutdown-grace", "300ms")
	id := harness.QueryOne[int64](t, n, "", `SELECT steep_repl.enqueue_job('sleep', '{"seconds": 120}')`)
	n.WaitFor(t, 15*time.Second, "job running", func() bool { return jobState(t, n, id) == "running" })
	if code := car.stop(t, 10*time.Second); code != 0 {
		t.Fatalf("sidecar exited with %d after SIGTERM", code)
	}
	got := harness.QueryOne[string](t, n, "", "SELECT format('%s %s %s', state, attempt, lease_owner IS NULL)::text FROM steep_repl.jobs WHERE id = $1", id)
	if got != "queued 0 t" {
		t.Fatalf("after SIGTERM the job is %q, want released (queued, attempt not counted)", got)
	}
}

func TestSidecarReconnectsAfterTheServerRestarts(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	car := startSidecar(t, n, "car")
	first := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop')")
	n.WaitFor(t, 15*time.Second, "first job done", func() bool { return jobState(t, n, first) == "succeeded" })
	lost := strings.Count(car.out.String(), `"event":"sidecar.listen_lost"`)
	n.Crash(t)
	// The sidecar sees the server go and fails to reconnect at least once before it is back.
	n.WaitFor(t, 15*time.Second, "the sidecar losing its LISTEN connection and failing to reconnect", func() bool {
		return strings.Count(car.out.String(), `"event":"sidecar.listen_lost"`) >= lost+2
	})
	n.Restart(t)
	second := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop')")
	n.WaitFor(t, 30*time.Second, "job done after the restart", func() bool { return jobState(t, n, second) == "succeeded" })
	log := car.out.String()
	if strings.Contains(log, "password") {
		t.Fatal("sidecar log mentions a password")
	}
}
