package cli

import (
	"slices"
	"strings"
	"testing"
)

func TestReinitScopeNeedsExactlyOneKind(t *testing.T) {
	s, err := reinitScope([]string{"node_b"}, "public.a, b", "", false, true, 2, 0)
	if err != nil || !slices.Equal(s.Tables, []string{"public.a", "b"}) || !s.Cascade || s.Parallel != 2 || s.Full {
		t.Fatalf("reinitScope = %+v, %v", s, err)
	}
	if s, err := reinitScope([]string{"node_b"}, "", "", true, false, 0, 0); err != nil || !s.Full {
		t.Fatalf("--full: %+v, %v", s, err)
	}
	for _, c := range []struct {
		args            []string
		tables, schemas string
		full            bool
		want            string
	}{
		{nil, "a", "", false, "need a NODE"},
		{[]string{"node_b"}, "", "", false, "exactly one of"},
		{[]string{"node_b"}, "a", "s", false, "exactly one of"},
		{[]string{"node_b"}, "a", "", true, "exactly one of"},
	} {
		if _, err := reinitScope(c.args, c.tables, c.schemas, c.full, false, 0, 0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("reinitScope(%v, %q, %q, %v) = %v, want %q", c.args, c.tables, c.schemas, c.full, err, c.want)
		}
	}
}
