package tests

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// subscriptionOID is the oid of node_b's subscription (0 when there is none).
func subscriptionOID(t *testing.T, p *pair) int64 {
	t.Helper()
	return harness.QueryOne[int64](t, p.b, "", "SELECT coalesce(max(oid::int8), 0) FROM pg_subscription")
}

func TestReinitFullUnderLoadEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := syncedPair(t)
	oldSub := subscriptionOID(t, p)
	corrupt(t, p)
	p.b.Exec(t, "", "DELETE FROM load_1 WHERE id % 3 = 0")
	p.b.Exec(t, "", "UPDATE sales.orders SET note = 'wrong' WHERE id % 4 = 0")
	writes, stop := writeLoad(t, p.a.Pool(t, ""), 2)
	stopChinook := chinookLoad(t, p)
	before := waitWrites(t, p.a, writes, 50, "before the reinit")
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"full": true, "parallel": 2}')`)
	waitCopying(t, p)
	p.waitState(t, "synchronized", 180*time.Second)
	synced := writes.Load()
	after := waitWrites(t, p.a, writes, 50, "after the reinit") - synced
	stop()
	stopChinook()
	assertWritesInEveryPhase(t, before, synced-before, after)
	p.waitEqual(t, 60*time.Second)
	if got := reinitEvents(t, p); got != "synchronized>reinitializing reinitializing>catching_up catching_up>synchronized" {
		t.Fatalf("state changes of the full reinit: %s", got)
	}
	if newSub := subscriptionOID(t, p); newSub == 0 || newSub == oldSub {
		t.Fatalf("the full reinit kept subscription %d (now %d), want a new one", oldSub, newSub)
	}
	// One slot on the source: the new subscription's (the old one's went with it).
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_replication_slots"); n != 1 {
		t.Fatalf("%d slots on the source after the full reinit: %s", n,
			harness.QueryOne[string](t, p.a, "", "SELECT string_agg(slot_name, ', ') FROM pg_replication_slots"))
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_tables WHERE node = 'node_b' AND sync_state = 'ready'"); n != 14 {
		t.Fatalf("init_tables of the full reinit: %d ready, want the 11 of Chinook, load_1, load_2 and sales.orders", n)
	}
	if pct := harness.QueryOne[float64](t, p.b, "", "SELECT percent::float8 FROM steep_repl.init_progress WHERE node = 'node_b'"); pct != 100 {
		t.Fatalf("full reinit progress %v%%, want 100", pct)
	}
	assertNoSubscriptionErrors(t, p.b)
}

// A column added on the source makes the node DIVERGED (drift check); start_reinit refuses
// until the tables match, listing the difference, and with schema_sync auto adds the column
// here in the same call and copies the table again.
func TestReinitAfterSchemaDriftWithSchemaSyncAuto(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := syncedPair(t)
	p.a.Exec(t, "", "ALTER TABLE sales.orders ADD COLUMN region text NOT NULL DEFAULT 'eu'")
	p.a.Exec(t, "", "INSERT INTO sales.orders VALUES (900001, 'after the new column', 'us')")
	// (tick()'s periodic check may be first: then check_drift finds the node DIVERGED already.)
	if r := dbaQuery[string](t, p.b, "SELECT steep_repl.check_drift('node_b')->>'status'"); r != "drift" {
		t.Fatalf("check_drift after a column added on the source: %s", r)
	}
	p.waitState(t, "diverged", 10*time.Second)
	expectReinitError(t, p, `{"tables": ["sales.orders"]}`, "42P16", "cannot be reinitialized until its tables match")
	_, pgErr := dbaState(t, p.b, "SELECT steep_repl.start_reinit('node_b', $1::jsonb)", `{"tables": ["sales.orders"]}`)
	if !strings.Contains(pgErr.Detail, "region") || !strings.Contains(pgErr.Hint, `"schema_sync": "auto"`) {
		t.Fatalf("the refusal does not list what to fix: detail %q hint %q", pgErr.Detail, pgErr.Hint)
	}
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["sales.orders"], "schema_sync": "auto"}')`)
	if n := harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = 'sales' AND table_name = 'orders' AND column_name = 'region'`); n != 1 {
		t.Fatal("schema_sync auto did not add the column on the target")
	}
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	if r := dbaQuery[string](t, p.b, "SELECT steep_repl.check_drift('node_b')->>'status'"); r != "match" {
		t.Fatalf("drift check after the reinit: %s", r)
	}
}

// A sidecar killed (SIGKILL) while the table-sync workers copy a full reinit: a restarted one
// ends it, equal.
func TestReinitFullSurvivesASidecarKilledMidCopy(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	slowCopy(t, p, "invoice_line", 3*time.Millisecond)
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"full": true}')`)
	waitCopying(t, p)
	p.b.WaitFor(t, 30*time.Second, "rows being copied", func() bool {
		return harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy)")
	})
	p.car.kill()
	if st := p.state(t); st != "reinitializing" {
		t.Fatalf("node_b is %s when the sidecar was killed, want reinitializing", st)
	}
	startSidecar(t, p.b, "sidecar_b2")
	p.waitState(t, "synchronized", 180*time.Second)
	p.waitEqual(t, 60*time.Second)
	assertNoSubscriptionErrors(t, p.b)
}

