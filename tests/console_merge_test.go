package tests

import (
	"strings"
	"testing"
	"time"
)

// After a merge the console shows both links: both nodes SYNCHRONIZED, each the source of the
// other in the nodes view (node_a's link is its init_merge_link, recorded on node_a alone), and
// each node's status line names the other as the node it replicates from.
func TestConsoleShowsBothLinksOfAMerge(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := mergePair(t)
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)

	c := startConsole(t, "--db", p.b.ConnString(""))
	screen, _ := c.waitScreen(30*time.Second, "both nodes SYNCHRONIZED, each the source of the other", func(s string) bool {
		a, b := rowOf(s, "node_a"), rowOf(s, "node_b")
		return rowState(a) == "SYNCHRONIZED" && rowState(b) == "SYNCHRONIZED" && strings.Contains(a, " ok ") &&
			strings.Contains(a, "source of node_b") && strings.Contains(b, "source of node_a")
	})
	t.Logf("after the merge:\n%s", screen)
	// Each node's LAG is its subscription's slot read on the other node: both links are read.
	for _, node := range []string{"node_a", "node_b"} {
		if lag := lastFieldUnder(screen, rowOf(screen, node), "LAG"); !strings.HasSuffix(lag, "B") {
			t.Errorf("%s's LAG column shows %q, want its link's lag in bytes", node, lag)
		}
	}
	// node_b is selected (the --db node); node_a is the row above it.
	c.waitScreen(10*time.Second, "node_b's status line", func(s string) bool {
		return strings.Contains(s, "node_b SYNCHRONIZED from node_a")
	})
	c.keys("Up")
	c.waitScreen(10*time.Second, "node_a's status line", func(s string) bool {
		return strings.Contains(s, "node_a SYNCHRONIZED from node_b")
	})
	c.keys("q")
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("steep-console exited with status %d, want 0", code)
	}
}

// lastFieldUnder is the last word of row up to the end of the right-aligned column title.
func lastFieldUnder(screen, row, title string) string {
	header := lineWith(screen, title)
	i := strings.Index(header, " "+title+" ")
	if i < 0 {
		return ""
	}
	end := len([]rune(header[:i])) + 1 + len(title)
	r := []rune(row)
	if end > len(r) {
		return ""
	}
	f := strings.Fields(string(r[:end]))
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}
