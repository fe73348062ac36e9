package tests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkQueueWakeLatency: enqueue-to-claim latency of an idle sidecar woken by NOTIFY
// (server timestamps: created_at of the enqueue, attempted_at of the claim), against the bare
// LISTEN/NOTIFY round trip measured in the same run.
func BenchmarkQueueWakeLatency(b *testing.B) {
	n := setupNode(b)
	// A long poll interval: a claim within it can only come from the NOTIFY wake-up.
	startSidecar(b, n, "idle", "--poll", "30s")
	n.WaitFor(b, 10*time.Second, "the sidecar LISTENing", func() bool {
		return harness.QueryOne[bool](b, n, "", `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE application_name = 'steep-repl sidecar listener' AND state = 'idle' AND query ILIKE 'LISTEN%')`)
	})
	const samples = 50
	var lat []time.Duration
	for i := 0; i < samples; i++ {
		id := harness.QueryOne[int64](b, n, "", "SELECT steep_repl.enqueue_job('noop')")
		n.WaitFor(b, 10*time.Second, "job claimed", func() bool {
			return harness.QueryOne[string](b, n, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", id) == "succeeded"
		})
		us := harness.QueryOne[int64](b, n, "", "SELECT (extract(epoch FROM attempted_at - created_at) * 1e6)::bigint FROM steep_repl.jobs WHERE id = $1", id)
		lat = append(lat, time.Duration(us)*time.Microsecond)
		time.Sleep(50 * time.Millisecond) // pacing: each sample wakes an idle sidecar (the sleep is the point)
	}
	base := notifyRoundTrips(b, n, samples)
	slices.Sort(lat)
	slices.Sort(base)
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50_ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99_ms")
	b.ReportMetric(ms(percentile(base, 0.50)), "notify_p50_ms")
	b.ReportMetric(float64(percentile(lat, 0.50))/float64(max(percentile(base, 0.50), 1)), "p50_vs_notify_x")
	b.Logf("enqueue-to-claim p50 %s p99 %s; bare NOTIFY round trip p50 %s p99 %s",
		percentile(lat, 0.50), percentile(lat, 0.99), percentile(base, 0.50), percentile(base, 0.99))
}

// notifyRoundTrips times NOTIFY from one session to a LISTENing other, the floor any wake-up pays.
func notifyRoundTrips(b *testing.B, n *harness.Node, count int) []time.Duration {
	ctx := context.Background()
	listener, err := n.Pool(b, "").Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN bench_baseline"); err != nil {
		b.Fatal(err)
	}
	var out []time.Duration
	for i := 0; i < count; i++ {
		start := time.Now()
		n.Exec(b, "", "SELECT pg_notify('bench_baseline', 'x')")
		if _, err := listener.Conn().WaitForNotification(ctx); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// BenchmarkQueueClaimThroughput: jobs/s of 3 sidecars draining 2000 noop jobs, against three bare
// SQL loops calling claim_job + finish_job in the same run (the queue's own ceiling).
func BenchmarkQueueClaimThroughput(b *testing.B) {
	n := setupNode(b)
	const jobs = 2000
	n.Exec(b, "", "SELECT steep_repl.enqueue_job('noop') FROM generate_series(1, $1)", jobs)
	start := time.Now()
	for i := 1; i <= 3; i++ {
		startSidecar(b, n, fmt.Sprintf("car%d", i), "--concurrency", "2")
	}
	n.WaitFor(b, 5*time.Minute, "jobs drained", func() bool {
		return harness.QueryOne[int64](b, n, "", "SELECT count(*) FROM steep_repl.jobs WHERE state <> 'succeeded'") == 0
	})
	sidecars := float64(jobs) / time.Since(start).Seconds()

	n.Exec(b, "", "SELECT steep_repl.enqueue_job('bare') FROM generate_series(1, $1)", jobs)
	start = time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(worker string) {
			defer wg.Done()
			pool := n.Pool(b, "")
			for {
				var id int64
				err := pool.QueryRow(context.Background(), "SELECT id FROM steep_repl.claim_job($1, '{bare}')", worker).Scan(&id)
				if errors.Is(err, pgx.ErrNoRows) {
					return
				}
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := pool.Exec(context.Background(), "SELECT steep_repl.finish_job($1, $2, 'succeeded')", id, worker); err != nil {
					b.Error(err)
					return
				}
			}
		}(fmt.Sprintf("bare%d", w))
	}
	wg.Wait()
	bare := float64(jobs) / time.Since(start).Seconds()
	b.ReportMetric(sidecars, "sidecar_jobs/s")
	b.ReportMetric(bare, "bare_sql_jobs/s")
	b.ReportMetric(sidecars/bare, "sidecar_vs_bare_x")
}
