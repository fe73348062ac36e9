package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// mergePlan is steep_repl.merge_plan('node_a', opts) on n as the dba operator, in one session
// with the given settings: a line per row, "order table key category resolution tie".
func mergePlan(t *testing.T, n *harness.Node, opts string, settings ...string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbaURL(t, n))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range settings {
		if _, err := conn.Exec(ctx, "SET "+s); err != nil {
			t.Fatalf("SET %s: %v", s, err)
		}
	}
	rows, err := conn.Query(ctx, `SELECT format('%s %s %s %s %s %s', apply_order, table_name, key, category, resolution, tie::text)
		FROM steep_repl.merge_plan('node_a', $1) ORDER BY apply_order, key`, opts)
	if err != nil {
		t.Fatalf("merge_plan(%s): %v", opts, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("merge_plan(%s): %v", opts, err)
	}
	return out
}

// tableHashes is, per table, a hash of every row's row_hash: equal before and after means no
// row changed.
func tableHashes(t *testing.T, n *harness.Node, tables ...string) string {
	t.Helper()
	var b strings.Builder
	for _, tb := range tables {
		fmt.Fprintf(&b, "%s=%s ", tb, harness.QueryOne[string](t, n, "", fmt.Sprintf(
			"SELECT coalesce(md5(string_agg(steep_repl.row_hash(x)::text, ',' ORDER BY steep_repl.row_hash(x))), 'empty') FROM %s x", tb)))
	}
	return b.String()
}

func wantLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// One call resolves every category by each table's strategy: rows one node lacks go to it
// whatever the strategy; conflicts go to this node under prefer-source, to the peer under
// prefer-target, nowhere under manual (the default) — with composite keys, NULLs outside the
// key, an empty table and a table one node has no rows in. The plan changes no row, a second
// call gives the same plan, and so do sessions with other TimeZone, DateStyle,
// extra_float_digits and bytea_output.
func TestMergePlanResolvesEachCategoryByTheTableStrategy(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE acct (id int PRIMARY KEY, owner text, note text);
			CREATE TABLE line (region text, n int, qty numeric, at timestamptz, PRIMARY KEY (region, n));
			CREATE TABLE memo (id int PRIMARY KEY, f float8, b bytea);
			CREATE TABLE nothing (id int PRIMARY KEY);
			CREATE TABLE only_a (id int PRIMARY KEY, v text);
			GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba`)
		n.Exec(t, "", `INSERT INTO acct SELECT g, 'owner ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' END FROM generate_series(1, 50) g;
			INSERT INTO line SELECT r, g, g * 1.5, '2026-01-01 00:00+00'::timestamptz + g * interval '1 hour'
			  FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 20) g;
			INSERT INTO memo SELECT g, g / 3.0, decode(md5(g::text), 'hex') FROM generate_series(1, 20) g`)
	}
	a.Exec(t, "", `INSERT INTO acct VALUES (101, 'a only', NULL);
		UPDATE acct SET note = 'from a' WHERE id = 1;
		INSERT INTO line VALUES ('apac', 1, 1, NULL);
		UPDATE line SET qty = NULL WHERE region = 'eu' AND n = 2;
		UPDATE memo SET f = 0.1 WHERE id = 5;
		INSERT INTO only_a SELECT g, 'x' FROM generate_series(1, 3) g`)
	b.Exec(t, "", `INSERT INTO acct VALUES (201, 'b only', NULL);
		UPDATE acct SET note = NULL WHERE id = 2;
		INSERT INTO line VALUES ('us', 99, 1, now());
		UPDATE memo SET b = NULL WHERE id = 6`)

	const opts = `{"table_strategies": {"acct": "prefer-source", "public.line": "prefer-target"}}`
	want := []string{
		`1 acct {"id": 1} conflicting to_local false`,
		`1 acct {"id": 2} conflicting to_local false`,
		`1 acct {"id": 101} peer_only to_local false`,
		`1 acct {"id": 201} local_only to_peer false`,
		`2 line {"n": 1, "region": "apac"} peer_only to_local false`,
		`2 line {"n": 2, "region": "eu"} conflicting to_peer false`,
		`2 line {"n": 99, "region": "us"} local_only to_peer false`,
		`3 memo {"id": 5} conflicting manual false`,
		`3 memo {"id": 6} conflicting manual false`,
		`5 only_a {"id": 1} peer_only to_local false`,
		`5 only_a {"id": 2} peer_only to_local false`,
		`5 only_a {"id": 3} peer_only to_local false`,
	}
	tables := []string{"acct", "line", "memo", "nothing", "only_a"}
	beforeA, beforeB := tableHashes(t, a, tables...), tableHashes(t, b, tables...)
	wantLines(t, "merge_plan with prefer-source, prefer-target and manual tables", mergePlan(t, b, opts), want)
	wantLines(t, "a second identical merge_plan", mergePlan(t, b, opts), want)
	wantLines(t, "merge_plan under other session settings", mergePlan(t, b, opts,
		"TimeZone = 'Pacific/Chatham'", "DateStyle = 'SQL, DMY'", "extra_float_digits = -10", "bytea_output = 'escape'"), want)
	if afterA, afterB := tableHashes(t, a, tables...), tableHashes(t, b, tables...); afterA != beforeA || afterB != beforeB {
		t.Errorf("merge_plan changed rows:\n node_a %s -> %s\n node_b %s -> %s", beforeA, afterA, beforeB, afterB)
	}

	// One strategy for every table; the scope narrowed with "tables".
	got := mergePlan(t, b, `{"strategy": "prefer-target", "tables": ["acct", "memo"]}`)
	wantLines(t, "merge_plan prefer-target of acct and memo", got, []string{
		`1 acct {"id": 1} conflicting to_peer false`,
		`1 acct {"id": 2} conflicting to_peer false`,
		`1 acct {"id": 101} peer_only to_local false`,
		`1 acct {"id": 201} local_only to_peer false`,
		`2 memo {"id": 5} conflicting to_peer false`,
		`2 memo {"id": 6} conflicting to_peer false`,
	})
	if n := dbaQuery[int64](t, b, "SELECT count(*) FROM steep_repl.merges"); n != 0 {
		t.Errorf("%d merges recorded by dry runs of merge_plan, want none", n)
	}
}

// last-modified: the later commit of a conflicting row wins in both directions; rows whose
// commit time is unknown (written while track_commit_timestamp was off) are ties, resolved to
// the source. Before it is on, the pre-flight names each node where it is off.
func TestMergePlanLastModifiedLetsTheLaterCommitWinAndTiesGoToTheSource(t *testing.T) {
	t.Parallel()
	opts := harness.DefaultOptions()
	opts.Settings = map[string]string{"steep_repl.naptime": "200ms", "track_commit_timestamp": "off"}
	nodes := harness.StartN(t, 2, opts)
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
		n.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, $2)", libpqConninfo(a), n == a)
		n.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, $2)", libpqConninfo(b), n == b)
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE lm (id int PRIMARY KEY, v text); GRANT SELECT ON lm TO dba;
			INSERT INTO lm SELECT g, 'same' FROM generate_series(1, 5) g`)
	}
	// Row 3 differs with no commit time on either node, row 4 on node_b only (see below).
	a.Exec(t, "", "UPDATE lm SET v = 'a, untimed' WHERE id IN (3, 4)")
	b.Exec(t, "", "UPDATE lm SET v = 'b, untimed' WHERE id IN (3, 4)")

	state, pgErr := dbaState(t, b, `SELECT * FROM steep_repl.merge_plan('node_a', '{"strategy": "last-modified"}')`)
	if state != "55000" || !strings.Contains(pgErr.Message, "this node (node_b) and node node_a") || !strings.Contains(pgErr.Hint, "track_commit_timestamp = on") {
		t.Fatalf("last-modified with track_commit_timestamp off on both: %s %v, want 55000 naming both nodes", state, pgErr)
	}
	for _, n := range nodes {
		n.Exec(t, "", "ALTER SYSTEM SET track_commit_timestamp = on")
		n.Stop(t)
		n.Restart(t)
	}
	// Row 1: node_a's change, then a later one on node_b: this node's wins (to_peer). Row 2: the
	// other way round (to_local). Row 4: timed on node_a now, still untimed on node_b: a tie.
	a.Exec(t, "", "UPDATE lm SET v = 'a, first' WHERE id = 1")
	b.Exec(t, "", "UPDATE lm SET v = 'b, later' WHERE id = 1")
	b.Exec(t, "", "UPDATE lm SET v = 'b, first' WHERE id = 2")
	a.Exec(t, "", "UPDATE lm SET v = 'a, later' WHERE id = 2")
	a.Exec(t, "", "UPDATE lm SET v = 'a, timed' WHERE id = 4")
	b.Exec(t, "", "INSERT INTO lm VALUES (6, 'b only')")

	wantLines(t, "merge_plan last-modified", mergePlan(t, b, `{"strategy": "last-modified"}`), []string{
		`1 lm {"id": 1} conflicting to_peer false`,
		`1 lm {"id": 2} conflicting to_local false`,
		`1 lm {"id": 3} conflicting to_local true`,
		`1 lm {"id": 4} conflicting to_local true`,
		`1 lm {"id": 6} local_only to_peer false`,
	})
	// The commit times are those of each node's last change of the row.
	got := dbaQuery[string](t, b, `SELECT string_agg(format('%s:%s:%s', key->>'id', (local_committed_at IS NOT NULL)::text, (peer_committed_at IS NOT NULL)::text)
		|| CASE WHEN local_committed_at > peer_committed_at THEN ':local-later' WHEN local_committed_at < peer_committed_at THEN ':peer-later' ELSE '' END,
		' ' ORDER BY key->>'id') FROM steep_repl.merge_plan('node_a', '{"strategy": "last-modified"}')`)
	if got != "1:true:true:local-later 2:true:true:peer-later 3:false:false 4:false:true 6:false:false" {
		t.Errorf("commit timestamps of the plan (id:local known:peer known): %s", got)
	}
}

