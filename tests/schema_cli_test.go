package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// steep-repl schema capture|compare|diff|export|sync|drift against real nodes: output, exit
// status (1 when the schemas differ), and an exported file that recreates the tables.
func TestCLISchemaCommands(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	a.Exec(t, "", `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2) NOT NULL DEFAULT 0, note text);
		CREATE TABLE "Order Items" (order_id int, line int, sku text, PRIMARY KEY (order_id, line))`)
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

	// export node_a's tables to a file, run it on node_b: everything matches.
	file := filepath.Join(t.TempDir(), "schema.sql")
	out, errOut, code = runCLI(t, "schema", "export", "--peer", "node_a", "--tables", "Order Items", "--output", file, "--db", db)
	if code != 0 || !strings.Contains(out, "wrote 1 statement(s) for 1 table(s) of node node_a") {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}
	ddl, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ddl), `CREATE TABLE public."Order Items" (order_id integer NOT NULL, line integer NOT NULL, sku text, PRIMARY KEY (order_id, line));`) {
		t.Fatalf("exported file:\n%s", ddl)
	}
	b.Exec(t, "", string(ddl))
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
