package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// mergeIdentDDL is a table owned by app with an identity ALWAYS key, a generated column and a
// CHECK that holds only for rows written as app (the table's owner).
const mergeIdentDDL = `
DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app; END IF; END $$;
CREATE FUNCTION written_by_app() RETURNS boolean LANGUAGE sql AS $$ SELECT current_user = 'app' $$;
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, len int GENERATED ALWAYS AS (length(v)) STORED,
  at timestamptz, f float8, CHECK (written_by_app()));
ALTER TABLE ident OWNER TO app;
ALTER TABLE rh_types OWNER TO app;
GRANT SELECT ON ident TO dba;
CREATE TABLE plain (id int PRIMARY KEY);
`

// Rows of every kind of type (row_hash_test's table, NaN and infinities, bytea, json and jsonb,
// arrays, odd text), of a table with an identity ALWAYS key and a generated column, read with
// _merge_rows on one node and written with _merge_apply on the other (as the sidecar does: a
// superuser session, inside its transaction, under _merge_origin_as: the origin of a
// subscription) hash equal key by key, inserted or updated, and a row _merge_delete removes is
// gone. They are written as the table's owner (a CHECK true only for it), user triggers do not
// fire, and a logical slot that skips changes with an origin sees none of them (the delete
// neither) while it sees a write of the same session after _merge_origin_end. The operator may
// not call them.
func TestMergeRowsAndApplyCopyEveryTypeExactlyAsTheOwnerUnderTheMergeOrigin(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", rowHashTypesDDL)
		n.Exec(t, "", mergeIdentDDL)
	}
	a.Exec(t, "", `SET ROLE app;
		INSERT INTO ident (v, at, f) VALUES ('one', '2026-06-01 12:00:00.123456+02', 'NaN'), (E'tab\there \\ ''q'' "dq" ü', 'infinity', '-Infinity'),
		  (NULL, NULL, 0.1), ('four', '1999-12-31 23:59:59.999999+00', 1e-300);
		RESET ROLE`)
	// node_b holds some of the rows otherwise (updated by the apply), lacks others (inserted).
	b.Exec(t, "", `SET ROLE app; INSERT INTO ident (id, v, at, f) OVERRIDING SYSTEM VALUE VALUES (1, 'other', now(), 1); RESET ROLE;
		UPDATE rh_types SET t = 'changed', n = 1 WHERE id = 1; DELETE FROM rh_types WHERE id IN (2, 3);
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'user trigger fired on %', TG_TABLE_NAME; END $$;
		CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON rh_types FOR EACH ROW EXECUTE FUNCTION refuse();
		CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON ident FOR EACH ROW EXECUTE FUNCTION refuse()`)
	b.Exec(t, "", "SELECT pg_create_logical_replication_slot('merge_origin_probe', 'test_decoding')")
	defer b.Exec(t, "", "SELECT pg_drop_replication_slot('merge_origin_probe')")

	ctx := context.Background()
	conn, err := b.Pool(t, "").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// The merge's writes carry the origin of the node's subscription from the other (pg_<oid>).
	b.Exec(t, "", fmt.Sprintf("CREATE SUBSCRIPTION merge_origin_sub CONNECTION %s PUBLICATION nothing WITH (connect = false, slot_name = NONE)",
		"'"+strings.ReplaceAll(libpqConninfo(a), "'", "''")+"'"))
	defer b.Exec(t, "", "DROP SUBSCRIPTION merge_origin_sub")
	var origin string
	if err := conn.QueryRow(ctx, "SELECT steep_repl._merge_origin_as('merge_origin_sub')").Scan(&origin); err != nil {
		t.Fatalf("_merge_origin_as: %v", err)
	}
	if want := harness.QueryOne[string](t, b, "", "SELECT 'pg_' || oid FROM pg_subscription WHERE subname = 'merge_origin_sub'"); origin != want {
		t.Fatalf("_merge_origin_as returned %q, want %q", origin, want)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"rh_types", "ident"} {
		rows := harness.QueryOne[string](t, a, "", fmt.Sprintf(
			"SELECT steep_repl._merge_rows('%s', (SELECT jsonb_agg(jsonb_build_object('id', id)) FROM %s))::text", table, table))
		var w struct {
			Written int64    `json:"written"`
			Skipped []string `json:"skipped"`
		}
		var out string
		if err := tx.QueryRow(ctx, "SELECT steep_repl._merge_apply($1::regclass, $2::jsonb, $3::jsonb)::text", table, rows,
			expectNow(t, b, table, rows)).Scan(&out); err != nil || json.Unmarshal([]byte(out), &w) != nil {
			t.Fatalf("_merge_apply of %s: %s %v", table, out, err)
		}
		if want := harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM "+table); w.Written != want || len(w.Skipped) != 0 {
			t.Errorf("_merge_apply of %s wrote %d rows, skipped %v, want %d written", table, w.Written, w.Skipped, want)
		}
	}
	// node_a deleted ident 4 meanwhile: _merge_delete removes it here (and a key absent is no error).
	a.Exec(t, "", "DELETE FROM ident WHERE id = 4")
	var deleted string
	if err := tx.QueryRow(ctx, `SELECT steep_repl._merge_delete('ident', jsonb_build_object('{"id": 4}', (SELECT steep_repl.row_hash(i.*) FROM ident i WHERE id = 4), '{"id": 999}', null))::text`).Scan(&deleted); err != nil || deleted != `{"deleted": 1, "skipped": []}` {
		t.Fatalf("_merge_delete of ident 4 and 999: %s, %v; want 1 deleted", deleted, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"SELECT steep_repl._merge_origin_end()", "INSERT INTO plain VALUES (1)", "SELECT steep_repl._merge_origin_end()"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	for _, table := range []string{"rh_types", "ident"} {
		ha, hb := rowHashes(t, a, table), rowHashes(t, b, table)
		if len(ha) == 0 || fmt.Sprint(ha) != fmt.Sprint(hb) {
			t.Errorf("%s after the merge: row hashes by id differ\n node_a %v\n node_b %v", table, ha, hb)
		}
	}
	changes := func(opts string) string {
		return harness.QueryOne[string](t, b, "", `SELECT coalesce(string_agg(substring(data from '^table public\.(\w+):'), ',' ORDER BY lsn), '')
			FROM pg_logical_slot_peek_changes('merge_origin_probe', NULL, NULL`+opts+`) WHERE data LIKE 'table %'`)
	}
	if got := changes(""); !strings.Contains(got, "rh_types") || !strings.Contains(got, "ident") || !strings.HasSuffix(got, "plain") {
		t.Errorf("changes decoded on node_b: %q, want the merged rh_types and ident rows, then plain", got)
	}
	if got := changes(", 'only-local', '1'"); got != "plain" {
		t.Errorf("changes without an origin on node_b: %q, want only the write after _merge_origin_end", got)
	}

	for _, sql := range []string{
		"SELECT steep_repl._merge_apply('plain', '[]', '{}')", "SELECT steep_repl._merge_rows('plain', '[]')",
		"SELECT steep_repl._merge_origin_as('merge_origin_sub')", "SELECT steep_repl._merge_begin('node_a', '{}', 'dba')",
		"SELECT steep_repl._merge_delete('plain', '{}')", "SELECT steep_repl._merge_existed_before('plain', '[]', '1', '{}')",
	} {
		if state, _ := dbaState(t, b, sql); state != "42501" {
			t.Errorf("the operator runs %s: %q, want 42501 (sidecar only)", sql, state)
		}
	}
}

// An incoming row that collides with two unique constraints at once is reported once with both;
// a row colliding with an expression index, and two incoming rows colliding with each other, are
// listed too, in one 23505, and nothing is written. A row replacing the holder of its own values
// is no collision: without the colliding rows the rest is written.
func TestMergeApplyReportsEveryUniqueCollisionAtOnceAndWritesNothing(t *testing.T) {
	t.Parallel()
	_, b := setupEmptyPair(t)
	b.Exec(t, "", `CREATE TABLE people (id int PRIMARY KEY, email text UNIQUE, badge text, code text, CONSTRAINT people_badge_key UNIQUE (badge));
		CREATE UNIQUE INDEX people_code_idx ON people (lower(code)) WHERE code IS NOT NULL;
		INSERT INTO people VALUES (1, 'a@x', 'B1', 'c1'), (2, 'b@x', 'B2', NULL), (3, 'c@x', 'B3', NULL)`)
	const fine = `{"id": "2", "email": "z@x", "badge": "B2", "code": null}, {"id": "3", "email": "c@x", "badge": "B3", "code": "c3"}`
	rows := `[{"id": "10", "email": "a@x", "badge": "B1", "code": null}, {"id": "11", "email": "n@x", "badge": "B11", "code": "C1"},
		{"id": "12", "email": "dup@x", "badge": "B12", "code": null}, {"id": "13", "email": "dup@x", "badge": "B13", "code": null}, ` + fine + `]`
	before := tableHashes(t, b, "people")
	state, pgErr := execState(t, b.Pool(t, ""), "SELECT steep_repl._merge_apply('people', $1::jsonb, $2::jsonb)", rows, expectNow(t, b, "people", rows))
	const detail = `key {"id": 10} collides on people_badge_key, people_email_key; key {"id": 11} collides on people_code_idx; ` +
		`key {"id": 12} collides on people_email_key; key {"id": 13} collides on people_email_key`
	if state != "23505" || pgErr.Detail != detail || !strings.Contains(pgErr.Message, "4 row(s)") || pgErr.Hint == "" {
		t.Fatalf("_merge_apply of colliding rows: %s %v\n detail %q\n want 23505 with detail %q", state, pgErr, pgErr.Detail, detail)
	}
	if after := tableHashes(t, b, "people"); after != before {
		t.Fatalf("a refused _merge_apply changed rows: %s -> %s", before, after)
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT (steep_repl._merge_apply('people', $1::jsonb, $2::jsonb)->>'written')::bigint", "["+fine+"]",
		expectNow(t, b, "people", "["+fine+"]")); n != 2 {
		t.Fatalf("_merge_apply of the rows that collide with nothing: %d written, want 2", n)
	}
	got := harness.QueryOne[string](t, b, "", "SELECT string_agg(format('%s %s %s %s', id, email, badge, code), ', ' ORDER BY id) FROM people")
	if got != "1 a@x B1 c1, 2 z@x B2 , 3 c@x B3 c3" {
		t.Errorf("people after the apply: %s", got)
	}
	// An identity ALWAYS column outside the primary key cannot be set by an update: refused up front.
	b.Exec(t, "", "CREATE TABLE numbered (id int PRIMARY KEY, seq int GENERATED ALWAYS AS IDENTITY)")
	if state, pgErr := execState(t, b.Pool(t, ""), `SELECT steep_repl._merge_apply('numbered', '[{"id": "1", "seq": "7"}]', '{"{\"id\": 1}": null}')`); state != "0A000" || !strings.Contains(pgErr.Message, "seq") {
		t.Errorf("_merge_apply into a table with an identity ALWAYS column outside its key: %s %v, want 0A000 naming seq", state, pgErr)
	}
}

// expectNow is, for the rows (keyed by an int id) to apply to table on n, the versions n holds
// now: {key text: row_hash or null}, what a plan read there would pass to _merge_apply.
func expectNow(t *testing.T, n *harness.Node, table, rows string) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", fmt.Sprintf(`SELECT coalesce(jsonb_object_agg(jsonb_build_object('id', (x_.v->>'id')::int)::text,
		(SELECT steep_repl.row_hash(r.*) FROM %s r WHERE r.id = (x_.v->>'id')::int)), '{}')::text FROM jsonb_array_elements($1::jsonb) x_(v)`, table), rows)
}

// What _merge_apply reports written is what it wrote, also when it runs inside a savepoint (a
// row written there has the subtransaction's xid as its xmin, not the transaction's).
func TestMergeApplyCountsWhatItWroteInsideASavepoint(t *testing.T) {
	t.Parallel()
	_, b := setupEmptyPair(t)
	b.Exec(t, "", `CREATE TABLE people (id int PRIMARY KEY, email text); INSERT INTO people VALUES (1, 'a@x'), (2, 'b@x')`)
	rows := `[{"id": "2", "email": "new@x"}, {"id": "3", "email": "c@x"}]`
	expect := expectNow(t, b, "people", rows)
	ctx := context.Background()
	tx, err := b.Pool(t, "").Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var out string
	if _, err := tx.Exec(ctx, "UPDATE people SET email = email WHERE id = 1; SAVEPOINT s"); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT steep_repl._merge_apply('people', $1::jsonb, $2::jsonb)::text", rows, expect).Scan(&out); err != nil {
		t.Fatal(err)
	}
	if out != `{"skipped": [], "written": 2}` {
		t.Fatalf("_merge_apply inside a savepoint: %s, want 2 written and none skipped", out)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := harness.QueryOne[string](t, b, "", "SELECT string_agg(format('%s %s', id, email), ', ' ORDER BY id) FROM people"); got != "1 a@x, 2 new@x, 3 c@x" {
		t.Errorf("people: %s", got)
	}
}
