package tests

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// startFastInit calls start_init(..., 'fast', options) on node_b as the dba operator.
func (p *pair) startFastInit(t testing.TB, options string) int64 {
	t.Helper()
	return dbaQuery[int64](t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a', 'fast', $1)", options)
}

// targetCatalog lists every index and constraint of the target's public tables with its
// definition: a fast init drops some and must leave exactly this behind.
func targetCatalog(t testing.TB, p *pair) string {
	t.Helper()
	return harness.QueryOne[string](t, p.b, "", `SELECT coalesce(string_agg(x, E'\n' ORDER BY x), '') FROM (
		SELECT format('index %s.%s: %s', tablename, indexname, indexdef) x FROM pg_indexes WHERE schemaname = 'public'
		UNION ALL
		SELECT format('constraint %s.%s: %s %s %s', conrelid::regclass, conname, contype, pg_get_constraintdef(oid), convalidated)
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace) s`)
}

// logEvents logs node_b's events with their time since the first one.
func logEvents(t testing.TB, p *pair) {
	t.Helper()
	t.Logf("events: %s", harness.QueryOne[string](t, p.b, "", `SELECT string_agg(format('%s %s at +%ss', event, to_state, s), ', ' ORDER BY id)
		FROM (SELECT id, event, coalesce(to_state, '') to_state, round(extract(epoch FROM at - min(at) OVER ())::numeric, 1) s
		      FROM steep_repl.events WHERE node = 'node_b') e`))
}

// fastInitLoadingSlow adds p.addSlowTable's table (rows x delay to load: its ENABLE ALWAYS
// trigger fires in the fast COPY too) with a secondary index, starts a fast init and returns,
// with the target's catalog from before, once indexes are dropped, chunks committed and slow loading.
func (p *pair) fastInitLoadingSlow(t testing.TB, rows int, delay time.Duration, options string) string {
	t.Helper()
	p.addSlowTable(t, rows, delay)
	p.b.Exec(t, "", "CREATE INDEX slow_payload ON slow (payload)")
	catalog := targetCatalog(t, p)
	p.startFastInit(t, options)
	p.b.WaitFor(t, 60*time.Second, "chunks committed and slow loading with the indexes dropped", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects") > 0 &&
			harness.QueryOne[int64](t, p.b, "", "SELECT coalesce(sum(chunks_done), 0) FROM steep_repl.init_tables") > 0 &&
			harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_stat_progress_copy WHERE relid = 'slow'::regclass") > 0
	})
	return catalog
}

// assertCatalogRestored fails unless the target's indexes and constraints are catalog's again
// and nothing dropped is still recorded.
func assertCatalogRestored(t testing.TB, p *pair, catalog string) {
	t.Helper()
	if got := targetCatalog(t, p); got != catalog {
		t.Fatalf("the target's indexes and constraints differ from before the init:\nbefore:\n%s\nafter:\n%s", catalog, got)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects"); n != 0 {
		t.Fatalf("%d dropped objects still recorded", n)
	}
}

// addToastTable creates blobs on both nodes, with rows on the source whose payload (about
// 6.4 kB of distinct hex, which pglz does not shrink under 2 kB) is stored out of line in TOAST.
func (p *pair) addToastTable(t testing.TB, rows int) {
	t.Helper()
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "CREATE TABLE blobs (id int PRIMARY KEY, tag text NOT NULL UNIQUE, payload text NOT NULL)")
		n.Exec(t, "", "CREATE INDEX blobs_payload_len ON blobs ((length(payload)))")
	}
	p.a.Exec(t, "", `INSERT INTO blobs SELECT g, 'tag-' || g,
		(SELECT string_agg(md5(g::text || '-' || i), '') FROM generate_series(1, 200) i) FROM generate_series(1, $1) g`, rows)
	if toast := harness.QueryOne[int64](t, p.a, "", `SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'blobs'`); toast == 0 {
		t.Fatal("blobs has nothing in TOAST on the source")
	}
}

