package tests

import (
	"fmt"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// TestSnapshotProgressRateAndETAOverTheWindow drives steep_repl._snapshot_progress_set (the
// sidecar's progress write) on a clock of its own: the throughput and ETA it stores come from
// steep_repl._rate_eta over the job's samples of the last 10 s, as init_progress's do from
// tick(). The window forgets the fast past; a restart or a new phase measures afresh.
func TestSnapshotProgressRateAndETAOverTheWindow(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	set := func(secs float64, phase string, done, total int64, restart bool) string {
		t.Helper()
		progress := fmt.Sprintf(`{"phase": %q, "step": "writing", "percent": 0, "bytes_done": %d, "bytes_total": %d,
			"rows_done": 0, "rows_total": 0, "tables_done": 0, "tables_total": 1, "checksums_verified": 0,
			"checksums_failed": 0, "tuples_skipped": 0, "throughput_bytes_s": 12345, "eta_seconds": 6789}`, phase, done, total)
		return harness.QueryOne[string](t, n, "", `SELECT format('rate %s eta %s',
			coalesce(r.throughput_bytes_s::float8::text, 'null'), coalesce(r.eta_seconds::float8::text, 'null'))
			FROM steep_repl._snapshot_progress_set(1, $1::jsonb, $2, '2000-01-01'::timestamptz + make_interval(secs => $3)) r`,
			progress, restart, secs)
	}
	if got := set(0, "generation", 0, 2200, false); got != "rate null eta null" {
		t.Fatalf("first sample: %s, want no rate (what the sidecar sent is ignored)", got)
	}
	var got string
	for i := 1; i <= 30; i++ {
		v := int64(i) * 100
		if i > 20 {
			v = 2000 + int64(i-20)*10 // slows down: the window forgets the fast past
		}
		got = set(float64(i), "generation", v, 2200, false)
	}
	if got != "rate 10 eta 10" {
		t.Fatalf("after 30 s: %s, want rate 10 (over the last 10 s) and eta 10", got)
	}
	if got := set(31, "generation", 2200, 2200, false); got != "rate 19 eta 0" {
		t.Fatalf("done: %s, want a rate and eta 0", got)
	}
	if n := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.snapshot_samples WHERE job_id = 1"); n != 11 {
		t.Fatalf("%d samples kept, want the 11 of the last 10 s", n)
	}
	// A restarted attempt, then a new phase: no rate until a sample of its own is 200 ms old.
	for i, phase := range []string{"generation", "application"} {
		at := 40 + 10*float64(i)
		if got := set(at, phase, 0, 1000, phase == "generation"); got != "rate null eta null" {
			t.Fatalf("%s afresh: %s", phase, got)
		}
		if got := set(at+0.1, phase, 50, 1000, false); got != "rate null eta null" {
			t.Fatalf("%s after 100 ms: %s", phase, got)
		}
		if got := set(at+0.5, phase, 100, 1000, false); got != "rate 200 eta 4.5" {
			t.Fatalf("%s after 500 ms: %s", phase, got)
		}
	}

	// The ETA without a rate: 0 once nothing is left, else unknown.
	if got := harness.QueryOne[string](t, n, "", `SELECT format('%s %s',
		(steep_repl._rate_eta(10, 10, now(), NULL, NULL)).eta_seconds,
		coalesce((steep_repl._rate_eta(5, 10, now(), NULL, NULL)).eta_seconds::text, 'null'))`); got != "0 null" {
		t.Fatalf("eta without a rate: %s, want 0 when done and null otherwise", got)
	}
}
