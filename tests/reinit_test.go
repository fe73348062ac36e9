package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// syncedPair is a Chinook pair initialized to SYNCHRONIZED and equal, with tables load_1 and
// load_2 (for writeLoad) and sales.orders, a table in another schema.
func syncedPair(t *testing.T) *pair {
	t.Helper()
	p := setupPair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "CREATE SCHEMA sales")
		n.Exec(t, "", "CREATE TABLE sales.orders (id int PRIMARY KEY, note text NOT NULL)")
		for i := 1; i <= 2; i++ {
			n.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		}
	}
	for i := 1; i <= 2; i++ {
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 5000) g", i))
	}
	p.a.Exec(t, "", "INSERT INTO sales.orders SELECT g, 'order ' || g FROM generate_series(1, 100) g")
	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	return p
}

// chinookLoad updates rows of Chinook tables on the source (invoice_line, track, customer,
// album) until stopped: with writeLoad on the load tables, a write load against every table.
func chinookLoad(t *testing.T, p *pair) func() {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		pool := p.a.Pool(t, "")
		stmts := []string{
			"UPDATE invoice_line SET quantity = quantity + 1 WHERE invoice_line_id = %d",
			"UPDATE track SET milliseconds = milliseconds + 1 WHERE track_id = %d",
			"UPDATE customer SET fax = md5(random()::text) WHERE customer_id = %d",
			"UPDATE album SET title = left(md5(random()::text), 20) WHERE album_id = %d",
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, _ = pool.Exec(ctx, fmt.Sprintf(stmts[rng.IntN(len(stmts))], 1+rng.IntN(50)))
			cancel()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var once sync.Once
	fn := func() { once.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(fn)
	return fn
}

// corrupt changes invoice_line on the target directly: updates, deletes and an insert.
func corrupt(t *testing.T, p *pair) {
	t.Helper()
	p.b.Exec(t, "", "UPDATE invoice_line SET unit_price = unit_price + 1 WHERE invoice_line_id % 7 = 0")
	p.b.Exec(t, "", "DELETE FROM invoice_line WHERE invoice_line_id % 11 = 0")
	p.b.Exec(t, "", "INSERT INTO invoice_line OVERRIDING SYSTEM VALUE VALUES (1000000, 1, 1, 9.99, 3)")
	rep, err := harness.Compare(context.Background(), p.a.Pool(t, ""), p.b.Pool(t, ""), harness.CompareOptions{Tables: []string{"invoice_line"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Equal() {
		t.Fatal("the corruption of invoice_line on the target did not make it differ")
	}
}

// slowCopy makes each row copied into table on the target take delay (an ENABLE ALWAYS
// trigger fires in the table-sync worker too), holding the reinit's copy back.
func slowCopy(t *testing.T, p *pair, table string, delay time.Duration) {
	t.Helper()
	p.b.Exec(t, "", fmt.Sprintf(`CREATE OR REPLACE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(%f); RETURN NEW; END $$`, delay.Seconds()))
	p.b.Exec(t, "", fmt.Sprintf("CREATE TRIGGER slow_down BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION slow_down()", table))
	p.b.Exec(t, "", fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER slow_down", table))
}

// waitCopying waits until the reinit's tables are subscribed again and being copied.
func waitCopying(t *testing.T, p *pair) {
	t.Helper()
	p.b.WaitFor(t, 60*time.Second, "the reinit copying", func() bool {
		if st := p.state(t); st == "failed" {
			t.Fatalf("reinit failed: %s", harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'"))
		}
		return harness.QueryOne[bool](t, p.b, "", `SELECT EXISTS (SELECT 1 FROM steep_repl.init_progress
			WHERE phase = 'reinitializing' AND subscription_oid IS NOT NULL)`)
	})
}

// assertReplicatesDuringReinit writes a row of a table outside the scope on the source and
// checks it reaches the target while the reinit is still copying.
func assertReplicatesDuringReinit(t *testing.T, p *pair, table string, id int) {
	t.Helper()
	waitCopying(t, p)
	p.a.Exec(t, "", fmt.Sprintf("INSERT INTO %s VALUES (%d, 'written during the reinit'%s)", table, id,
		map[bool]string{true: ", 0", false: ""}[strings.HasPrefix(table, "load_")]))
	p.b.WaitFor(t, 30*time.Second, "the row written during the reinit on the target", func() bool {
		return harness.QueryOne[bool](t, p.b, "", fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE id = %d)", table, id))
	})
	st := p.state(t)
	pending := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")
	if st != "reinitializing" || pending == 0 {
		t.Fatalf("the row arrived only when the reinit was over (state %s, %d tables still copying)", st, pending)
	}
	t.Logf("a row of %s arrived during the reinit (state %s, %d table(s) still copying)", table, st, pending)
}

func reinitEvents(t *testing.T, p *pair) string {
	t.Helper()
	return harness.QueryOne[string](t, p.b, "", `SELECT string_agg(from_state || '>' || to_state, ' ' ORDER BY id) FROM steep_repl.events
		WHERE event = 'init.state_change' AND id >= (SELECT max(id) FROM steep_repl.events WHERE to_state = 'reinitializing'
		AND event = 'init.state_change')`)
}

func TestReinitOfACorruptedTableUnderLoadEndsEqualWhileOthersReplicate(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	slowCopy(t, p, "invoice_line", 2*time.Millisecond)
	writes, stop := writeLoad(t, p.a.Pool(t, ""), 2)
	stopChinook := chinookLoad(t, p)
	before := waitWrites(t, p.a, writes, 50, "before the reinit")
	job := dbaQuery[int64](t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["public.invoice_line"]}')`)
	if job <= 0 {
		t.Fatalf("start_reinit returned job %d", job)
	}
	assertReplicatesDuringReinit(t, p, "load_1", 900001)
	p.waitState(t, "synchronized", 180*time.Second)
	synced := writes.Load()
	after := waitWrites(t, p.a, writes, 50, "after the reinit") - synced
	stop()
	stopChinook()
	assertWritesInEveryPhase(t, before, synced-before, after)
	p.waitEqual(t, 60*time.Second)
	if got := reinitEvents(t, p); got != "synchronized>reinitializing reinitializing>catching_up catching_up>synchronized" {
		t.Fatalf("state changes of the reinit: %s", got)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_tables WHERE node = 'node_b' AND sync_state = 'ready'"); n != 1 {
		t.Fatalf("init_tables of the reinit: %d ready rows, want the 1 table in scope", n)
	}
	if pct := harness.QueryOne[float64](t, p.b, "", "SELECT percent::float8 FROM steep_repl.init_progress WHERE node = 'node_b'"); pct != 100 {
		t.Fatalf("reinit progress %v%%, want 100", pct)
	}
}

func TestReinitOfASchemaUnderLoadEndsEqual(t *testing.T) {
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	p.b.Exec(t, "", "DELETE FROM load_1 WHERE id % 3 = 0")
	slowCopy(t, p, "invoice_line", 2*time.Millisecond)
	writes, stop := writeLoad(t, p.a.Pool(t, ""), 2)
	stopChinook := chinookLoad(t, p)
	before := waitWrites(t, p.a, writes, 50, "before the reinit")
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"schemas": ["public"], "parallel": 2}')`)
	assertReplicatesDuringReinit(t, p, "sales.orders", 900001)
	p.waitState(t, "synchronized", 180*time.Second)
	synced := writes.Load()
	after := waitWrites(t, p.a, writes, 50, "after the reinit") - synced
	stop()
	stopChinook()
	assertWritesInEveryPhase(t, before, synced-before, after)
	p.waitEqual(t, 60*time.Second)
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_tables WHERE node = 'node_b'"); n != 13 {
		t.Fatalf("the schema scope has %d tables, want the 11 of Chinook and load_1, load_2", n)
	}
}

func TestReinitRefusesBadInputChangingNothingAndCascades(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	// Not initialized yet.
	expectReinitError(t, p, `{"tables": ["invoice_line"]}`, "55000", "cannot be reinitialized")
	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 120*time.Second)
	p.b.Exec(t, "", "CREATE TABLE local_only (id int PRIMARY KEY)")
	for _, c := range []struct{ scope, state, msg string }{
		{`[]`, "22023", "scope must be a JSON object"},
		{`{}`, "22023", "exactly one of tables, schemas or full"},
		{`{"tables": ["album"], "schemas": ["public"]}`, "22023", "exactly one of"},
		{`{"tables": "album"}`, "22023", "tables must be a JSON array"},
		{`{"tables": []}`, "22023", "at least one"},
		{`{"tables": ["album"], "bogus": 1}`, "22023", `unknown reinit option "bogus"`},
		{`{"tables": ["album"], "cascade": "yes"}`, "22023", "cascade must be true or false"},
		{`{"tables": ["invoice_line"], "parallel": 99}`, "22023", "parallel"},
		{`{"tables": ["no_such_table"]}`, "42P01", `table "no_such_table" does not exist`},
		{`{"tables": ["local_only"]}`, "55000", "tables not replicated by subscription"},
		{`{"schemas": ["no_such_schema"]}`, "3F000", `schema "no_such_schema" does not exist`},
		{`{"tables": ["public.track"]}`, "2BP01", "public.invoice_line (references public.track), public.playlist_track (references public.track)"},
	} {
		expectReinitError(t, p, c.scope, c.state, c.msg)
	}
	p.b.Exec(t, "", "DROP TABLE local_only")
	// With cascade the referencing tables join the scope.
	p.b.Exec(t, "", "DELETE FROM playlist_track WHERE track_id % 5 = 0")
	p.b.Exec(t, "", "UPDATE track SET name = 'wrong' WHERE track_id % 13 = 0")
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["track"], "cascade": true}')`)
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	got := harness.QueryOne[string](t, p.b, "", "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM steep_repl.init_tables")
	if got != "invoice_line,playlist_track,track" {
		t.Fatalf("cascade scope: %s", got)
	}
	assertNoSubscriptionErrors(t, p.b)
}

// expectReinitError checks start_reinit(scope) fails with state, a message containing msg and
// a hint, and that nothing changed: no job, the same state and progress.
func expectReinitError(t *testing.T, p *pair, scope, state, msg string) {
	t.Helper()
	snapshot := func() string {
		return harness.QueryOne[string](t, p.b, "", `SELECT (SELECT count(*) FROM steep_repl.jobs)::text || '|' ||
			(SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b') || '|' ||
			coalesce((SELECT row_to_json(p)::text FROM steep_repl.init_progress p), '') || '|' ||
			(SELECT count(*) FROM steep_repl.init_tables)::text`)
	}
	was := snapshot()
	code, pgErr := dbaState(t, p.b, "SELECT steep_repl.start_reinit('node_b', $1::jsonb)", scope)
	if code != state || !strings.Contains(pgErr.Message, msg) || pgErr.Hint == "" {
		t.Fatalf("start_reinit(%s): %s %v, want %s %q with a hint", scope, code, pgErr, state, msg)
	}
	if now := snapshot(); now != was {
		t.Fatalf("start_reinit(%s) failed but changed something:\n%s\n%s", scope, was, now)
	}
}

func TestReinitCancelledMidCopyIsDivergedThenRetried(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	slowCopy(t, p, "invoice_line", 50*time.Millisecond)
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["invoice_line"]}')`)
	waitCopying(t, p)
	p.b.WaitFor(t, 30*time.Second, "rows being copied", func() bool {
		return harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy)")
	})
	dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	p.waitState(t, "diverged", 60*time.Second)
	reason := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "not replicated: public.invoice_line") {
		t.Fatalf("reason of the cancelled reinit: %q", reason)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM invoice_line"); n != 0 {
		t.Fatalf("invoice_line holds %d rows on the target after the cancel", n)
	}
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_publication_tables WHERE tablename = 'invoice_line'"); n != 0 {
		t.Fatal("invoice_line is still in the publication after the cancel")
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_subscription_rel WHERE srrelid = 'invoice_line'::regclass"); n != 0 {
		t.Fatal("invoice_line is still in the subscription after the cancel")
	}
	// The other tables still replicate.
	p.a.Exec(t, "", "INSERT INTO sales.orders VALUES (900002, 'after the cancel')")
	p.b.WaitFor(t, 30*time.Second, "a row written after the cancel", func() bool {
		return harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM sales.orders WHERE id = 900002)")
	})
	p.b.Exec(t, "", "DROP TRIGGER slow_down ON invoice_line")
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["invoice_line"]}')`)
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
}

