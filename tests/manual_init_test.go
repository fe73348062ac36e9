package tests

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// manualSource starts node_a with the extension, Chinook and three load tables, registered as the
// local node, with node_b registered as the node to seed (its address is not used by manual init).
func manualSource(t *testing.T) *harness.Node {
	t.Helper()
	a := setupNode(t)
	a.Exec(t, "", "SELECT steep_repl.register_node('node_b', 'host=127.0.0.1 port=1 dbname=postgres', false)")
	harness.LoadChinook(t, a, "")
	for i := 1; i <= 3; i++ {
		a.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g", i))
	}
	return a
}

// baseBackupInto takes a low-level base backup of src into dir (pg_backup_start, file copy,
// pg_backup_stop, backup_label) and returns the backup's end LSN.
func baseBackupInto(t *testing.T, src *harness.Node, dir string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := src.Pool(t, "").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_backup_start('steep_repl test', true)"); err != nil {
		t.Fatal(err)
	}
	if err := harness.CopyDataDir(src, dir); err != nil {
		t.Fatal(err)
	}
	var lsn, label, spcmap string
	if err := conn.QueryRow(ctx, "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(true)").Scan(&lsn, &label, &spcmap); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "backup_label"), label)
	if spcmap != "" {
		writeFile(t, filepath.Join(dir, "tablespace_map"), spcmap)
	}
	return lsn
}

func restoreSettings(src *harness.Node, extra map[string]string) harness.Options {
	opts := harness.DefaultOptions()
	opts.Settings = map[string]string{"restore_command": fmt.Sprintf("cp %s/pg_wal/%%f %%p", src.DataDir)}
	maps.Copy(opts.Settings, fastSupervisor)
	maps.Copy(opts.Settings, extra)
	return opts
}

func waitPromoted(t *testing.T, n *harness.Node) {
	t.Helper()
	n.WaitFor(t, 60*time.Second, "promotion", func() bool {
		return !harness.QueryOne[bool](t, n, "", "SELECT pg_is_in_recovery()")
	})
}

// assertCleanReplication: every row equal and no apply error or data conflict on the target.
func assertCleanReplication(t *testing.T, p *pair) {
	t.Helper()
	p.waitEqual(t, 60*time.Second)
	assertNoSubscriptionErrors(t, p.b)
}

// assertNoSubscriptionErrors checks pg_stat_subscription_stats on the target: no apply or sync
// error and, on PostgreSQL 18, no data conflict. The origin_differs counters are left out on
// purpose: rows written by a table-sync worker or restored from a backup do not carry the
// subscription's origin, so PostgreSQL 18 counts every later update or delete of them as
// "origin differs" (and applies it). They are not data conflicts.
func assertNoSubscriptionErrors(t *testing.T, n *harness.Node) {
	t.Helper()
	conflicts := "0"
	if harness.QueryOne[int32](t, n, "", "SELECT current_setting('server_version_num')::int") >= 180000 {
		conflicts = "confl_insert_exists + confl_update_exists + confl_update_missing + confl_delete_missing + confl_multiple_unique_conflicts"
	}
	got := harness.QueryOne[string](t, n, "", fmt.Sprintf(`SELECT format('apply=%%s sync=%%s conflicts=%%s', apply_error_count,
		sync_error_count, %s) FROM pg_stat_subscription_stats`, conflicts))
	if got != "apply=0 sync=0 conflicts=0" {
		t.Fatalf("subscription stats on %s: %s", n.Name, got)
	}
}

