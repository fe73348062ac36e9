package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// pair is a source (node_a) and a target (node_b) with the extension installed, both nodes
// registered on both, Chinook on the source and the same tables, empty, on the target.
type pair struct {
	a, b *harness.Node
	car  *sidecar
}

func setupPair(t testing.TB) *pair {
	t.Helper()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		harness.LoadChinook(t, n, "")
	}
	b.Exec(t, "", `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT format('%I.%I', schemaname, tablename) t FROM pg_tables WHERE schemaname = 'public' LOOP
			EXECUTE 'TRUNCATE ' || r.t || ' CASCADE';
		END LOOP; END $$`)
	return &pair{a: a, b: b, car: startSidecar(t, b, "sidecar_b")}
}

// setupEmptyPair starts node_a and node_b with the extension and both registered on both.
func setupEmptyPair(t testing.TB) (a, b *harness.Node) {
	t.Helper()
	opts := harness.DefaultOptions()
	opts.Settings = fastSupervisor
	nodes := harness.StartN(t, 2, opts)
	a, b = nodes[0], nodes[1]
	for _, n := range nodes {
		failOnTickErrors(t, n)
		n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
		n.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, $2)", libpqConninfo(a), n == a)
		n.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, $2)", libpqConninfo(b), n == b)
	}
	return a, b
}

func (p *pair) state(t testing.TB) string {
	t.Helper()
	return harness.QueryOne[string](t, p.b, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'")
}

func (p *pair) waitState(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	p.b.WaitFor(t, timeout, "node_b "+want, func() bool {
		st := p.state(t)
		if st == "failed" && want != "failed" {
			t.Fatalf("init failed: %s", harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'"))
		}
		return st == want
	})
}

func (p *pair) startInit(t testing.TB, options string) int64 {
	t.Helper()
	return dbaQuery[int64](t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', $1)", options)
}

// waitEqual polls the row-hash comparator until both nodes hold the same rows.
func (p *pair) waitEqual(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rep, err := harness.Compare(context.Background(), p.a.Pool(t, ""), p.b.Pool(t, ""), harness.CompareOptions{})
		if err != nil {
			t.Fatalf("compare: %v", err)
		}
		if rep.Equal() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes still differ after %s:\n%s", timeout, rep)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// addSlowTable creates a table on both nodes whose copy into the target takes about
// rows x delay: an ENABLE ALWAYS trigger (it fires in the table-sync worker too) sleeps per row.
func (p *pair) addSlowTable(t testing.TB, rows int, delay time.Duration) {
	t.Helper()
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "CREATE TABLE slow (id bigint PRIMARY KEY, payload text NOT NULL)")
	}
	p.a.Exec(t, "", "INSERT INTO slow SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, $1) g", rows)
	p.a.Exec(t, "", "ANALYZE slow")
	p.b.Exec(t, "", fmt.Sprintf(`CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(%f); RETURN NEW; END $$`, delay.Seconds()))
	p.b.Exec(t, "", "CREATE TRIGGER slow_down BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION slow_down()")
	p.b.Exec(t, "", "ALTER TABLE slow ENABLE ALWAYS TRIGGER slow_down")
}

func (p *pair) removeSlowDown(t testing.TB) {
	t.Helper()
	p.b.Exec(t, "", "DROP TRIGGER slow_down ON slow")
}

// assertNoInitLeftovers checks cancel's promise: nothing of the init remains on either node.
func (p *pair) assertNoInitLeftovers(t testing.TB) {
	t.Helper()
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_subscription"); n != 0 {
		t.Errorf("%d subscription(s) left on the target", n)
	}
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_replication_slots"); n != 0 {
		t.Errorf("%d replication slot(s) left on the source: %s", n,
			harness.QueryOne[string](t, p.a, "", "SELECT string_agg(slot_name, ', ') FROM pg_replication_slots"))
	}
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_publication"); n != 0 {
		t.Errorf("%d publication(s) left on the source", n)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_progress"); n != 0 {
		t.Errorf("init progress not cleared")
	}
	rows := harness.QueryOne[int64](t, p.b, "", `SELECT coalesce(sum((xpath('/row/c/text()',
		query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0)
		FROM pg_tables WHERE schemaname = 'public'`)
	if rows != 0 {
		t.Errorf("the target still holds %d copied rows", rows)
	}
}

// eventCount is how many times n recorded event in steep_repl.events.
func eventCount(t testing.TB, n *harness.Node, event string) int64 {
	t.Helper()
	return harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.events WHERE event = $1", event)
}
