package tests

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// max_rate slows each worker to 40 kB/s so Chinook (about 400 kB of COPY text) takes
// seconds, and the sidecar can be killed in the middle.
const slowRate = `"max_rate": 40000`

func TestSnapshotResumesAfterTheSidecarIsKilledMidGenerateAndMidApply(t *testing.T) {
	scenario(t)
	t.Parallel()
	a, b := setupEmptyPair(t)
	harness.LoadChinook(t, a, "")
	dir := t.TempDir() + "/snap"

	// Generate: killed once some tables are written.
	carA := startSidecar(t, a, "sidecar_a1", "--lease", "2s")
	id := harness.QueryOne[string](t, a, "", "SELECT steep_repl.generate_snapshot($1, $2)", dir, `{"parallel": 2, `+slowRate+`}`)
	job := harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	a.WaitFor(t, 60*time.Second, "3 tables written", func() bool {
		return harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM steep_repl.snapshot_tables WHERE snapshot_id = $1 AND state = 'done'", id) >= 3
	})
	firstLSN := harness.QueryOne[string](t, a, "", "SELECT lsn::text FROM steep_repl.snapshots WHERE id = $1", id)
	carA.kill()
	if n := harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM steep_repl.snapshot_tables WHERE snapshot_id = $1 AND state = 'done'", id); n >= int64(harness.ChinookTables) {
		t.Fatalf("the generation finished before the kill (%d tables done)", n)
	}
	carA2 := startSidecar(t, a, "sidecar_a2", "--lease", "2s")
	waitJobDone(t, a, job, "succeeded", 90*time.Second)
	// The exported snapshot died with the killed sidecar: the job restarted with a new slot and said so.
	if len(carA2.events("snapshot.restarted")) != 1 {
		t.Fatalf("the resumed generation did not log snapshot.restarted")
	}
	got := harness.QueryOne[string](t, a, "", `SELECT format('%s %s', s.restarts, (SELECT count(*) FROM steep_repl.events e
		WHERE e.event = 'snapshot.restarted' AND e.detail->>'snapshot_id' = s.id)) FROM steep_repl.snapshots s WHERE id = $1`, id)
	if got != "1 1" {
		t.Fatalf("restarts and events: %s", got)
	}
	m := readManifest(t, dir)
	if m.LSN == firstLSN {
		t.Fatalf("the manifest kept the lost slot's LSN %s", firstLSN)
	}
	if slots := harness.QueryOne[string](t, a, "", "SELECT string_agg(slot_name, ' ') FROM pg_replication_slots"); slots != m.SlotName {
		t.Fatalf("slots on the source: %q, want only %s", slots, m.SlotName)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".partial") {
			t.Fatalf("partial file left: %s", e.Name())
		}
	}
	if len(entries) != harness.ChinookTables+2 { // the tables, the schema archive, the manifest
		t.Fatalf("%d files in the snapshot directory", len(entries))
	}

	// Apply: killed once some tables are loaded; the resumed job skips them.
	carB := startSidecar(t, b, "sidecar_b1", "--lease", "2s")
	job = harness.QueryOne[int64](t, b, "", "SELECT steep_repl.apply_snapshot($1, $2)", dir, `{"parallel": 2, `+slowRate+`}`)
	b.WaitFor(t, 60*time.Second, "3 tables loaded", func() bool {
		return harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM steep_repl.snapshot_apply_tables") >= 3
	})
	carB.kill()
	loaded := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM steep_repl.snapshot_apply_tables")
	if loaded >= int64(harness.ChinookTables) {
		t.Fatalf("the apply finished before the kill")
	}
	carB2 := startSidecar(t, b, "sidecar_b2", "--lease", "2s")
	waitJobDone(t, b, job, "succeeded", 90*time.Second)
	resumed := carB2.events("snapshot.apply_resumed")
	if len(resumed) != 1 || int64(resumed[0]["tables_loaded"].(float64)) != loaded {
		t.Fatalf("resume events %v, want one with tables_loaded %d", resumed, loaded)
	}
	if n := len(carB2.events("snapshot.table_complete")); int64(n) != int64(harness.ChinookTables)-loaded {
		t.Fatalf("the resumed apply loaded %d tables, want %d", n, int64(harness.ChinookTables)-loaded)
	}
	harness.AssertEqual(t, a, b, "")
	if sa, sb := sequenceValues(t, a), sequenceValues(t, b); sa != sb {
		t.Fatalf("sequences differ:\nsource %s\ntarget %s", sa, sb)
	}
}
