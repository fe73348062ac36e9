package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/steepdb/steep_repl/tests/harness"
)

// benchIndexDDL is a secondary index on the bench tables, so that "indexes after the load" has
// something to build besides the primary keys.
const benchIndexDDL = "CREATE INDEX big_account ON big (account)"

// floorCopy is the machine's copy floor: the tables created without any index on floor, one COPY
// TO -> COPY FROM pipe per table from source with workers at once (largest first), then the
// primary keys and the index built with workers at once. It empties floor's tables afterwards.
func floorCopy(b *testing.B, source, floor *harness.Node, workers int) time.Duration {
	floor.Exec(b, "", "ALTER TABLE big DROP CONSTRAINT big_pkey; ALTER TABLE medium DROP CONSTRAINT medium_pkey; ALTER TABLE small DROP CONSTRAINT small_pkey; DROP INDEX big_account")
	ctx := context.Background()
	start := time.Now()
	run := func(jobs []func(src, dst *pgx.Conn) error) {
		work := make(chan func(src, dst *pgx.Conn) error, len(jobs))
		for _, j := range jobs {
			work <- j
		}
		close(work)
		var g errgroup.Group
		for w := 0; w < workers; w++ {
			g.Go(func() error {
				src, err := pgx.Connect(ctx, source.ConnString(""))
				if err != nil {
					return err
				}
				defer src.Close(ctx)
				dst, err := pgx.Connect(ctx, floor.ConnString(""))
				if err != nil {
					return err
				}
				defer dst.Close(ctx)
				for j := range work {
					if err := j(src, dst); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatalf("floor copy: %v", err)
		}
	}
	var copies []func(src, dst *pgx.Conn) error
	for _, tbl := range []string{"big", "medium", "small"} {
		copies = append(copies, func(src, dst *pgx.Conn) error {
			pr, pw := io.Pipe()
			go func() {
				// Buffered: one pipe hand-off per MB, not per row.
				bw := bufio.NewWriterSize(pw, 1<<20)
				_, err := src.PgConn().CopyTo(ctx, bw, "COPY "+tbl+" TO STDOUT")
				if err == nil {
					err = bw.Flush()
				}
				pw.CloseWithError(err)
			}()
			_, err := dst.PgConn().CopyFrom(ctx, pr, "COPY "+tbl+" FROM STDIN")
			pr.CloseWithError(io.ErrClosedPipe)
			return err
		})
	}
	run(copies)
	var builds []func(src, dst *pgx.Conn) error
	for _, ddl := range []string{"ALTER TABLE big ADD PRIMARY KEY (id)", benchIndexDDL,
		"ALTER TABLE medium ADD PRIMARY KEY (id)", "ALTER TABLE small ADD PRIMARY KEY (id)"} {
		builds = append(builds, func(_, dst *pgx.Conn) error { _, err := dst.Exec(ctx, ddl); return err })
	}
	run(builds)
	took := time.Since(start)
	floor.Exec(b, "", "TRUNCATE big, medium, small")
	return took
}

// BenchmarkFastInitVsBareSubscriptionAndFloor (STEEP_BENCH_MB, default 1024; 10240 is the
// seed's SC-001 run, checked against its 30 minutes): wall time of start_init 'fast' to SYNCHRONIZED
// against a bare CREATE SUBSCRIPTION ... copy_data = true to every table ready (before and after
// ours: the mean is the reference) and against the floor (floorCopy), on the data of
// BenchmarkInitVsBareSubscription plus one secondary index, with the same number of workers.
func BenchmarkFastInitVsBareSubscriptionAndFloor(b *testing.B) {
	a, target := setupEmptyPair(b)
	others := map[string]*harness.Node{}
	for _, name := range []string{"bare", "floor"} {
		opts := harness.DefaultOptions()
		opts.Name = name
		others[name] = harness.Start(b, opts)
	}
	for _, n := range []*harness.Node{a, target, others["bare"], others["floor"]} {
		n.Exec(b, "", benchTablesDDL)
		n.Exec(b, "", benchIndexDDL)
	}
	mb := benchMB()
	generate(b, a, mb)
	bytes := harness.QueryOne[int64](b, a, "", "SELECT sum(pg_table_size(c))::bigint FROM unnest(ARRAY['big','medium','small']::regclass[]) c")
	const workers = 2

	before := bareSubscriptionCopy(b, a, others["bare"], workers)
	side := startSidecar(b, target, "bench_sidecar")
	start := time.Now()
	var copiedAt time.Duration
	target.Exec(b, "", "SELECT steep_repl.start_init('node_b', 'node_a', 'fast', $1)", fmt.Sprintf(`{"parallel": %d}`, workers))
	target.WaitFor(b, 2*time.Hour, "fast init synchronized", func() bool {
		st := harness.QueryOne[string](b, target, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'")
		if copiedAt == 0 && (st == "catching_up" || st == "synchronized") {
			copiedAt = time.Since(start) // copied, indexed and subscribed: the rest is the status interval
		}
		if st == "failed" {
			b.Fatal("fast init failed: " + harness.QueryOne[string](b, target, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'"))
		}
		return st == "synchronized"
	})
	fast := time.Since(start)
	load, index := fastPhases(b, side)
	floor := floorCopy(b, a, others["floor"], workers)
	after := bareSubscriptionCopy(b, a, others["bare"], workers)
	bare := (before + after) / 2

	b.ReportMetric(float64(bytes)/1e6, "source_MB")
	b.ReportMetric(bare.Seconds(), "bare_s")
	b.ReportMetric(floor.Seconds(), "floor_s")
	b.ReportMetric(fast.Seconds(), "fast_init_s")
	b.ReportMetric(copiedAt.Seconds(), "fast_to_catching_up_s")
	b.ReportMetric(fast.Seconds()/floor.Seconds(), "fast_vs_floor_x")
	b.ReportMetric(copiedAt.Seconds()/floor.Seconds(), "fast_copy_vs_floor_x")
	b.ReportMetric(bare.Seconds()/fast.Seconds(), "bare_vs_fast_x")
	b.ReportMetric(float64(bytes)/1e6/fast.Seconds(), "fast_MB/s")
	b.ReportMetric(load, "fast_load_s")
	b.ReportMetric(index, "fast_index_s")
	// SC-001 (opt-in: STEEP_BENCH_MB=10240): a 10 GB database initialized in under 30 minutes.
	if mb >= 10240 {
		b.Logf("SC-001: %.0f MB initialized (fast, %d workers) in %s, %.1f MB/s", float64(bytes)/1e6, workers,
			fast.Round(time.Second), float64(bytes)/1e6/fast.Seconds())
		if fast > 30*time.Minute {
			b.Errorf("SC-001 missed: %s to SYNCHRONIZED, over 30 minutes", fast.Round(time.Second))
		}
	}
	b.Logf("%.0f MB: bare subscription %s then %s, floor %s, fast init %s (CATCHING_UP after %s; %.3f x the floor, bare/fast %.2f)",
		float64(bytes)/1e6, before.Round(100*time.Millisecond), after.Round(100*time.Millisecond), floor.Round(100*time.Millisecond),
		fast.Round(100*time.Millisecond), copiedAt.Round(100*time.Millisecond), fast.Seconds()/floor.Seconds(), bare.Seconds()/fast.Seconds())
}
