package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// The console's actions against a real node, driven through bin/steep-console in tmux as an
// operator (the dba role, a member of steep_repl_admin): G generates a snapshot, C in the
// snapshots list cancels one, and the server's refusals reach the screen with their SQLSTATE.

// setupConsoleSnapshotNode is node_a with Chinook, steep_repl.snapshot_root set and its
// sidecar running under that root; it returns the node and the root.
func setupConsoleSnapshotNode(t *testing.T) (*harness.Node, string) {
	t.Helper()
	n := setupNode(t)
	harness.LoadChinook(t, n, "")
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	setSnapshotRoot(t, n, root)
	startSidecar(t, n, "sidecar_a", "--snapshot-root", root)
	return n, root
}

// consoleOn starts the console on n as role and waits for n's row, named name, to show the
// link (ok, or error for a role that may not read the extension).
func consoleOn(t *testing.T, n *harness.Node, role, name, link string) *tmuxConsole {
	t.Helper()
	c := startConsole(t, "--db", n.ConnStringAs(role, ""))
	c.waitScreen(30*time.Second, name+" "+link, func(s string) bool { return strings.Contains(rowOf(s, name), " "+link+" ") })
	return c
}

// flow is the screen's words without box drawing, one space between them: text that a
// dialog or a form wrapped reads as one line.
func flow(screen string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if isBorder(r) {
			return ' '
		}
		return r
	}, screen)), " ")
}

var queuedRE = regexp.MustCompile(`snapshot (snap_\w+) of node_a queued into`)

// TestConsoleGGeneratesASnapshotAndShowsTheServersRefusalOfABadDirectory: G opens the form
// with a directory under node_a's snapshot root; a relative directory is refused by
// generate_snapshot with SQLSTATE 22023, shown in the form, and nothing is recorded; a
// directory beneath the root with lz4 queues the snapshot, which the sidecar completes.
func TestConsoleGGeneratesASnapshotAndShowsTheServersRefusalOfABadDirectory(t *testing.T) {
	scenario(t)
	t.Parallel()
	n, root := setupConsoleSnapshotNode(t)
	ensureDBA(t, n)
	c := consoleOn(t, n, dbaRole, "node_a", "ok")

	c.keys("G")
	screen, _ := c.waitScreen(10*time.Second, "the snapshot form", func(s string) bool {
		return strings.Contains(s, "Snapshot of node_a") && strings.Contains(s, root+"/node_a_")
	})
	t.Logf("form:\n%s", screen)

	c.keys("C-u")
	c.keys("-l", "relative/dir")
	c.keys("Enter")
	screen, _ = c.waitScreen(10*time.Second, "the server's refusal", func(s string) bool { return strings.Contains(flow(s), "SQLSTATE 22023") })
	t.Logf("refused:\n%s", screen)
	if f := flow(screen); !strings.Contains(f, `snapshot path "relative/dir" is not an absolute path`) || !strings.Contains(f, "Snapshot of node_a") {
		t.Errorf("the refusal does not say why, or the form closed:\n%s", screen)
	}
	if got := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.snapshots"); got != 0 {
		t.Fatalf("a refused request recorded %d snapshot(s)", got)
	}

	dir := filepath.Join(root, "s1")
	c.keys("C-u")
	c.keys("-l", dir)
	c.keys("Tab", "Down", "Enter", "Tab", "Enter") // compression lz4, then Generate
	screen, _ = c.waitScreen(10*time.Second, "the snapshot queued", func(s string) bool { return queuedRE.MatchString(flow(s)) })
	id := queuedRE.FindStringSubmatch(flow(screen))[1]
	if strings.Contains(screen, "Snapshot of node_a") {
		t.Errorf("the form is still open:\n%s", screen)
	}
	c.keys("S")
	screen, _ = c.waitScreen(60*time.Second, "the snapshot complete", func(s string) bool {
		return strings.Contains(lineWith(s, id), "COMPLETE")
	})
	t.Logf("list:\n%s", screen)
	got := harness.QueryOne[string](t, n, "", "SELECT format('%s %s %s', state, compression, path) FROM steep_repl.snapshots WHERE id = $1", id)
	if got != "complete lz4 "+dir {
		t.Fatalf("snapshot %s: %s, want complete lz4 %s", id, got, dir)
	}
	if m := readManifest(t, dir); m.SnapshotID != id || m.Compression != "lz4" || len(m.Tables) != harness.ChinookTables {
		t.Fatalf("manifest of %s: id %s, compression %s, %d tables", dir, m.SnapshotID, m.Compression, len(m.Tables))
	}
}

