package tests

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// waitSynchronized waits for node of n to reach SYNCHRONIZED and returns how long it took.
func waitSynchronized(b *testing.B, n *harness.Node, node, what string, start time.Time) time.Duration {
	b.Helper()
	n.WaitFor(b, 30*time.Minute, what, func() bool {
		st := harness.QueryOne[string](b, n, "", "SELECT init_state FROM steep_repl.nodes WHERE name = $1", node)
		if st == "failed" {
			b.Fatalf("%s: failed: %s", what, harness.QueryOne[string](b, n, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = $1", node))
		}
		return st == "synchronized"
	})
	return time.Since(start)
}

// BenchmarkReinitOfOneTableVsAFreshInitOfIt: on an initialized node holding the whole generated
// database (STEEP_BENCH_MB, default 1 GB), the reinit of one table (medium, about 15% of it) while
// the source takes writes on another table, against a fresh init of that table alone on an empty
// node, in the same run. The ratio says what the reinit costs over copying the table.
func BenchmarkReinitOfOneTableVsAFreshInitOfIt(b *testing.B) {
	opts := harness.DefaultOptions()
	opts.Settings = fastSupervisor
	nodes := harness.StartN(b, 3, opts)
	a, target, fresh := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		n.Exec(b, "", "CREATE EXTENSION steep_repl CASCADE")
		n.Exec(b, "", benchTablesDDL)
		n.Exec(b, "", "SELECT steep_repl.register_node('node_a', $1, $2)", libpqConninfo(a), n == a)
	}
	// The fresh node is node_c, so its slot and publication on the source are not node_b's.
	target.Exec(b, "", "SELECT steep_repl.register_node('node_b', $1, true)", libpqConninfo(target))
	fresh.Exec(b, "", "SELECT steep_repl.register_node('node_c', $1, true)", libpqConninfo(fresh))
	generate(b, a, benchMB())
	tableMB := harness.QueryOne[float64](b, a, "", "SELECT pg_table_size('medium') / 1e6")
	startSidecar(b, target, "sidecar_b")
	startSidecar(b, fresh, "sidecar_fresh")

	start := time.Now()
	dbaExec(b, target, `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"parallel": 2}')`)
	initAll := waitSynchronized(b, target, "node_b", "the whole init", start)

	start = time.Now()
	dbaExec(b, fresh, `SELECT steep_repl.start_init('node_c', 'node_a', 'snapshot', '{"parallel": 2, "tables": ["medium"]}')`)
	freshInit := waitSynchronized(b, fresh, "node_c", "a fresh init of medium alone", start)

	// The source keeps writing to small while medium is reinitialized on the target.
	ctx, stop := context.WithCancel(context.Background())
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for id := int64(10_000_000); ctx.Err() == nil; id++ {
			if _, err := a.Pool(b, "").Exec(ctx, "INSERT INTO small VALUES ($1, 'reinit load', 1)", id); err == nil {
				writes.Add(1)
			}
		}
	})
	start = time.Now()
	dbaExec(b, target, `SELECT steep_repl.start_reinit('node_b', '{"tables": ["medium"]}')`)
	target.WaitFor(b, time.Minute, "the reinit started", func() bool {
		return harness.QueryOne[string](b, target, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'") != "synchronized"
	})
	reinit := waitSynchronized(b, target, "node_b", "the reinit of medium", start)
	stop()
	wg.Wait()
	if rep, err := harness.Compare(context.Background(), a.Pool(b, ""), target.Pool(b, ""), harness.CompareOptions{}); err != nil || !rep.Equal() {
		b.Fatalf("the nodes differ after the reinit: %v %v", rep, err)
	}

	b.ReportMetric(tableMB, "table_MB")
	b.ReportMetric(initAll.Seconds(), "init_all_s")
	b.ReportMetric(freshInit.Seconds(), "fresh_table_init_s")
	b.ReportMetric(reinit.Seconds(), "reinit_s")
	b.ReportMetric(reinit.Seconds()/freshInit.Seconds(), "reinit_vs_fresh_x")
	b.Logf("%.0f MB table in %d MB: whole init %s, fresh init of the table alone %s, reinit under %d source writes %s (ratio %.2f)",
		tableMB, benchMB(), initAll.Round(100*time.Millisecond), freshInit.Round(100*time.Millisecond), writes.Load(),
		reinit.Round(100*time.Millisecond), reinit.Seconds()/freshInit.Seconds())
}