func TestFastInitUnderWriteLoadSplitsTablesAndEndsEqual(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	const tables = 3
	for i := 1; i <= tables; i++ {
		for _, n := range []*harness.Node{p.a, p.b} {
			n.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
			n.Exec(t, "", fmt.Sprintf("CREATE INDEX load_%d_v ON load_%d (v)", i, i))
		}
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 40000) g", i))
	}
	p.addToastTable(t, 2000)
	catalog := targetCatalog(t, p)
	writes, stop := steadyLoad(t, p.a, tables, 5*time.Millisecond)
	before := waitWrites(t, p.a, writes, 50, "before the init starts")
	// 16 kB: every table above two blocks is copied in many block ranges.
	p.startFastInit(t, `{"parallel": 3, "split_threshold": 16384}`)
	p.waitState(t, "synchronized", 120*time.Second)
	synced := writes.Load()
	after := waitWrites(t, p.a, writes, 100, "after the init") - synced
	stop()
	assertWritesInEveryPhase(t, before, synced-before, after)
	logEvents(t, p)
	p.waitEqual(t, 60*time.Second)
	assertNoSubscriptionErrors(t, p.b)

	assertCatalogRestored(t, p, catalog)
	chunks := harness.QueryOne[string](t, p.b, "", `SELECT string_agg(format('%s:%s/%s', table_name, chunks_done, chunks_total), ' ' ORDER BY table_name)
		FROM steep_repl.init_tables WHERE node = 'node_b' AND table_name IN ('blobs', 'load_1', 'load_2', 'load_3')`)
	for _, tbl := range []string{"blobs", "load_1", "load_2", "load_3"} {
		var done, total int
		for _, f := range strings.Fields(chunks) {
			if strings.HasPrefix(f, tbl+":") {
				fmt.Sscanf(strings.TrimPrefix(f, tbl+":"), "%d/%d", &done, &total)
			}
		}
		if total < 5 || done != total {
			t.Fatalf("%s was copied in %d of %d chunks, want every one of at least 5 (%s)", tbl, done, total, chunks)
		}
	}
	// init status shows what the copy did: the chunks of each split table, every row counted, 100%.
	out, errOut, code := runCLI(t, "init", "status", "node_b", "--db", p.b.ConnString(""), "--no-color")
	if code != 0 || !strings.Contains(out, "blobs") || !strings.Contains(out, "ready "+strings.Split(strings.Split(chunks, "blobs:")[1], " ")[0]+" chunks") {
		t.Fatalf("init status (exit %d) does not show the chunks of blobs (%s):\n%s%s", code, chunks, out, errOut)
	}
	rows := harness.QueryOne[int64](t, p.b, "", "SELECT rows_copied FROM steep_repl.init_tables WHERE node = 'node_b' AND table_name = 'blobs'")
	if rows != 2000 {
		t.Fatalf("blobs: %d rows copied recorded, want 2000", rows)
	}
	if pct := harness.QueryOne[float64](t, p.b, "", "SELECT percent::float8 FROM steep_repl.init_progress WHERE node = 'node_b'"); pct != 100 {
		t.Fatalf("percent %v once synchronized, want 100", pct)
	}
	method := harness.QueryOne[string](t, p.b, "", "SELECT string_agg(DISTINCT kind, ',') FROM steep_repl.jobs WHERE kind LIKE 'init.%'")
	if method != "init.fast" {
		t.Fatalf("jobs %q, want only init.fast", method)
	}
}

func TestFastInitCancelMidLoadRestoresIndexesAndLeavesNothing(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	catalog := p.fastInitLoadingSlow(t, 4000, 5*time.Millisecond, `{"parallel": 2}`)
	if got := targetCatalog(t, p); got == catalog {
		t.Fatal("nothing was dropped for the load")
	}
	dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	p.waitState(t, "uninitialized", 60*time.Second)
	p.b.WaitFor(t, 30*time.Second, "the cancel job done", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs WHERE state IN ('queued', 'running')") == 0
	})
	assertCatalogRestored(t, p, catalog)
	p.assertNoInitLeftovers(t)
}

