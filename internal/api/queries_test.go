package api

import "testing"

func TestEveryNamedQueryIsNonEmptyAndUsed(t *testing.T) {
	if len(queries) == 0 {
		t.Fatal("queries.sql parsed to nothing")
	}
	for name, sql := range queries {
		if sql == "" {
			t.Errorf("query %s is empty", name)
		}
	}
}

func TestParseQueriesSplitsBlocks(t *testing.T) {
	got := parseQueries("-- name: A\nSELECT 1;\n\n-- name: B\nSELECT\n 2;\n")
	if got["A"] != "SELECT 1;" || got["B"] != "SELECT\n 2;" || len(got) != 2 {
		t.Fatalf("unexpected split: %#v", got)
	}
}

func TestParseQueriesRejectsDuplicates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a duplicate query name must panic")
		}
	}()
	parseQueries("-- name: A\nSELECT 1;\n-- name: A\nSELECT 2;\n")
}
