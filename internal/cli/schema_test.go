package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
)

func schemaStr(s string) *string { return &s }

func TestPrintSchemaCompare(t *testing.T) {
	rows := []api.TableFingerprint{
		{Schema: "public", Table: "a", Status: api.FingerprintMatch, Local: schemaStr("aaaaaaaaaaaaaaaa"), Peer: schemaStr("aaaaaaaaaaaaaaaa")},
		{Schema: "public", Table: "b", Status: api.FingerprintMismatch, Local: schemaStr("bbbbbbbbbbbbbbbb"), Peer: schemaStr("cccccccccccccccc")},
		{Schema: "public", Table: "c", Status: api.FingerprintRemoteOnly, Peer: schemaStr("dddddddddddddddd")},
	}
	var out bytes.Buffer
	if err := printSchemaCompare(&out, rows, false); err != nil {
		t.Fatal(err)
	}
	want := "TABLE     STATUS       HERE          ON PEER\n" +
		"public.b  MISMATCH     bbbbbbbbbbbb  cccccccccccc\n" +
		"public.c  REMOTE_ONLY  -             dddddddddddd\n" +
		"3 table(s): 1 MATCH, 1 MISMATCH, 1 REMOTE_ONLY\n"
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := printSchemaCompare(&out, rows[:1], true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "public.a  MATCH") || !strings.HasSuffix(out.String(), "1 table(s): 1 MATCH\n") {
		t.Fatalf("--all: %q", out.String())
	}
	if n := countSchemaDiffering(rows); n != 2 {
		t.Fatalf("countSchemaDiffering = %d", n)
	}
	if s := schemaCompareSummary(nil); s != "no tables on either side" {
		t.Fatalf("empty summary %q", s)
	}
}

func TestWriteSchemaFileNeverLeavesHalfAFile(t *testing.T) {
	text := "CREATE TABLE sales.orders (id integer NOT NULL);\n"
	path := filepath.Join(t.TempDir(), "out.sql")
	if err := writeSchemaFile(path, text); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != text {
		t.Fatalf("file: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if err := writeSchemaFile(filepath.Join(t.TempDir(), "missing", "out.sql"), text); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

func TestExportSelectionNamesEveryTableOrRefusesAMissingOne(t *testing.T) {
	found := []api.TableName{{Schema: "public", Table: "Order Items"}, {Schema: "sales", Table: "orders"}}
	scope := api.SchemaScope{Tables: []string{"Order Items", "sales.orders"}}
	args, err := exportSelection(t.Context(), nil, scope, found, "node a")
	if err != nil || strings.Join(args, " ") != `--table="public"."Order Items" --table="sales"."orders"` {
		t.Fatalf("selection: %q, %v", args, err)
	}
	if got := tableSchemas(scope, found); got != "CREATE SCHEMA IF NOT EXISTS \"sales\";\n" {
		t.Fatalf("schemas: %q", got)
	}
	scope.Tables = append(scope.Tables, "nope\x1b")
	if _, err := exportSelection(t.Context(), nil, scope, found, "node a"); err == nil || !strings.Contains(err.Error(), `nope\x1b`) {
		t.Fatalf("a missing table: %v", err)
	}
}

func TestPrintSchemaSyncAndDrift(t *testing.T) {
	var out bytes.Buffer
	printSchemaSync(&out, &api.SyncReport{Peer: "node_a", Node: "node_b", Mode: "auto", Status: "synced",
		Differences: []string{"d1", "d2"}, Applied: []string{"ALTER TABLE public.t ADD COLUMN c int"}})
	if out.String() != "node_b now matches node node_a: 1 statement(s) applied for 2 difference(s)\n  ALTER TABLE public.t ADD COLUMN c int;\n" {
		t.Fatalf("synced: %q", out.String())
	}
	out.Reset()
	printSchemaSync(&out, &api.SyncReport{Peer: "node_a", Mode: "strict", Status: "match", Tables: 11})
	if out.String() != "the 11 table(s) in scope match node node_a (mode strict)\n" {
		t.Fatalf("match: %q", out.String())
	}
	out.Reset()
	printSchemaDrift(&out, &api.DriftReport{Node: "node_b", Source: "node_a", Status: "drift", Diverged: true, Differences: []string{"d1"}})
	if out.String() != "node_b has drifted from its source node_a (1 difference(s)); it is now DIVERGED\n  d1\n" {
		t.Fatalf("drift: %q", out.String())
	}
}

func TestSchemaCommandLine(t *testing.T) {
	for _, args := range [][]string{
		{"schema", "compare"},
		{"schema", "diff", "--peer", "node_a", "--table", "t"},
		{"schema", "export"},
		{"schema", "sync"},
		{"schema", "capture", "extra"},
		{"schema", "drift", "a", "b"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", args, code, stderr.String())
		}
	}
	// Bool flags take no value, so a positional argument may follow them.
	got := interleave([]string{"drift", "--json", "node_b"})
	if strings.Join(got, " ") != "--json drift node_b" {
		t.Fatalf("interleave: %v", got)
	}
}
