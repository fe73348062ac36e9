package tests

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/tests/harness"
)

// prepareMismatch gives node_a (the source) and node_b (the target) tables that differ in every
// way auto mode can repair; node_b's rows must survive it.
func prepareMismatch(t *testing.T, a, b *harness.Node) {
	t.Helper()
	a.Exec(t, "", `CREATE SCHEMA "Sales Dept";
		CREATE TABLE "Sales Dept"."Order Lines" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Qty" int NOT NULL DEFAULT 1);
		CREATE SEQUENCE invoice_no;
		CREATE TABLE invoice (id int PRIMARY KEY, no bigint DEFAULT nextval('invoice_no'));
		CREATE TABLE customer (id int PRIMARY KEY, name varchar(80) NOT NULL, city varchar(40), credit numeric(12,2) DEFAULT 0,
			vip boolean NOT NULL DEFAULT false, notes text);
		CREATE TABLE pair_key (a int, b int, PRIMARY KEY (a, b))`)
	b.Exec(t, "", `CREATE TABLE customer (id int PRIMARY KEY, name varchar(40) NOT NULL, city varchar(40) NOT NULL,
			credit numeric(10,2) DEFAULT 1);
		INSERT INTO customer VALUES (1, 'Ada', 'London', 10.5), (2, 'Grace', 'Arlington', 7);
		CREATE TABLE pair_key (a int PRIMARY KEY, b int);
		INSERT INTO pair_key VALUES (1, 1), (2, 2)`)
}

