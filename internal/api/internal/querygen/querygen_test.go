package querygen

import (
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseSplitsBlocksAndRefusesBadNames(t *testing.T) {
	qs, err := Parse("a.sql", "-- header\n-- name: A\nSELECT 1;\n\n-- name: B\nSELECT\n 2;\n")
	if err != nil || len(qs) != 2 || qs[0] != (Query{"A", "a.sql", "SELECT 1;"}) || qs[1].SQL != "SELECT\n 2;" {
		t.Fatalf("Parse = %#v, %v", qs, err)
	}
	for _, bad := range []string{"-- name: A\nx\n-- name: A\ny\n", "-- name: lower\nx\n", "-- name: Two Words\nx\n"} {
		if _, err := Parse("a.sql", bad); err == nil {
			t.Errorf("Parse(%q) must fail", bad)
		}
	}
}

func TestLoadRefusesANameInTwoFilesAndAnEmptyBlock(t *testing.T) {
	if _, err := Load(fstest.MapFS{"a.sql": {Data: []byte("-- name: A\nx\n")}, "b.sql": {Data: []byte("-- name: A\ny\n")}}); err == nil ||
		!strings.Contains(err.Error(), "a.sql and b.sql") {
		t.Fatalf("duplicate across files: %v", err)
	}
	if _, err := Load(fstest.MapFS{"a.sql": {Data: []byte("-- name: A\n\n-- name: B\ny\n")}}); err == nil {
		t.Fatal("an empty block must be refused")
	}
}

func TestGenerateIsSortedGoSource(t *testing.T) {
	src, err := Generate([]Query{{"B", "x.sql", "SELECT 2"}, {"A", "y.sql", "SELECT 1"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	if !regexp.MustCompile(`(?m)^\tqA query = iota // y\.sql$`).MatchString(s) || !regexp.MustCompile(`(?m)^\tqB +// x\.sql$`).MatchString(s) ||
		strings.Index(s, "qA") > strings.Index(s, "qB") || !strings.Contains(s, `qB: "B",`) {
		t.Fatalf("generated:\n%s", s)
	}
	if !regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`).MatchString(s) {
		t.Fatal("the header must mark the file as generated (go.dev/s/generatedcode)")
	}
}