func TestManualInitFromAPhysicalBackupUnderWriteLoad(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	writes, stop := writeLoad(t, a.Pool(t, ""), 3)
	before := waitWrites(t, a, writes, 50, "before the slot")

	var slot, slotLSN string
	if err := dbaPool(t, a).QueryRow(t.Context(), "SELECT slot, lsn::text FROM steep_repl.prepare_init('node_b')").Scan(&slot, &slotLSN); err != nil {
		t.Fatal(err)
	}
	waitWrites(t, a, writes, 30, "between the slot and the backup")
	var endLSN string
	b := harness.StartFromDataDir(t, restoreSettings(a, map[string]string{
		"recovery_target": "immediate", "recovery_target_action": "promote"}), "node_b", func(dir string) error {
		endLSN = baseBackupInto(t, a, dir)
		writeFile(t, filepath.Join(dir, "recovery.signal"), "")
		return nil
	})
	failOnTickErrors(t, b)
	waitPromoted(t, b)
	t.Logf("slot %s consistent at %s; backup ended at %s", slot, slotLSN, endLSN)

	report := dbaQuery[string](t, b, "SELECT steep_repl.complete_init('node_b', 'node_a', $1)::text", slot)
	if !strings.Contains(report, `"lsn_from": "timeline history"`) || !strings.Contains(report, `"identity_assumed": true`) {
		t.Fatalf("complete_init report %s", report)
	}
	if code, _ := dbaState(t, b, "SELECT steep_repl.complete_init('node_b', 'node_a', $1)", slot); code != "55000" {
		t.Fatalf("a second complete_init: SQLSTATE %q, want 55000", code)
	}
	p := &pair{a: a, b: b}
	p.waitState(t, "synchronized", 60*time.Second)
	synced := writes.Load()
	after := waitWrites(t, a, writes, 100, "after the init") - synced
	stop()
	t.Logf("%d write transactions during the manual init", writes.Load())
	assertWritesInEveryPhase(t, before, synced-before, after)
	assertCleanReplication(t, p)
	assertSubscribedOriginNone(t, b)
	if local := harness.QueryOne[string](t, b, "", "SELECT name FROM steep_repl.nodes WHERE is_local"); local != "node_b" {
		t.Fatalf("the restored copy thinks it is %s", local)
	}
	if used := harness.QueryOne[string](t, a, "", "SELECT coalesce(used_by, '') FROM steep_repl.init_slots WHERE slot_name = $1", slot); used != "node_b" {
		t.Fatalf("the source did not record the slot as used (used_by %q)", used)
	}
}