// schemaState is everything auto mode may change on a node: its tables' fingerprints and rows.
func schemaState(t *testing.T, n *harness.Node) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(format('%s.%s=%s', schema_name, table_name, fingerprint), ' '
		ORDER BY schema_name, table_name), '') FROM steep_repl._local_definitions(false)`) + " | " +
		harness.QueryOne[string](t, n, "", `SELECT coalesce((SELECT string_agg(c::text, ',' ORDER BY c.id) FROM customer c), '')`)
}

// syncReport runs schema_sync against node_a on n; mode "" is NULL (the configured default).
func syncReport(t *testing.T, n *harness.Node, mode, options string) map[string]any {
	t.Helper()
	var m *string
	if mode != "" {
		m = &mode
	}
	raw := dbaQuery[string](t, n, "SELECT steep_repl.schema_sync('node_a', $1, $2)::text", m, options)
	var r map[string]any
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSchemaSyncModesOnAPreparedMismatch(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	prepareMismatch(t, a, b)
	before := schemaState(t, b)
	wantDiffs := []string{
		`table "Sales Dept"."Order Lines" is on node_a but not on node_b`,
		"table public.customer: column notes text is on node_a but not on node_b",
		"table public.customer: column name has type character varying(80) on node_a but character varying(40) on node_b",
		"table public.customer: column credit has DEFAULT 0 on node_a but DEFAULT 1 on node_b",
		"table public.customer: column city is nullable on node_a but NOT NULL on node_b",
		"table public.pair_key has primary key (a, b) on node_a but primary key (a) on node_b",
	}

	// strict: refuses, listing every difference, one per line; nothing changes.
	code, pgErr := dbaState(t, b, "SELECT steep_repl.schema_sync('node_a', 'strict')")
	if code != "42P16" || !strings.Contains(pgErr.Message, `schemas of "node_a" and "node_b" differ`) || pgErr.Hint == "" {
		t.Fatalf("strict: %s %+v", code, pgErr)
	}
	lines := strings.Split(pgErr.Detail, "\n")
	for _, want := range wantDiffs {
		if !slices.Contains(lines, want) {
			t.Errorf("strict DETAIL lacks the line %q:\n%s", want, pgErr.Detail)
		}
	}
	if len(lines) != 10 { // wantDiffs plus invoice, vip, credit's type and pair_key.b's nullability
		t.Errorf("strict DETAIL has %d lines:\n%s", len(lines), pgErr.Detail)
	}

	// manual: refuses without confirm; with it, warns, records the accepted differences, changes nothing.
	code, pgErr = dbaState(t, b, "SELECT steep_repl.schema_sync('node_a', 'manual')")
	if code != "42P16" || !strings.Contains(pgErr.Hint, "confirm") || pgErr.Detail != strings.Join(lines, "\n") {
		t.Fatalf("manual without confirm: %s %+v", code, pgErr)
	}
	var warnings []*pgconn.Notice
	conn := connectWithNotices(t, b, &warnings)
	var raw string
	if err := conn.QueryRow(t.Context(), `SELECT steep_repl.schema_sync('node_a', 'manual', '{"confirm": true}')::text`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw, `"status": "accepted"`) || len(warnings) != 1 || warnings[0].Severity != "WARNING" ||
		!strings.Contains(warnings[0].Message, "differ in 10 place(s)") {
		t.Fatalf("manual with confirm: %s, notices %+v", raw, warnings)
	}
	if ev := harness.QueryOne[int64](t, b, "", `SELECT jsonb_array_length(detail->'differences') FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'schema.differences_accepted'`); ev != 10 {
		t.Fatalf("schema.differences_accepted event lists %d differences", ev)
	}
	if after := schemaState(t, b); after != before {
		t.Fatalf("strict/manual changed node_b:\nbefore %s\nafter  %s", before, after)
	}

	// auto: applies the safe DDL in one transaction, keeps the rows, and says what it did.
	r := syncReport(t, b, "auto", "{}")
	if r["status"] != "synced" || len(r["differences"].([]any)) != 10 {
		t.Fatalf("auto report: %v", r)
	}
	applied := r["applied"].([]any)
	for _, want := range []string{
		`CREATE SCHEMA IF NOT EXISTS "Sales Dept"`,
		"CREATE SEQUENCE IF NOT EXISTS public.invoice_no",
		"ALTER TABLE public.customer ALTER COLUMN name TYPE character varying(80)",
		"ALTER TABLE public.customer ADD COLUMN vip boolean NOT NULL DEFAULT false",
		"ALTER TABLE public.pair_key ADD PRIMARY KEY (a, b)",
	} {
		if !slices.Contains(applied, any(want)) {
			t.Errorf("auto applied no %q: %v", want, applied)
		}
	}
	if s := dbaQuery[string](t, b, `SELECT string_agg(status, ',' ORDER BY table_name) FROM steep_repl.compare_fingerprints('node_a')`); s != "MATCH,MATCH,MATCH,MATCH" {
		t.Fatalf("after auto: %s", s)
	}
	if rows := harness.QueryOne[string](t, b, "", `SELECT string_agg(format('%s %s %s %s %s %s', id, name, city, credit, vip, coalesce(notes, '-')), '; ' ORDER BY id) FROM customer`); rows != "1 Ada London 10.50 f -; 2 Grace Arlington 7.00 f -" {
		t.Fatalf("rows after auto: %s", rows)
	}
	if n := harness.QueryOne[int64](t, b, "", `SELECT count(*) FROM steep_repl.events WHERE event = 'schema.synced'
		AND jsonb_array_length(detail->'applied') = $1`, len(applied)); n != 1 {
		t.Fatalf("no schema.synced event listing the %d statements", len(applied))
	}
	b.Exec(t, "", `INSERT INTO "Sales Dept"."Order Lines" ("Qty") VALUES (3); INSERT INTO invoice (id) VALUES (1)`)
	if r := syncReport(t, b, "", "{}"); r["status"] != "match" || r["mode"] != "strict" {
		t.Fatalf("a second sync (default mode) found: %v", r)
	}
}

// auto refuses what would destroy data, and rolls back entirely when one statement fails.
func TestSchemaSyncAutoRefusesDestructionAndRollsBack(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	prepareMismatch(t, a, b)
	b.Exec(t, "", `ALTER TABLE customer ADD COLUMN legacy text; CREATE TABLE scratch (id int); INSERT INTO scratch VALUES (1);
		CREATE TABLE empty_extra (id int)`)
	a.Exec(t, "", "CREATE TABLE ledger (id int PRIMARY KEY, amount numeric(8,2))")
	b.Exec(t, "", "CREATE TABLE ledger (id int PRIMARY KEY, amount text); INSERT INTO ledger VALUES (1, 'twelve')")
	// Peer texts auto will not splice into DDL: a type unknown here, a ";" in an expression.
	a.Exec(t, "", `CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE feelings (id int PRIMARY KEY, m mood);
		ALTER TABLE customer ADD COLUMN motto text DEFAULT 'carpe; diem'`)
	before := schemaState(t, b)

	code, pgErr := dbaState(t, b, "SELECT steep_repl.schema_sync('node_a', 'auto')")
	if code != "42P16" || !strings.Contains(pgErr.Message, "schema_sync auto refuses 5 change(s)") || !strings.Contains(pgErr.Hint, "Nothing was changed") {
		t.Fatalf("destructive auto: %s %+v", code, pgErr)
	}
	for _, want := range []string{
		"drop column legacy of public.customer: it is not on node_a, and dropping a column destroys its data",
		"drop table public.scratch: it is not on node_a but holds rows on node_b",
		"change column amount of public.ledger from text to numeric(8,2): not a widening",
		"create table public.feelings: column m: its type public.mood is not a type here",
		`column motto of public.customer: its default or generation expression contains ";"`,
	} {
		if !strings.Contains(pgErr.Detail, want) {
			t.Errorf("refusal DETAIL lacks %q:\n%s", want, pgErr.Detail)
		}
	}
	if after := schemaState(t, b); after != before {
		t.Fatalf("a refused auto sync changed node_b:\nbefore %s\nafter  %s", before, after)
	}

	// Without the destructive parts, a statement that fails late (duplicate keys for the new
	// primary key) undoes the ones before it.
	b.Exec(t, "", "ALTER TABLE customer DROP COLUMN legacy; DROP TABLE scratch; DROP TABLE ledger")
	a.Exec(t, "", "DROP TABLE ledger, feelings; ALTER TABLE customer DROP COLUMN motto")
	b.Exec(t, "", "ALTER TABLE pair_key DROP CONSTRAINT pair_key_pkey; INSERT INTO pair_key VALUES (1, 1)")
	before = schemaState(t, b)
	code, pgErr = dbaState(t, b, "SELECT steep_repl.schema_sync('node_a', 'auto')")
	if code != "23505" || !strings.Contains(pgErr.Message, `schema_sync auto rolled back on node "node_b"`) ||
		!strings.Contains(pgErr.Detail, "failed statement: ALTER TABLE public.pair_key ADD PRIMARY KEY (a, b)") ||
		!strings.Contains(pgErr.Detail, "were rolled back") {
		t.Fatalf("failing auto: %s %+v", code, pgErr)
	}
	if after := schemaState(t, b); after != before {
		t.Fatalf("a failed auto sync left changes:\nbefore %s\nafter  %s", before, after)
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM pg_namespace WHERE nspname = 'Sales Dept'"); n != 0 {
		t.Fatal("the schema auto created before the failure survived")
	}
	// The empty extra table is not data: auto drops it once the duplicates are gone.
	b.Exec(t, "", "DELETE FROM pair_key WHERE ctid = (SELECT max(ctid) FROM pair_key WHERE a = 1)")
	if r := syncReport(t, b, "auto", "{}"); r["status"] != "synced" || !slices.Contains(r["applied"].([]any), any("DROP TABLE public.empty_extra")) {
		t.Fatalf("auto after the fix: %v", r)
	}
}

// connectWithNotices opens a connection to n that appends every notice to *into.
func connectWithNotices(t *testing.T, n *harness.Node, into *[]*pgconn.Notice) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(n.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, notice *pgconn.Notice) { *into = append(*into, notice) }
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
