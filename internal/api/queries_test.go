package api

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/steepdb/steep_repl/internal/api/internal/querygen"
)

func TestEveryNamedQueryIsNonEmptyAndUsed(t *testing.T) {
	if len(querySQL) == 0 {
		t.Fatal("the .sql files parsed to nothing")
	}
	for id, sql := range querySQL {
		if sql == "" {
			t.Errorf("query %s is empty", query(id))
		}
	}
	used := identifiersOutsideGenerated(t)
	for _, name := range queryNames {
		if c := querygen.Const(name); !used[c] {
			t.Errorf("query %s (%s) is never used: remove its block and run go generate ./internal/api", name, c)
		}
	}
}

// identifiersOutsideGenerated returns every identifier the package's own (non-test,
// non-generated) Go files mention.
func identifiersOutsideGenerated(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if f == "queries_gen.go" || f == "gen.go" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				used[id.Name] = true
			}
			return true
		})
	}
	return used
}

func TestEveryUsedQueryHasABlock(t *testing.T) {
	// A query is used through its constant (the compiler checks those exist); each constant
	// must name a block of the .sql files.
	qs, err := querygen.Load(queryFiles)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, x := range qs {
		have[x.Name] = true
	}
	for _, name := range queryNames {
		if !have[name] {
			t.Errorf("constant %s names no -- name: block", querygen.Const(name))
		}
	}
}

func TestQueriesGenIsUpToDate(t *testing.T) {
	qs, err := querygen.Load(queryFiles)
	if err != nil {
		t.Fatal(err)
	}
	want, err := querygen.Generate(qs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("queries_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("queries_gen.go does not match the .sql files: run go generate ./internal/api")
	}
}

func TestParseQueriesSplitsBlocks(t *testing.T) {
	got, err := querygen.Parse("x.sql", "-- name: A\nSELECT 1;\n\n-- name: B\nSELECT\n 2;\n")
	if err != nil || len(got) != 2 || got[0].Name != "A" || got[0].SQL != "SELECT 1;" || got[1].Name != "B" || got[1].SQL != "SELECT\n 2;" {
		t.Fatalf("unexpected split: %#v %v", got, err)
	}
}

func TestParseQueriesRejectsDuplicates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a duplicate query name must panic")
		}
	}()
	loadQueries(fstest.MapFS{"a.sql": {Data: []byte("-- name: A\nSELECT 1;\n-- name: A\nSELECT 2;\n")}})
}

func TestLoadQueriesPanicsOnAConstantWithoutABlock(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a generated constant whose block is gone must panic")
		}
	}()
	loadQueries(fstest.MapFS{"a.sql": {Data: []byte("-- name: RegisterNode\nSELECT 1;\n")}})
}