// TestConsoleGAsARoleOutsideSteepReplAdminShowsTheServersRefusal: a role that is not a
// member of steep_repl_admin opens the form and gets generate_snapshot's refusal (42501) on
// screen; the console keeps running and nothing is recorded.
func TestConsoleGAsARoleOutsideSteepReplAdminShowsTheServersRefusal(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.Exec(t, "", "CREATE ROLE outsider LOGIN")
	addr := "(127.0.0.1:" + strconv.Itoa(n.Port) + ")"
	c := consoleOn(t, n, "outsider", addr, "ERROR")
	c.keys("G")
	c.waitScreen(10*time.Second, "the snapshot form", func(s string) bool { return strings.Contains(s, "Snapshot of "+addr) })
	c.keys("-l", "/srv/snap/x")
	c.keys("Enter")
	screen, _ := c.waitScreen(10*time.Second, "the refusal", func(s string) bool { return strings.Contains(flow(s), "SQLSTATE 42501") })
	t.Logf("refused:\n%s", screen)
	if !strings.Contains(flow(screen), "permission denied") {
		t.Errorf("the refusal does not say permission denied:\n%s", screen)
	}
	if got := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.snapshots"); got != 0 {
		t.Fatalf("%d snapshot(s) recorded", got)
	}
	c.keys("Escape") // alone: Esc and q sent together read as Alt-q
	c.waitScreen(10*time.Second, "the form closed", func(s string) bool { return !strings.Contains(s, "Snapshot of ") })
	c.keys("q")
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("steep-console exited with status %d", code)
	}
}

