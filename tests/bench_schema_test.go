package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// benchTables is the number of 20-column tables on each node (STEEP_BENCH_TABLES, default 1000).
func benchTables() int {
	if v, err := strconv.Atoi(os.Getenv("STEEP_BENCH_TABLES")); err == nil && v > 0 {
		return v
	}
	return 1000
}

// createWideTables creates n tables of 20 columns (a primary key, types with typmods, NOT NULLs
// and defaults) in one transaction.
func createWideTables(b *testing.B, node *harness.Node, n int) {
	node.Exec(b, "", fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP
		EXECUTE format('CREATE TABLE wide_%%s (id bigint PRIMARY KEY, %%s)', i, (SELECT string_agg(format('c%%s %%s', j,
			CASE j %% 4 WHEN 0 THEN 'integer NOT NULL DEFAULT 0' WHEN 1 THEN 'varchar(40)' WHEN 2 THEN 'numeric(12,2)'
			ELSE 'timestamptz DEFAULT now()' END), ', ') FROM generate_series(1, 19) j));
		END LOOP; END $$`, n))
}

// BenchmarkSchemaFingerprints: capture_fingerprints() on node_b plus compare_fingerprints('node_a'),
// 1000 tables x 20 columns on both nodes (seed requirement < 1 s, goal < 0.1 s), against a
// baseline in the same run: a bare SELECT of the same catalog rows (pg_attribute of the user
// tables) through dblink, which any comparison has to read at least.
func BenchmarkSchemaFingerprints(b *testing.B) {
	a, tgt := setupEmptyPair(b)
	n := benchTables()
	createWideTables(b, a, n)
	createWideTables(b, tgt, n)
	for _, node := range []*harness.Node{a, tgt} {
		node.Exec(b, "", "VACUUM ANALYZE pg_catalog.pg_attribute, pg_catalog.pg_class, pg_catalog.pg_attrdef, pg_catalog.pg_index")
	}
	ctx := context.Background()
	pool := tgt.Pool(b, "")
	run := func(sql string, args ...any) time.Duration {
		start := time.Now()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
		return time.Since(start)
	}
	baselineSQL := fmt.Sprintf(`SELECT count(*) FROM %s.dblink($1, $2) AS t(relname text, attname text, atttypid oid,
		atttypmod int, attnotnull boolean, atthasdef boolean)`,
		harness.QueryOne[string](b, tgt, "", "SELECT quote_ident(steep_repl._dblink_schema())"))
	baselineQuery := `SELECT c.relname, a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.atthasdef
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
		WHERE c.relkind = 'r' AND s.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped`
	conninfo := libpqConninfo(a)

	// The first capture records every table; later ones find them unchanged.
	captureCold := run("SELECT steep_repl.capture_fingerprints()")
	if got := harness.QueryOne[int64](b, tgt, "", "SELECT count(*) FROM steep_repl.compare_fingerprints('node_a') WHERE status = 'MATCH'"); got != int64(n) {
		b.Fatalf("%d of %d tables MATCH", got, n)
	}

	var capture, compare, baseline time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		capture += run("SELECT steep_repl.capture_fingerprints()")
		compare += run("SELECT count(*) FROM steep_repl.compare_fingerprints('node_a')")
		b.StopTimer()
		baseline += run(baselineSQL, conninfo, baselineQuery)
		b.StartTimer()
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(float64(n), "tables")
	b.ReportMetric(captureCold.Seconds(), "capture_first_s")
	b.ReportMetric(per(capture), "capture_s")
	b.ReportMetric(per(compare), "compare_s")
	b.ReportMetric(per(capture+compare), "capture+compare_s")
	b.ReportMetric(per(baseline), "baseline_dblink_select_s")
	b.ReportMetric(float64(capture+compare)/float64(baseline), "x_baseline")
	total := per(capture + compare)
	b.Logf("%d tables x 20 columns: capture %.3f s (first %.3f s) + compare %.3f s = %.3f s; bare dblink SELECT of the catalog rows %.3f s (%.1fx); seed requirement < 1 s: %v, goal < 0.1 s: %v",
		n, per(capture), captureCold.Seconds(), per(compare), total, per(baseline), float64(capture+compare)/float64(baseline), total < 1, total < 0.1)
}