func TestReinitCLIFollowsToSynchronizedAndReportsACancel(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	if _, errOut, code := runCLI(t, "reinit", "node_b", "--tables", "a", "--full", "--db", dbaURL(t, p.b)); code != 2 ||
		!strings.Contains(errOut, "exactly one of --tables, --schema or --full") {
		t.Fatalf("reinit with two scopes: exit %d, %s", code, errOut)
	}
	out, errOut, code := runCLI(t, "reinit", "node_b", "--tables", "invoice_line", "--follow", "--timeout", "90s", "--db", dbaURL(t, p.b))
	if code != 0 || !strings.Contains(out, "reinit of node_b started") || !strings.Contains(out, "SYNCHRONIZED") {
		t.Fatalf("reinit --follow exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	p.waitEqual(t, 60*time.Second)
	// A cancel while following: exit 1, the node DIVERGED and said so.
	slowCopy(t, p, "invoice_line", 50*time.Millisecond)
	go func() {
		waitCopying(t, p)
		dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	}()
	out, errOut, code = runCLI(t, "reinit", "node_b", "--schema", "public", "--quiet", "--follow", "--timeout", "90s", "--db", dbaURL(t, p.b))
	if code != 1 || !strings.Contains(errOut, "reinit of node_b was cancelled; node_b is DIVERGED") {
		t.Fatalf("cancelled reinit --follow exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// A sidecar killed after it emptied the tables: the retried job must not empty them again
// (they may be being copied already) and must finish the reinit.
func TestReinitResumesAfterASidecarDiedPastTheTruncate(t *testing.T) {
	t.Parallel()
	p := syncedPair(t)
	corrupt(t, p)
	p.car.kill()
	dbaExec(t, p.b, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["invoice_line"]}')`)
	// What the dead sidecar had done: the table out of the publication and the subscription, emptied.
	p.a.Exec(t, "", "ALTER PUBLICATION sr_pub_node_b DROP TABLE invoice_line")
	p.b.Exec(t, "", "ALTER SUBSCRIPTION sr_node_a_node_b REFRESH PUBLICATION")
	p.b.Exec(t, "", "SELECT steep_repl.reinit_truncate('node_b')")
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM invoice_line"); n != 0 {
		t.Fatalf("invoice_line holds %d rows after reinit_truncate", n)
	}
	// A row that only a second truncate would remove: it must survive (the copy does not touch it).
	p.b.Exec(t, "", "INSERT INTO invoice_line OVERRIDING SYSTEM VALUE VALUES (2000000, 1, 1, 1, 1)")
	startSidecar(t, p.b, "sidecar_b2")
	p.waitState(t, "synchronized", 120*time.Second)
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM invoice_line WHERE invoice_line_id = 2000000"); n != 1 {
		t.Fatal("the resumed reinit emptied the table a second time")
	}
	p.b.Exec(t, "", "DELETE FROM invoice_line WHERE invoice_line_id = 2000000")
	p.waitEqual(t, 60*time.Second)
}
