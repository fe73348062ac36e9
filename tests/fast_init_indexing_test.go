package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// addSlowIndexes creates tables ix_1..ix_n on both nodes (rows each on the source) and, on the
// target only, an index on an expression that takes delay per row (slow_key, IMMUTABLE, sleeps):
// a fast init's indexing step then lasts about n x rows x delay / sessions. For the row with
// id 1, slow_key logs the settings of the session (or parallel worker) that builds the index.
func (p *pair) addSlowIndexes(t testing.TB, n, rows int, delay time.Duration) {
	t.Helper()
	p.b.Exec(t, "", fmt.Sprintf(`CREATE FUNCTION slow_key(k int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
		BEGIN
			IF k = 1 THEN
				RAISE LOG 'slow_key index build: maintenance_work_mem=%% max_parallel_maintenance_workers=%%',
					current_setting('maintenance_work_mem'), current_setting('max_parallel_maintenance_workers');
			END IF;
			PERFORM pg_sleep(%f);
			RETURN k;
		END $$`, delay.Seconds()))
	for i := 1; i <= n; i++ {
		for _, node := range []*harness.Node{p.a, p.b} {
			node.Exec(t, "", fmt.Sprintf("CREATE TABLE ix_%d (id int PRIMARY KEY, v text NOT NULL)", i))
		}
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO ix_%d SELECT g, md5(g::text) FROM generate_series(1, %d) g", i, rows))
		p.b.Exec(t, "", fmt.Sprintf("CREATE INDEX ix_%d_slow ON ix_%d (slow_key(id))", i, i))
	}
}

// indexingRow is node_b's init_fast_indexing row: percent, objects done/total, the settings seen.
func indexingRow(t testing.TB, p *pair) (percent float64, done, total int, settings string, finished bool) {
	t.Helper()
	row := harness.QueryOne[string](t, p.b, "", `SELECT coalesce((SELECT format('%s|%s|%s|%s %s|%s', percent, objects_done, objects_total,
		coalesce(maintenance_work_mem, ''), coalesce(max_parallel_maintenance_workers::text, ''), finished_at IS NOT NULL)
		FROM steep_repl.init_fast_indexing WHERE node = 'node_b'), '')`)
	if row == "" {
		return 0, 0, 0, "", false
	}
	f := strings.Split(row, "|")
	fmt.Sscan(f[0], &percent)
	fmt.Sscan(f[1], &done)
	fmt.Sscan(f[2], &total)
	return percent, done, total, f[3], f[4] == "t"
}

// The indexing step has its own percent, weighted by the bytes of each object's table, that
// moves while the indexes and constraints are rebuilt and ends at 100, shown in the init's
// message (which init status and the console render); the rebuilding sessions run with the
// init's maintenance_work_mem and max_parallel_maintenance_workers (defaults 256MB and
// parallel / 2), as the index expression itself reports from inside the build.
func TestFastInitIndexingStepReportsItsPercentAndSetsTheMaintenanceSettings(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.addSlowIndexes(t, 3, 1500, time.Millisecond)
	catalog := targetCatalog(t, p)
	p.startFastInit(t, `{"parallel": 2}`)
	seen := map[float64]bool{}
	var messages []string
	p.b.WaitFor(t, 120*time.Second, "the indexing step at 100%", func() bool {
		pct, _, _, _, finished := indexingRow(t, p)
		seen[pct] = true
		if msg := harness.QueryOne[string](t, p.b, "", "SELECT coalesce((SELECT message FROM steep_repl.init_progress WHERE node = 'node_b'), '')"); strings.HasPrefix(msg, "indexing:") {
			if len(messages) == 0 || messages[len(messages)-1] != msg {
				messages = append(messages, msg)
			}
		}
		if p.state(t) == "failed" {
			t.Fatal("the init failed")
		}
		return finished
	})
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	assertCatalogRestored(t, p, catalog)

	pct, done, total, settings, _ := indexingRow(t, p)
	var between []float64
	for v := range seen {
		if v > 0 && v < 100 {
			between = append(between, v)
		}
	}
	t.Logf("indexing: %d/%d objects, percents seen between 0 and 100: %v; messages: %q", done, total, between, messages)
	if pct != 100 || done != total || total < 3 {
		t.Fatalf("the indexing step ended at %v%% with %d/%d objects, want 100%% and every one (at least the 3 slow indexes)", pct, done, total)
	}
	if len(between) < 2 || len(messages) < 2 {
		t.Fatalf("the indexing percent did not move: %v between 0 and 100, messages %q", between, messages)
	}
	if settings != "256MB 1" {
		t.Fatalf("the rebuilding sessions ran with %q, want maintenance_work_mem 256MB and max_parallel_maintenance_workers 1", settings)
	}
	if n := p.b.LogCount("slow_key index build: maintenance_work_mem=256MB max_parallel_maintenance_workers=1"); n < 3 {
		t.Fatalf("%d index builds logged the default settings from inside the build, want all 3:\n%s", n, p.b.LogTail(40))
	}
}

// A cancel while the indexes are being rebuilt (a slow index build under way, others done)
// leaves the target's indexes and constraints exactly as before the init, and nothing else.
func TestFastInitCancelDuringIndexingRestoresTheCatalogAndLeavesNothing(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.addSlowIndexes(t, 2, 4000, 2*time.Millisecond)
	catalog := targetCatalog(t, p)
	p.startFastInit(t, `{"parallel": 2}`)
	p.b.WaitFor(t, 120*time.Second, "the indexing step under way with a slow index building", func() bool {
		_, done, _, _, finished := indexingRow(t, p)
		return done > 0 && !finished && harness.QueryOne[int64](t, p.b, "",
			"SELECT count(*) FROM pg_stat_progress_create_index WHERE relid IN ('ix_1'::regclass, 'ix_2'::regclass)") > 0
	})
	if got := targetCatalog(t, p); got == catalog {
		t.Fatal("nothing is missing from the catalog during the indexing step")
	}
	dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	p.b.WaitFor(t, 90*time.Second, "node_b uninitialized and the cancel done", func() bool {
		return p.state(t) == "uninitialized" &&
			harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs WHERE state IN ('queued', 'running')") == 0
	})
	assertCatalogRestored(t, p, catalog)
	p.assertNoInitLeftovers(t)
}
