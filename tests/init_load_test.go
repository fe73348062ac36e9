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
	time.Sleep(500 * time.Millisecond) // the load is running before the init starts
	p.startInit(t, `{"parallel": 3}`)
	p.waitState(t, "synchronized", 120*time.Second)
	time.Sleep(time.Second) // and keeps running after
	stop()
	t.Logf("%d write transactions ran on the source during the init", writes.Load())
	if writes.Load() < 100 {
		t.Fatalf("the write load committed only %d transactions", writes.Load())
	}
	p.waitEqual(t, 60*time.Second)
	assertNoSubscriptionErrors(t, p.b)
}
