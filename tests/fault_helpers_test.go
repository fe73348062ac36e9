package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// loadPair is setupPair with tables load_1..load_3 on both nodes (20000 rows each on the
// source), for writeLoad.
func loadPair(t *testing.T) *pair {
	t.Helper()
	p := setupPair(t)
	for i := 1; i <= 3; i++ {
		for _, n := range []*harness.Node{p.a, p.b} {
			n.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		}
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g", i))
	}
	p.a.Exec(t, "", "ANALYZE")
	return p
}

// catchingUpUnderLoad starts an init of a loadPair under a write load and returns once node_b is
// CATCHING_UP. The target applies updates of the load tables slowly (an ENABLE ALWAYS trigger
// fires in the apply worker, not in the table-sync COPY), so the apply lag keeps growing and
// the node stays CATCHING_UP until fastApply.
func (p *pair) catchingUpUnderLoad(t *testing.T) (*atomic.Int64, func()) {
	t.Helper()
	p.b.Exec(t, "", `CREATE FUNCTION slow_apply() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$`)
	for i := 1; i <= 3; i++ {
		p.b.Exec(t, "", fmt.Sprintf("CREATE TRIGGER slow_apply BEFORE UPDATE ON load_%d FOR EACH ROW EXECUTE FUNCTION slow_apply()", i))
		p.b.Exec(t, "", fmt.Sprintf("ALTER TABLE load_%d ENABLE ALWAYS TRIGGER slow_apply", i))
	}
	writes, stop := steadyLoad(t, p.a, 3, 10*time.Millisecond)
	waitWrites(t, p.a, writes, 20, "before the init")
	p.startInit(t, `{"parallel": 2, "lag_threshold": 10000}`)
	p.waitState(t, "catching_up", 90*time.Second)
	waitWrites(t, p.a, writes, 20, "while catching up")
	if st := p.state(t); st != "catching_up" {
		t.Fatalf("node_b is %s under a write load it applies slowly, want catching_up", st)
	}
	return writes, stop
}

// steadyLoad updates (and now and then inserts or deletes) rows of load_1..load_<tables> on n from
// one connection, a transaction every pause (10 ms: about 100 a second), until the returned stop (at the latest when the
// test ends): enough for a slowed apply to fall behind, little enough to catch up in seconds once
// it is fast again. The counter holds the committed transactions.
func steadyLoad(t *testing.T, n *harness.Node, tables int, pause time.Duration) (*atomic.Int64, func()) {
	t.Helper()
	pool := n.Pool(t, "")
	var done atomic.Int64
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	stop := func() { once.Do(func() { close(quit) }); wg.Wait() }
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(7, 42))
		for {
			select {
			case <-quit:
				return
			case <-time.After(pause):
			}
			tbl, id := fmt.Sprintf("load_%d", 1+rng.IntN(tables)), 1+rng.IntN(20000)
			sql := fmt.Sprintf("UPDATE %s SET v = md5(v), n = n + 1 WHERE id BETWEEN %d AND %d", tbl, id, id+20)
			switch rng.IntN(10) {
			case 0:
				sql = fmt.Sprintf("INSERT INTO %s (id, v, n) VALUES (%d, md5(random()::text), 1) ON CONFLICT (id) DO UPDATE SET n = %s.n + 1", tbl, 20000+id, tbl)
			case 1:
				sql = fmt.Sprintf("DELETE FROM %s WHERE id = %d", tbl, id)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := pool.Exec(ctx, sql); err == nil {
				done.Add(1)
			}
			cancel()
		}
	})
	t.Cleanup(stop)
	return &done, stop
}

// fastApply drops the slow_apply triggers of catchingUpUnderLoad.
func (p *pair) fastApply(t *testing.T) {
	t.Helper()
	for i := 1; i <= 3; i++ {
		p.b.Exec(t, "", fmt.Sprintf("DROP TRIGGER slow_apply ON load_%d", i))
	}
}

// waitCopyingSlow waits until the table-sync worker copies public.slow (addSlowTable).
func (p *pair) waitCopyingSlow(t *testing.T) {
	t.Helper()
	p.b.WaitFor(t, 30*time.Second, "slow table copying", func() bool {
		return harness.QueryOne[bool](t, p.b, "", `SELECT coalesce((SELECT 'public.slow' = ANY (current_tables)
			FROM steep_repl.init_progress WHERE node = 'node_b'), false)`)
	})
	if st := p.state(t); st != "copying" {
		t.Fatalf("node_b is %s while its slow table copies, want copying", st)
	}
}

// tryQuery runs sql on n and returns its single value, or ok false on any error: for polling a
// node that is restarting.
func tryQuery[T any](t *testing.T, n *harness.Node, sql string, args ...any) (v T, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.Pool(t, "").QueryRow(ctx, sql, args...).Scan(&v)
	return v, err == nil
}

// waitServing waits until n answers queries again (after a crash restart of its postmaster).
func waitServing(t *testing.T, n *harness.Node, timeout time.Duration) {
	t.Helper()
	n.WaitFor(t, timeout, "the server answering again", func() bool {
		_, ok := tryQuery[int32](t, n, "SELECT 1")
		return ok
	})
}

// killSupervisor SIGKILLs n's supervisor backend; the postmaster then restarts every backend
// (crash recovery). It waits for a new supervisor and returns the old pid.
func killSupervisor(t *testing.T, n *harness.Node) int32 {
	t.Helper()
	pid := harness.QueryOne[int32](t, n, "", supervisorPIDSQL)
	if pid == 0 {
		t.Fatalf("no supervisor running on %s", n.Name)
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 supervisor %d: %v", pid, err)
	}
	n.WaitFor(t, 60*time.Second, "a new supervisor after the postmaster's crash restart", func() bool {
		got, ok := tryQuery[int32](t, n, supervisorPIDSQL)
		return ok && got != 0 && got != pid
	})
	return pid
}

// assertStatePath fails unless node_b's state changes since its last PREPARING are exactly want.
func (p *pair) assertStatePath(t *testing.T, want string) {
	t.Helper()
	got := harness.QueryOne[string](t, p.b, "", `SELECT string_agg(to_state, ' ' ORDER BY id) FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'init.state_change'
		  AND id >= (SELECT max(id) FROM steep_repl.events WHERE node = 'node_b' AND to_state = 'preparing')`)
	if got != want {
		t.Fatalf("state changes of the init: %q, want %q", got, want)
	}
}

// assertOneInitsObjects checks an init made exactly one of each: publication on the source, slot
// (once every table is synchronized), subscription, progress row and init.start job (of its last start) on the target.
func (p *pair) assertOneInitsObjects(t *testing.T) {
	t.Helper()
	got := fmt.Sprintf("publications=%d slots=%d", harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_publication"),
		harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_replication_slots"))
	got += fmt.Sprintf(" subscriptions=%d progress=%d start_jobs=%d",
		harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_subscription"),
		harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_progress"),
		harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM steep_repl.jobs WHERE kind = 'init.start'
			AND created_at >= (SELECT init_started_at FROM steep_repl.nodes WHERE name = 'node_b')`))
	if want := "publications=1 slots=1 subscriptions=1 progress=1 start_jobs=1"; got != want {
		t.Fatalf("objects of the init: %s, want %s", got, want)
	}
}
