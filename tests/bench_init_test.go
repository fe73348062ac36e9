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

// benchMB is the size of the generated database (STEEP_BENCH_MB, default 1024).
func benchMB() int {
	if v, err := strconv.Atoi(os.Getenv("STEEP_BENCH_MB")); err == nil && v > 0 {
		return v
	}
	return 1024
}

const benchTablesDDL = `
CREATE TABLE big (id bigint PRIMARY KEY, account int NOT NULL, note text NOT NULL, at timestamptz NOT NULL);
CREATE TABLE medium (id bigint PRIMARY KEY, kind smallint NOT NULL, payload text NOT NULL);
CREATE TABLE small (id int PRIMARY KEY, name text NOT NULL, score numeric(10,2) NOT NULL)`

// generate fills about mb MB: 80% in big, 15% in medium, 5% in small (row widths ~ 150/200/60 bytes
// on disk), with text that does not compress to nothing. Rows go in by batches of genBatch, so
// that no statement of a 10 GB run nears the harness's query bound.
func generate(b *testing.B, n *harness.Node, mb int) {
	bigRows := mb * 1024 * 1024 * 80 / 100 / 150
	mediumRows := mb * 1024 * 1024 * 15 / 100 / 200
	smallRows := mb * 1024 * 1024 * 5 / 100 / 60
	insertBatches(b, n, `INSERT INTO big SELECT g, g % 100000, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text),
		'2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series($1::bigint, $2) g`, bigRows)
	insertBatches(b, n, `INSERT INTO medium SELECT g, g % 32, repeat(md5(g::text), 4) FROM generate_series($1::bigint, $2) g`, mediumRows)
	insertBatches(b, n, `INSERT INTO small SELECT g, md5(g::text), g % 1000 FROM generate_series($1::int, $2) g`, smallRows)
	// VACUUM reads and rewrites all of it (hint bits, visibility map): at 10 GB longer than a query bound.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if _, err := n.Pool(b, "").Exec(ctx, "VACUUM ANALYZE big, medium, small"); err != nil {
		b.Fatalf("vacuum the bench tables: %v", err)
	}
}

// genBatch is how many rows one INSERT of insertBatches writes (about 750 MB of big: tens of seconds).
const genBatch = 5_000_000

// insertBatches runs insert, whose $1 and $2 are the first and last row number, for rows 1..rows
// in batches of genBatch.
func insertBatches(b *testing.B, n *harness.Node, insert string, rows int) {
	for from := 1; from <= rows; from += genBatch {
		n.Exec(b, "", insert, from, min(from+genBatch-1, rows))
	}
}

// bareSubscriptionCopy times CREATE SUBSCRIPTION ... copy_data = true on target until every table
// is ready, then drops it and empties the tables for the next run.
func bareSubscriptionCopy(b *testing.B, source, target *harness.Node, workers int) time.Duration {
	target.Exec(b, "", fmt.Sprintf("ALTER SYSTEM SET max_sync_workers_per_subscription = %d", workers))
	target.Exec(b, "", "SELECT pg_reload_conf()")
	source.Exec(b, "", "CREATE PUBLICATION bench_pub FOR TABLE big, medium, small")
	start := time.Now()
	target.Exec(b, "", fmt.Sprintf("CREATE SUBSCRIPTION bench_sub CONNECTION '%s' PUBLICATION bench_pub WITH (copy_data = true, origin = none)", libpqConninfo(source)))
	target.WaitFor(b, 30*time.Minute, "bare subscription ready", func() bool {
		return harness.QueryOne[bool](b, target, "", "SELECT count(*) = 3 AND bool_and(srsubstate = 'r') FROM pg_subscription_rel")
	})
	took := time.Since(start)
	target.Exec(b, "", "DROP SUBSCRIPTION bench_sub")
	source.Exec(b, "", "DROP PUBLICATION bench_pub")
	target.Exec(b, "", "TRUNCATE big, medium, small")
	return took
}

// BenchmarkInitVsBareSubscription: wall time of start_init to SYNCHRONIZED against a bare
// CREATE SUBSCRIPTION ... copy_data = true (same data, same sync worker count) to every table
// ready, in the same run. The baseline runs before and after ours (the mean is the
// reference), so neither side alone gets the cold or the warm cache.
func BenchmarkInitVsBareSubscription(b *testing.B) {
	a, target := setupEmptyPair(b)
	bareOpts := harness.DefaultOptions()
	bareOpts.Name = "bare"
	bare := harness.Start(b, bareOpts)
	for _, n := range []*harness.Node{a, target, bare} {
		n.Exec(b, "", benchTablesDDL)
	}
	mb := benchMB()
	generate(b, a, mb)
	bytes := harness.QueryOne[int64](b, a, "", "SELECT sum(pg_table_size(c))::bigint FROM unnest(ARRAY['big','medium','small']::regclass[]) c")
	const workers = 2

	before := bareSubscriptionCopy(b, a, bare, workers)
	startSidecar(b, target, "bench_sidecar")
	start := time.Now()
	target.Exec(b, "", "SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', $1)", fmt.Sprintf(`{"parallel": %d}`, workers))
	target.WaitFor(b, 30*time.Minute, "init synchronized", func() bool {
		st := harness.QueryOne[string](b, target, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'")
		if st == "failed" {
			b.Fatal("init failed")
		}
		return st == "synchronized"
	})
	ours := time.Since(start)
	after := bareSubscriptionCopy(b, a, bare, workers)
	bareTime := (before + after) / 2

	b.ReportMetric(float64(bytes)/1e6, "source_MB")
	b.ReportMetric(bareTime.Seconds(), "bare_s")
	b.ReportMetric(ours.Seconds(), "steep_init_s")
	b.ReportMetric(ours.Seconds()/bareTime.Seconds(), "init_vs_bare_x")
	b.ReportMetric(float64(bytes)/1e6/ours.Seconds(), "init_MB/s")
	b.Logf("%.0f MB: bare subscription %s then %s, steep_repl init %s (ratio to their mean %.3f)", float64(bytes)/1e6,
		before.Round(100*time.Millisecond), after.Round(100*time.Millisecond), ours.Round(100*time.Millisecond),
		ours.Seconds()/bareTime.Seconds())
}
