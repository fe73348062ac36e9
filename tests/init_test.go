package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

func TestChinookInitReachesSynchronizedAndKeepsReplicating(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.startInit(t, "{}")

	// Watch progress on the way: percent never decreases.
	last := -1.0
	p.b.WaitFor(t, 90*time.Second, "node_b SYNCHRONIZED", func() bool {
		pct := harness.QueryOne[float64](t, p.b, "", "SELECT coalesce((SELECT percent FROM steep_repl.init_progress WHERE node = 'node_b'), 0)::float8")
		if pct < last {
			t.Fatalf("percent went down from %.2f to %.2f", last, pct)
		}
		last = pct
		if st := p.state(t); st == "failed" {
			t.Fatalf("init failed: %s", harness.QueryOne[string](t, p.b, "", "SELECT last_error FROM steep_repl.nodes WHERE name = 'node_b'"))
		}
		return p.state(t) == "synchronized"
	})
	harness.AssertEqual(t, p.a, p.b, "")

	got := harness.QueryOne[string](t, p.b, "", `SELECT format('%s %s/%s %s', percent, tables_done, tables_total, phase)
		FROM steep_repl.init_progress WHERE node = 'node_b'`)
	if got != "100.00 11/11 synchronized" {
		t.Fatalf("final progress %q", got)
	}
	path := harness.QueryOne[string](t, p.b, "", `SELECT string_agg(to_state, ' ' ORDER BY id) FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'init.state_change'`)
	if path != "preparing copying catching_up synchronized" {
		t.Fatalf("state path %q", path)
	}

	// Replication goes on: insert, update and delete on the source arrive on the target.
	p.a.Exec(t, "", "INSERT INTO artist (name) VALUES ('Steep Replicators')")
	p.a.Exec(t, "", "UPDATE track SET unit_price = unit_price + 1 WHERE track_id % 7 = 0")
	p.a.Exec(t, "", "DELETE FROM playlist_track WHERE playlist_id = 1 AND track_id < 500")
	p.waitEqual(t, 30*time.Second)
}

func TestCancelMidCopyRemovesEverythingAndAllowsANewInit(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.addSlowTable(t, 20000, 2*time.Millisecond) // about 40 s of copying
	p.startInit(t, `{"parallel": 2}`)
	p.waitState(t, "copying", 30*time.Second)
	p.b.WaitFor(t, 30*time.Second, "slow table copying with rows/s and an ETA", func() bool {
		return harness.QueryOne[bool](t, p.b, "", `SELECT coalesce((SELECT 'public.slow' = ANY (current_tables)
			AND rows_per_sec > 0 AND eta_seconds IS NOT NULL AND percent > 0
			FROM steep_repl.init_progress WHERE node = 'node_b'), false)`)
	})

	jobID := dbaQuery[int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	if again := dbaQuery[int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')"); again != jobID {
		t.Fatalf("a second cancel_init queued job %d instead of reusing %d", again, jobID)
	}
	asked := time.Now()
	p.waitState(t, "uninitialized", 30*time.Second)
	p.b.WaitFor(t, 30*time.Second-time.Since(asked), "cancel job done", func() bool { return jobState(t, p.b, jobID) == "succeeded" })
	t.Logf("cancel took %s", time.Since(asked).Round(100*time.Millisecond))
	p.assertNoInitLeftovers(t)

	// Nothing to cancel any more: a notice, not an error.
	if n := dbaQuery[*int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')"); n != nil {
		t.Fatalf("cancel_init of an uninitialized node queued job %d", *n)
	}

	p.removeSlowDown(t)
	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
}

func TestSourceCrashMidCopyFailsWithAReasonAndARetrySucceeds(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.addSlowTable(t, 20000, 2*time.Millisecond)
	p.startInit(t, `{"source_timeout": 5}`)
	p.b.WaitFor(t, 30*time.Second, "slow table copying", func() bool {
		return harness.QueryOne[bool](t, p.b, "", `SELECT coalesce((SELECT 'public.slow' = ANY (current_tables)
			FROM steep_repl.init_progress WHERE node = 'node_b'), false)`)
	})
	p.a.Crash(t)
	p.waitState(t, "failed", 60*time.Second)
	reason := harness.QueryOne[string](t, p.b, "", "SELECT last_error FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "node_a") {
		t.Fatalf("failure reason %q does not name the source", reason)
	}
	t.Logf("failure reason: %s", reason)

	p.a.Restart(t)
	p.removeSlowDown(t)
	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
}
