package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// snapTrio is a source (node_a) and two targets (node_b, node_c), each registered on all three,
// each with its sidecar under one snapshot root (as an operator's snapshots must be).
type snapTrio struct {
	a, b, c *harness.Node
	dir     string // the snapshot's directory, beneath the root
}

func setupSnapTrio(t *testing.T) *snapTrio {
	t.Helper()
	opts := harness.DefaultOptions()
	opts.Settings = fastSupervisor
	nodes := harness.StartN(t, 3, opts)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		failOnTickErrors(t, n)
		n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
		for i, name := range []string{"node_a", "node_b", "node_c"} {
			n.Exec(t, "", "SELECT steep_repl.register_node($1, $2, $3)", name, libpqConninfo(nodes[i]), n == nodes[i])
		}
		setSnapshotRoot(t, n, root)
		ensureDBA(t, n)
	}
	for i, n := range nodes {
		startSidecar(t, n, fmt.Sprintf("sidecar_%c", 'a'+i), "--snapshot-root", root)
	}
	return &snapTrio{a: nodes[0], b: nodes[1], c: nodes[2], dir: filepath.Join(root, "multi")}
}

// nodeState is the init state of node_x as its own node sees it; a FAILED init fails the test
// unless it is what the caller waits for.
func waitNodeState(t *testing.T, n *harness.Node, node, want string, timeout time.Duration) {
	t.Helper()
	n.WaitFor(t, timeout, node+" "+want, func() bool {
		st := harness.QueryOne[string](t, n, "", "SELECT init_state FROM steep_repl.nodes WHERE name = $1", node)
		if st == "failed" && want != "failed" {
			t.Fatalf("the init of %s failed: %s", node, harness.QueryOne[string](t, n, "",
				"SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = $1", node))
		}
		return st == want
	})
}

