package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestTableStrategyFlagsCollectSchemaTableEqualsStrategy(t *testing.T) {
	ts := tableStrategies{}
	for _, s := range []string{"public.a=prefer-source", "s.b=last-modified", "public.a=manual"} {
		if err := ts.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	if len(ts) != 2 || ts["public.a"] != "manual" || ts["s.b"] != "last-modified" {
		t.Fatalf("tableStrategies = %v", ts)
	}
	for _, bad := range []string{"public.a", "=x", "public.a="} {
		if err := ts.Set(bad); err == nil {
			t.Errorf("Set(%q) must fail", bad)
		}
	}
}

func TestMergeCommandLineMistakesAreUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{[]string{"merge", "node_b"}, "need a TARGET node and --from SOURCE"},
		{[]string{"merge", "--from", "node_a"}, "need a TARGET node and --from SOURCE"},
		{[]string{"merge", "node_b", "--from", "node_a", "--json"}, "--json goes with --dry-run"},
		{[]string{"merge", "node_b", "--from", "node_a", "--table-strategy", "public.t"}, "want schema.table=STRATEGY"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), tt.argv, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.argv, code, stderr.String(), tt.want)
		}
	}
}