// TestConsoleCCancelsARunningSnapshotOnlyAfterAYes: a snapshot throttled to 1 kB/s (Chinook
// would take minutes) is generating; C in the snapshots list asks first, "n" leaves it
// running (its progress moves on, no cancel is requested), "y" cancels it through
// cancel_job: the job and the snapshot end cancelled, its slot and publication dropped.
func TestConsoleCCancelsARunningSnapshotOnlyAfterAYes(t *testing.T) {
	scenario(t)
	t.Parallel()
	n, root := setupConsoleSnapshotNode(t)
	id := dbaQuery[string](t, n, "SELECT steep_repl.generate_snapshot($1, $2)", filepath.Join(root, "slow"),
		`{"parallel": 1, "max_rate": 1000}`)
	job := harness.QueryOne[int64](t, n, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	c := consoleOn(t, n, dbaRole, "node_a", "ok")
	c.keys("S")
	c.waitScreen(30*time.Second, "the snapshot generating", func(s string) bool {
		return strings.Contains(lineWith(s, id), "GENERATING")
	})

	c.keys("C")
	screen, _ := c.waitScreen(10*time.Second, "the confirmation", func(s string) bool {
		return strings.Contains(flow(s), "Cancel snapshot "+id)
	})
	t.Logf("confirmation:\n%s", screen)
	c.keys("n")
	c.waitScreen(10*time.Second, "the confirmation gone", func(s string) bool { return !strings.Contains(flow(s), "Cancel snapshot") })
	after := harness.QueryOne[time.Time](t, n, "", "SELECT now()")
	n.WaitFor(t, 20*time.Second, "the generation's progress after the no", func() bool {
		return harness.QueryOne[bool](t, n, "", "SELECT coalesce(max(updated_at) > $2, false) FROM steep_repl.snapshot_progress WHERE job_id = $1", job, after)
	})
	if got := harness.QueryOne[string](t, n, "", "SELECT format('%s %s', state, cancel_requested_at IS NULL) FROM steep_repl.jobs WHERE id = $1", job); got != "running t" {
		t.Fatalf("job %d after no: %s, want running without a cancel request", job, got)
	}

	c.keys("C")
	c.waitScreen(10*time.Second, "the confirmation", func(s string) bool { return strings.Contains(flow(s), "Cancel snapshot "+id) })
	c.keys("y")
	screen, _ = c.waitScreen(30*time.Second, "the snapshot cancelled", func(s string) bool {
		return strings.Contains(lineWith(s, id), "CANCELLED")
	})
	t.Logf("cancelled:\n%s", screen)
	waitJobDone(t, n, job, "cancelled", 20*time.Second)
	got := harness.QueryOne[string](t, n, "", `SELECT format('%s slot=%s publication=%s', s.state,
		EXISTS (SELECT 1 FROM pg_replication_slots r WHERE r.slot_name = s.slot_name),
		EXISTS (SELECT 1 FROM pg_publication p WHERE p.pubname = s.publication))
		FROM steep_repl.snapshots s WHERE s.id = $1`, id)
	if got != "cancelled slot=f publication=f" {
		t.Fatalf("snapshot %s after the cancel: %s", id, got)
	}
}

// TestConsoleShowsAFailingDutyUntilItRecovers: tick()'s inits duty fails on node_a (the
// source of its init may not call pg_current_wal_lsn(), as in duty_test.go) while the real
// supervisor ticks: the header names the duty in red, U lists it with its failures and the
// server's error; once the source answers again, the alert goes and the duty shows ok.
func TestConsoleShowsAFailingDutyUntilItRecovers(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	ensureDBA(t, n)
	c := consoleOn(t, n, dbaRole, "node_a", "ok")
	if s := c.screen(); strings.Contains(s, "⚠ duty") {
		t.Fatalf("a duty is failing before the test broke one:\n%s", s)
	}

	n.Exec(t, "", "CREATE ROLE limited LOGIN")
	n.Exec(t, "", "REVOKE EXECUTE ON FUNCTION pg_current_wal_lsn() FROM PUBLIC")
	n.Exec(t, "", "GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO dba") // the console reads slot lags with it
	n.Exec(t, "", "SELECT steep_repl.register_node('node_src', $1, false)",
		"host=127.0.0.1 port="+strconv.Itoa(n.Port)+" dbname=postgres user=limited")
	catchingUpFrom(t, n, "node_src")
	screen, _ := c.waitScreen(20*time.Second, "the alert in the header", func(s string) bool {
		return strings.Contains(strings.SplitN(s, "\n", 2)[0], "duty inits failing on node_a")
	})
	t.Logf("alert:\n%s", screen)
	c.keys("U")
	screen, _ = c.waitScreen(10*time.Second, "the failing duty listed", func(s string) bool {
		return strings.Contains(lineWith(s, "node_a inits"), "FAILING") &&
			strings.Contains(lineWith(s, "node_a inits"), "permission denied for function pg_current_wal_lsn")
	})
	t.Logf("duties:\n%s", screen)
	if f := harness.QueryOne[int64](t, n, "", "SELECT consecutive_failures FROM steep_repl.supervisor_duties WHERE name = 'inits'"); f < 1 {
		t.Fatalf("the table says %d failures", f)
	}

	n.Exec(t, "", "GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO PUBLIC")
	screen, _ = c.waitScreen(45*time.Second, "the duty recovered", func(s string) bool {
		return !strings.Contains(s, "⚠ duty") && strings.Contains(lineWith(s, "node_a inits"), " ok ")
	})
	t.Logf("recovered:\n%s", screen)
	if f := harness.QueryOne[int64](t, n, "", "SELECT consecutive_failures FROM steep_repl.supervisor_duties WHERE name = 'inits'"); f != 0 {
		t.Fatalf("the console shows inits ok while the table says %d failures", f)
	}
}
