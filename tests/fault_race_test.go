package tests

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/tests/harness"
)

// Two operators call start_init for the same node at the same instant: both calls are held on
// the node's row lock (a third session holds it) until both are waiting, then let go together.
// Exactly one wins; the other is refused with 55000 and a HINT, and nothing of a second init is
// made (one publication, slot, subscription, progress row and init.start job), equal at the end.
func TestTwoStartInitsRacingOneWinsAndTheOtherIsRefusedWithNothingHalfMade(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	ctx := context.Background()
	gate, err := p.b.Pool(t, "").Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Rollback(ctx)
	if _, err := gate.Exec(ctx, "SELECT 1 FROM steep_repl.nodes WHERE name = 'node_b' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	pool := dbaPool(t, p.b)
	var wg sync.WaitGroup
	ids := make([]int64, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			errs[i] = pool.QueryRow(qctx, "SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{}')").Scan(&ids[i])
		})
	}
	p.b.WaitFor(t, 30*time.Second, "both start_init calls waiting on the node's row lock", func() bool {
		return harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM pg_stat_activity
			WHERE query LIKE 'SELECT steep_repl.start_init%' AND wait_event_type = 'Lock'`) == 2
	})
	if err := gate.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	var loser *pgconn.PgError
	won := 0
	for i := range 2 {
		var pgErr *pgconn.PgError
		switch {
		case errs[i] == nil:
			won++
		case asPgError(errs[i], &pgErr):
			loser = pgErr
		default:
			t.Fatalf("start_init %d: not a PostgreSQL error: %v", i, errs[i])
		}
	}
	if won != 1 || loser == nil {
		t.Fatalf("%d of the two racing start_init calls won (errors: %v, %v), want exactly one", won, errs[0], errs[1])
	}
	if loser.Code != "55000" || !strings.Contains(loser.Message, "already has an init in state PREPARING") || loser.Hint == "" {
		t.Fatalf("the losing start_init: %s %q hint %q, want 55000 naming the init under way, with a hint", loser.Code, loser.Message, loser.Hint)
	}
	t.Logf("the loser was told: %s (%s); HINT: %s", loser.Message, loser.Code, loser.Hint)

	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
	p.assertStatePath(t, "preparing copying catching_up synchronized")
	p.assertOneInitsObjects(t)
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.events WHERE node = 'node_b' AND to_state = 'preparing'"); n != 1 {
		t.Fatalf("%d moves to PREPARING, want 1", n)
	}
}
