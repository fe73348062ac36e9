package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// TestConsoleShowsInitProgressDetailCancelAndQuits runs bin/steep-console in tmux against a
// real pair during an init: COPYING with a growing percent, D lists the tables, C + y cancels
// and UNINITIALIZED is drawn within 2 s of the state change, q exits with status 0.
func TestConsoleShowsInitProgressDetailCancelAndQuits(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.addSlowTable(t, 20000, 2*time.Millisecond) // about 40 s of copying
	c := startConsole(t, "--db", p.b.ConnString(""))
	c.waitScreen(30*time.Second, "both nodes, node_b UNINITIALIZED", func(s string) bool {
		return rowState(rowOf(s, "node_b")) == "UNINITIALIZED" && strings.Contains(rowOf(s, "node_a"), " ok ")
	})

	p.startInit(t, `{"parallel": 2}`)
	screen, _ := c.waitScreen(30*time.Second, "node_b COPYING with a percent", func(s string) bool {
		row := rowOf(s, "node_b")
		return rowState(row) == "COPYING" && percentOf(row) > 0
	})
	first := percentOf(rowOf(screen, "node_b"))
	if role := rowOf(screen, "node_a"); !strings.Contains(role, "source of node_b") {
		t.Errorf("node_a's row does not say it is the source of node_b: %q", role)
	}
	screen, _ = c.waitScreen(30*time.Second, "node_b's percent growing", func(s string) bool {
		row := rowOf(s, "node_b")
		return rowState(row) == "COPYING" && percentOf(row) > first
	})
	t.Logf("copying, %.1f%% then %.1f%%:\n%s", first, percentOf(rowOf(screen, "node_b")), screen)

	c.keys("Down") // node_b is the second row (and selected already: it is the --db node)
	c.keys("D")
	screen, _ = c.waitScreen(10*time.Second, "the per-table list", func(s string) bool {
		return strings.Contains(s, "public.slow") && strings.Contains(s, "public.track") &&
			strings.Contains(s, "parallel workers 2") && strings.Contains(s, "throughput, last 60 s")
	})
	t.Logf("detail:\n%s", screen)
	// With two workers, slow's copy may start only after smaller tables: wait for it, then it
	// must be the one marked current (and stays so for its ~40 s).
	screen, _ = c.waitScreen(60*time.Second, "public.slow marked as the table being copied", func(s string) bool {
		return strings.Contains(lineWith(s, "public.slow"), "▶")
	})
	if strings.Contains(lineWith(screen, "public.album"), "▶") {
		t.Errorf("a copied table is marked current:\n%s", screen)
	}
	c.keys("Escape")
	c.waitScreen(5*time.Second, "the detail closed", func(s string) bool { return !strings.Contains(s, "public.slow") })

	c.keys("C")
	screen, _ = c.waitScreen(5*time.Second, "the cancel confirmation", func(s string) bool {
		return strings.Contains(s, "Cancel the init of node_b")
	})
	t.Logf("confirmation:\n%s", screen)
	if st := p.state(t); st != "copying" {
		t.Fatalf("the confirmation alone changed the state to %s", st)
	}
	c.keys("y")
	_, shownAt := c.waitScreen(60*time.Second, "node_b UNINITIALIZED after the cancel", func(s string) bool {
		return rowState(rowOf(s, "node_b")) == "UNINITIALIZED"
	})
	changedAt := harness.QueryOne[time.Time](t, p.b, "", `SELECT max(at) FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'init.state_change' AND to_state = 'uninitialized'`)
	lag := shownAt.Sub(changedAt)
	t.Logf("UNINITIALIZED drawn %s after the state change", lag.Round(time.Millisecond))
	if lag > 2*time.Second {
		t.Errorf("UNINITIALIZED drawn %s after the state change, want within 2 s", lag)
	}
	if st := p.state(t); st != "uninitialized" {
		t.Fatalf("node_b is %s after the cancel", st)
	}

	c.keys("q")
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("steep-console exited with status %d, want 0", code)
	}
}

// TestConsoleShowsAnUnreachableNodeAndItsRecovery kills node_a while the console (given
// node_b) runs: its row says UNREACHABLE, the console keeps running, and the row recovers
// once node_a is back.
func TestConsoleShowsAnUnreachableNodeAndItsRecovery(t *testing.T) {
	scenario(t)
	t.Parallel()
	a, b := setupConsoleNodes(t)
	c := startConsole(t, "--db", b.ConnString(""))
	c.waitScreen(30*time.Second, "node_a connected", func(s string) bool {
		row := rowOf(s, "node_a")
		return strings.Contains(row, " ok ") && rowState(row) == "UNINITIALIZED" && strings.Contains(rowOf(s, "node_b"), " ok ")
	})

	a.Crash(t)
	screen, _ := c.waitScreen(15*time.Second, "node_a UNREACHABLE", func(s string) bool {
		return strings.Contains(rowOf(s, "node_a"), "UNREACHABLE")
	})
	t.Logf("node_a down:\n%s", screen)
	if !strings.Contains(rowOf(screen, "node_b"), " ok ") {
		t.Errorf("node_b's row changed while node_a was down: %q", rowOf(screen, "node_b"))
	}

	a.Restart(t)
	c.waitScreen(30*time.Second, "node_a recovered", func(s string) bool {
		row := rowOf(s, "node_a")
		return strings.Contains(row, " ok ") && !strings.Contains(row, "UNREACHABLE") && rowState(row) == "UNINITIALIZED"
	})

	c.keys("q")
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("steep-console exited with status %d, want 0", code)
	}
}

