package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// keyHashTables are tables whose keys and rows exercise every way key_hash_chunks packs a row,
// each with the SQL form of its key's send bytes (as overlap_scope describes them to the
// sidecar: fixed-length raw, others length-prefixed).
var keyHashTables = []struct{ table, key string }{
	{"plain", "int8send(r.id)"},
	{"composite", "int4send(octet_length(textsend(r.region))) || textsend(r.region) || int4send(r.n)"},
	{"dev", "uuid_send(r.id)"},
	{"amount", "int4send(octet_length(numeric_send(r.id))) || numeric_send(r.id)"},
	{"named", "int4send(octet_length(namesend(r.id))) || namesend(r.id)"},
	{"day", "date_send(r.id)"},
	{"empty", "int4send(r.id)"},
}

const keyHashSchema = `
	CREATE DOMAIN money_id AS bigint;
	CREATE TABLE plain (id money_id PRIMARY KEY, gone int, note text, at timestamptz);
	INSERT INTO plain SELECT g, g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END,
	  '2026-01-01 00:00+00'::timestamptz + g * interval '1 minute' FROM generate_series(1, 20000) g;
	-- a dropped column, a column only in the catalog (missing), TOASTed values
	ALTER TABLE plain DROP COLUMN gone;
	ALTER TABLE plain ADD COLUMN later int DEFAULT 7;
	UPDATE plain SET note = repeat(md5(id::text), 400) WHERE id % 1000 = 0;
	CREATE TABLE composite (region text, n int, qty numeric, PRIMARY KEY (region, n));
	INSERT INTO composite SELECT r, g, g * 1.5 FROM unnest(ARRAY['eu', 'us', 'a longer région name']) r, generate_series(1, 3000) g;
	CREATE TABLE dev (id uuid PRIMARY KEY, label text);
	INSERT INTO dev SELECT md5(g::text)::uuid, CASE WHEN g % 2 = 0 THEN 'dev ' || g END FROM generate_series(1, 5000) g;
	CREATE TABLE amount (id numeric PRIMARY KEY, v jsonb);
	INSERT INTO amount SELECT g / 7.0, jsonb_build_object('g', g) FROM generate_series(1, 3000) g;
	CREATE TABLE named (id name PRIMARY KEY, v int[]);
	INSERT INTO named SELECT 'n' || g, ARRAY[g, g + 1] FROM generate_series(1, 2000) g;
	CREATE TABLE day (id date PRIMARY KEY, v float8);
	INSERT INTO day SELECT '2020-01-01'::date + g, g / 3.0 FROM generate_series(1, 2000) g;
	CREATE TABLE empty (id int PRIMARY KEY)`

