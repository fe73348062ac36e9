package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// rowHashTypesDDL is a table with a column of each kind of type a user table holds; its rows
// carry non-ASCII text, NULLs and values whose text form follows the session's settings.
const rowHashTypesDDL = `
CREATE TYPE rh_mood AS ENUM ('calm', 'tendu', 'ébloui');
CREATE TYPE rh_pair AS (x int, label text);
CREATE DOMAIN rh_code AS text CHECK (VALUE <> '');
CREATE TABLE rh_types (
  id int PRIMARY KEY, b bool, s smallint, i int, g bigint, n numeric, r real, d double precision,
  t text, v varchar(20), c char(6), ba bytea, ts timestamp, tz timestamptz, dt date, tm time,
  iv interval, j json, jb jsonb, u uuid, e rh_mood, ai int[], at text[], addr inet, p rh_pair,
  code rh_code, m money, dropped_later int, tail text);
ALTER TABLE rh_types DROP COLUMN dropped_later;
INSERT INTO rh_types VALUES
  (1, true, -3, 42, 9007199254740993, 12345.678900, 0.1, 0.1, 'été', 'café', 'ab', '\x00ff10',
   '2026-03-29 01:30:00', '2026-03-29 01:30:00+00', '2026-12-01', '23:59:59.999999', '1 year 2 mons 3 days 04:05:06.5',
   '{"k": "ÿ", "n": 1.50}', '{"k": "ÿ", "n": 1.50}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ébloui',
   '{1,NULL,3}', '{"é",NULL,""}', '192.168.0.1/24', '(7,"à")', 'x', 12.34, 'end'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, false, 32767, -2147483648, -1, 'NaN', '-Infinity', 1e308, '', '', '', '', '-infinity', 'infinity',
   '0001-01-01 BC', '00:00', '-1 days', '[]', '{}', '00000000-0000-0000-0000-000000000000', 'calm',
   '{}', '{}', '::1', '(,)', 'y', -0.01, '');
GRANT SELECT ON rh_types TO dba;
`

// rowHashes is id → steep_repl.row_hash of each row of table, in one session as dba with the settings.
func rowHashes(t *testing.T, n *harness.Node, table string, settings ...string) map[int]int64 {
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
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT id, steep_repl.row_hash(x) FROM %s x ORDER BY id", table))
	if err != nil {
		t.Fatalf("row_hash of %s under %v: %v", table, settings, err)
	}
	out := map[int]int64{}
	for rows.Next() {
		var id int
		var h int64
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("row_hash of %s under %v: %v", table, settings, err)
	}
	return out
}

// The hash is defined by the values, not by how the session prints them: the same rows hash the
// same under any TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output and
// client_encoding, and on another node holding the same rows; row::text does not, which is why
// a hash of the text form cannot compare two nodes.
func TestRowHashIsTheSameUnderEverySessionSettingAndOnAnotherNode(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", rowHashTypesDDL)
	}
	odd := []string{"TimeZone = 'Pacific/Chatham'", "DateStyle = 'SQL, DMY'", "IntervalStyle = 'sql_standard'",
		"extra_float_digits = -15", "bytea_output = 'escape'", "client_encoding = 'LATIN1'"}

	plain := rowHashes(t, a, "rh_types")
	if len(plain) != 3 {
		t.Fatalf("hashed %d rows, want 3", len(plain))
	}
	if got := rowHashes(t, a, "rh_types", odd...); fmt.Sprint(got) != fmt.Sprint(plain) {
		t.Errorf("row_hash under %v = %v, want %v as under the defaults", odd, got, plain)
	}
	if got := rowHashes(t, b, "rh_types"); fmt.Sprint(got) != fmt.Sprint(plain) {
		t.Errorf("row_hash on the other node = %v, want %v", got, plain)
	}

	// The settings do bite on the text form (else the comparison above proves nothing).
	textOf := func(settings ...string) string {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbaURL(t, a))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, s := range settings {
			if _, err := conn.Exec(ctx, "SET "+s); err != nil {
				t.Fatal(err)
			}
		}
		var s string
		if err := conn.QueryRow(ctx, "SELECT string_agg(md5(convert_to(x::text, 'UTF8')), ',' ORDER BY id) FROM rh_types x").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if textOf() == textOf(odd...) {
		t.Fatal("row::text is the same under the odd settings: the test's settings change nothing")
	}
}

// The session's client encoding is what it was after a row_hash that had to switch it, even
// when the call fails midway.
func TestRowHashLeavesTheClientEncodingAsItWas(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	ensureDBA(t, n)
	n.Exec(t, "", rowHashTypesDDL)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbaURL(t, n))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET client_encoding = 'LATIN1'"); err != nil {
		t.Fatal(err)
	}
	var enc string
	if err := conn.QueryRow(ctx, "SELECT count(steep_repl.row_hash(x))::text || current_setting('client_encoding') FROM rh_types x").Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if enc != "3LATIN1" {
		t.Errorf("after row_hash: %q, want 3 rows hashed and client_encoding LATIN1", enc)
	}
	// A failure inside a send function (a value not encodable in LATIN1 is fine: the hash does not
	// convert); an error raised by a cast after the hash must not leave the encoding switched.
	if _, err := conn.Exec(ctx, "SELECT steep_repl.row_hash(x), 1/0 FROM rh_types x"); err == nil {
		t.Fatal("1/0 succeeded")
	}
	if err := conn.QueryRow(ctx, "SHOW client_encoding").Scan(&enc); err != nil || enc != "LATIN1" {
		t.Errorf("client_encoding after a failed statement: %q, %v; want LATIN1", enc, err)
	}
}