func TestFastInitRefusesBadOptionsAndCreatesNothing(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	before := initFootprint(t, p)
	for _, c := range []struct{ name, options, method, msg string }{
		{"split_threshold below a block", `{"split_threshold": 100}`, "fast", "split_threshold must be"},
		{"split_threshold negative", `{"split_threshold": -1}`, "fast", "split_threshold must be"},
		{"split_threshold not a number", `{"split_threshold": "big"}`, "fast", "split_threshold must be"},
		{"split_threshold not an integer", `{"split_threshold": 10000.5}`, "fast", "split_threshold must be"},
		{"parallel 0", `{"parallel": 0}`, "fast", "parallel must be between 1 and 16"},
		{"copy_format unknown", `{"copy_format": "csv"}`, "fast", "copy_format must be"},
		{"copy_format not a string", `{"copy_format": 1}`, "fast", "copy_format must be"},
		{"maintenance_work_mem without a unit", `{"maintenance_work_mem": "256"}`, "fast", "maintenance_work_mem must be a size"},
		{"maintenance_work_mem too small", `{"maintenance_work_mem": "512kB"}`, "fast", "maintenance_work_mem must be a size"},
		{"maintenance_work_mem a number", `{"maintenance_work_mem": 262144}`, "fast", "maintenance_work_mem must be a size"},
		{"max_parallel_maintenance_workers negative", `{"max_parallel_maintenance_workers": -1}`, "fast", "max_parallel_maintenance_workers must be"},
		{"copy_format is fast's", `{"copy_format": "text"}`, "snapshot", `unknown init option "copy_format"`},
		{"unknown option", `{"chunks": 4}`, "fast", `unknown init option "chunks"`},
		{"split_threshold is fast's", `{"split_threshold": 65536}`, "snapshot", `unknown init option "split_threshold"`},
		{"unknown method", `{}`, "quick", `unknown init method "quick"`},
	} {
		code, pgErr := dbaState(t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a', $1, $2)", c.method, c.options)
		if code != "22023" || !strings.Contains(pgErr.Message, c.msg) || pgErr.Hint == "" {
			t.Errorf("%s: SQLSTATE %q %+v, want 22023 %q with a hint", c.name, code, pgErr, c.msg)
		}
	}
	if after := initFootprint(t, p); after != before {
		t.Fatalf("refused start_init calls changed something:\nbefore %s\nafter  %s", before, after)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects"); n != 0 {
		t.Fatalf("a refused call recorded %d objects", n)
	}
}

// A sidecar killed mid-load leaves the exported snapshot with its holder (steep-repl
// hold-snapshot, in its own session): the retried job (another sidecar, once the lease
// expired) re-imports it and copies only the chunks not committed. The rows committed before
// the kill are still the same row versions (not emptied and copied again), and the node ends
// equal with its indexes and constraints as before.
func TestFastInitSidecarKilledMidLoadResumesAtTheFirstChunkNotCopied(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.car.kill()
	p.car = startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	catalog := p.fastInitLoadingSlow(t, 4000, 3*time.Millisecond, `{"parallel": 2, "split_threshold": 16384}`)
	p.b.WaitFor(t, 60*time.Second, "some chunks of slow committed, not all", func() bool {
		return harness.QueryOne[bool](t, p.b, "", `SELECT chunks_done > 0 AND chunks_done < chunks_total - 2
			FROM steep_repl.init_tables WHERE table_name = 'slow'`)
	})
	p.car.kill()
	killedAt := harness.QueryOne[int64](t, p.b, "", "SELECT txid_current()")
	kept := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM slow")
	if kept == 0 {
		t.Fatal("no row of slow committed before the kill")
	}
	p.removeSlowDown(t)
	p.car = startSidecar(t, p.b, "sidecar_b3", "--lease", "3s")
	p.waitState(t, "synchronized", 90*time.Second)
	logEvents(t, p)
	p.waitEqual(t, 60*time.Second)
	if n := eventCount(t, p.b, "init.fast_resumed"); n != 1 {
		t.Fatalf("%d init.fast_resumed events, want 1", n)
	}
	if n := eventCount(t, p.b, "init.fast_restarted"); n != 0 {
		t.Fatalf("%d init.fast_restarted events, want none", n)
	}
	if old := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM slow WHERE xmin::text::bigint < $1", killedAt); old < kept {
		t.Fatalf("%d rows of slow from before the kill are left, want the %d committed then: the copy started over", old, kept)
	}
	assertCatalogRestored(t, p, catalog)
	assertHolderGone(t, p)
	p.assertStatePath(t, "preparing copying catching_up synchronized")
}