// sourceSlots lists the slots on n as "name:active", sorted.
func sourceSlots(t *testing.T, n *harness.Node) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(slot_name || ':' || active, ' ' ORDER BY slot_name), '')
		FROM pg_replication_slots`)
}

// waitNodesEqual polls the row-hash comparator until b holds the same rows as a.
func waitNodesEqual(t *testing.T, a, b *harness.Node, timeout time.Duration) {
	t.Helper()
	(&pair{a: a, b: b}).waitEqual(t, timeout)
}

// One snapshot, generated under a write load, serves two targets: each subscribes from the
// snapshot's LSN on its own copy of the snapshot's slot, and all three nodes end equal row for
// row while the load runs during and after. Each copy lives as long as its target's use of it:
// the cancel of a target's init drops that target's copy (and the target can take the same
// snapshot again); the expiry and the deletion of the snapshot drop the snapshot's own slot
// (the template) and leave the copies that subscribers stream from, and their publication.
func TestSnapshotServesTwoTargetsFromItsLSNAndEachSlotCopyLivesAsLongAsItsTarget(t *testing.T) {
	scenario(t)
	t.Parallel()
	s := setupSnapTrio(t)
	const tables = 3
	ddl := "CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)"
	for i := 1; i <= tables; i++ {
		s.a.Exec(t, "", fmt.Sprintf(ddl, i))
		s.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g", i))
		// node_b has the tables (the apply loads only the data); node_c has none (the apply
		// restores the schema too).
		s.b.Exec(t, "", fmt.Sprintf(ddl, i))
	}
	// node_b's apply worker waits on an advisory lock before it writes load_1, while the test
	// holds it: node_b stays CATCHING_UP (lag_threshold 0) until its init is cancelled.
	s.b.Exec(t, "", `CREATE FUNCTION hold_apply() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
		IF (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()) LIKE 'logical replication%' THEN
			PERFORM pg_advisory_xact_lock_shared(4242);
		END IF;
		RETURN coalesce(NEW, OLD); END $$`)
	s.b.Exec(t, "", "CREATE TRIGGER hold_apply BEFORE INSERT OR UPDATE OR DELETE ON load_1 FOR EACH ROW EXECUTE FUNCTION hold_apply()")
	s.b.Exec(t, "", "ALTER TABLE load_1 ENABLE ALWAYS TRIGGER hold_apply")
	hold := connectAs(t, s.b, "postgres")
	if _, err := hold.Exec(context.Background(), "SELECT pg_advisory_lock(4242)"); err != nil {
		t.Fatal(err)
	}

	writes, stop := writeLoad(t, s.a.Pool(t, ""), tables)
	waitWrites(t, s.a, writes, 50, "before the snapshot is taken")
	id := dbaQuery[string](t, s.a, "SELECT steep_repl.generate_snapshot($1, $2)", s.dir, `{"parallel": 2, "compression": "lz4"}`)
	waitJobDone(t, s.a, harness.QueryOne[int64](t, s.a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id), "succeeded", 120*time.Second)
	lsn := harness.QueryOne[string](t, s.a, "", "SELECT lsn::text FROM steep_repl.snapshots WHERE id = $1", id)
	template, copyB, copyC := "sr_"+id, "sr_"+id+"_node_b", "sr_"+id+"_node_c"

	// Both targets apply the snapshot at once.
	jobB := dbaQuery[int64](t, s.b, "SELECT steep_repl.apply_snapshot($1, $2)", s.dir, `{"subscribe": true, "lag_threshold": 0}`)
	jobC := dbaQuery[int64](t, s.c, "SELECT steep_repl.apply_snapshot($1, $2)", s.dir, `{"subscribe": true, "parallel": 2}`)
	waitJobDone(t, s.b, jobB, "succeeded", 120*time.Second)
	waitJobDone(t, s.c, jobC, "succeeded", 120*time.Second)
	waitNodeState(t, s.b, "node_b", "catching_up", 30*time.Second)
	want := fmt.Sprintf("%s:false %s:true %s:true", template, copyB, copyC)
	s.a.WaitFor(t, 30*time.Second, "both subscribers streaming from their copies", func() bool { return sourceSlots(t, s.a) == want })
	// Each copy started at the snapshot's LSN: each subscription's origin was advanced to it.
	for _, n := range []*harness.Node{s.b, s.c} {
		if got := harness.QueryOne[string](t, n, "", `SELECT string_agg(d.lsn::text, ',') FROM steep_repl.snapshot_applies d`); got != lsn {
			t.Fatalf("%s applied the snapshot at LSN %s, the snapshot's is %s", n.Name, got, lsn)
		}
	}

	// The cancel of node_b's init drops node_b's copy, and only it.
	cancel := dbaQuery[int64](t, s.b, "SELECT steep_repl.cancel_init('node_b')")
	waitJobDone(t, s.b, cancel, "succeeded", 60*time.Second)
	waitNodeState(t, s.b, "node_b", "uninitialized", 10*time.Second)
	if got, want := sourceSlots(t, s.a), fmt.Sprintf("%s:false %s:true", template, copyC); got != want {
		t.Fatalf("slots on the source after node_b's cancel: %q, want %q", got, want)
	}
	if rows := userRowCount(t, s.b); rows != 0 {
		t.Fatalf("node_b still holds %d rows after its cancel", rows)
	}

	// node_b takes the same snapshot again, from the same LSN, while the load goes on.
	if _, err := hold.Exec(context.Background(), "SELECT pg_advisory_unlock(4242)"); err != nil {
		t.Fatal(err)
	}
	s.b.Exec(t, "", "DROP TRIGGER hold_apply ON load_1")
	jobB = dbaQuery[int64](t, s.b, "SELECT steep_repl.apply_snapshot($1, $2)", s.dir, `{"subscribe": true, "parallel": 2}`)
	waitJobDone(t, s.b, jobB, "succeeded", 120*time.Second)
	waitWrites(t, s.a, writes, 100, "after both targets subscribed")
	stop()
	t.Logf("snapshot %s at %s: %d write transactions on the source in all", id, lsn, writes.Load())
	waitNodeState(t, s.b, "node_b", "synchronized", 90*time.Second)
	waitNodeState(t, s.c, "node_c", "synchronized", 90*time.Second)
	waitNodesEqual(t, s.a, s.b, 60*time.Second)
	waitNodesEqual(t, s.a, s.c, 60*time.Second)
	for _, n := range []*harness.Node{s.b, s.c} {
		assertNoSubscriptionErrors(t, n)
	}
	if got, want := sourceSlots(t, s.a), fmt.Sprintf("%s:false %s:true %s:true", template, copyB, copyC); got != want {
		t.Fatalf("slots on the source with both targets synchronized: %q, want %q", got, want)
	}

	// Expiry drops the template; the copies are the subscribers' slots now, so they and the
	// publication stay and both targets go on replicating.
	s.a.Exec(t, "", "UPDATE steep_repl.jobs SET scheduled_at = now() WHERE kind = 'snapshot.expire' AND state = 'queued'")
	expire := harness.QueryOne[int64](t, s.a, "", "SELECT id FROM steep_repl.jobs WHERE kind = 'snapshot.expire'")
	s.a.Exec(t, "", "NOTIFY steep_repl_jobs")
	waitJobDone(t, s.a, expire, "succeeded", 30*time.Second)
	if got, want := sourceSlots(t, s.a), fmt.Sprintf("%s:true %s:true", copyB, copyC); got != want {
		t.Fatalf("slots on the source after the snapshot expired: %q, want %q", got, want)
	}
	if !dbaQuery[bool](t, s.a, "SELECT slot_dropped FROM steep_repl.list_snapshots() WHERE id = $1", id) {
		t.Fatal("list_snapshots does not show the expired snapshot's slot as dropped")
	}
	// The deletion removes the files; the subscribers' copies and publication stay.
	del := dbaQuery[int64](t, s.a, "SELECT steep_repl.delete_snapshot($1)", id)
	waitJobDone(t, s.a, del, "succeeded", 30*time.Second)
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("the deleted snapshot's directory is still there: %v", err)
	}
	left := harness.QueryOne[string](t, s.a, "", `SELECT format('%s / %s', (SELECT string_agg(slot_name, ' ' ORDER BY slot_name) FROM pg_replication_slots),
		(SELECT string_agg(pubname, ' ') FROM pg_publication))`)
	if want := fmt.Sprintf("%s %s / sr_pub_%s", copyB, copyC, id); left != want {
		t.Fatalf("on the source after the deletion: %q, want %q", left, want)
	}
	s.a.Exec(t, "", "UPDATE load_2 SET n = n + 1000 WHERE id % 7 = 0")
	s.a.Exec(t, "", "DELETE FROM load_3 WHERE id % 11 = 0")
	waitNodesEqual(t, s.a, s.b, 30*time.Second)
	waitNodesEqual(t, s.a, s.c, 30*time.Second)
}
