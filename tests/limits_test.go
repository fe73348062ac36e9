package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// TestPrepareInitNeverPublishesATableWithoutReplicaIdentity: a publication of a table without a
// replica identity makes the source application's own DELETE fail, so prepare_init refuses to
// create one, creates nothing, and the application's writes go on.
func TestPrepareInitNeverPublishesATableWithoutReplicaIdentity(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	a.Exec(t, "", "CREATE TABLE bloat (v int); INSERT INTO bloat SELECT generate_series(1, 10)")
	for _, sql := range []string{
		"SELECT * FROM steep_repl.prepare_init('node_b')",
		"SELECT steep_repl.prepare_init_export('node_b')",
	} {
		code, pgErr := dbaState(t, a, sql)
		if code != "55000" || !strings.Contains(pgErr.Message, "public.bloat") || pgErr.Hint == "" {
			t.Fatalf("%s: SQLSTATE %q %v, want 55000 naming public.bloat with a hint", sql, code, pgErr)
		}
	}
	created := harness.QueryOne[string](t, a, "", `SELECT format('slots=%s publications=%s jobs=%s',
		(SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication), (SELECT count(*) FROM steep_repl.jobs))`)
	if created != "slots=0 publications=0 jobs=0" {
		t.Fatalf("a refused prepare_init created %s", created)
	}
	a.Exec(t, "", "DELETE FROM bloat WHERE v = 1; UPDATE bloat SET v = 0 WHERE v = 2")
}

// TestPreparedSlotsAndHeldSnapshotsAreCapped: expiry, hold and the number of prepared slots of a
// target are capped by superuser settings, so an operator cannot make the source hold WAL or the
// xmin horizon for a millennium, nor fill max_replication_slots.
func TestPreparedSlotsAndHeldSnapshotsAreCapped(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	for _, c := range []struct{ sql, code, msg string }{
		{"SELECT * FROM steep_repl.prepare_init('node_b', NULL, '1000 years')", "22023", "expires must be positive and at most 30 days"},
		{"SELECT steep_repl.prepare_init_export('node_b', NULL, '7 days', '200 years')", "22023", "hold must be positive, at most expires and at most 1 day"},
		{"SELECT steep_repl.prepare_init_export('node_b', NULL, '1000 years', '1 hour')", "22023", "expires must be positive and at most"},
	} {
		code, pgErr := dbaState(t, a, c.sql)
		if code != c.code || !strings.Contains(pgErr.Message, c.msg) || pgErr.Hint == "" {
			t.Errorf("%s: SQLSTATE %q %v, want %s %q with a hint", c.sql, code, pgErr, c.code, c.msg)
		}
	}
	a.Exec(t, "", "ALTER SYSTEM SET steep_repl.max_prepared_slots = 2")
	a.Exec(t, "", "SELECT pg_reload_conf()")
	a.WaitFor(t, 10*time.Second, "the new limit", func() bool {
		return dbaQuery[string](t, a, "SHOW steep_repl.max_prepared_slots") == "2"
	})
	for i := range 2 {
		dbaExec(t, a, "SELECT * FROM steep_repl.prepare_init('node_b', $1)", fmt.Sprintf("slot_%d", i))
	}
	code, pgErr := dbaState(t, a, "SELECT * FROM steep_repl.prepare_init('node_b', 'slot_3')")
	if code != "53400" || pgErr.Hint == "" {
		t.Fatalf("a third prepared slot: SQLSTATE %q %v, want 53400 with a hint", code, pgErr)
	}
	if n := harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM pg_replication_slots"); n != 2 {
		t.Fatalf("%d slots on the source, want the 2 allowed", n)
	}
	if code, _ := dbaState(t, a, "SET steep_repl.max_slot_expiry = '100 years'"); code != "42501" {
		t.Fatalf("an operator changed steep_repl.max_slot_expiry: SQLSTATE %q, want 42501", code)
	}
}

// TestSnapshotOptionsAreBounded: a trickle max_rate and a slot kept past the expiry limit are
// refused before anything is created.
func TestSnapshotOptionsAreBounded(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	n.Exec(t, "", "CREATE TABLE t (id int PRIMARY KEY)")
	dir := t.TempDir() + "/snap"
	for _, c := range []struct{ opts, msg string }{
		{`{"max_rate": 1}`, "max_rate must be 0 (no cap) or at least 1000"},
		{`{"max_rate": -5}`, "max_rate must be between 0 and"},
		{`{"max_rate": "NaN"}`, "max_rate must be between 0 and"},
		{`{"slot_expiry": 315360000}`, "slot_expiry must be between 60 and 2592000"},
	} {
		code, pgErr := sqlState(t, n, "SELECT steep_repl.generate_snapshot($1, $2)", dir, c.opts)
		if code != "22023" || !strings.Contains(pgErr.Message, c.msg) || pgErr.Hint == "" {
			t.Errorf("%s: SQLSTATE %q %v, want 22023 %q with a hint", c.opts, code, pgErr, c.msg)
		}
	}
	if n := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.snapshots"); n != 0 {
		t.Fatalf("refused snapshots created %d rows", n)
	}
}

// TestCompleteInitChecksItsOptionsFirstAndSlotsShowTheirWAL: complete_init refuses out-of-range
// numeric options before it probes the source, and init_slot_usage shows what a prepared slot
// makes the source keep.
func TestCompleteInitChecksItsOptionsFirstAndSlotsShowTheirWAL(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	for _, opts := range []string{`{"lag_threshold": -1}`, `{"source_timeout": "NaN"}`, `{"source_timeout": 0}`} {
		// node_x is not registered: a check made after the probe would say 42704 instead.
		code, pgErr := dbaState(t, a, "SELECT steep_repl.complete_init('node_b', 'node_x', 'slot', '0/1', $1)", opts)
		if code != "22023" || pgErr.Hint == "" {
			t.Errorf("complete_init %s: SQLSTATE %q %v, want 22023 with a hint", opts, code, pgErr)
		}
	}
	dbaExec(t, a, "SELECT * FROM steep_repl.prepare_init('node_b')")
	a.Exec(t, "", "INSERT INTO load_1 SELECT g, md5(g::text), 1 FROM generate_series(100001, 150000) g")
	if wal := dbaQuery[int64](t, a, "SELECT retained_wal_bytes FROM steep_repl.init_slot_usage WHERE target_node = 'node_b'"); wal <= 0 {
		t.Fatalf("retained_wal_bytes %d after writes on the source, want > 0", wal)
	}
}