// lineWith is the first screen line containing s.
func lineWith(screen, s string) string {
	for _, line := range strings.Split(screen, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// TestConsoleWithoutSuperuserShowsOtherNodesAsNotConnected: a steep_repl_admin (not a
// superuser) cannot read the registered conninfos, so the other node is listed from the
// registry, marked "not connected" with the reason, and the console still works.
func TestConsoleWithoutSuperuserShowsOtherNodesAsNotConnected(t *testing.T) {
	t.Parallel()
	_, b := setupConsoleNodes(t)
	b.Exec(t, "", "CREATE ROLE watcher LOGIN IN ROLE steep_repl_admin")
	url := strings.Replace(b.ConnString(""), "postgres://postgres@", "postgres://watcher@", 1)
	c := startConsole(t, "--db", url)
	conflicts := " 0 " // PostgreSQL 18 counts conflicts; before 18 the column says n/a
	if harness.QueryOne[int32](t, b, "", "SELECT current_setting('server_version_num')::int") < 180000 {
		conflicts = " n/a "
	}
	c.waitScreen(30*time.Second, "node_b ok, node_a not connected", func(s string) bool {
		return strings.Contains(rowOf(s, "node_b"), " ok ") && strings.Contains(rowOf(s, "node_a"), "not connected") &&
			rowState(rowOf(s, "node_a")) == "UNINITIALIZED" && strings.Contains(rowOf(s, "node_b"), conflicts)
	})
	c.keys("Up")
	c.waitScreen(5*time.Second, "the reason", func(s string) bool {
		return strings.Contains(s, "node_a not connected: its conninfo is readable by superusers only")
	})
	c.keys("q")
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("steep-console exited with status %d, want 0", code)
	}
}

// TestConsoleNodesViewIsNotRedAfterACleanInit: after a clean init the source updates and
// deletes rows the table sync copied. PostgreSQL 18 counts those as update_origin_differs /
// delete_origin_differs (the copied rows carry the table-sync worker's origin); they are not
// data conflicts, so node_b's CONFL column shows 0 while the F overlay lists them, explained.
func TestConsoleNodesViewIsNotRedAfterACleanInit(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.startInit(t, "{}")
	p.waitState(t, "synchronized", 90*time.Second)
	p.a.Exec(t, "", "UPDATE genre SET name = name || ' '")
	p.a.Exec(t, "", "DELETE FROM playlist_track WHERE playlist_id = 1 AND track_id < 500")
	p.waitEqual(t, 30*time.Second)

	pg18 := harness.QueryOne[int32](t, p.b, "", "SELECT current_setting('server_version_num')::int") >= 180000
	want := "n/a"
	if pg18 {
		want = "0"
		p.b.WaitFor(t, 30*time.Second, "origin_differs counted on node_b", func() bool {
			return harness.QueryOne[int64](t, p.b, "", `SELECT coalesce(sum(confl_update_origin_differs + confl_delete_origin_differs), 0)::bigint
				FROM pg_stat_subscription_stats`) > 0
		})
		if n := harness.QueryOne[int64](t, p.b, "", `SELECT coalesce(sum(confl_insert_exists + confl_update_exists +
			confl_update_missing + confl_delete_missing + confl_multiple_unique_conflicts), 0)::bigint FROM pg_stat_subscription_stats`); n != 0 {
			t.Fatalf("a clean init left %d data conflicts", n)
		}
	}

	c := startConsole(t, "--db", p.b.ConnString(""))
	screen, _ := c.waitScreen(30*time.Second, "node_b SYNCHRONIZED with CONFL "+want, func(s string) bool {
		row := rowOf(s, "node_b")
		return rowState(row) == "SYNCHRONIZED" && strings.Contains(row, " ok ") && conflColumn(s, row) == want
	})
	t.Logf("after a clean init:\n%s", screen)
	if pg18 {
		c.keys("F")
		screen, _ = c.waitScreen(10*time.Second, "origin_differs in the conflicts overlay", func(s string) bool {
			return strings.Contains(s, "confl_update_origin_differs (not a data conflict)") &&
				strings.Contains(lineWith(s, "origin_differs is not a data conflict"), "the source then changes.")
		})
		t.Logf("conflicts overlay:\n%s", screen)
		if line := lineWith(screen, "total of data conflicts"); !strings.HasSuffix(strings.TrimRightFunc(line, isBorder), " 0") {
			t.Errorf("the total of data conflicts is not 0: %q", line)
		}
		c.keys("Escape")
	}
	c.keys("q")
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("steep-console exited with status %d, want 0", code)
	}
}

// conflColumn is the text of a nodes-view row under the right-aligned CONFL title.
func conflColumn(screen, row string) string {
	header := lineWith(screen, "CONFL")
	i := strings.Index(header, "CONFL")
	if i < 0 {
		return ""
	}
	end := len([]rune(header[:i])) + len("CONFL")
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