// key_hash_chunks gives, chunk after chunk, exactly the bytes of the SQL stream (each row's key
// send forms and its row_hash, in physical order), whatever the key's types, with dropped and
// missing columns and TOASTed values; and the same bytes under another client encoding.
func TestKeyHashChunksAreTheBytesOfTheSQLStream(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.Exec(t, "", keyHashSchema)
	ctx := context.Background()
	latin1, err := pgx.Connect(ctx, n.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	defer latin1.Close(ctx)
	if _, err := latin1.Exec(ctx, "SET client_encoding = 'LATIN1'"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range keyHashTables {
		sql := `SELECT coalesce(md5(string_agg(` + tc.key + ` || int8send(steep_repl.row_hash(r)), ''::bytea ORDER BY r.ctid)), 'none')
			FROM ` + tc.table + ` r`
		want := harness.QueryOne[string](t, n, "", sql)
		chunks := `SELECT coalesce(md5(string_agg(c, ''::bytea)), 'none') FROM (SELECT steep_repl.key_hash_chunks('` + tc.table + `') c) s`
		if got := harness.QueryOne[string](t, n, "", chunks); got != want {
			t.Errorf("%s: key_hash_chunks gives %s, the SQL stream %s", tc.table, got, want)
		}
		var latin string
		if err := latin1.QueryRow(ctx, `SELECT (`+chunks+`) || ' ' || current_setting('client_encoding')`).Scan(&latin); err != nil || latin != want+" LATIN1" {
			t.Errorf("%s under client_encoding LATIN1: %q %v, want %s and the encoding left as it was", tc.table, latin, err, want)
		}
	}
	sizes := harness.QueryOne[string](t, n, "", `SELECT format('%s %s', count(*), max(length(c)))
		FROM (SELECT steep_repl.key_hash_chunks('plain') c) s`)
	if fields := strings.Fields(sizes); fields[0] == "1" {
		t.Errorf("20,000 rows in one chunk (%s): chunks are bounded", sizes)
	}
	// A query that stops reading (LIMIT) ends the scan cleanly and the session goes on.
	n.Exec(t, "", "BEGIN; SELECT steep_repl.key_hash_chunks('plain') LIMIT 1; SELECT count(*) FROM plain; COMMIT")
}

// key_hash_chunks reads a table only where its caller could read every row of it: 42501 without
// SELECT on it or under row-level security, 55000 without a primary key, 42809 for a view or a
// partitioned table. The owner, whom its table's policy does not bind, gets every row.
func TestKeyHashChunksRefusesWhatTheCallerCannotReadInFull(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	ensureDBA(t, n)
	n.Exec(t, "", `CREATE TABLE secret (id int PRIMARY KEY, v text); INSERT INTO secret VALUES (1, 'x');
		CREATE TABLE guarded (id int PRIMARY KEY, v text); INSERT INTO guarded VALUES (1, 'x'), (2, 'y');
		ALTER TABLE guarded ENABLE ROW LEVEL SECURITY; CREATE POLICY one ON guarded USING (id = 1); GRANT SELECT ON guarded TO dba;
		CREATE TABLE bag (v text); GRANT SELECT ON bag TO dba;
		CREATE VIEW seen AS SELECT * FROM guarded; GRANT SELECT ON seen TO dba;
		CREATE TABLE parts (id int PRIMARY KEY) PARTITION BY RANGE (id); GRANT SELECT ON parts TO dba`)
	cases := []struct{ rel, state, says string }{
		{"secret", "42501", "secret"},
		{"guarded", "42501", "row-level security"},
		{"bag", "55000", "primary key"},
		{"seen", "42809", "not a table"},
		{"parts", "42809", "not a table"},
	}
	for _, c := range cases {
		state, err := execState(t, dbaPool(t, n), "SELECT steep_repl.key_hash_chunks($1::regclass)", c.rel)
		if state != c.state || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %s %v, want %s saying %q", c.rel, state, err, c.state, c.says)
		}
	}
	// The owner is not subject to its table's policy: both rows.
	if got := harness.QueryOne[int64](t, n, "", "SELECT sum(length(c)) / 12 FROM (SELECT steep_repl.key_hash_chunks('guarded') c) s"); got != 2 {
		t.Errorf("the owner's chunks hold %d rows of guarded, want 2", got)
	}
}

// A peer whose steep_repl predates key_hash_chunks is compared with the SQL stream, which gives
// the same bytes: the analysis is the same as in the server.
func TestOverlapStreamWithAPeerWithoutKeyHashChunksUsesTheSQLStream(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE line (region text, n int, qty numeric, PRIMARY KEY (region, n));
			INSERT INTO line SELECT r, g, g * 1.5 FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 3000) g;
			GRANT SELECT ON line TO dba`)
	}
	a.Exec(t, "", `UPDATE line SET qty = 0 WHERE n % 100 = 0; DELETE FROM line WHERE n % 250 = 1;
		ALTER EXTENSION steep_repl DROP FUNCTION steep_repl.key_hash_chunks(regclass);
		DROP FUNCTION steep_repl.key_hash_chunks(regclass)`)
	cli := overlapCLI(t, a, b, "--tables", "line")
	rows := overlapRowsNow(t, b)
	if sql := overlapSQL(t, b, "ARRAY['line']"); normJSON(t, sql) != cli {
		t.Fatalf("analyze-overlap against an older peer: %s, analyze_overlap: %s", cli, sql)
	}
	if again := overlapRowsNow(t, b); again != rows || !strings.Contains(rows, "conflicting") || !strings.Contains(rows, "local_only") {
		t.Fatalf("overlap_rows differ or lack the differences:\n%s\nvs\n%s", rows, again)
	}
}
