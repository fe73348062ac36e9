package tests

import (
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

func TestSchemaFunctionsRefuseBadInputClearly(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	b.Exec(t, "", "SELECT steep_repl.register_node('node_c', 'host=127.0.0.1 port=1 dbname=postgres connect_timeout=2', false)")
	a.Exec(t, "", "CREATE TABLE t (id int PRIMARY KEY)")
	b.Exec(t, "", "CREATE TABLE t (id int PRIMARY KEY)")
	cases := []struct{ name, sql, code, msg string }{
		{"compare: unknown peer", "SELECT * FROM steep_repl.compare_fingerprints('node_x')", "42704", `node "node_x" is not registered`},
		{"diff: unknown peer", "SELECT * FROM steep_repl.schema_diff('node_x')", "42704", `node "node_x" is not registered`},
		{"sync: unknown peer", "SELECT steep_repl.schema_sync('node_x')", "42704", `node "node_x" is not registered`},
		{"ddl: unknown peer", "SELECT * FROM steep_repl.schema_ddl('node_x')", "42704", `node "node_x" is not registered`},
		{"drift: unknown node", "SELECT steep_repl.check_drift('node_x')", "42704", `node "node_x" is not registered`},
		{"compare: unreachable", "SELECT * FROM steep_repl.compare_fingerprints('node_c')", "08001", `node "node_c" is not reachable: `},
		{"diff: unreachable", "SELECT * FROM steep_repl.schema_diff('node_c', 'public', 't')", "08001", "Connection refused"},
		{"sync: unreachable", "SELECT steep_repl.schema_sync('node_c', 'auto')", "08001", "Connection refused"},
		{"compare: NULL peer", "SELECT * FROM steep_repl.compare_fingerprints(NULL)", "22004", "peer must not be NULL"},
		{"diff: NULL peer", "SELECT * FROM steep_repl.schema_diff(NULL)", "22004", "peer must not be NULL"},
		{"diff: table without schema", "SELECT * FROM steep_repl.schema_diff('node_a', NULL, 't')", "22004", "only_schema must not be NULL"},
		{"sync: NULL peer", "SELECT steep_repl.schema_sync(NULL)", "22004", "peer must not be NULL"},
		{"sync: NULL options", "SELECT steep_repl.schema_sync('node_a', 'auto', NULL)", "22004", "options must not be NULL"},
		{"fingerprint: NULL schema", "SELECT steep_repl.compute_fingerprint(NULL, 't')", "22004", "schema_name must not be NULL"},
		{"fingerprint: NULL table", "SELECT steep_repl.compute_fingerprint('public', NULL)", "22004", "table_name must not be NULL"},
		{"fingerprint: no such table", "SELECT steep_repl.compute_fingerprint('public', 'nope')", "42P01", "table public.nope does not exist"},
		{"fingerprint: quoted name", `SELECT steep_repl.compute_fingerprint('public', '"t"')`, "42P01", `table public."""t""" does not exist`},
		{"fingerprint: not a user table", "SELECT steep_repl.compute_fingerprint('steep_repl', 'nodes')", "42809", "is not a user table"},
		{"diff: no such table", "SELECT * FROM steep_repl.schema_diff('node_a', 'public', 'nope')", "42P01", "is neither here nor on node"},
		{"sync: unknown mode", "SELECT steep_repl.schema_sync('node_a', 'lenient')", "22023", `unknown schema_sync mode "lenient"`},
		{"sync: tables not an array", `SELECT steep_repl.schema_sync('node_a', 'auto', '{"tables": "t"}')`, "22023", "tables must be a JSON array"},
		{"sync: options not an object", `SELECT steep_repl.schema_sync('node_a', 'auto', '[]')`, "22023", "options must be a JSON object"},
		{"sync: confirm not boolean", `SELECT steep_repl.schema_sync('node_a', 'manual', '{"confirm": "yes"}')`, "22023", "confirm must be true or false"},
		{"ddl: schemas not an array", `SELECT * FROM steep_repl.schema_ddl(NULL, '{"schemas": "public"}')`, "22023", "schemas must be a JSON array"},
		{"drift: not the local node", "SELECT steep_repl.check_drift('node_a')", "22023", "is not this database's local node"},
		{"drift: no source", "SELECT steep_repl.check_drift()", "55000", `node "node_b" has no source`},
		{"config: unknown mode", "SELECT steep_repl.configure_schema_sync('lax')", "22023", `unknown schema_sync mode "lax"`},
		{"config: negative interval", "SELECT steep_repl.configure_schema_sync(NULL, '-1 minute')", "22023", "must not be negative"},
	}
	for _, c := range cases {
		code, pgErr := dbaState(t, b, c.sql)
		if code != c.code {
			t.Errorf("%s: SQLSTATE %q (%v), want %s", c.name, code, pgErr, c.code)
			continue
		}
		if !strings.Contains(pgErr.Message, c.msg) && !strings.Contains(pgErr.Detail, c.msg) || pgErr.Hint == "" {
			t.Errorf("%s: message %q (hint %q), want %q and a hint", c.name, pgErr.Message, pgErr.Hint, c.msg)
		}
	}
}

// Names that need quoting work everywhere: fingerprints, statuses, differences, auto's DDL,
// the exported DDL.
func TestSchemaFunctionsHandleNamesThatNeedQuoting(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	a.Exec(t, "", `CREATE SCHEMA "My ""Odd"" Schema";
		CREATE TABLE "My ""Odd"" Schema"."Order Lines" ("Line No" serial, "Qty" int NOT NULL DEFAULT 1, "say ""hi""" text,
			PRIMARY KEY ("Line No", "Qty"));
		CREATE TABLE "MixedCase" ("ID" int PRIMARY KEY, "select" text DEFAULT 'it''s')`)
	b.Exec(t, "", `CREATE TABLE "MixedCase" ("ID" int PRIMARY KEY, "select" varchar(10) DEFAULT 'it''s')`)

	got := harness.QueryOne[string](t, b, "", `SELECT string_agg(format('%s|%s|%s', schema_name, table_name, status), ' ' ORDER BY table_name)
		FROM steep_repl.compare_fingerprints('node_a')`)
	if got != `public|MixedCase|MISMATCH My "Odd" Schema|Order Lines|REMOTE_ONLY` {
		t.Fatalf("compare_fingerprints: %s", got)
	}
	diff := dbaQuery[string](t, b, `SELECT string_agg(description, E'\n') FROM steep_repl.schema_diff('node_a', 'public', 'MixedCase')`)
	if diff != `table public."MixedCase": column "select" has type text on node_a but character varying(10) on node_b`+"\n"+
		`table public."MixedCase": column "select" has DEFAULT 'it''s'::text on node_a but DEFAULT 'it''s'::character varying on node_b` {
		t.Fatalf("schema_diff: %s", diff)
	}
	if fp := dbaQuery[string](t, a, `SELECT steep_repl.compute_fingerprint('My "Odd" Schema', 'Order Lines')`); len(fp) != 64 {
		t.Fatalf("compute_fingerprint with quoting: %q", fp)
	}

	// The exported DDL of node_a recreates its tables exactly on a third, empty database.
	ddl := dbaQuery[string](t, b, `SELECT string_agg(statement, E';\n') FROM steep_repl.schema_ddl('node_a')`)
	a.CreateDatabase(t, "copy")
	a.Exec(t, "copy", ddl)
	a.Exec(t, "copy", "CREATE EXTENSION steep_repl CASCADE")
	want := harness.QueryOne[string](t, a, "", `SELECT string_agg(fingerprint, ' ' ORDER BY table_name) FROM steep_repl._local_definitions(false)`)
	if got := harness.QueryOne[string](t, a, "copy", `SELECT string_agg(fingerprint, ' ' ORDER BY table_name) FROM steep_repl._local_definitions(false)`); got != want {
		t.Fatalf("exported DDL recreated other fingerprints:\n%s\nwant\n%s\nDDL:\n%s", got, want, ddl)
	}

	// auto creates the schema, the sequence behind serial and the table; the type widens to text.
	r := dbaQuery[string](t, b, "SELECT steep_repl.schema_sync('node_a', 'auto')->>'status'")
	if r != "synced" {
		t.Fatalf("auto: %s", r)
	}
	if s := dbaQuery[string](t, b, `SELECT string_agg(status, ',') FROM steep_repl.compare_fingerprints('node_a')`); s != "MATCH,MATCH" {
		t.Fatalf("after auto: %s", s)
	}
	b.Exec(t, "", `INSERT INTO "My ""Odd"" Schema"."Order Lines" ("say ""hi""") VALUES ('hello')`)

	// steep_repl_admin may compare; others may not.
	b.Exec(t, "", "CREATE ROLE operator LOGIN IN ROLE steep_repl_admin; CREATE ROLE outsider LOGIN")
	as := func(role, sql string) error { return execAs(t, b, role, sql) }
	for _, sql := range []string{"SELECT * FROM steep_repl.compare_fingerprints('node_a')", "SELECT steep_repl.capture_fingerprints()",
		"SELECT * FROM steep_repl.schema_fingerprints", "SELECT steep_repl.check_drift()"} {
		err := as("operator", sql)
		if err != nil && sqlStateOf(err) != "55000" { // check_drift: node_b has no source
			t.Errorf("operator: %s: %v", sql, err)
		}
		if code := sqlStateOf(as("outsider", sql)); code != "42501" {
			t.Errorf("outsider: %s: SQLSTATE %q, want 42501", sql, code)
		}
	}
}