// assertSubscribedOriginNone: the subscription complete_init made on n takes only the source's
// own changes (origin = none, as the sidecar's), so a change the source received from a third
// node is neither forwarded here nor sent back around a loop.
func assertSubscribedOriginNone(t *testing.T, n *harness.Node) {
	t.Helper()
	got := harness.QueryOne[string](t, n, "", `SELECT string_agg(subname || ' origin=' || suborigin || ' streaming=' || substream::text, ', ')
		FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if got != "sr_node_a_node_b origin=none streaming=p" {
		t.Fatalf("subscriptions on %s: %s", n.Name, got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestManualInitFromAStandbyPromotedAtTheSlotLSN(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	writes, stop := writeLoad(t, a.Pool(t, ""), 3)
	primary := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres", a.Port)
	standbyOpts := restoreSettings(a, map[string]string{"primary_conninfo": primary})
	b := harness.StartFromDataDir(t, standbyOpts, "node_b", func(dir string) error {
		baseBackupInto(t, a, dir)
		writeFile(t, filepath.Join(dir, "standby.signal"), "")
		return nil
	})
	failOnTickErrors(t, b)
	b.WaitFor(t, 60*time.Second, "the standby streaming", func() bool {
		return harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1
	})

	// The pg_createsubscriber way: stop the standby, make the slot, replay exactly to it, promote.
	b.Stop(t)
	before := waitWrites(t, a, writes, 50, "before the slot")
	var slot, lsn string
	if err := dbaPool(t, a).QueryRow(t.Context(), "SELECT slot, lsn::text FROM steep_repl.prepare_init('node_b')").Scan(&slot, &lsn); err != nil {
		t.Fatal(err)
	}
	promoteOpts := restoreSettings(a, map[string]string{"primary_conninfo": primary,
		"recovery_target_lsn": lsn, "recovery_target_action": "promote"})
	b.Reconfigure(t, promoteOpts)
	b.Restart(t)
	waitPromoted(t, b)

	report := dbaQuery[string](t, b, "SELECT steep_repl.complete_init('node_b', 'node_a', $1)::text", slot)
	t.Logf("slot at %s; complete_init: %s", lsn, report)
	p := &pair{a: a, b: b}
	p.waitState(t, "synchronized", 60*time.Second)
	synced := writes.Load()
	after := waitWrites(t, a, writes, 100, "after the init") - synced
	stop()
	t.Logf("%d write transactions during the manual init", writes.Load())
	assertWritesInEveryPhase(t, before, synced-before, after)
	assertCleanReplication(t, p)
}

func TestPreparedSlotPastExpiryIsDroppedAndCannotBeCompleted(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	var slot string
	if err := dbaPool(t, a).QueryRow(t.Context(), "SELECT slot FROM steep_repl.prepare_init('node_b', 'short_lived', '200 milliseconds')").Scan(&slot); err != nil {
		t.Fatal(err)
	}
	// The slot's drop is not transactional: wait for the tick that dropped it to commit its event.
	a.WaitFor(t, 10*time.Second, "the supervisor recording the expired slot", func() bool {
		return eventCount(t, a, "init.slot_expired") > 0
	})
	ev := harness.QueryOne[string](t, a, "", "SELECT format('%s %s', node, detail->>'slot') FROM steep_repl.events WHERE event = 'init.slot_expired'")
	if ev != "node_b short_lived" {
		t.Fatalf("expiry event %q", ev)
	}
	if n := harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'short_lived'"); n != 0 {
		t.Fatal("the expired slot is still there")
	}
	// A second node stands for the seeded target: it reaches node_a through the registry.
	opts := harness.DefaultOptions()
	b := harness.Start(t, opts)
	b.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
	b.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, false)", libpqConninfo(a))
	b.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, true)", libpqConninfo(b))
	code, pgErr := dbaState(t, b, "SELECT steep_repl.complete_init('node_b', 'node_a', 'short_lived', '0/1')")
	if code != "55000" || !strings.Contains(pgErr.Message, `slot "short_lived" on node "node_a" is gone: expired at`) {
		t.Fatalf("completing with an expired slot: %s %+v", code, pgErr)
	}
}

func TestCompleteInitRefusesBadSlotsAndEarlyBackups(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	var lsn string
	if err := dbaPool(t, a).QueryRow(t.Context(), "SELECT lsn::text FROM steep_repl.prepare_init('node_b')").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	b := harness.Start(t, harness.DefaultOptions())
	failOnTickErrors(t, b)
	b.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
	b.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, false)", libpqConninfo(a))
	b.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, true)", libpqConninfo(b))
	b.Exec(t, "", "SELECT steep_repl.register_node('node_c', 'host=127.0.0.1 port=1 connect_timeout=2', false)")
	cases := []struct{ name, sql, code, msg string }{
		{"backup before the slot", "SELECT steep_repl.complete_init('node_b', 'node_a', 'sr_node_a_node_b', '0/10')", "55000", "before slot \"sr_node_a_node_b\"'s consistent point"},
		{"slot never prepared", "SELECT steep_repl.complete_init('node_b', 'node_a', 'nope', $1::pg_lsn)", "42704", `slot "nope" was not prepared`},
		{"no LSN on a never-promoted server", "SELECT steep_repl.complete_init('node_b', 'node_a', 'sr_node_a_node_b')", "22023", "source_lsn is needed"},
		{"unknown source", "SELECT steep_repl.complete_init('node_b', 'node_x', 'sr_node_a_node_b', $1::pg_lsn)", "42704", `node "node_x" is not registered`},
		{"unreachable source", "SELECT steep_repl.complete_init('node_b', 'node_c', 'sr_node_a_node_b', $1::pg_lsn)", "08001", `source node "node_c" is not reachable`},
		{"target is source", "SELECT steep_repl.complete_init('node_a', 'node_a', 'sr_node_a_node_b', $1::pg_lsn)", "22023", "same node"},
		{"NULL slot", "SELECT steep_repl.complete_init('node_b', 'node_a', NULL, $1::pg_lsn)", "22004", "slot_name must not be NULL"},
		{"unknown option", `SELECT steep_repl.complete_init('node_b', 'node_a', 'sr_node_a_node_b', $1::pg_lsn, '{"sync": "auto"}')`, "22023", `unknown complete_init option "sync"`},
		{"seeded tables differ (strict)", "SELECT steep_repl.complete_init('node_b', 'node_a', 'sr_node_a_node_b', $1::pg_lsn)", "42P16", `schemas of "node_a" and "node_b" differ`},
	}
	for _, c := range cases {
		args := []any{}
		if strings.Contains(c.sql, "$1") {
			args = append(args, lsn)
		}
		code, pgErr := dbaState(t, b, c.sql, args...)
		if code != c.code || !strings.Contains(pgErr.Message, c.msg) {
			t.Errorf("%s: %s %v, want %s %q", c.name, code, pgErr, c.code, c.msg)
		}
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM pg_subscription"); n != 0 {
		t.Fatal("a refused complete_init created a subscription")
	}
	if used := harness.QueryOne[bool](t, a, "", "SELECT used_at IS NULL FROM steep_repl.init_slots"); !used {
		t.Fatal("a refused complete_init marked the slot used")
	}
	for _, c := range []struct{ sql, code string }{
		{"SELECT * FROM steep_repl.prepare_init('node_a')", "22023"},
		{"SELECT * FROM steep_repl.prepare_init('node_x')", "42704"},
		{"SELECT * FROM steep_repl.prepare_init('node_b')", "42710"},
		{"SELECT * FROM steep_repl.prepare_init('node_b', 'Bad Name')", "22023"},
		{"SELECT * FROM steep_repl.prepare_init('node_b', 'other', '-1 day')", "22023"},
	} {
		if code, _ := dbaState(t, a, c.sql); code != c.code {
			t.Errorf("%s: SQLSTATE %q, want %s", c.sql, code, c.code)
		}
	}
}
