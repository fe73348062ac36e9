package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/tests/harness"
)

// verifyRows is steep_repl.verify('node_a') on the target as the dba operator, each difference as
// "schema.table key kind", sorted.
func verifyRows(t *testing.T, n *harness.Node, args string) []string {
	t.Helper()
	rows, err := dbaPool(t, n).Query(context.Background(),
		"SELECT schema_name || '.' || table_name || ' ' || key::text || ' ' || kind FROM steep_repl.verify("+args+")")
	if err != nil {
		t.Fatalf("verify(%s): %v", args, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("verify(%s): %v", args, err)
	}
	sort.Strings(out)
	return out
}

// synchronizedPair is a Chinook pair initialized to SYNCHRONIZED, with SELECT on its tables for dba.
func synchronizedPair(t *testing.T) *pair {
	t.Helper()
	p := setupPair(t)
	ensureDBA(t, p.b)
	p.b.Exec(t, "", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba")
	p.startInit(t, `{}`)
	p.waitState(t, "synchronized", 90*time.Second)
	return p
}

// A replicating target equal to its source verifies with no row. Each kind of planted
// difference (a row changed, deleted or added on the target; in a composite-key table too) is
// found exactly, with its key, and recorded in events; undoing them verifies clean again.
func TestVerifyFindsEachPlantedDifferenceExactlyAndNoneWhenEqual(t *testing.T) {
	t.Parallel()
	p := synchronizedPair(t)
	if got := verifyRows(t, p.b, "'node_a'"); len(got) != 0 {
		t.Fatalf("verify of an equal target: %v, want no row", got)
	}

	// Writes on the target only: replication does not undo them.
	p.b.Exec(t, "", `UPDATE artist SET name = name || ' (bootleg)' WHERE artist_id = 3;
		DELETE FROM invoice_line WHERE invoice_line_id = 7;
		INSERT INTO genre (genre_id, name) OVERRIDING SYSTEM VALUE VALUES (9001, 'Only here');
		DELETE FROM playlist_track WHERE playlist_id = 1 AND track_id = (SELECT min(track_id) FROM playlist_track WHERE playlist_id = 1)`)
	track := harness.QueryOne[int64](t, p.a, "", "SELECT min(track_id) FROM playlist_track WHERE playlist_id = 1")
	want := []string{
		`public.artist {"artist_id": 3} differs`,
		`public.genre {"genre_id": 9001} extra`,
		`public.invoice_line {"invoice_line_id": 7} missing`,
		fmt.Sprintf(`public.playlist_track {"track_id": %d, "playlist_id": 1} missing`, track),
	}
	sort.Strings(want)
	start := time.Now()
	if got := verifyRows(t, p.b, "'node_a'"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("verify found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("verify of 11 tables with 4 differences took %s", time.Since(start))
	if got := verifyRows(t, p.b, "'node_a', ARRAY['artist', 'public.genre']"); len(got) != 2 {
		t.Errorf("verify of artist and genre only: %v, want their 2 differences", got)
	}
	ev := dbaQuery[string](t, p.b, `SELECT detail->>'differences' || '/' || (detail->>'tables') || '/' || (detail->>'requested_by')
		FROM steep_repl.events WHERE event = 'verify.done' ORDER BY id DESC LIMIT 1 OFFSET 1`)
	if ev != "4/11/dba" {
		t.Errorf("verify.done event of the full run: %q, want 4 differences over 11 tables, requested by dba", ev)
	}

	// Repaired by hand from the source's values, the target verifies clean.
	p.b.Exec(t, "", `UPDATE artist SET name = replace(name, ' (bootleg)', '') WHERE artist_id = 3;
		DELETE FROM genre WHERE genre_id = 9001`)
	line := harness.QueryOne[string](t, p.a, "", "SELECT format('(%s, %s, %s, %s, %s)', invoice_line_id, invoice_id, track_id, unit_price, quantity) FROM invoice_line WHERE invoice_line_id = 7")
	p.b.Exec(t, "", "INSERT INTO invoice_line OVERRIDING SYSTEM VALUE VALUES "+line)
	p.b.Exec(t, "", "INSERT INTO playlist_track VALUES (1, $1)", track)
	if got := verifyRows(t, p.b, "'node_a'"); len(got) != 0 {
		t.Fatalf("verify after the repair: %v, want no row", got)
	}
}

// Under a write load on the source, rows the target has not applied yet are read again after
// it caught up: no false difference, while a real one planted under the same load is found.
func TestVerifyUnderAWriteLoadReportsNoFalseDifferenceAndFindsARealOne(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	for i := 1; i <= 2; i++ {
		for _, n := range []*harness.Node{p.a, p.b} {
			n.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		}
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 60000) g", i))
	}
	ensureDBA(t, p.b)
	p.b.Exec(t, "", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba")
	p.startInit(t, `{}`)
	p.waitState(t, "synchronized", 90*time.Second)

	writes, stop := steadyLoad(t, p.a, 2, 5*time.Millisecond)
	defer stop()
	for run := 1; run <= 3; run++ {
		before := writes.Load()
		if got := verifyRows(t, p.b, "'node_a', ARRAY['load_1', 'load_2']"); len(got) != 0 {
			t.Fatalf("run %d under load: verify reported %d false difference(s): %v", run, len(got), got)
		}
		if writes.Load() == before {
			t.Fatalf("run %d: no write committed on the source while verify ran", run)
		}
	}
	// A row the load never touches (its ids stop at 40000), changed on the target only.
	p.a.Exec(t, "", "INSERT INTO load_2 VALUES (900000, 'real', 0)")
	p.b.WaitFor(t, 30*time.Second, "row 900000 replicated", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM load_2 WHERE id = 900000") == 1
	})
	p.b.Exec(t, "", "UPDATE load_2 SET v = 'planted' WHERE id = 900000")
	got := verifyRows(t, p.b, "'node_a', ARRAY['load_1', 'load_2']")
	if strings.Join(got, ",") != `public.load_2 {"id": 900000} differs` {
		t.Fatalf("verify under load with one planted difference: %v, want only load_2 900000 differs", got)
	}
	t.Logf("%d write transactions on the source during the verifications", writes.Load())
}

// Bad calls get a clear error with a SQLSTATE and change nothing (no verify.done event).
func TestVerifyAndAnalyzeOverlapRefuseBadInputAndChangeNothing(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE keyed (id int PRIMARY KEY, v text); CREATE TABLE bag (v text);
			CREATE TABLE secret (id int PRIMARY KEY, v text); GRANT SELECT ON keyed, bag TO dba`)
	}
	cases := []struct {
		name, sql, state, says string
	}{
		{"unknown peer", "SELECT * FROM steep_repl.verify('node_x')", "42704", "node_x"},
		{"NULL peer", "SELECT * FROM steep_repl.verify(NULL)", "22004", "peer"},
		{"this node", "SELECT * FROM steep_repl.verify('node_b')", "22023", "this node"},
		{"unknown table", "SELECT * FROM steep_repl.verify('node_a', ARRAY['keyed', 'nope.nothing'])", "42P01", "nope.nothing"},
		{"no primary key", "SELECT * FROM steep_repl.verify('node_a', ARRAY['keyed', 'bag'])", "55000", "public.bag"},
		{"not readable", "SELECT * FROM steep_repl.verify('node_a', ARRAY['secret'])", "42501", "public.secret"},
		{"unknown option", `SELECT * FROM steep_repl.verify('node_a', NULL, '{"round": 3}')`, "22023", "round"},
		{"option out of range", `SELECT * FROM steep_repl.verify('node_a', ARRAY['keyed'], '{"rounds": 0}')`, "22023", "rounds"},
		{"overlap of no primary key", "SELECT * FROM steep_repl.analyze_overlap('node_a', ARRAY['bag'])", "55000", "public.bag"},
		{"overlap not readable", "SELECT * FROM steep_repl.analyze_overlap('node_a', ARRAY['secret'])", "42501", "public.secret"},
	}
	for _, c := range cases {
		state, pgErr := dbaState(t, b, c.sql)
		if state != c.state || !strings.Contains(pgErr.Message+" "+pgErr.Hint, c.says) {
			t.Errorf("%s: %s %v, want %s naming %q", c.name, state, pgErr, c.state, c.says)
		}
	}
	ctx := context.Background()
	tx, err := dbaPool(t, b).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT * FROM steep_repl.verify('node_a', ARRAY['keyed'])")
	if pgErr := (*pgconn.PgError)(nil); !asPgError(err, &pgErr) || pgErr.Code != "25000" {
		t.Errorf("verify in a REPEATABLE READ transaction: %v, want 25000", err)
	}
	if n := eventCount(t, b, "verify.done"); n != 0 {
		t.Errorf("%d verify.done events after refused calls, want none", n)
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM steep_repl.overlap_rows"); n != 0 {
		t.Errorf("%d overlap rows after refused calls, want none", n)
	}
}

// analyze_overlap counts, per table, the rows both nodes hold identically, the keys both hold
// with other rows, and the keys only one holds — with composite keys, NULLs outside the key, an
// empty table and a table one node has no rows in — and keeps the keys of all but the identical.
func TestAnalyzeOverlapCountsEachCategoryAndKeepsTheKeys(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE acct (id int PRIMARY KEY, owner text, note text);
			CREATE TABLE line (region text, n int, qty numeric, at timestamptz, PRIMARY KEY (region, n));
			CREATE TABLE nothing (id int PRIMARY KEY);
			CREATE TABLE only_a (id int PRIMARY KEY, v text);
			GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba`)
		// Shared rows, NULLs outside the key included.
		n.Exec(t, "", `INSERT INTO acct SELECT g, 'owner ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' END FROM generate_series(1, 100) g;
			INSERT INTO line SELECT r, g, g * 1.5, '2026-01-01 00:00+00'::timestamptz + g * interval '1 hour'
			  FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 50) g`)
	}
	// On node_a only, on node_b only, and keys held with other rows (a NULL against a value too).
	a.Exec(t, "", `INSERT INTO acct VALUES (101, 'a only', NULL), (102, 'a only', NULL);
		INSERT INTO line VALUES ('apac', 1, 1, NULL);
		INSERT INTO only_a SELECT g, 'x' FROM generate_series(1, 7) g`)
	b.Exec(t, "", `INSERT INTO acct VALUES (201, 'b only', NULL);
		UPDATE acct SET note = 'changed' WHERE id IN (1, 2);
		UPDATE acct SET note = NULL WHERE id = 4;
		UPDATE line SET qty = qty + 1 WHERE region = 'us' AND n = 7;
		-- The same instant written another way is the same value: identical.
		UPDATE line SET at = '2026-01-01 05:00:00+02' WHERE region = 'eu' AND n = 3`)
	b.Exec(t, "", "UPDATE line SET at = '2026-01-01 01:00:00+00' WHERE region = 'eu' AND n = 1") // unchanged value

	rows, err := dbaPool(t, b).Query(context.Background(), `SELECT table_name, identical, conflicting, local_only, peer_only
		FROM steep_repl.analyze_overlap('node_a') ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var name string
		var i, c, l, p int64
		if err := rows.Scan(&name, &i, &c, &l, &p); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d/%d/%d/%d", name, i, c, l, p))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"acct 97/3/1/2", "line 99/1/0/1", "nothing 0/0/0/0", "only_a 0/0/0/7"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("analyze_overlap (identical/conflicting/local_only/peer_only):\n got %v\nwant %v", got, want)
	}
	keys := dbaQuery[string](t, b, `SELECT string_agg(table_name || ' ' || key::text || ' ' || category, '; ' ORDER BY table_name, category, key::text)
		FROM steep_repl.overlap_rows WHERE peer = 'node_a' AND table_name IN ('acct', 'line')`)
	const wantKeys = `acct {"id": 1} conflicting; acct {"id": 2} conflicting; acct {"id": 4} conflicting; acct {"id": 201} local_only; ` +
		`acct {"id": 101} peer_only; acct {"id": 102} peer_only; line {"n": 7, "region": "us"} conflicting; line {"n": 1, "region": "apac"} peer_only`
	if keys != wantKeys {
		t.Errorf("overlap_rows:\n got %s\nwant %s", keys, wantKeys)
	}
	// A second analysis replaces the first's keys rather than adding to them.
	dbaExec(t, b, "SELECT * FROM steep_repl.analyze_overlap('node_a', ARRAY['acct'])")
	if n := dbaQuery[int64](t, b, "SELECT count(*) FROM steep_repl.overlap_rows WHERE table_name = 'acct'"); n != 6 {
		t.Errorf("overlap_rows of acct after a second analysis: %d, want the same 6", n)
	}
}

// steep-repl verify and analyze-overlap as a DBA runs them: a table, exit 0 when equal, the
// differing rows and exit 1 otherwise, JSON on request, and the server's refusal with its SQLSTATE.
func TestCLIVerifyAndAnalyzeOverlap(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 20) g;
			GRANT SELECT ON items TO dba`)
	}
	db := dbaURL(t, b)
	out, errOut, code := runCLI(t, "verify", "--peer", "node_a", "--db", db)
	if code != 0 || !strings.Contains(out, "every row equals node node_a's") {
		t.Fatalf("verify of equal nodes: exit %d\n%s%s", code, out, errOut)
	}
	b.Exec(t, "", "UPDATE items SET v = 'other' WHERE id = 5; DELETE FROM items WHERE id = 6")
	out, errOut, code = runCLI(t, "verify", "--peer", "node_a", "--db", db, "--tables", "items")
	if code != 1 || !strings.Contains(out, `public.items  {"id": 5}  differs`) || !strings.Contains(out, `{"id": 6}  missing`) ||
		!strings.Contains(errOut, "2 row(s) differ from node node_a") {
		t.Fatalf("verify with two differences: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, _, code = runCLI(t, "verify", "--peer", "node_a", "--db", db, "--json")
	var diffs []map[string]any
	if err := json.Unmarshal([]byte(out), &diffs); code != 1 || err != nil || len(diffs) != 2 || diffs[0]["kind"] == nil {
		t.Fatalf("verify --json: exit %d, %v\n%s", code, err, out)
	}
	out, errOut, code = runCLI(t, "analyze-overlap", "--peer", "node_a", "--db", db)
	if code != 0 || !strings.Contains(out, "public.items  18         1            0           1") {
		t.Fatalf("analyze-overlap: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "verify", "--peer", "node_x", "--db", db)
	if code != 1 || !strings.Contains(errOut, "42704") {
		t.Fatalf("verify of an unknown peer: exit %d\n%s", code, errOut)
	}
	_, errOut, code = runCLI(t, "verify", "--db", db)
	if code != 2 || !strings.Contains(errOut, "need --peer NODE") {
		t.Fatalf("verify without --peer: exit %d\n%s", code, errOut)
	}
}

// An init started with "verify": true compares every row with the source once SYNCHRONIZED, as
// the role that started it, and records the outcome as init.verified; a value that is not a
// boolean is refused before anything is created.
func TestInitWithVerifyRecordsTheVerificationAsAnEvent(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	ensureDBA(t, p.b)
	p.b.Exec(t, "", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba")
	if state, pgErr := dbaState(t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"verify": "yes"}')`); state != "22023" {
		t.Fatalf(`start_init with "verify": "yes": %s %v, want 22023`, state, pgErr)
	}
	p.startInit(t, `{"verify": true}`)
	p.waitState(t, "synchronized", 90*time.Second)
	var detail string
	p.b.WaitFor(t, 60*time.Second, "init.verified", func() bool {
		detail = harness.QueryOne[string](t, p.b, "", `SELECT coalesce((SELECT detail::text FROM steep_repl.events
			WHERE node = 'node_b' AND event = 'init.verified' ORDER BY id DESC LIMIT 1), '')`)
		return detail != ""
	})
	if !strings.Contains(detail, `"differences": 0`) || !strings.Contains(detail, `"unsettled": 0`) || !strings.Contains(detail, `"source": "node_a"`) {
		t.Errorf("init.verified detail: %s, want 0 differences against node_a", detail)
	}
	ev := dbaQuery[string](t, p.b, `SELECT (detail->>'tables') || ' ' || (detail->>'requested_by') FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'verify.done' ORDER BY id DESC LIMIT 1`)
	if ev != "11 dba" {
		t.Errorf("the init's verification: %q, want 11 tables read on behalf of dba", ev)
	}
	// The event commits before the job is finished.
	p.b.WaitFor(t, 30*time.Second, "the init.verify job succeeded", func() bool {
		return dbaQuery[string](t, p.b, "SELECT state FROM steep_repl.jobs WHERE kind = 'init.verify' AND node = 'node_b'") == "succeeded"
	})
}
