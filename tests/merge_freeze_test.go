package tests

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// freezeDetail is the detail of the last init.merge_freeze event on n.
type freezeDetail struct {
	FreezeMS      float64           `json:"freeze_ms"`
	KeysChanged   int               `json:"keys_changed"`
	RowsRechecked int               `json:"rows_rechecked"`
	TablesWhole   map[string]string `json:"tables_whole"`
	DrainMS       int64             `json:"drain_ms"`
	ToLocal       int64             `json:"to_local"`
	ToPeer        int64             `json:"to_peer"`
	DeletedLocal  int64             `json:"deleted_local"`
	DeletedPeer   int64             `json:"deleted_peer"`
}

func lastFreeze(t *testing.T, n *harness.Node) freezeDetail {
	t.Helper()
	raw := harness.QueryOne[string](t, n, "", "SELECT detail::text FROM steep_repl.events WHERE event = 'init.merge_freeze' ORDER BY id DESC LIMIT 1")
	var d freezeDetail
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("init.merge_freeze detail %s: %v", raw, err)
	}
	return d
}

// gatedMerge creates on both nodes big (rows rows, identical but for its last 10, node_b's
// differ), ev (a composite key of text and timestamptz, 100 identical rows) and aaa_gate, holds
// the write freeze's lock on aaa_gate (the trick of merge_delete_test.go: pass 1 has committed
// on both nodes once the freeze's EXCLUSIVE lock waits on it), starts the merge, and returns
// once the freeze waits; release lets the freeze go.
func gatedMerge(t *testing.T, rows int) (p *pair, release func()) {
	t.Helper()
	p = mergePair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", `CREATE TABLE aaa_gate (id int PRIMARY KEY); INSERT INTO aaa_gate VALUES (1);
			CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL);
			CREATE TABLE ev (k text, at timestamptz, v int NOT NULL, PRIMARY KEY (k, at));
			INSERT INTO ev SELECT 'k ' || g, timestamptz '2026-01-01 00:00:00.123456+00' + g * interval '1 hour', g FROM generate_series(1, 100) g;
			GRANT SELECT ON aaa_gate, big, ev TO dba`)
		n.Exec(t, "", "INSERT INTO big SELECT g, 'same ' || g FROM generate_series(1, $1::int - 10) g", rows)
	}
	p.a.Exec(t, "", "INSERT INTO big SELECT g, 'a ' || g FROM generate_series($1::int - 9, $1::int) g", rows)
	p.b.Exec(t, "", "INSERT INTO big SELECT g, 'b ' || g FROM generate_series($1::int - 9, $1::int) g", rows)
	ctx := context.Background()
	gate, err := p.b.Pool(t, "").Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gate.Rollback(context.Background()) })
	if _, err := gate.Exec(ctx, "LOCK TABLE aaa_gate IN ROW SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source", "freeze_timeout": 120}')`)
	p.b.WaitFor(t, 3*time.Minute, "the freeze's lock waiting on aaa_gate", func() bool {
		if st := mergeNodeState(t, p.b, "node_b"); st == "failed" {
			t.Fatalf("the merge failed: %s", harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'"))
		}
		return harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'aaa_gate'::regclass
			AND mode = 'ExclusiveLock'`) == 1
	})
	// Pass 1 committed: node_a's version of big's last 10 rows is on node_b.
	if got := harness.QueryOne[string](t, p.b, "", "SELECT v FROM big WHERE id = $1", rows); got != "a "+strconv.Itoa(rows) {
		t.Fatalf("big %d on node_b before the freeze: %q, want pass 1's copy", rows, got)
	}
	return p, func() {
		if err := gate.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// unfrozen is the sidecar's log line of the freeze's release (its steps' times).
func unfrozen(p *pair) string {
	for _, l := range strings.Split(p.car.out.String(), "\n") {
		if strings.Contains(l, "init.merge_unfrozen") {
			return l
		}
	}
	return "(no init.merge_unfrozen logged)"
}

// rowsOf is "id v" of big's rows with the given ids on n, in id order.
func rowsOf(t *testing.T, n *harness.Node, q string, args ...any) []string {
	t.Helper()
	rows, err := n.Pool(t, "").Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The write freeze re-checks the keys users changed since the first plan, not whole tables
// (#13): while the freeze waits (pass 1 committed on both nodes), users on both nodes update,
// insert, delete and re-key rows of a 200 000-row table and update or delete rows of a table
// keyed by text and timestamptz. After the merge both nodes are equal by row hash, every write
// is on both as written and every delete on neither, and the freeze re-read exactly the keys
// touched (167), nothing whole.
func TestMergeFreezeRechecksOnlyTheKeysChangedSinceTheFirstPlan(t *testing.T) {
	t.Parallel()
	const rows = 200000
	p, release := gatedMerge(t, rows)
	// node_a: 50 updates, 20 inserts, 10 deletes, one key changed (two keys), 3 ev updates = 85 keys.
	p.a.Exec(t, "", `UPDATE big SET v = 'a upd ' || id WHERE id BETWEEN 1 AND 50;
		INSERT INTO big SELECT g, 'a new ' || g FROM generate_series(300001, 300020) g;
		DELETE FROM big WHERE id BETWEEN 100 AND 109;
		UPDATE big SET id = 500001, v = 'a moved' WHERE id = 5000;
		UPDATE ev SET v = -v WHERE k IN ('k 1', 'k 2', 'k 3')`)
	// node_b: 50 updates, 20 inserts, 10 deletes, 2 ev deletes = 82 keys.
	p.b.Exec(t, "", `UPDATE big SET v = 'b upd ' || id WHERE id BETWEEN 1001 AND 1050;
		INSERT INTO big SELECT g, 'b new ' || g FROM generate_series(400001, 400020) g;
		DELETE FROM big WHERE id BETWEEN 2000 AND 2009;
		DELETE FROM ev WHERE k IN ('k 10', 'k 11')`)
	release()
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	p.waitEqual(t, time.Minute)

	want := rowsOf(t, p.a, `SELECT format('%s %s', id, v) FROM (
		SELECT g AS id, 'a upd ' || g AS v FROM generate_series(1, 50) g UNION ALL
		SELECT g, 'a new ' || g FROM generate_series(300001, 300020) g UNION ALL
		SELECT 500001, 'a moved' UNION ALL
		SELECT g, 'b upd ' || g FROM generate_series(1001, 1050) g UNION ALL
		SELECT g, 'b new ' || g FROM generate_series(400001, 400020) g) x ORDER BY id`)
	for _, n := range []*harness.Node{p.a, p.b} {
		got := rowsOf(t, n, `SELECT format('%s %s', id, v) FROM big
			WHERE id BETWEEN 1 AND 50 OR id BETWEEN 1001 AND 1050 OR id > 300000 ORDER BY id`)
		wantLines(t, n.Name+": the rows written while the freeze waited", got, want)
		if gone := rowsOf(t, n, `SELECT id::text FROM big WHERE id BETWEEN 100 AND 109 OR id BETWEEN 2000 AND 2009 OR id = 5000
			UNION ALL SELECT k FROM ev WHERE k IN ('k 10', 'k 11') ORDER BY 1`); len(gone) != 0 {
			t.Errorf("%s: deleted rows came back: %v", n.Name, gone)
		}
		if got := rowsOf(t, n, "SELECT format('%s %s', k, v) FROM ev WHERE k IN ('k 1', 'k 2', 'k 3') ORDER BY k"); len(got) != 3 ||
			got[0] != "k 1 -1" || got[1] != "k 2 -2" || got[2] != "k 3 -3" {
			t.Errorf("%s: ev's updated rows: %v", n.Name, got)
		}
	}
	d := lastFreeze(t, p.b)
	t.Logf("freeze of a %d-row table: freeze_ms %.1f, drain_ms %d, keys_changed %d, rows_rechecked %d; %s",
		rows, d.FreezeMS, d.DrainMS, d.KeysChanged, d.RowsRechecked, unfrozen(p))
	if d.KeysChanged != 167 || d.RowsRechecked != 167 || len(d.TablesWhole) != 0 {
		t.Errorf("the freeze re-checked keys_changed %d, rows_rechecked %d, tables whole %v; want 167, 167, none", d.KeysChanged, d.RowsRechecked, d.TablesWhole)
	}
	// What it moved: node_a's writes to node_b and node_b's to node_a, the deletes on the other.
	if d.ToLocal != 74 || d.ToPeer != 70 || d.DeletedLocal != 11 || d.DeletedPeer != 12 {
		t.Errorf("the freeze moved to_local %d, to_peer %d, deleted_local %d, deleted_peer %d; want 74, 70, 11, 12",
			d.ToLocal, d.ToPeer, d.DeletedLocal, d.DeletedPeer)
	}
	if ca, cb := conflicts(t, p.a), conflicts(t, p.b); ca != 0 || cb != 0 {
		t.Fatalf("conflicts counted: node_a %d, node_b %d", ca, cb)
	}
}

// A TRUNCATE while the freeze waits cannot be told by key: that table is re-planned whole (its
// rows on the other node are deleted there as deleted during the merge), the others still by
// key; both nodes end equal.
func TestMergeFreezeReplansATruncatedTableWhole(t *testing.T) {
	t.Parallel()
	p, release := gatedMerge(t, 20000)
	p.a.Exec(t, "", "TRUNCATE ev")
	p.b.Exec(t, "", "UPDATE big SET v = 'b upd ' || id WHERE id BETWEEN 1 AND 5")
	release()
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	p.waitEqual(t, time.Minute)
	for _, n := range []*harness.Node{p.a, p.b} {
		if got := rowsOf(t, n, "SELECT k FROM ev"); len(got) != 0 {
			t.Errorf("%s: %d rows of the truncated ev came back", n.Name, len(got))
		}
		if got := rowsOf(t, n, "SELECT v FROM big WHERE id BETWEEN 1 AND 5 ORDER BY id"); len(got) != 5 || got[0] != "b upd 1" || got[4] != "b upd 5" {
			t.Errorf("%s: big's updated rows: %v", n.Name, got)
		}
	}
	d := lastFreeze(t, p.b)
	t.Logf("freeze of a 20000-row table and a truncated one: freeze_ms %.1f; %s", d.FreezeMS, unfrozen(p))
	if d.TablesWhole["public.ev"] != "truncated" || len(d.TablesWhole) != 1 || d.RowsRechecked != 5 || d.DeletedLocal != 100 {
		t.Errorf("the freeze: tables whole %v, rows_rechecked %d, deleted_local %d; want ev truncated, 5 keys of big, 100 deleted on node_b",
			d.TablesWhole, d.RowsRechecked, d.DeletedLocal)
	}
}

// A table altered on one node while the freeze waits writes no change the capture sees: the
// re-check still compares every table's definition and fails the merge naming it (pass 1's rows
// stay merged on both nodes), with no link left.
func TestMergeFreezeRefusesATableAlteredOnOneNodeSinceTheFirstPlan(t *testing.T) {
	t.Parallel()
	p, release := gatedMerge(t, 1000)
	p.a.Exec(t, "", "ALTER TABLE ev ADD COLUMN extra int")
	release()
	waitMergeState(t, p.b, "node_b", "failed", 3*time.Minute)
	reason := harness.QueryOne[string](t, p.b, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "tables differ") || !strings.Contains(reason, "public.ev") {
		t.Fatalf("failure reason does not name the altered table: %s", reason)
	}
	for _, n := range []*harness.Node{p.a, p.b} {
		p.b.WaitFor(t, 30*time.Second, "no subscription or slot on "+n.Name, func() bool {
			return harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM pg_subscription") == 0 &&
				harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM pg_replication_slots") == 0
		})
	}
}