// A reinit whose job fails (the source unreachable on its only attempt) is FAILED, its tables
// named; start_reinit again retries it, ending equal.
func TestReinitFailedThenRetriedEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	conninfo := harness.QueryOne[string](t, p.b, "", "SELECT conninfo FROM steep_repl.nodes WHERE name = 'node_a'")
	p.car.kill()
	job := dbaQuery[int64](t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["invoice_line"]}')`)
	p.b.Exec(t, "", "UPDATE steep_repl.jobs SET max_attempts = 1 WHERE id = $1", job)
	p.b.Exec(t, "", "UPDATE steep_repl.nodes SET conninfo = 'host=127.0.0.1 port=1 dbname=postgres connect_timeout=2' WHERE name = 'node_a'")
	startSidecar(t, p.b, "sidecar_b2")
	p.waitState(t, "failed", 60*time.Second)
	p.b.WaitFor(t, 30*time.Second, "the failed reinit job ended", func() bool {
		return harness.QueryOne[string](t, p.b, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", job) == "failed"
	})
	reason := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "public.invoice_line") {
		t.Fatalf("reason of the failed reinit does not name its table: %q", reason)
	}
	p.b.Exec(t, "", "UPDATE steep_repl.nodes SET conninfo = $1 WHERE name = 'node_a'", conninfo)
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["invoice_line"]}')`)
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	if got := reinitEvents(t, p); got != "failed>reinitializing reinitializing>catching_up catching_up>synchronized" {
		t.Fatalf("state changes of the retried reinit: %s", got)
	}
}

// catalogWrite is a statement writing a pg_catalog table (qualified, or one of the catalogs a
// hand-made reinit would touch).
var catalogWrite = regexp.MustCompile(`(?i)\b(insert\s+into|update|delete\s+from)\s+(only\s+)?"?(pg_catalog"?\.|pg_subscription|pg_publication|pg_replication_origin|pg_class\b)`)

// No statement a reinit (table scope, then full) issues on the target writes a catalog table:
// the server logs every statement (log_statement = all) while they run.
func TestReinitWritesNoCatalogTable(t *testing.T) {
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	p.b.Exec(t, "", "ALTER SYSTEM SET log_statement = 'all'")
	p.b.Exec(t, "", "SELECT pg_reload_conf()")
	p.b.WaitFor(t, 10*time.Second, "log_statement = all", func() bool {
		return harness.QueryOne[string](t, p.b, "", "SHOW log_statement") == "all"
	})
	start := logSize(t, p.b)
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["invoice_line"]}')`)
	p.waitState(t, "synchronized", 120*time.Second)
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"full": true}')`)
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	b, err := os.ReadFile(p.b.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b[start:])
	for _, want := range []string{"steep_repl.start_reinit", "steep_repl.reinit_truncate", "REFRESH PUBLICATION", "CREATE SUBSCRIPTION"} {
		if !strings.Contains(log, want) {
			t.Fatalf("the server log lacks %q: log_statement did not log the reinit", want)
		}
	}
	// Statements may span lines: search the whole log, and show where.
	for _, m := range catalogWrite.FindAllStringIndex(log, -1) {
		t.Errorf("a statement writes a catalog table: ...%s...", log[max(0, m[0]-200):min(len(log), m[1]+100)])
	}
}

func logSize(t *testing.T, n *harness.Node) int64 {
	t.Helper()
	st, err := os.Stat(n.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