// Every column is part of the hash (changing any one changes it), in its place (swapping two
// values changes it), and NULL differs from every value, the empty string and 'NULL' included.
// A dropped column is not part of the row: a table that once had one hashes like one that never did.
func TestRowHashChangesWithEveryColumnAndTellsNullFromEveryValue(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	ensureDBA(t, n)
	n.Exec(t, "", rowHashTypesDDL)
	n.Exec(t, "", `CREATE TABLE rh_copy (LIKE rh_types); INSERT INTO rh_copy SELECT * FROM rh_types; GRANT SELECT, UPDATE ON rh_copy TO dba`)
	base := rowHashes(t, n, "rh_types")
	if copied := rowHashes(t, n, "rh_copy"); fmt.Sprint(copied) != fmt.Sprint(base) {
		t.Fatalf("a copy of the rows without the dropped column hashes %v, want %v", copied, base)
	}

	cols := dbaQuery[[]string](t, n, `SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = 'rh_copy'::regclass AND attnum > 1 AND NOT attisdropped`)
	seen := map[int64]string{base[1]: "row 1", base[2]: "row 2", base[3]: "row 3"}
	for _, col := range cols {
		// Row 1 takes row 3's value (the fixture's rows 1 and 3 differ in every column).
		dbaExec(t, n, fmt.Sprintf(`UPDATE rh_copy SET %[1]s = (SELECT %[1]s FROM rh_types WHERE id = 3) WHERE id = 1`, pgx.Identifier{col}.Sanitize()))
		h := rowHashes(t, n, "rh_copy")[1]
		if other, dup := seen[h]; dup {
			t.Errorf("changing column %s gives the hash of %s", col, other)
		}
		seen[h] = "row 1 with " + col + " changed"
		dbaExec(t, n, fmt.Sprintf(`UPDATE rh_copy SET %[1]s = (SELECT %[1]s FROM rh_types WHERE id = 1) WHERE id = 1`, pgx.Identifier{col}.Sanitize()))
		if back := rowHashes(t, n, "rh_copy")[1]; back != base[1] {
			t.Errorf("column %s restored: hash %d, want %d", col, back, base[1])
		}
	}

	var distinct int
	const q = `SELECT count(DISTINCT steep_repl.row_hash(r)) FROM (VALUES
		(ROW(1, NULL::text)), (ROW(1, ''::text)), (ROW(1, 'NULL'::text)), (ROW(1, '\N'::text)),
		(ROW(NULL::int, 1::text)), (ROW(1, '1'::text)), (ROW(NULL::int, NULL::text))) v(r)`
	distinct = dbaQuery[int](t, n, q)
	if distinct != 7 {
		t.Errorf("7 rows differing by NULLs and empty values hash to %d distinct values, want 7", distinct)
	}
	if swapped := dbaQuery[int](t, n, `SELECT count(DISTINCT steep_repl.row_hash(r)) FROM (VALUES (ROW('a'::text, 'b'::text)), (ROW('b'::text, 'a'::text)), (ROW('ab'::text, ''::text))) v(r)`); swapped != 3 {
		t.Errorf("('a','b'), ('b','a'), ('ab','') hash to %d distinct values, want 3", swapped)
	}
}

// The hash is part of the protocol between nodes: two nodes running different builds must agree,
// so its value for a fixed row is pinned. Changing the algorithm is a format change, not a refactor.
func TestRowHashOfAFixedRowIsPinned(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	got := dbaQuery[int64](t, n, `SELECT steep_repl.row_hash(ROW(1::int, 'é'::text, NULL::int, 2.50::numeric, '2026-12-01 00:00+00'::timestamptz, '{"a":1}'::jsonb))`)
	const want = int64(7076696022932589556)
	if got != want {
		t.Errorf("row_hash of the fixed row = %d, want %d", got, want)
	}
}

// A column whose type has no binary send function cannot be hashed: the error names it and says what to do.
func TestRowHashRefusesATypeWithoutASendFunctionNamingTheColumn(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	ensureDBA(t, n)
	typ := dbaQuery[string](t, n, `SELECT typname FROM pg_type WHERE typtype = 'b' AND typsend = 0 AND typname NOT LIKE '\_%' ORDER BY typname LIMIT 1`)
	if typ == "" {
		t.Fatal("no base type without a send function to test with")
	}
	n.Exec(t, "", fmt.Sprintf(`CREATE TABLE rh_nosend (id int PRIMARY KEY, odd %s); GRANT SELECT ON rh_nosend TO dba`, typ))
	n.Exec(t, "", "INSERT INTO rh_nosend SELECT 1, NULL")
	state, pgErr := dbaState(t, n, "SELECT steep_repl.row_hash(x) FROM rh_nosend x")
	if state != "42883" || !strings.Contains(pgErr.Message, `column "odd"`) || pgErr.Hint == "" {
		t.Errorf("row_hash of a %s column: %s %v, want 42883 naming column \"odd\" with a hint", typ, state, pgErr)
	}
}
