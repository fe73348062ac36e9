package tests

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// streamingPair is setupEmptyPair with table big on both nodes and the source decoding with
// logical_decoding_work_mem = 64kB, so a transaction of a few thousand rows is streamed.
func streamingPair(t testing.TB) *pair {
	t.Helper()
	a, b := setupEmptyPair(t)
	a.Exec(t, "", "ALTER SYSTEM SET logical_decoding_work_mem = '64kB'")
	a.Exec(t, "", "SELECT pg_reload_conf()")
	for _, n := range []*harness.Node{a, b} {
		n.Exec(t, "", "CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL)")
	}
	a.Exec(t, "", "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	return &pair{a: a, b: b}
}

// insertLarge commits one transaction of rows new rows into big on n, ids after from.
func insertLarge(t testing.TB, n *harness.Node, from, rows int) {
	t.Helper()
	n.Exec(t, "", "INSERT INTO big SELECT g, md5(g::text) FROM generate_series($1::bigint + 1, $1::bigint + $2) g", from, rows)
}

// assertStreamsInParallel checks node_b's subscription: substream 'p', and a large transaction
// on the source streamed (stream_txns of its slot) and applied by a parallel apply worker, every
// row equal afterwards, no apply error.
func assertStreamsInParallel(t *testing.T, p *pair) {
	t.Helper()
	sub := harness.QueryOne[string](t, p.b, "", "SELECT subscription FROM steep_repl.init_progress WHERE node = 'node_b'")
	slot := harness.QueryOne[string](t, p.b, "", "SELECT subslotname::text FROM pg_subscription WHERE subname = $1", sub)
	if got := harness.QueryOne[string](t, p.b, "", "SELECT substream::text FROM pg_subscription WHERE subname = $1", sub); got != "p" {
		t.Fatalf("subscription %s has substream %q, want p (parallel)", sub, got)
	}
	// The leader hands a streamed transaction to a parallel worker only once every table is
	// ready ('r'; SYNCHRONIZED may come while a table is still 'syncdone'): until then it spools.
	p.b.WaitFor(t, 30*time.Second, "every table of "+sub+" ready", func() bool {
		return harness.QueryOne[bool](t, p.b, "", `SELECT bool_and(r.srsubstate = 'r') FROM pg_subscription_rel r
			JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`, sub)
	})
	// It decides by its cached table states (pa_can_start -> AllTablesyncsReady), stale for
	// about a second after the last table turned ready, in which a streamed transaction is
	// still spooled; applying a small transaction first refreshes them.
	p.a.Exec(t, "", "INSERT INTO big VALUES (0, 'before the large transaction')")
	p.waitEqual(t, 30*time.Second)
	before := harness.QueryOne[int64](t, p.a, "", "SELECT coalesce((SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1), 0)", slot)
	seen := watchParallelApply(t, p.b, sub)
	insertLarge(t, p.a, 1000, 50000)
	p.waitEqual(t, 90*time.Second)
	p.a.WaitFor(t, 10*time.Second, "the large transaction counted as streamed", func() bool {
		return harness.QueryOne[int64](t, p.a, "", "SELECT coalesce((SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1), 0)", slot) > before
	})
	p.b.WaitFor(t, 10*time.Second, "a parallel apply worker of "+sub+" seen", func() bool { return seen() != "" })
	t.Logf("parallel apply worker of %s: %s", sub, seen())
	assertNoSubscriptionErrors(t, p.b)
}

// watchParallelApply polls pg_stat_subscription on n, until the test ends, for a parallel
// apply worker of subscription sub (leader_pid is set for those alone, 16+); the returned
// function gives the first one seen ("pid N, leader M"), or "" while none was.
func watchParallelApply(t *testing.T, n *harness.Node, sub string) func() string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	var first string
	done := make(chan struct{})
	pool := n.Pool(t, "")
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var w string
			err := pool.QueryRow(ctx, `SELECT coalesce((SELECT format('pid %s, leader %s', pid, leader_pid) FROM pg_stat_subscription
				WHERE subname = $1 AND leader_pid IS NOT NULL LIMIT 1), '')`, sub).Scan(&w)
			if err == nil && w != "" {
				mu.Lock()
				first = w
				mu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return first
	}
}

func TestAutomaticInitSubscribesWithParallelStreaming(t *testing.T) {
	t.Parallel()
	p := streamingPair(t)
	p.car = startSidecar(t, p.b, "sidecar_b")
	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 90*time.Second)
	assertStreamsInParallel(t, p)
}

func TestManualInitSubscribesWithParallelStreaming(t *testing.T) {
	t.Parallel()
	p := streamingPair(t)
	var slot, lsn string
	if err := dbaPool(t, p.a).QueryRow(t.Context(), "SELECT slot, lsn::text FROM steep_repl.prepare_init('node_b')").Scan(&slot, &lsn); err != nil {
		t.Fatal(err)
	}
	// No write on the source since the slot: the same rows are the target's seed at its LSN.
	p.b.Exec(t, "", "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	report := dbaQuery[string](t, p.b, "SELECT steep_repl.complete_init('node_b', 'node_a', $1, $2::pg_lsn)::text", slot, lsn)
	t.Logf("slot %s at %s; complete_init: %s", slot, lsn, report)
	p.waitState(t, "synchronized", 60*time.Second)
	assertStreamsInParallel(t, p)
}
