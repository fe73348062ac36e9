package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// overlapRowsNow is steep_repl.overlap_rows of node_a as node_b holds it (every column but
// analyzed_at), one line per row, sorted: what two analyses must agree on exactly.
func overlapRowsNow(t *testing.T, n *harness.Node) string {
	t.Helper()
	return dbaQuery[string](t, n, `SELECT coalesce(string_agg(format('%s.%s %s %s %s %s', schema_name, table_name, key::text, category,
		coalesce(local_hash::text, '-'), coalesce(peer_hash::text, '-')), E'\n' ORDER BY schema_name, table_name, key::text), '')
		FROM steep_repl.overlap_rows WHERE peer = 'node_a'`)
}

// overlapSQL is steep_repl.analyze_overlap's counts as the dba operator gets them, as JSON.
func overlapSQL(t *testing.T, n *harness.Node, tables string) string {
	t.Helper()
	return dbaQuery[string](t, n, `SELECT coalesce(json_agg(json_build_object('schema_name', schema_name, 'table_name', table_name,
		'identical', identical, 'conflicting', conflicting, 'local_only', local_only, 'peer_only', peer_only))::text, '[]')
		FROM steep_repl.analyze_overlap('node_a', `+tables+`)`)
}

// overlapCLI runs steep-repl analyze-overlap --json as the dba (the streaming path, the peer
// reached with the dba's own connection to it) and returns its counts re-encoded as JSON.
func overlapCLI(t *testing.T, a, b *harness.Node, extra ...string) string {
	t.Helper()
	args := append([]string{"analyze-overlap", "--peer", "node_a", "--peer-db", dbaURL(t, a), "--db", dbaURL(t, b), "--json"}, extra...)
	out, errOut, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("analyze-overlap %v: exit %d\n%s%s", extra, code, out, errOut)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("analyze-overlap --json: %v\n%s", err, out)
	}
	b2, _ := json.Marshal(v)
	return string(b2)
}

