package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

func TestSnapshotChinookGenerateApplyIntoEmptyNodeIsEqual(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	id := generateSnapshot(t, p.a, p.dir, `{"compression": "zstd", "parallel": 3}`)
	m := readManifest(t, p.dir)
	if m.SnapshotID != id || len(m.Tables) != harness.ChinookTables || m.SourceNode != "node_a" || m.SlotName == "" {
		t.Fatalf("manifest %s: %d tables, source %s, slot %q", m.SnapshotID, len(m.Tables), m.SourceNode, m.SlotName)
	}
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", m.SlotName); n != 1 {
		t.Fatalf("the snapshot's slot %s is not kept on the source", m.SlotName)
	}
	if lsn := harness.QueryOne[string](t, p.a, "", "SELECT lsn::text FROM steep_repl.snapshots WHERE id = $1", id); lsn != m.LSN {
		t.Fatalf("manifest LSN %s, recorded %s", m.LSN, lsn)
	}

	applySnapshot(t, p.b, p.dir, `{"parallel": 3}`, "succeeded")
	harness.AssertEqual(t, p.a, p.b, "")
	if sa, sb := sequenceValues(t, p.a), sequenceValues(t, p.b); sa != sb || sa == "" {
		t.Fatalf("sequences differ:\nsource %s\ntarget %s", sa, sb)
	}
	// The schema came through pg_dump and pg_restore: the same constraints and indexes on both sides.
	cons := `SELECT string_agg(d, E'\n' ORDER BY d) FROM (SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) d
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace) x`
	if ca, cb := harness.QueryOne[string](t, p.a, "", cons), harness.QueryOne[string](t, p.b, "", cons); ca != cb {
		t.Fatalf("constraints differ:\nsource\n%s\ntarget\n%s", ca, cb)
	}
	idx := `SELECT string_agg(indexdef, E'\n' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'public'`
	if ia, ib := harness.QueryOne[string](t, p.a, "", idx), harness.QueryOne[string](t, p.b, "", idx); ia != ib {
		t.Fatalf("indexes differ:\nsource\n%s\ntarget\n%s", ia, ib)
	}
	// Identity columns keep working on the target after the restore.
	p.b.Exec(t, "", "INSERT INTO artist (name) VALUES ('after the snapshot')")
	list := harness.QueryOne[string](t, p.b, "", "SELECT string_agg(role || ':' || state, ',' ORDER BY role) FROM steep_repl.list_snapshots()")
	if list != "applied:complete" {
		t.Fatalf("list_snapshots on the target: %s", list)
	}
	got := harness.QueryOne[string](t, p.b, "", `SELECT format('%s %s/%s %s %s', percent, tables_done, tables_total, checksums_verified, step)
		FROM steep_repl.snapshot_progress`)
	if !strings.HasPrefix(got, "100.00 11/11 11 ") {
		t.Fatalf("final apply progress %q", got)
	}

	// The slot is kept until its expiry; then the snapshot.expire job drops it (and the
	// publication, which no subscriber's slot uses). Bring the expiry forward.
	p.a.Exec(t, "", "UPDATE steep_repl.jobs SET scheduled_at = now() WHERE kind = 'snapshot.expire' AND state = 'queued'")
	expire := harness.QueryOne[int64](t, p.a, "", "SELECT id FROM steep_repl.jobs WHERE kind = 'snapshot.expire'")
	p.a.Exec(t, "", "NOTIFY steep_repl_jobs")
	waitJobDone(t, p.a, expire, "succeeded", 30*time.Second)
	left := harness.QueryOne[string](t, p.a, "", `SELECT format('%s slots, %s publications, slot dropped %s',
		(SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication),
		(SELECT slot_dropped::text FROM steep_repl.list_snapshots() WHERE id = $1))`, id)
	if left != "0 slots, 0 publications, slot dropped true" {
		t.Fatalf("after expiry: %s", left)
	}
	// Subscribing from an expired snapshot fails before anything is loaded, and says why.
	before := userRowCount(t, p.b)
	job := applySnapshot(t, p.b, p.dir, `{"subscribe": true, "truncate": true}`, "failed")
	if msg := jobError(t, p.b, job); !strings.Contains(msg, "is gone") || !strings.Contains(msg, m.SlotName) {
		t.Fatalf("apply with subscribe after expiry: %s", msg)
	}
	if after := userRowCount(t, p.b); after != before {
		t.Fatalf("the refused apply changed the target: %d rows, then %d", before, after)
	}
	if st := harness.QueryOne[string](t, p.b, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'"); st != "failed" {
		t.Fatalf("node_b is %s after its subscribing apply failed", st)
	}
}
