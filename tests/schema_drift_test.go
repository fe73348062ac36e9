package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// start_init with schema_sync auto repairs the target's tables, the init ends row-equal, the
// periodic drift check finds nothing, ignores an unreachable source, then moves the node to
// DIVERGED once the source's tables change.
func TestStartInitAutoSyncThenDriftToDiverged(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.b.Exec(t, "", `DROP TABLE playlist_track; ALTER TABLE track DROP COLUMN composer;
		ALTER TABLE artist ALTER COLUMN name TYPE varchar(60)`)
	code, pgErr := dbaState(t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a')")
	if code != "42P16" || strings.Count(pgErr.Detail, "\n") != 2 {
		t.Fatalf("strict start_init: %s %+v", code, pgErr)
	}
	p.startInit(t, `{"schema_sync": "auto", "parallel": 2}`)
	p.waitState(t, "synchronized", 120*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
	applied := harness.QueryOne[string](t, p.b, "", `SELECT detail->>'applied' FROM steep_repl.events WHERE event = 'schema.synced'`)
	for _, want := range []string{"CREATE TABLE public.playlist_track", "ADD COLUMN composer character varying(220)",
		"ALTER COLUMN name TYPE character varying(120)"} {
		if !strings.Contains(applied, want) {
			t.Errorf("schema.synced event lacks %q: %s", want, applied)
		}
	}

	// The first drift check runs as soon as the node is SYNCHRONIZED: a real init is no drift.
	p.b.WaitFor(t, 20*time.Second, "a drift check", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.drift_checks WHERE node = 'node_b'") == 1
	})
	if got := harness.QueryOne[string](t, p.b, "", "SELECT status || ' ' || differences::text FROM steep_repl.drift_checks"); got != "match []" {
		t.Fatalf("drift check after the init: %s", got)
	}
	// Not due: tick() does not look (the default interval is 60 s).
	if got := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(steep_repl.tick()->>'drift', 'not due')"); got != "not due" {
		t.Fatalf("tick() drift right after a check: %s", got)
	}

	// An unreachable source is an error recorded for the next check, not drift and not a failed tick.
	dbaExec(t, p.b, "SELECT steep_repl.configure_schema_sync(drift_check_interval => '1 second')")
	conninfo := harness.QueryOne[string](t, p.b, "", "SELECT conninfo FROM steep_repl.nodes WHERE name = 'node_a'")
	p.b.Exec(t, "", "UPDATE steep_repl.nodes SET conninfo = 'host=127.0.0.1 port=1 dbname=postgres connect_timeout=2' WHERE name = 'node_a'")
	p.b.WaitFor(t, 20*time.Second, "a drift check that cannot reach node_a", func() bool {
		return harness.QueryOne[string](t, p.b, "", "SELECT status || ' ' || coalesce(error, '') FROM steep_repl.drift_checks") != "match "
	})
	if got := harness.QueryOne[string](t, p.b, "", "SELECT status || ': ' || error FROM steep_repl.drift_checks"); !strings.HasPrefix(got, "error: ") ||
		!strings.Contains(got, "Connection refused") {
		t.Fatalf("drift check against an unreachable source: %s", got)
	}
	if st := p.state(t); st != "synchronized" {
		t.Fatalf("an unreachable source moved node_b to %s", st)
	}
	p.b.Exec(t, "", "UPDATE steep_repl.nodes SET conninfo = $1 WHERE name = 'node_a'", conninfo)

	// A column added on the source is drift: DIVERGED, with the difference in the events.
	p.a.Exec(t, "", "ALTER TABLE genre ADD COLUMN mood text")
	p.waitState(t, "diverged", 20*time.Second)
	const want = "table public.genre: column mood text is on node_a but not on node_b"
	got := harness.QueryOne[string](t, p.b, "", `SELECT concat_ws(' | ',
		(SELECT detail->>'differences' FROM steep_repl.events WHERE event = 'schema.drift'),
		(SELECT detail->>'reason' FROM steep_repl.events WHERE event = 'init.state_change' AND to_state = 'diverged'),
		(SELECT status || ' ' || differences::text FROM steep_repl.drift_checks))`)
	if strings.Count(got, want) != 3 {
		t.Fatalf("drift not listed in the schema.drift event, the transition's reason and drift_checks: %s", got)
	}
	// On demand: the same finding; the node is already DIVERGED.
	report := dbaQuery[string](t, p.b, "SELECT steep_repl.check_drift()::text")
	if !strings.Contains(report, `"status": "drift"`) || !strings.Contains(report, `"diverged": false`) || !strings.Contains(report, want) {
		t.Fatalf("check_drift(): %s", report)
	}
}

// A confirmed manual sync accepts its differences: start_init leaves out the tables the target
// lacks, and the drift check does not count accepted differences as drift.
func TestManualSchemaSyncAcceptsDifferencesOnce(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	a.Exec(t, "", "CREATE TABLE kept (id int PRIMARY KEY, v text, extra int); CREATE TABLE missing_here (id int PRIMARY KEY)")
	b.Exec(t, "", "CREATE TABLE kept (id int PRIMARY KEY, v text)")
	code, pgErr := dbaState(t, b, `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"schema_sync": "manual"}')`)
	if code != "42P16" || !strings.Contains(pgErr.Message, "schema_sync is manual") || !strings.Contains(pgErr.Hint, "confirm") {
		t.Fatalf("manual start_init without confirm: %s %+v", code, pgErr)
	}
	for _, opts := range []string{`{"schema_sync": "sometimes"}`, `{"schema_sync": "manual", "confirm": "yes"}`} {
		if code, _ := dbaState(t, b, "SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', $1)", opts); code != "22023" {
			t.Errorf("start_init %s: SQLSTATE %s, want 22023", opts, code)
		}
	}
	dbaExec(t, b, `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"schema_sync": "manual", "confirm": true}')`)
	if got := harness.QueryOne[string](t, b, "", `SELECT tables_total || ' ' || (SELECT string_agg(table_name, ',') FROM steep_repl.init_tables)
		FROM steep_repl.init_progress`); got != "1 kept" {
		t.Fatalf("manual init plan: %s", got)
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM steep_repl.schema_accepted_differences WHERE peer = 'node_a'"); n != 2 {
		t.Fatalf("%d accepted differences recorded, want 2", n)
	}
	// Pretend the init finished: only a new difference is drift.
	b.Exec(t, "", `SELECT steep_repl.transition('node_b', 'copying'), steep_repl.transition('node_b', 'catching_up'),
		steep_repl.transition('node_b', 'synchronized')`)
	if r := dbaQuery[string](t, b, "SELECT steep_repl.check_drift('node_b')->>'status'"); r != "match" {
		t.Fatalf("accepted differences counted as drift: %s", r)
	}
	a.Exec(t, "", "ALTER TABLE kept ALTER COLUMN v SET NOT NULL")
	if r := dbaQuery[string](t, b, "SELECT steep_repl.check_drift()::text"); !strings.Contains(r, `"diverged": true`) ||
		!strings.Contains(r, "table public.kept: column v is NOT NULL on node_a but nullable on node_b") || strings.Contains(r, "extra") {
		t.Fatalf("check_drift after a new difference: %s", r)
	}
}
