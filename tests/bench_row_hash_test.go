package tests

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRowHash: rows per second per core of steep_repl.row_hash over bench-data's big table
// (bigint, int, text, timestamptz: every column on a fast path) and over events with numeric,
// text[] and jsonb (their send functions run), against in the same run the floor of forming each
// row (count of the whole-row value) and the text-form hashes a comparison would otherwise use
// (hashtext and md5 of row::text). Parallel query is off: the figures are per core. Each query is
// timed best of three. STEEP_BENCH_ROWS sets the rows per table (default 1,000,000).
func BenchmarkRowHash(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("STEEP_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	n := setupNode(b)
	n.Exec(b, "", `CREATE TABLE big (id bigint PRIMARY KEY, account int NOT NULL, note text NOT NULL, at timestamptz NOT NULL)`)
	n.Exec(b, "", `INSERT INTO big SELECT g, g % 100000, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text),
		'2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, $1) g`, rows)
	n.Exec(b, "", `CREATE TABLE events (id bigint PRIMARY KEY, customer int NOT NULL, at timestamptz NOT NULL,
		kind text NOT NULL, amount numeric(12,2), tags text[], payload jsonb)`)
	n.Exec(b, "", `INSERT INTO events SELECT g, g % 50000, '2026-01-01'::timestamptz + g * interval '1 second',
		(ARRAY['view','cart','order','refund'])[1 + g % 4], (g % 100000) / 100.0,
		ARRAY['t' || g % 7, 't' || g % 11], jsonb_build_object('sku', g % 1000, 'note', md5(g::text), 'ok', g % 2 = 0)
		FROM generate_series(1, $1) g`, rows)
	n.Exec(b, "", "VACUUM ANALYZE big, events")
	pool := n.Pool(b, "")

	timed := func(q string) time.Duration {
		ctx := context.Background()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, "SET max_parallel_workers_per_gather = 0"); err != nil {
			b.Fatal(err)
		}
		best := time.Duration(1<<63 - 1)
		for i := 0; i < 3; i++ {
			start := time.Now()
			if _, err := conn.Exec(ctx, q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	for _, table := range []string{"big", "events"} {
		floor := timed("SELECT count(x) FROM " + table + " x")
		hash := timed("SELECT count(steep_repl.row_hash(x)) FROM " + table + " x")
		text := timed("SELECT count(hashtext(x::text)) FROM " + table + " x")
		md5 := timed("SELECT count(md5(x::text)) FROM " + table + " x")
		perSec := float64(rows) / hash.Seconds()
		b.ReportMetric(perSec, table+"_row_hash_rows/s")
		b.ReportMetric(hash.Seconds()/floor.Seconds(), table+"_row_hash_vs_row_floor_x")
		b.ReportMetric(hash.Seconds()/text.Seconds(), table+"_row_hash_vs_hashtext_x")
		b.ReportMetric(hash.Seconds()/md5.Seconds(), table+"_row_hash_vs_md5_x")
		b.Logf("%s, %d rows: whole-row floor %s, row_hash %s (%.2f M rows/s), hashtext(row::text) %s, md5(row::text) %s",
			table, rows, floor.Round(time.Millisecond), hash.Round(time.Millisecond), perSec/1e6,
			text.Round(time.Millisecond), md5.Round(time.Millisecond))
	}
}
