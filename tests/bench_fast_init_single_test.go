package tests

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// benchSingleMB is the size of the single-table bench: STEEP_BENCH_MB, else 512 MB (a few
// minutes here; the 1 GB is STEEP_BENCH_MB=1024).
func benchSingleMB() int {
	if v, err := strconv.Atoi(os.Getenv("STEEP_BENCH_MB")); err == nil && v > 0 {
		return v
	}
	return 512
}

// timeFastInit runs start_init(node, 'node_a', 'fast', options) on target until SYNCHRONIZED;
// it returns the time to CATCHING_UP (copied, indexed, subscribed) and to SYNCHRONIZED.
func timeFastInit(b *testing.B, target *harness.Node, node, options string) (copied, synced time.Duration) {
	start := time.Now()
	target.Exec(b, "", "SELECT steep_repl.start_init($1, 'node_a', 'fast', $2)", node, options)
	target.WaitFor(b, 60*time.Minute, node+" fast init synchronized", func() bool {
		st := harness.QueryOne[string](b, target, "", "SELECT init_state FROM steep_repl.nodes WHERE name = $1", node)
		if copied == 0 && (st == "catching_up" || st == "synchronized") {
			copied = time.Since(start)
		}
		if st == "failed" {
			b.Fatal("fast init failed: " + harness.QueryOne[string](b, target, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = $1", node))
		}
		return st == "synchronized"
	})
	return copied, time.Since(start)
}

// fastPhases reads the last fast init's phases from its sidecar's log: seconds to copy every
// chunk (init.fast_loaded) and to re-create the indexes and constraints (init.fast_indexed).
func fastPhases(b *testing.B, s *sidecar) (load, index float64) {
	b.Helper()
	last := func(event string) float64 {
		ev := s.awaitEvents(b, event, 1, 10*time.Second)
		if len(ev) == 0 {
			b.Fatalf("sidecar %s logged no %s", s.name, event)
		}
		v, err := strconv.ParseFloat(fmt.Sprint(ev[len(ev)-1]["seconds"]), 64)
		if err != nil {
			b.Fatalf("%s seconds: %v", event, err)
		}
		return v
	}
	return last("init.fast_loaded"), last("init.fast_indexed")
}

// BenchmarkFastInitSingleLargeTable: one table of benchSingleMB MB (the bench's big table, with
// its secondary index). Native copy uses one table-sync worker for it whatever
// max_sync_workers_per_subscription says; a fast init splits it into block ranges
// (split_threshold 64 MiB) copied by 2 workers. In one run, on the same source: a bare
// CREATE SUBSCRIPTION ... copy_data = true (before and after the fast inits: the mean is the
// reference), a fast init in COPY's binary format (copy_format auto, same major) on node_b and
// one in text (copy_format text) on node_c.
func BenchmarkFastInitSingleLargeTable(b *testing.B) {
	a, binTarget := setupEmptyPair(b)
	opts := harness.DefaultOptions()
	opts.Settings = fastSupervisor
	opts.Name = "node_c"
	textTarget := harness.Start(b, opts)
	failOnTickErrors(b, textTarget)
	textTarget.Exec(b, "", "CREATE EXTENSION steep_repl CASCADE")
	for _, n := range []*harness.Node{a, binTarget, textTarget} {
		n.Exec(b, "", "SELECT steep_repl.register_node('node_c', $1, $2)", libpqConninfo(textTarget), n == textTarget)
	}
	textTarget.Exec(b, "", "SELECT steep_repl.register_node('node_a', $1, false)", libpqConninfo(a))
	bareOpts := harness.DefaultOptions()
	bareOpts.Name = "bare"
	bare := harness.Start(b, bareOpts)
	for _, n := range []*harness.Node{a, binTarget, textTarget, bare} {
		n.Exec(b, "", benchTablesDDL) // medium and small stay empty
		n.Exec(b, "", benchIndexDDL)
	}
	mb := benchSingleMB()
	a.Exec(b, "", `INSERT INTO big SELECT g, g % 100000, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text),
		'2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, $1) g`, mb*1024*1024/150)
	a.Exec(b, "", "VACUUM ANALYZE big")
	bytes := harness.QueryOne[int64](b, a, "", "SELECT pg_table_size('big')")
	const workers = 2

	cpu0 := machineBusySeconds(b)
	before := bareSubscriptionCopy(b, a, bare, workers)
	cpu1 := machineBusySeconds(b)
	sb := startSidecar(b, binTarget, "bench_sidecar_b")
	cpu2, sidecar0 := machineBusySeconds(b), processBusySeconds(b, sb.cmd.Process.Pid)
	binCopied, binSynced := timeFastInit(b, binTarget, "node_b", fmt.Sprintf(`{"parallel": %d}`, workers))
	fastCPU, sidecarCPU := machineBusySeconds(b)-cpu2, processBusySeconds(b, sb.cmd.Process.Pid)-sidecar0
	binLoad, binIndex := fastPhases(b, sb)
	sc := startSidecar(b, textTarget, "bench_sidecar_c")
	textCopied, textSynced := timeFastInit(b, textTarget, "node_c", fmt.Sprintf(`{"parallel": %d, "copy_format": "text"}`, workers))
	textLoad, _ := fastPhases(b, sc)
	cpu3 := machineBusySeconds(b)
	after := bareSubscriptionCopy(b, a, bare, workers)
	nativeCPU := (cpu1 - cpu0 + machineBusySeconds(b) - cpu3) / 2
	native := (before + after) / 2

	mbs := float64(bytes) / 1e6
	b.ReportMetric(mbs, "source_MB")
	b.ReportMetric(native.Seconds(), "native_s")
	b.ReportMetric(binSynced.Seconds(), "fast_binary_s")
	b.ReportMetric(textSynced.Seconds(), "fast_text_s")
	b.ReportMetric(native.Seconds()/binSynced.Seconds(), "native_vs_fast_x")
	b.ReportMetric(native.Seconds()/binCopied.Seconds(), "native_vs_fast_copy_x")
	b.ReportMetric(binCopied.Seconds()/textCopied.Seconds(), "binary_vs_text_copy_x")
	b.ReportMetric(mbs/binSynced.Seconds(), "fast_MB/s")
	b.ReportMetric(binLoad, "fast_load_s")
	b.ReportMetric(binIndex, "fast_index_s")
	b.ReportMetric(binLoad/textLoad, "binary_vs_text_load_x")
	b.ReportMetric(nativeCPU, "native_cpu_s")
	b.ReportMetric(fastCPU, "fast_cpu_s")
	b.ReportMetric(sidecarCPU, "fast_sidecar_cpu_s")
	cores := machineCores(b)
	bound := cpuBoundRatio(native.Seconds(), fastCPU, cores)
	b.ReportMetric(bound, "cpu_bound_native_vs_fast_x")
	b.Logf("%.0f MB in one table: native subscription %s then %s; fast binary %s (CATCHING_UP after %s), fast text %s (after %s): native/fast %.2f, binary/text copy %.3f",
		mbs, before.Round(100*time.Millisecond), after.Round(100*time.Millisecond), binSynced.Round(100*time.Millisecond),
		binCopied.Round(100*time.Millisecond), textSynced.Round(100*time.Millisecond), textCopied.Round(100*time.Millisecond),
		native.Seconds()/binSynced.Seconds(), binCopied.Seconds()/textCopied.Seconds())
	b.Logf("CPU work on %d cores: native %.1f s (busy %.0f%%), fast %.1f s (busy %.0f%%, its sidecar %.1f s); with every core busy fast could be at most %.2fx faster than native",
		cores, nativeCPU, 100*nativeCPU/native.Seconds()/float64(cores), fastCPU,
		100*fastCPU/binSynced.Seconds()/float64(cores), sidecarCPU, bound)
}
