package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/tests/harness"
)

// writeLoad runs inserts, updates and deletes on tables load_1..load_n of the source from two
// connections until the returned stop is called (at the latest when the test ends); the counter
// holds the number of committed transactions.
func writeLoad(t *testing.T, pool *pgxpool.Pool, tables int) (*atomic.Int64, func()) {
	t.Helper()
	var done atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var once sync.Once
	stopFn := func() { once.Do(func() { close(stop) }); wg.Wait() }
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 42))
			for {
				select {
				case <-stop:
					return
				default:
				}
				tbl := fmt.Sprintf("load_%d", 1+rng.IntN(tables))
				id := 1 + rng.IntN(60000)
				var sql string
				switch rng.IntN(3) {
				case 0:
					sql = fmt.Sprintf("INSERT INTO %s (id, v, n) VALUES (%d, md5(random()::text), 1) ON CONFLICT (id) DO UPDATE SET n = %s.n + 1", tbl, id, tbl)
				case 1:
					sql = fmt.Sprintf("UPDATE %s SET v = md5(v), n = n + 1 WHERE id BETWEEN %d AND %d", tbl, id, id+20)
				default:
					sql = fmt.Sprintf("DELETE FROM %s WHERE id = %d", tbl, id)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := pool.Exec(ctx, sql)
				cancel()
				if err == nil {
					done.Add(1)
				}
				time.Sleep(500 * time.Microsecond) // leave the 2 cores some room for the init itself
			}
		}(uint64(w))
	}
	t.Cleanup(stopFn)
	return &done, stopFn
}

// waitWrites waits (at most a minute) until the write load has committed n more transactions,
// so the phase it is called in is known to run under load; it returns the count then.
func waitWrites(t *testing.T, node *harness.Node, writes *atomic.Int64, n int64, what string) int64 {
	t.Helper()
	target := writes.Load() + n
	node.WaitFor(t, time.Minute, fmt.Sprintf("%d more write transactions %s", n, what), func() bool {
		return writes.Load() >= target
	})
	return writes.Load()
}

// assertWritesInEveryPhase fails unless the write load committed transactions before the init
// started, while it ran (until SYNCHRONIZED) and after it ended.
func assertWritesInEveryPhase(t *testing.T, before, during, after int64) {
	t.Helper()
	t.Logf("write transactions on the source: %d before the init, %d during, %d after", before, during, after)
	if before <= 0 || during <= 0 || after <= 0 {
		t.Fatalf("the write load did not run in every phase: %d before the init, %d during, %d after", before, during, after)
	}
}

func TestInitUnderWriteLoadEndsWithEveryRowEqual(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	const tables = 3
	for i := 1; i <= tables; i++ {
		for _, n := range []*harness.Node{p.a, p.b} {
			n.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		}
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 40000) g", i))
	}
	writes, stop := writeLoad(t, p.a.Pool(t, ""), tables)
	before := waitWrites(t, p.a, writes, 50, "before the init starts")
	p.startInit(t, `{"parallel": 3}`)
	p.waitState(t, "synchronized", 120*time.Second)
	synced := writes.Load()
	after := waitWrites(t, p.a, writes, 100, "after the init") - synced // the load keeps running after
	stop()
	t.Logf("%d write transactions ran on the source during the init", writes.Load())
	assertWritesInEveryPhase(t, before, synced-before, after)
	if writes.Load() < 100 {
		t.Fatalf("the write load committed only %d transactions", writes.Load())
	}
	p.waitEqual(t, 60*time.Second)
	assertNoSubscriptionErrors(t, p.b)
}