// normJSON re-encodes JSON so that two encodings of the same value compare equal.
func normJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// The streaming analysis (steep-repl analyze-overlap) gives the same counts and leaves the same
// overlap_rows as steep_repl.analyze_overlap, row for row and hash for hash: bigint, composite
// (text, int) and uuid keys, NULLs outside the key, an empty table, a table only one node has
// rows in, all in one call and one table alone; each analysis replacing the last one's rows.
func TestOverlapStreamMatchesAnalyzeOverlapExactly(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE acct (id bigint PRIMARY KEY, owner text, note text, at timestamptz);
			CREATE TABLE line (region text, n int, qty numeric, PRIMARY KEY (region, n));
			CREATE TABLE dev (id uuid PRIMARY KEY, label text);
			CREATE TABLE nothing (id int PRIMARY KEY);
			CREATE TABLE only_a (id int PRIMARY KEY, v text);
			GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba`)
		n.Exec(t, "", `INSERT INTO acct SELECT g, 'owner ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' END,
			  CASE WHEN g % 5 = 0 THEN NULL ELSE '2026-01-01 00:00+00'::timestamptz + g * interval '1 minute' END FROM generate_series(1, 20000) g;
			INSERT INTO line SELECT r, g, g * 1.5 FROM unnest(ARRAY['eu', 'us', 'a longer region name']) r, generate_series(1, 3000) g;
			INSERT INTO dev SELECT md5(g::text)::uuid, CASE WHEN g % 2 = 0 THEN 'dev ' || g END FROM generate_series(1, 5000) g`)
	}
	a.Exec(t, "", `INSERT INTO acct VALUES (100001, 'a only', NULL, NULL), (100002, 'a only', NULL, NULL);
		INSERT INTO line VALUES ('apac', 1, 1), ('apac', 2, NULL);
		INSERT INTO dev VALUES ('00000000-0000-0000-0000-00000000000a', NULL);
		INSERT INTO only_a SELECT g, 'x' FROM generate_series(1, 700) g`)
	b.Exec(t, "", `INSERT INTO acct VALUES (200001, 'b only', NULL, NULL);
		UPDATE acct SET note = 'changed' WHERE id IN (1, 2, 19999);
		UPDATE acct SET note = NULL WHERE id = 4;
		UPDATE acct SET at = NULL WHERE id = 7;
		DELETE FROM acct WHERE id BETWEEN 5000 AND 5100;
		UPDATE line SET qty = qty + 1 WHERE region = 'us' AND n IN (7, 2999);
		UPDATE line SET qty = NULL WHERE region = 'a longer region name' AND n = 3;
		DELETE FROM dev WHERE id = md5('17')::uuid;
		UPDATE dev SET label = 'relabelled' WHERE id = md5('18')::uuid;
		INSERT INTO dev VALUES ('00000000-0000-0000-0000-00000000000b', 'b')`)

	for _, tables := range []struct{ sql, cli, names string }{
		{"NULL", "", "acct,dev,line,nothing,only_a"}, {"ARRAY['line']", "line", "line"}, {"ARRAY['public.dev', 'acct']", "public.dev,acct", "dev,acct"},
	} {
		var extra []string
		if tables.cli != "" {
			extra = []string{"--tables", tables.cli}
		}
		wantCounts := normJSON(t, overlapSQL(t, b, tables.sql))
		wantRows := overlapRowsNow(t, b)
		// The streaming analysis replaces those rows; wiping them first would let a path that
		// writes nothing pass, so they stay, and a stale row the stream did not replace shows.
		b.Exec(t, "", "UPDATE steep_repl.overlap_rows SET local_hash = 0, peer_hash = 0 WHERE table_name = ANY (string_to_array($1, ','))", tables.names)
		gotCounts := overlapCLI(t, a, b, extra...)
		if gotCounts != wantCounts {
			t.Errorf("tables %s: streaming counts\n got %s\nwant %s", tables.sql, gotCounts, wantCounts)
		}
		if got := overlapRowsNow(t, b); got != wantRows {
			t.Errorf("tables %s: overlap_rows after the streaming analysis\n got:\n%s\nwant:\n%s", tables.sql, got, wantRows)
		}
	}
	// The whole-scope counts, spelled out, so that both paths agreeing on a wrong answer fails too.
	const want = `[{"conflicting":5,"identical":19894,"local_only":1,"peer_only":103,"schema_name":"public","table_name":"acct"},` +
		`{"conflicting":1,"identical":4998,"local_only":1,"peer_only":2,"schema_name":"public","table_name":"dev"},` +
		`{"conflicting":3,"identical":8997,"local_only":0,"peer_only":2,"schema_name":"public","table_name":"line"},` +
		`{"conflicting":0,"identical":0,"local_only":0,"peer_only":0,"schema_name":"public","table_name":"nothing"},` +
		`{"conflicting":0,"identical":0,"local_only":0,"peer_only":700,"schema_name":"public","table_name":"only_a"}]`
	if got := overlapCLI(t, a, b); got != want {
		t.Errorf("streaming counts of every table\n got %s\nwant %s", got, want)
	}
	if n := dbaQuery[int64](t, b, "SELECT count(*) FROM steep_repl.overlap_rows WHERE peer = 'node_a'"); n != 5+1+103+1+1+2+3+2+700 {
		t.Errorf("overlap_rows after the streaming analysis of every table: %d", n)
	}
}

// Bad input to the streaming analysis gets the server's SQLSTATE and records nothing: a table
// without a primary key (55000), an unknown table (42P01), an unknown peer (42704).
func TestOverlapStreamRefusesBadInputAndRecordsNothing(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE keyed (id int PRIMARY KEY, v text); CREATE TABLE bag (v text);
			INSERT INTO keyed SELECT g, 'v' FROM generate_series(1, 10) g; GRANT SELECT ON keyed, bag TO dba`)
	}
	a.Exec(t, "", "UPDATE keyed SET v = 'other' WHERE id = 3")
	cases := []struct {
		name, peer, tables, state, says string
	}{
		{"no primary key", "node_a", "keyed,bag", "55000", "public.bag"},
		{"unknown table", "node_a", "keyed,nope.nothing", "42P01", "nope.nothing"},
		{"unknown peer", "node_x", "keyed", "42704", "node_x"},
	}
	for _, c := range cases {
		out, errOut, code := runCLI(t, "analyze-overlap", "--peer", c.peer, "--peer-db", dbaURL(t, a), "--db", dbaURL(t, b), "--tables", c.tables)
		if code != 1 || !strings.Contains(errOut, c.state) || !strings.Contains(errOut, c.says) {
			t.Errorf("%s: exit %d, want 1 with %s naming %q\nstdout:\n%s\nstderr:\n%s", c.name, code, c.state, c.says, out, errOut)
		}
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM steep_repl.overlap_rows"); n != 0 {
		t.Errorf("%d overlap rows after refused calls, want none", n)
	}
	// The same call with good input records the one difference.
	overlapCLI(t, a, b, "--tables", "keyed")
	if got := overlapRowsNow(t, b); !strings.HasPrefix(got, `public.keyed {"id": 3} conflicting `) || strings.Contains(got, "\n") {
		t.Errorf("overlap_rows after a good call: %q, want keyed 3 conflicting only", got)
	}
}

// Without --peer-db, a superuser's analyze-overlap streams through the peer's registered
// conninfo, and a DBA's (who may not read it) runs in the server, saying so; --in-server runs in
// the server for anyone. All give the same counts and overlap_rows.
func TestOverlapCLIWithoutPeerDBUsesTheRegisteredConninfoOrTheServer(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g;
			GRANT SELECT ON items TO dba`)
	}
	b.Exec(t, "", "UPDATE items SET v = 'other' WHERE id = 5; DELETE FROM items WHERE id = 6; INSERT INTO items VALUES (900, 'b')")
	const streamed = "no --peer-db"
	var want, wantRows string
	for i, c := range []struct {
		name     string
		db       string
		extra    []string
		inServer bool
	}{
		{"superuser, registered conninfo", b.ConnString(""), nil, false},
		{"dba, in the server", dbaURL(t, b), nil, true},
		{"dba, --in-server", dbaURL(t, b), []string{"--in-server"}, false},
	} {
		b.Exec(t, "", "DELETE FROM steep_repl.overlap_rows")
		out, errOut, code := runCLI(t, append([]string{"analyze-overlap", "--peer", "node_a", "--db", c.db, "--json"}, c.extra...)...)
		if code != 0 || strings.Contains(errOut, streamed) != c.inServer {
			t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", c.name, code, out, errOut)
		}
		got, rows := normJSON(t, out), overlapRowsNow(t, b)
		if i == 0 {
			want, wantRows = got, rows
			if !strings.Contains(want, `"conflicting":1,"identical":498,"local_only":1,"peer_only":1`) {
				t.Fatalf("%s: %s", c.name, want)
			}
		} else if got != want || rows != wantRows {
			t.Errorf("%s: %s\n%s\nwant %s\n%s", c.name, got, rows, want, wantRows)
		}
	}
}
