package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// steep-repl schema capture|compare|diff|export|sync|drift against real nodes: output, exit
// status (1 when the schemas differ), and an exported file (pg_dump --schema-only) that psql
// restores into an empty database as the same schema.
func TestCLISchemaCommands(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	a.Exec(t, "", `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2) NOT NULL DEFAULT 0, note text);
		CREATE TABLE "Order Items" (order_id int, line int, sku text CHECK (sku <> ''), PRIMARY KEY (order_id, line));
		COMMENT ON TABLE "Order Items" IS 'lines of an order';
		CREATE INDEX items_sku ON "Order Items" (sku);
		CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
		CREATE SCHEMA ops; CREATE TYPE ops.mood AS ENUM ('calm', 'busy');
		CREATE FUNCTION ops.mood_of(int) RETURNS ops.mood LANGUAGE sql IMMUTABLE AS $$SELECT CASE WHEN $1 > 10 THEN 'busy'::ops.mood ELSE 'calm' END$$`)
	b.Exec(t, "", "CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2) NOT NULL DEFAULT 0)")
	db := b.ConnString("")

	out, errOut, code := runCLI(t, "schema", "capture", "--db", db, "--list")
	if code != 0 || !strings.Contains(out, "captured the fingerprints of 1 table(s)") || !strings.Contains(out, "public.orders") {
		t.Fatalf("capture: exit %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = runCLI(t, "schema", "compare", "--peer", "node_a", "--db", db)
	if code != 1 || !strings.Contains(out, `public."Order Items"  REMOTE_ONLY`) || !strings.Contains(out, "public.orders") ||
		!strings.Contains(out, "2 table(s): 1 MISMATCH, 1 REMOTE_ONLY") || !strings.Contains(errOut, "2 table(s) differ from node node_a") {
		t.Fatalf("compare: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, _, code = runCLI(t, "schema", "compare", "--peer", "node_a", "--db", db, "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 1 || len(rows) != 2 || rows[0]["status"] == nil {
		t.Fatalf("compare --json: exit %d, %v\n%s", code, err, out)
	}

	out, _, code = runCLI(t, "schema", "diff", "--peer", "node_a", "--schema", "public", "--table", "orders", "--db", db)
	if code != 1 || strings.TrimSpace(out) != "table public.orders: column note text is on node_a but not on node_b" {
		t.Fatalf("diff: exit %d\n%s", code, out)
	}

	// export (pg_dump --schema-only) of node_a's "Order Items", restored with psql into an empty
	// database: the same table, constraints and comment as node_a's.
	bindir, err := harness.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "schema.sql")
	out, errOut, code = runCLI(t, "schema", "export", "--peer", "node_a", "--tables", "Order Items", "--output", file,
		"--pg-bindir", bindir, "--db", db)
	if code != 0 || !strings.Contains(out, "wrote the schema of 1 table(s) of node node_a to "+file) {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}
	ddl, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ddl), "pg_dump "+harness.ClientVersion(t, "pg_dump")+" --schema-only") ||
		!strings.Contains(string(ddl), `CREATE TABLE public."Order Items"`) || strings.Contains(string(ddl), "orders") {
		t.Fatalf("exported file:\n%s", ddl)
	}
	b.CreateDatabase(t, "one_table")
	b.RunClient(t, "one_table", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", file)
	if got, want := dumpSchema(t, b, "one_table"), dumpSchema(t, a, "", `--table=public."Order Items"`); got != want {
		t.Fatalf("the restored export differs from node_a's table:\n--- node_a\n%s\n--- restored\n%s", want, got)
	}

	// Without --tables, every user schema (steep_repl's left out), with its types, functions
	// and views, from the --db node itself; public's CREATE SCHEMA is left out, so psql
	// restores it into an empty database without an error.
	whole := filepath.Join(t.TempDir(), "whole.sql")
	if out, errOut, code = runCLI(t, "schema", "export", "--output", whole, "--pg-bindir", bindir, "--db", a.ConnString("")); code != 0 ||
		!strings.Contains(out, "wrote the schema of 2 table(s) of the local node") {
		t.Fatalf("export of the whole schema: exit %d\n%s%s", code, out, errOut)
	}
	b.CreateDatabase(t, "whole")
	b.RunClient(t, "whole", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", whole)
	if got, want := dumpSchema(t, b, "whole", "--schema=public", "--schema=ops"), dumpSchema(t, a, "", "--schema=public", "--schema=ops"); got != want ||
		!strings.Contains(got, "CREATE TYPE ops.mood AS ENUM") || !strings.Contains(got, "CREATE VIEW public.big_orders") {
		t.Fatalf("the restored whole export differs from node_a:\n--- node_a\n%s\n--- restored\n%s", want, got)
	}
	if dump := dumpSchema(t, b, "whole"); strings.Contains(dump, "steep_repl") {
		t.Fatalf("the whole export carries steep_repl:\n%s", dump)
	}

	// A pg_dump older than the server is refused, naming both versions; an unknown table too.
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "pg_dump"), []byte("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	server := harness.QueryOne[string](t, a, "", "SHOW server_version")
	if _, errOut, code = runCLI(t, "schema", "export", "--output", "-", "--pg-bindir", fake, "--db", a.ConnString("")); code != 1 ||
		!strings.Contains(errOut, "9.6.24") || !strings.Contains(errOut, server) {
		t.Fatalf("export with pg_dump 9.6: exit %d\n%s", code, errOut)
	}
	if _, errOut, code = runCLI(t, "schema", "export", "--tables", "nope", "--output", "-", "--pg-bindir", bindir, "--db", db); code != 1 ||
		!strings.Contains(errOut, "no such table(s) on the local node within the filters: nope") {
		t.Fatalf("export of a missing table: exit %d\n%s", code, errOut)
	}

	// The exported table restored into node_b: schema sync adds what orders lacks.
	b.RunClient(t, "", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", file)
	out, errOut, code = runCLI(t, "schema", "sync", "--peer", "node_a", "--mode", "auto", "--db", db)
	if code != 0 || !strings.Contains(out, "node_b now matches node node_a: 1 statement(s) applied") ||
		!strings.Contains(out, "ALTER TABLE public.orders ADD COLUMN note text;") {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = runCLI(t, "schema", "compare", "--peer", "node_a", "--db", db)
	if code != 0 || strings.TrimSpace(out) != "2 table(s): 2 MATCH" {
		t.Fatalf("compare after sync: exit %d\n%s", code, out)
	}

	// Errors carry the SQLSTATE's words, the DETAIL and the HINT.
	_, errOut, code = runCLI(t, "schema", "diff", "--peer", "node_x", "--db", db)
	if code != 1 || !strings.Contains(errOut, `node "node_x" is not registered`) || !strings.Contains(errOut, "HINT:") {
		t.Fatalf("diff with an unknown peer: exit %d\n%s", code, errOut)
	}
	_, errOut, code = runCLI(t, "schema", "drift", "--db", db)
	if code != 1 || !strings.Contains(errOut, "has no source to drift from") {
		t.Fatalf("drift without a source: exit %d\n%s", code, errOut)
	}
}

// dumpSchema is pg_dump --schema-only of db on n (args select what) without its header,
// comments and per-run \restrict key.
func dumpSchema(t *testing.T, n *harness.Node, db string, args ...string) string {
	t.Helper()
	out := n.RunClient(t, db, "pg_dump", append([]string{"--schema-only"}, args...)...)
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "--") && !restrictLine.MatchString(line) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