// assertHolderGone waits for the snapshot holder to have let go: no row, no process, and only
// the subscription's slot on the source.
func assertHolderGone(t *testing.T, p *pair) {
	t.Helper()
	p.a.WaitFor(t, 30*time.Second, "the snapshot holder gone and one slot left", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_holder") == 0 &&
			harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_stat_replication WHERE application_name LIKE '%holder%'") == 0 &&
			harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_replication_slots") == 1
	})
}

// A sidecar killed mid-load together with its snapshot holder leaves no snapshot to resume
// from: the retried job says so (init.fast_restarted), empties the tables, takes a new slot and
// copies again; the node ends equal with its indexes and constraints as before.
func TestFastInitSidecarKilledWithItsSnapshotHolderStartsOverAndEndsEqual(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.car.kill()
	p.car = startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	catalog := p.fastInitLoadingSlow(t, 2000, 3*time.Millisecond, `{"parallel": 2, "split_threshold": 16384}`)
	pid := harness.QueryOne[int32](t, p.b, "", "SELECT pid FROM steep_repl.init_fast_holder")
	p.car.kill()
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatalf("kill the snapshot holder %d: %v", pid, err)
	}
	p.removeSlowDown(t)
	p.car = startSidecar(t, p.b, "sidecar_b3", "--lease", "3s")
	p.waitState(t, "synchronized", 90*time.Second)
	logEvents(t, p)
	p.waitEqual(t, 60*time.Second)
	if n := eventCount(t, p.b, "init.fast_restarted"); n != 1 {
		t.Fatalf("%d init.fast_restarted events, want 1", n)
	}
	if n := eventCount(t, p.b, "init.fast_resumed"); n != 0 {
		t.Fatalf("%d init.fast_resumed events, want none", n)
	}
	assertCatalogRestored(t, p, catalog)
	assertHolderGone(t, p)
	p.assertStatePath(t, "preparing copying catching_up synchronized")
}

// A row the target refuses (a CHECK only the target has) fails the copy for good: what was
// copied is emptied, the dropped indexes and constraints are re-created, the node is FAILED with
// the error as the reason, and cancel_init then leaves nothing.
func TestFastInitFailureRestoresIndexesAndFailsWithTheReason(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.b.Exec(t, "", "ALTER TABLE artist ADD CONSTRAINT no_acdc CHECK (name <> 'AC/DC')")
	catalog := targetCatalog(t, p)
	p.startFastInit(t, `{"parallel": 2}`)
	p.waitState(t, "failed", 60*time.Second)
	reason := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, `"public"."artist"`) || !strings.Contains(reason, "no_acdc") {
		t.Fatalf("failure reason %q does not name the table and the constraint", reason)
	}
	assertCatalogRestored(t, p, catalog)
	if rows := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM album"); rows != 0 {
		t.Fatalf("the failed init left %d rows of album half-copied", rows)
	}
	dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	p.b.WaitFor(t, 60*time.Second, "node_b uninitialized and the cancel done", func() bool {
		return p.state(t) == "uninitialized" &&
			harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs WHERE state IN ('queued', 'running')") == 0
	})
	p.assertNoInitLeftovers(t)
	assertCatalogRestored(t, p, catalog)
}
