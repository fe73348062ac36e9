package tests

import (
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// start_init's two_phase method (steep_repl._start_two_phase_init): the target's sidecar has
// the source's sidecar generate into a shared path, applies it and subscribes.
func TestSnapshotTwoPhaseInitGeneratesAppliesAndSubscribes(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	job := harness.QueryOne[int64](t, p.b, "", "SELECT steep_repl.start_init('node_b', 'node_a', 'two_phase', $1)",
		`{"path": "`+p.dir+`", "compression": "lz4", "parallel": 2}`)
	if st := harness.QueryOne[string](t, p.b, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'"); st != "preparing" {
		t.Fatalf("node_b is %s after the call", st)
	}
	waitJobDone(t, p.b, job, "succeeded", 120*time.Second)
	pr := &pair{a: p.a, b: p.b}
	pr.waitState(t, "synchronized", 60*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
	p.a.Exec(t, "", "UPDATE track SET unit_price = unit_price + 1 WHERE track_id % 5 = 0")
	pr.waitEqual(t, 30*time.Second)
	got := harness.QueryOne[string](t, p.b, "", `SELECT format('%s %s %s', method, phase, source_node) FROM steep_repl.init_progress WHERE node = 'node_b'`)
	if got != "two_phase synchronized node_a" {
		t.Fatalf("init_progress: %s", got)
	}
	// The source generated it (its sidecar wrote the files), the target applied it.
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM steep_repl.snapshots WHERE state = 'complete'"); n != 1 {
		t.Fatalf("%d complete snapshots on the source", n)
	}
	// Bad input creates nothing.
	if code, _ := sqlState(t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a', 'two_phase', '{}')"); code != "22023" {
		t.Fatalf("no path: SQLSTATE %s", code)
	}
}

func TestCancelInitStopsATwoPhaseInitAndEmptiesWhatItLoaded(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	// 30 kB/s per worker: Chinook takes a while to generate and as long to apply, so the cancel
	// lands after some tables are loaded and before the rest.
	job := harness.QueryOne[int64](t, p.b, "", "SELECT steep_repl.start_init('node_b', 'node_a', 'two_phase', $1)",
		`{"path": "`+p.dir+`", "parallel": 1, "max_rate": 30000}`)
	p.b.WaitFor(t, 120*time.Second, "the apply loading tables", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.snapshot_apply_tables") > 0
	})
	if rows := userRowCount(t, p.b); rows == 0 {
		t.Fatal("no rows loaded before the cancel")
	}
	cancel := harness.QueryOne[int64](t, p.b, "", "SELECT steep_repl.cancel_init('node_b')")
	pr := &pair{a: p.a, b: p.b}
	pr.waitState(t, "uninitialized", 60*time.Second)
	waitJobDone(t, p.b, cancel, "succeeded", 30*time.Second)
	if st := harness.QueryOne[string](t, p.b, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", job); st != "cancelled" {
		t.Fatalf("the two-phase init job is %s after cancel_init", st)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_subscription"); n != 0 {
		t.Fatalf("%d subscription(s) left on the target", n)
	}
	if rows := userRowCount(t, p.b); rows != 0 {
		t.Fatalf("the target still holds %d rows the cancelled init loaded", rows)
	}
}
