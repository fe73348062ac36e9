package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// waitExported waits until the export job of slot holds its snapshot and returns its name and LSN.
func waitExported(t *testing.T, a *harness.Node, slot string) (snapshot, lsn string) {
	t.Helper()
	a.WaitFor(t, 30*time.Second, "the exported snapshot held", func() bool {
		return harness.QueryOne[bool](t, a, "", "SELECT EXISTS (SELECT 1 FROM steep_repl.init_slots WHERE slot_name = $1 AND snapshot_name IS NOT NULL)", slot)
	})
	if err := a.Pool(t, "").QueryRow(context.Background(), "SELECT snapshot_name, consistent_lsn::text FROM steep_repl.init_slots WHERE slot_name = $1",
		slot).Scan(&snapshot, &lsn); err != nil {
		t.Fatal(err)
	}
	return snapshot, lsn
}

// importSnapshotErr tries what pg_dump --snapshot does first: import the exported snapshot.
func importSnapshotErr(t *testing.T, a *harness.Node, snapshot string) error {
	t.Helper()
	ctx := context.Background()
	tx, err := a.Pool(t, "").BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, fmt.Sprintf("SET TRANSACTION SNAPSHOT '%s'", snapshot))
	return err
}

// The sidecar holding a manual init's exported snapshot is SIGKILLed before the DBA's dump
// imported it: the snapshot is gone with its session. Once the lease is reaped the source says so
// (init_slots.snapshot_name cleared, an init.snapshot_lost event with the reason and what to do,
// release_init_snapshot says it is not held); prepare_init_export again for the same slot replaces
// it, and the dump, release and complete_init then end equal.
func TestSidecarKilledDuringTheExportHoldSaysTheSnapshotIsLostAndARetryEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	a := manualSource(t)
	b := harness.Start(t, harness.DefaultOptions())
	failOnTickErrors(t, b)
	b.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
	b.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, false)", libpqConninfo(a))
	b.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, true)", libpqConninfo(b))
	harness.LoadChinook(t, b, "")
	b.Exec(t, "", `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT format('%I.%I', schemaname, tablename) t FROM pg_tables WHERE schemaname = 'public' LOOP
			EXECUTE 'TRUNCATE ' || r.t || ' CASCADE'; END LOOP; END $$`)
	for i := 1; i <= 3; i++ {
		b.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
	}

	car := startSidecar(t, a, "sidecar_a", "--lease", "2s")
	job := dbaQuery[int64](t, a, "SELECT steep_repl.prepare_init_export('node_b')")
	slot := "sr_node_a_node_b"
	lost, _ := waitExported(t, a, slot)
	car.kill()
	a.WaitFor(t, 30*time.Second, "the lost snapshot recorded", func() bool {
		return harness.QueryOne[bool](t, a, "", "SELECT snapshot_name IS NULL FROM steep_repl.init_slots WHERE slot_name = $1", slot)
	})
	if st := jobState(t, a, job); st != "failed" {
		t.Fatalf("the export job is %s after its sidecar was killed, want failed", st)
	}
	detail := harness.QueryOne[string](t, a, "", `SELECT coalesce((SELECT detail::text FROM steep_repl.events
		WHERE event = 'init.snapshot_lost' AND node = 'node_b' AND detail->>'slot' = $1), '')`, slot)
	for _, want := range []string{lost, "stopped heartbeating", "complete_init", "prepare_init_export"} {
		if !strings.Contains(detail, want) {
			t.Fatalf("init.snapshot_lost event %q does not say %q", detail, want)
		}
	}
	if err := importSnapshotErr(t, a, lost); err == nil {
		t.Fatalf("snapshot %s can still be imported after its holder was killed", lost)
	}
	if held := dbaQuery[bool](t, a, "SELECT steep_repl.release_init_snapshot($1)", slot); held {
		t.Fatalf("release_init_snapshot says the lost snapshot was held")
	}

	// Start over: the same slot is replaced, the dump runs in the new snapshot, ends equal.
	startSidecar(t, a, "sidecar_a2", "--lease", "2s")
	writes, stop := writeLoad(t, a.Pool(t, ""), 3)
	oldLSN := harness.QueryOne[string](t, a, "", "SELECT consistent_lsn::text FROM steep_repl.init_slots WHERE slot_name = $1", slot)
	dbaExec(t, a, "SELECT steep_repl.prepare_init_export('node_b')")
	a.WaitFor(t, 30*time.Second, "the new slot exported", func() bool {
		return harness.QueryOne[bool](t, a, "", `SELECT EXISTS (SELECT 1 FROM steep_repl.init_slots
			WHERE slot_name = $1 AND snapshot_name IS NOT NULL AND consistent_lsn::text <> $2)`, slot, oldLSN)
	})
	snapshot, lsn := waitExported(t, a, slot)
	if n := eventCount(t, a, "init.slot_replaced"); n != 1 {
		t.Fatalf("%d init.slot_replaced events, want 1", n)
	}
	waitWrites(t, a, writes, 30, "after the new snapshot (they must come by replication)")
	dumpWithSnapshot(t, a, b, snapshot)
	if !dbaQuery[bool](t, a, "SELECT steep_repl.release_init_snapshot($1)", slot) {
		t.Fatalf("release_init_snapshot of the new hold returned false")
	}
	dbaExec(t, b, "SELECT steep_repl.complete_init('node_b', 'node_a', $1, $2::pg_lsn)", slot, lsn)
	waitWrites(t, a, writes, 30, "after complete_init")
	stop()
	p := &pair{a: a, b: b}
	p.waitState(t, "synchronized", 90*time.Second)
	assertCleanReplication(t, p)
	if n := harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM pg_replication_slots"); n != 1 {
		t.Fatalf("%d slots on the source, want only the init's", n)
	}
}