// apply_order puts parents before children over three levels whatever their names (a table
// referencing itself is fine); foreign keys that form a cycle are refused naming the tables of
// the cycle only, and leaving one out with "tables" plans the rest.
func TestMergePlanOrdersParentsFirstAndRefusesACycle(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE c_parent (id int PRIMARY KEY, up int REFERENCES c_parent);
			CREATE TABLE b_child (id int PRIMARY KEY, p int REFERENCES c_parent);
			CREATE TABLE a_grandchild (id int PRIMARY KEY, c int REFERENCES b_child);
			CREATE TABLE x_ring (id int PRIMARY KEY, y int);
			CREATE TABLE y_ring (id int PRIMARY KEY, x int REFERENCES x_ring DEFERRABLE);
			ALTER TABLE x_ring ADD FOREIGN KEY (y) REFERENCES y_ring DEFERRABLE;
			CREATE TABLE z_leaf (id int PRIMARY KEY, x int REFERENCES x_ring);
			GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba`)
	}
	a.Exec(t, "", `INSERT INTO c_parent VALUES (1, NULL), (2, 1); INSERT INTO b_child VALUES (1, 2); INSERT INTO a_grandchild VALUES (1, 1)`)
	state, pgErr := dbaState(t, b, `SELECT * FROM steep_repl.merge_plan('node_a')`)
	if state != "55000" || !strings.Contains(pgErr.Message, "cycle") || !strings.Contains(pgErr.Message, "public.x_ring, public.y_ring") ||
		strings.Contains(pgErr.Message, "z_leaf") || !strings.Contains(pgErr.Hint, `"tables"`) {
		t.Fatalf("merge_plan over a foreign-key cycle: %s %v, want 55000 naming x_ring and y_ring only", state, pgErr)
	}
	wantLines(t, "merge_plan without the cycle", mergePlan(t, b, `{"tables": ["a_grandchild", "b_child", "c_parent", "x_ring", "z_leaf"]}`), []string{
		`1 c_parent {"id": 1} peer_only to_local false`,
		`1 c_parent {"id": 2} peer_only to_local false`,
		`3 b_child {"id": 1} peer_only to_local false`,
		`5 a_grandchild {"id": 1} peer_only to_local false`,
	})
	// x_ring (2) and z_leaf (4) have nothing to move; their places are still in the order.
	order := dbaQuery[string](t, b, `SELECT string_agg(apply_order::text, ',') FROM (SELECT DISTINCT apply_order FROM
		steep_repl.merge_plan('node_a', '{"tables": ["a_grandchild", "b_child", "c_parent", "x_ring", "z_leaf"]}') ORDER BY 1) o`)
	if order != "1,3,5" {
		t.Errorf("apply_order of the tables with rows to move: %s, want 1,3,5 (c_parent and x_ring level 0, b_child and z_leaf 1, a_grandchild 2)", order)
	}
}

// The pre-flight refuses, with its SQLSTATE and a message naming what to fix, a table without a
// primary key on either node, tables whose definitions differ, a write transaction older than
// long_transaction on either node, and bad options; nothing is written on either node.
func TestMergePlanPreflightNamesWhatToFixAndWritesNothing(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE keyed (id int PRIMARY KEY, v text); CREATE TABLE bag (v text);
			INSERT INTO keyed SELECT g, 'v' FROM generate_series(1, 10) g`)
		// A deferred trigger cannot be queued by the merge's writes (a security-restricted
		// operation), and ENABLE ALWAYS makes it fire despite session_replication_role = replica.
		n.Exec(t, "", `CREATE TABLE trig (id int PRIMARY KEY, v text);
			CREATE FUNCTION trig_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
			CREATE CONSTRAINT TRIGGER trig_check AFTER INSERT OR UPDATE ON trig DEFERRABLE INITIALLY DEFERRED
			  FOR EACH ROW EXECUTE FUNCTION trig_noop();
			ALTER TABLE trig ENABLE ALWAYS TRIGGER trig_check`)
	}
	a.Exec(t, "", "CREATE TABLE half (id int, v text); CREATE TABLE wide (id int PRIMARY KEY, v text, extra int)")
	b.Exec(t, "", "CREATE TABLE half (id int PRIMARY KEY, v text); CREATE TABLE wide (id int PRIMARY KEY, v text); CREATE TABLE only_here (id int PRIMARY KEY)")
	for _, n := range []*harness.Node{a, b} {
		n.Exec(t, "", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba")
	}
	tables := []string{"keyed", "bag", "half", "wide"}
	beforeA, beforeB := tableHashes(t, a, tables...), tableHashes(t, b, tables...)

	cases := []struct{ name, opts, state, says string }{
		{"no primary key", `{"tables": ["keyed", "bag", "half"]}`, "55000", "public.bag (here), public.bag (on node node_a), public.half (on node node_a)"},
		{"definitions differ", `{"tables": ["keyed", "wide", "only_here"]}`, "55000", "public.only_here (not on node node_a), public.wide (definitions differ)"},
		{"schema_diff hint", `{"tables": ["wide"]}`, "55000", "steep_repl.schema_diff('node_a')"},
		{"deferrable trigger enabled always", `{"tables": ["keyed", "trig"]}`, "55000",
			"public.trig trigger trig_check (here), public.trig trigger trig_check (on node node_a)"},
		{"unknown option", `{"stratgy": "manual"}`, "22023", "stratgy"},
		{"bad strategy", `{"strategy": "newest"}`, "22023", "prefer-source"},
		{"bad table strategy", `{"table_strategies": {"keyed": 3}}`, "22023", "the strategy of keyed"},
		{"table strategy out of scope", `{"tables": ["keyed"], "table_strategies": {"wide": "manual", "nope": "manual"}}`, "22023", "nope, wide"},
		{"freeze_timeout out of range", `{"freeze_timeout": 0}`, "22023", "freeze_timeout"},
		{"batch_rows out of range", `{"batch_rows": 2000000}`, "22023", "batch_rows"},
		{"long_transaction not a number", `{"long_transaction": "long"}`, "22023", "long_transaction"},
		{"statement_timeout fractional", `{"statement_timeout": 1.5}`, "22023", "statement_timeout"},
		{"dry_run not a boolean", `{"dry_run": "yes"}`, "22023", "dry_run"},
		{"tables not an array", `{"tables": "keyed"}`, "22023", "tables"},
		{"unknown table", `{"tables": ["keyed", "nope.nothing"]}`, "42P01", "nope.nothing"},
	}
	for _, c := range cases {
		state, pgErr := dbaState(t, b, "SELECT * FROM steep_repl.merge_plan('node_a', $1)", c.opts)
		if state != c.state || !strings.Contains(pgErr.Message+" "+pgErr.Hint, c.says) {
			t.Errorf("%s: %s %v, want %s naming %q", c.name, state, pgErr, c.state, c.says)
		}
	}
	if state, _ := dbaState(t, b, "SELECT * FROM steep_repl.merge_plan('node_b', '{\"tables\": [\"keyed\"]}')"); state != "22023" {
		t.Errorf("merge_plan with this node as its peer: %s, want 22023", state)
	}

	// A write transaction open on each node past long_transaction (1 s).
	ctx := context.Background()
	holds := map[*harness.Node]int32{}
	for _, n := range []*harness.Node{a, b} {
		tx, err := n.Pool(t, "").Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var pid int32
		if err := tx.QueryRow(ctx, "UPDATE keyed SET v = 'held' WHERE id = 1 RETURNING pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		holds[n] = pid
		n.WaitFor(t, 10*time.Second, "the write transaction older than 1 s", func() bool {
			return harness.QueryOne[bool](t, n, "", "SELECT xact_start < clock_timestamp() - interval '1.2 s' FROM pg_stat_activity WHERE pid = $1", pid)
		})
	}
	state, pgErr := dbaState(t, b, `SELECT * FROM steep_repl.merge_plan('node_a', '{"tables": ["keyed"], "long_transaction": 1}')`)
	here := fmt.Sprintf("here: pid %d holds RowExclusiveLock on public.keyed in a transaction open for", holds[b])
	peer := fmt.Sprintf("on node node_a: pid %d holds RowExclusiveLock on public.keyed", holds[a])
	if state != "55000" || !strings.Contains(pgErr.Message, here) || !strings.Contains(pgErr.Message, peer) ||
		!strings.Contains(pgErr.Hint, "pg_terminate_backend") {
		t.Errorf("long write transactions on both nodes: %s %v, want 55000 naming both pids", state, pgErr)
	}
	if got := mergePlan(t, b, `{"tables": ["keyed"]}`); len(got) != 0 {
		t.Errorf("merge_plan with the default long_transaction (60 s): %v, want no row (the writes are not committed)", got)
	}

	if afterA, afterB := tableHashes(t, a, tables...), tableHashes(t, b, tables...); afterA != beforeA || afterB != beforeB {
		t.Errorf("refused merge plans changed rows:\n node_a %s -> %s\n node_b %s -> %s", beforeA, afterA, beforeB, afterB)
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM steep_repl.merges"); n != 0 {
		t.Errorf("%d merges recorded after refused plans, want none", n)
	}
}
