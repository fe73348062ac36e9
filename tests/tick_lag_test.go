package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// sourceSessionsSQL counts the sessions ever established to the source's database (regular
// backends only: a walsender is not one, a dblink session from the target is).
const sourceSessionsSQL = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"

// TestTickCatchingUpLagOpensFewSourceConnections holds an init in CATCHING_UP for a minute (a
// trigger keeps one table from being reported ready, so the init cannot finish) with the
// supervisor at its default naptime of 1 s, and counts the sessions tick() opens on the source
// over that minute. The lag keeps being measured: lag_bytes is set and follows the writes.
func TestTickCatchingUpLagOpensFewSourceConnections(t *testing.T) {
	scenario(t)
	t.Parallel()
	opts := harness.DefaultOptions()
	opts.Settings = map[string]string{"steep_repl.naptime": "1s", "log_connections": "on"}
	nodes := harness.StartN(t, 2, opts)
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		failOnTickErrors(t, n)
		n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
		n.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, $2)", libpqConninfo(a), n == a)
		n.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, $2)", libpqConninfo(b), n == b)
		n.Exec(t, "", "CREATE TABLE artist (id int PRIMARY KEY, name text)")
		n.Exec(t, "", "CREATE TABLE album (id int PRIMARY KEY, title text)")
	}
	a.Exec(t, "", "INSERT INTO artist SELECT g, 'artist ' || g FROM generate_series(1, 1000) g")
	a.Exec(t, "", "INSERT INTO album SELECT g, 'album ' || g FROM generate_series(1, 1000) g")
	b.Exec(t, "", `CREATE FUNCTION public.hold_artist() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.sync_state = 'ready' THEN NEW.sync_state := 'synced'; END IF; RETURN NEW; END $$`)
	b.Exec(t, "", `CREATE TRIGGER hold_artist BEFORE UPDATE ON steep_repl.init_tables
		FOR EACH ROW WHEN (NEW.table_name = 'artist') EXECUTE FUNCTION public.hold_artist()`)
	startSidecar(t, b, "sidecar_b")
	p := &pair{a: a, b: b}
	p.startInit(t, `{"lag_threshold": 0}`)
	p.waitState(t, "catching_up", 60*time.Second)
	b.WaitFor(t, 30*time.Second, "lag_bytes measured", func() bool {
		return harness.QueryOne[bool](t, b, "", "SELECT lag_bytes IS NOT NULL FROM steep_repl.init_progress WHERE node = 'node_b'")
	})

	// A write load on the source all along: the lag has something to measure.
	pool := a.Pool(t, "")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_, _ = pool.Exec(context.Background(), "UPDATE album SET title = title || '.' WHERE id = $1", i%1000+1)
		}
	}()
	defer func() { close(stop); <-done }()

	before := harness.QueryOne[int64](t, a, "", sourceSessionsSQL)
	const authorized = "connection authorized: user=postgres database=postgres"
	logBefore := a.LogCount(authorized)
	start := time.Now()
	time.Sleep(30 * time.Second) // the measurement window: 30 ticks at naptime 1 s
	sessions := harness.QueryOne[int64](t, a, "", sourceSessionsSQL) - before
	authLines := a.LogCount(authorized) - logBefore
	perMinute := float64(sessions) / time.Since(start).Minutes()
	t.Logf("CATCHING_UP for %s at naptime 1 s: %d sessions opened on the source (%.1f/min; %d log_connections lines)",
		time.Since(start).Round(time.Second), sessions, perMinute, authLines)
	if st := p.state(t); st != "catching_up" {
		t.Fatalf("node_b left CATCHING_UP: %s", st)
	}
	if lag := harness.QueryOne[*int64](t, b, "", "SELECT lag_bytes FROM steep_repl.init_progress WHERE node = 'node_b'"); lag == nil {
		t.Fatal("lag_bytes is NULL while CATCHING_UP")
	}
	if got := harness.QueryOne[string](t, b, "", `SELECT format('%s %s %s', error IS NULL, confirmed_flush_lsn IS NOT NULL,
		read_at > now() - interval '10 seconds') FROM steep_repl.init_source_reads WHERE node = 'node_b'`); got != "t t t" {
		t.Fatalf("the last read of the source: %q, want a recent answer with the slot's position", got)
	}
	if perMinute > 15 {
		t.Fatalf("tick() opened %.1f sessions per minute on the source while CATCHING_UP, want at most 15", perMinute)
	}
}

// TestTickSilentSourceOfAnInitIsUnreachableWithinTheReadBound: the source of a CATCHING_UP init
// accepts connections and never answers. The read of it gives up after 5 s: the source is
// unreachable (tracked for source_timeout), which is no failed duty; the next read waits 5 s.
func TestTickSilentSourceOfAnInitIsUnreachableWithinTheReadBound(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	port := blackhole(t)
	n.Exec(t, "", "SELECT steep_repl.register_node('node_bh', $1, false)",
		fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=postgres", port))
	catchingUpFrom(t, n, "node_bh")

	start := time.Now()
	r := harness.QueryOne[map[string]any](t, n, "", "SELECT steep_repl.tick()")
	took := time.Since(start)
	t.Logf("tick() with a silent source of a CATCHING_UP init took %s: %v", took.Round(time.Millisecond), r["duties"])
	if took < 4*time.Second || took > 8*time.Second {
		t.Fatalf("tick() took %s with a silent source, want the read bound (5 s)", took)
	}
	if f := r["duties"].(map[string]any)["failed"].(map[string]any); len(f) != 0 {
		t.Fatalf("a silent source is an unreachable source, not a failed duty: %v", f)
	}
	if msg := harness.QueryOne[string](t, n, "", `SELECT coalesce(message, '') || ' / ' || (source_unreachable_since IS NOT NULL)
		FROM steep_repl.init_progress WHERE node = 'node_a'`); msg != "source node node_bh unreachable: no answer within 00:00:05 / true" {
		t.Fatalf("init_progress after a silent source: %q", msg)
	}
	if got := harness.QueryOne[string](t, n, "", "SELECT coalesce(error, 'NULL') FROM steep_repl.init_source_reads WHERE node = 'node_a'"); got != "no answer within 00:00:05" {
		t.Fatalf("init_source_reads after a silent source: %q", got)
	}
	// Read at most every 5 s: the next tick does not try again.
	start = time.Now()
	harness.QueryOne[map[string]any](t, n, "", "SELECT steep_repl.tick()")
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the tick right after a silent read took %s: it read the source again", took)
	}
}
