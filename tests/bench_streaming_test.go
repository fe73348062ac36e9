package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// streamingBenchRows is the rows of each large transaction: STEEP_BENCH_ROWS, default 200,000.
func streamingBenchRows() int {
	if v, err := strconv.Atoi(os.Getenv("STEEP_BENCH_ROWS")); err == nil && v > 0 {
		return v
	}
	return 200_000
}

// BenchmarkCatchUpLargeTransactions: node_b initialized from node_a (to SYNCHRONIZED), its
// subscription disabled while the source commits 20 large transactions (two sessions of ten, as
// concurrent writers would), then enabled; timed until the source's slot is confirmed past the
// source's LSN after the load. Once with streaming = off and once with parallel, in the same run
// on the same nodes; the source decodes with logical_decoding_work_mem = 64kB, so off spills each
// transaction to disk and sends it at its commit, parallel streams it to an apply worker.
func BenchmarkCatchUpLargeTransactions(b *testing.B) {
	const sessions, perSession = 2, 10
	rows := streamingBenchRows()
	p := streamingPair(b)
	p.car = startSidecar(b, p.b, "sidecar_b")
	p.startInit(b, "{}")
	p.waitState(b, "synchronized", 10*time.Minute)
	sub := harness.QueryOne[string](b, p.b, "", "SELECT subscription FROM steep_repl.init_progress WHERE node = 'node_b'")
	slot := harness.QueryOne[string](b, p.b, "", "SELECT subslotname::text FROM pg_subscription WHERE subname = $1", sub)

	next := 1000 // the highest id on the source
	catchUp := func(mode string) time.Duration {
		p.b.Exec(b, "", fmt.Sprintf("ALTER SUBSCRIPTION %s DISABLE", sub))
		p.a.WaitFor(b, time.Minute, "the subscription's walsender gone", func() bool {
			return !harness.QueryOne[bool](b, p.a, "", "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot)
		})
		p.b.Exec(b, "", fmt.Sprintf("ALTER SUBSCRIPTION %s SET (streaming = %s)", sub, mode))
		statsBefore := slotStats(b, p.a, slot)
		var wg sync.WaitGroup
		errs := make([]error, sessions)
		for s := range sessions {
			from := next + s*perSession*rows
			wg.Go(func() {
				for i := 0; i < perSession && errs[s] == nil; i++ {
					_, errs[s] = p.a.Pool(b, "").Exec(context.Background(), "INSERT INTO big SELECT g, md5(g::text) FROM generate_series($1::bigint + 1, $1::bigint + $2) g", from+i*rows, rows)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatalf("load: %v", err)
			}
		}
		next += sessions * perSession * rows
		lsn := harness.QueryOne[string](b, p.a, "", "SELECT pg_current_wal_lsn()::text")
		start := time.Now()
		p.b.Exec(b, "", fmt.Sprintf("ALTER SUBSCRIPTION %s ENABLE", sub))
		p.a.WaitFor(b, 30*time.Minute, "node_b applied up to "+lsn, func() bool {
			return harness.QueryOne[bool](b, p.a, "", "SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1", slot, lsn)
		})
		took := time.Since(start)
		b.Logf("streaming = %s: slot %s, before the load %s, after the catch-up %s; workers %s", mode, slot, statsBefore, slotStats(b, p.a, slot),
			harness.QueryOne[string](b, p.b, "", "SELECT string_agg(worker_type, ', ') FROM pg_stat_subscription WHERE subname = $1", sub))
		if rep, err := harness.Compare(context.Background(), p.a.Pool(b, ""), p.b.Pool(b, ""), harness.CompareOptions{}); err != nil || !rep.Equal() {
			b.Fatalf("the nodes differ after the catch-up with streaming = %s: %v %v", mode, rep, err)
		}
		return took
	}
	b.ResetTimer()
	off := catchUp("off")
	parallel := catchUp("parallel")
	b.StopTimer()

	total := float64(sessions * perSession * rows)
	b.ReportMetric(float64(rows), "rows_per_txn")
	b.ReportMetric(off.Seconds(), "off_s")
	b.ReportMetric(parallel.Seconds(), "parallel_s")
	b.ReportMetric(off.Seconds()/parallel.Seconds(), "off_vs_parallel_x")
	b.Logf("%d transactions of %d rows (%d sessions): catch-up with streaming = off %s (%.0f rows/s), parallel %s (%.0f rows/s), ratio %.2f",
		sessions*perSession, rows, sessions, off.Round(100*time.Millisecond), total/off.Seconds(),
		parallel.Round(100*time.Millisecond), total/parallel.Seconds(), off.Seconds()/parallel.Seconds())
}

// slotStats is the streaming and spilling counters of slot on n.
func slotStats(b *testing.B, n *harness.Node, slot string) string {
	b.Helper()
	return harness.QueryOne[string](b, n, "", `SELECT format('stream_txns=%s spill_txns=%s spill_bytes=%s', stream_txns, spill_txns, spill_bytes)
		FROM pg_stat_replication_slots WHERE slot_name = $1`, slot)
}
