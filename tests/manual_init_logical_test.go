package tests

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// dumpWithSnapshot copies every user table of src into dst the way pg_dump --snapshot +
// restore would: all reads inside the exported snapshot, loaded without FK checks.
func dumpWithSnapshot(t *testing.T, src, dst *harness.Node, snapshot string) {
	t.Helper()
	ctx := context.Background()
	tx, err := src.Pool(t, "").BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET TRANSACTION SNAPSHOT '%s'", snapshot)); err != nil {
		t.Fatalf("import snapshot %s: %v", snapshot, err)
	}
	rows, err := tx.Query(ctx, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	load, err := dst.Pool(t, "").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Release()
	if _, err := load.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		var buf bytes.Buffer
		if _, err := tx.Conn().PgConn().CopyTo(ctx, &buf, "COPY "+table+" TO STDOUT"); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		if _, err := load.Conn().PgConn().CopyFrom(ctx, &buf, "COPY "+table+" FROM STDIN"); err != nil {
			t.Fatalf("restore %s: %v", table, err)
		}
	}
}

func TestManualInitFromALogicalDumpInTheExportedSnapshot(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	startSidecar(t, a, "sidecar_a")
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

	writes, stop := writeLoad(t, a.Pool(t, ""), 3)
	before := waitWrites(t, a, writes, 50, "before the slot")
	out, errOut, code := runCLI(t, "init", "prepare", "--node", "node_b", "--export", "--db", dbaURL(t, a))
	if code != 0 {
		t.Fatalf("init prepare --export: exit %d\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`slot (\S+), LSN (\S+), exported snapshot (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init prepare --export printed:\n%s", out)
	}
	slot, lsn, snapshot := m[1], m[2], m[3]
	waitWrites(t, a, writes, 30, "after the snapshot (they must come by replication)")
	dumpWithSnapshot(t, a, b, snapshot)
	if out, errOut, code := runCLI(t, "init", "release", "--slot", slot, "--db", dbaURL(t, a)); code != 0 {
		t.Fatalf("init release: exit %d\n%s%s", code, out, errOut)
	}
	a.WaitFor(t, 10*time.Second, "snapshot released", func() bool {
		return harness.QueryOne[bool](t, a, "", "SELECT snapshot_name IS NULL FROM steep_repl.init_slots WHERE slot_name = $1", slot)
	})

	out, errOut, code = runCLI(t, "init", "complete", "--node", "node_b", "--source", "node_a", "--slot", slot,
		"--source-lsn", lsn, "--db", dbaURL(t, b))
	if code != 0 {
		t.Fatalf("init complete: exit %d\n%s%s", code, out, errOut)
	}
	p := &pair{a: a, b: b}
	p.waitState(t, "synchronized", 60*time.Second)
	synced := writes.Load()
	after := waitWrites(t, a, writes, 100, "after the init") - synced
	stop()
	t.Logf("%d write transactions during the manual init", writes.Load())
	assertWritesInEveryPhase(t, before, synced-before, after)
	assertCleanReplication(t, p)
	assertSubscribedOriginNone(t, p.b)
}
