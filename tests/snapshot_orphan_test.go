package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// A copy of a snapshot's slot that no target ever subscribed from (an apply that failed, or a
// sidecar killed, right after copying it) would hold the source's WAL for ever. Deleting the
// snapshot drops such an orphan after asking its target; it keeps a copy a subscription of the
// target uses, even one that never streamed, and a copy whose target cannot be asked.
func TestSnapshotDeleteDropsOrphanSlotCopiesAndKeepsSubscribersOnes(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	// node_d is another name for node_b's server: a registered target with no subscription.
	p.a.Exec(t, "", "SELECT steep_repl.register_node('node_d', $1, false)", libpqConninfo(p.b))
	id := generateSnapshot(t, p.a, p.dir, `{}`)
	slot := harness.QueryOne[string](t, p.a, "", "SELECT slot_name FROM steep_repl.snapshots WHERE id = $1", id)
	pub := harness.QueryOne[string](t, p.a, "", "SELECT publication FROM steep_repl.snapshots WHERE id = $1", id)
	for _, target := range []string{"node_b", "node_d", "node_z"} {
		p.a.Exec(t, "", "SELECT pg_copy_logical_replication_slot($1, $2)", slot, slot+"_"+target)
	}
	// node_b subscribes from its copy but has not streamed yet (disabled): its copy is in use.
	p.b.Exec(t, "", fmt.Sprintf(`CREATE SUBSCRIPTION waiting CONNECTION '%s' PUBLICATION %s
		WITH (connect = false, create_slot = false, enabled = false, slot_name = '%s')`, libpqConninfo(p.a), pub, slot+"_node_b"))

	job := dbaQuery[int64](t, p.a, "SELECT steep_repl.delete_snapshot($1)", id)
	waitJobDone(t, p.a, job, "succeeded", 60*time.Second)
	slots := harness.QueryOne[string](t, p.a, "", "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots")
	if want := slot + "_node_b," + slot + "_node_z"; slots != want {
		t.Errorf("slots after delete_snapshot: %s, want %s (node_d's orphan dropped, node_b's in use and node_z's unverifiable kept)", slots, want)
	}
	res := harness.QueryOne[string](t, p.a, "", "SELECT result::text FROM steep_repl.jobs WHERE id = $1", job)
	if !strings.Contains(res, `"orphan_copies_dropped": ["`+slot+`_node_d"]`) || !strings.Contains(res, `"copies_kept_unverified": ["`+slot+`_node_z"]`) {
		t.Errorf("delete job result: %s, want the orphan dropped and node_z's copy kept unverified", res)
	}
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_publication WHERE pubname = $1", pub); n != 1 {
		t.Errorf("the publication was dropped while node_b's copy remains")
	}
	p.b.Exec(t, "", "ALTER SUBSCRIPTION waiting SET (slot_name = NONE)")
	p.b.Exec(t, "", "DROP SUBSCRIPTION waiting")
	p.a.Exec(t, "", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
}
