package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// A snapshot generated under a write load, applied with subscribe: every change made on the
// source before, during and after the generation arrives exactly once.
func TestSnapshotSubscribeUnderWriteLoadLosesAndRepeatsNothing(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	const tables = 3
	for i := 1; i <= tables; i++ {
		p.a.Exec(t, "", fmt.Sprintf("CREATE TABLE load_%d (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL)", i))
		p.a.Exec(t, "", fmt.Sprintf("INSERT INTO load_%d SELECT g, md5(g::text), 0 FROM generate_series(1, 60000) g", i))
	}
	writes, stop := writeLoad(t, p.a.Pool(t, ""), tables)
	waitWrites(t, p.a, writes, 50, "before the snapshot is taken")
	before := writes.Load()
	id := generateSnapshot(t, p.a, p.dir, `{"parallel": 2, "compression": "lz4"}`)
	during := writes.Load() - before
	applySnapshot(t, p.b, p.dir, `{"subscribe": true, "parallel": 2}`, "succeeded")
	pr := &pair{a: p.a, b: p.b}
	pr.waitState(t, "catching_up", 30*time.Second)
	waitWrites(t, p.a, writes, 100, "after the target subscribed")
	stop()
	// CATCHING_UP -> SYNCHRONIZED needs the slot's lag under 1 MB, which a load writing
	// flat out on 2 cores can keep above: stop it first.
	pr.waitState(t, "synchronized", 90*time.Second)
	t.Logf("snapshot %s: %d write transactions during generation, %d in all", id, during, writes.Load())
	if during < 10 || writes.Load() < 100 {
		t.Fatalf("the write load committed only %d transactions (%d during generation)", writes.Load(), during)
	}
	pr.waitEqual(t, 60*time.Second)
	assertNoSubscriptionErrors(t, p.b)
	path := harness.QueryOne[string](t, p.b, "", `SELECT string_agg(to_state, ' ' ORDER BY id) FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'init.state_change'`)
	if path != "preparing copying catching_up synchronized" {
		t.Fatalf("state path %q", path)
	}
	// The subscriber uses a copy of the snapshot's slot; the snapshot's own slot stays for other targets.
	slots := harness.QueryOne[string](t, p.a, "", `SELECT string_agg(slot_name || ':' || active, ' ' ORDER BY slot_name) FROM pg_replication_slots`)
	want := fmt.Sprintf("sr_%s:false sr_%s_node_b:true", id, id)
	if slots != want {
		t.Fatalf("slots on the source: %q, want %q", slots, want)
	}
	// Replication goes on.
	p.a.Exec(t, "", "INSERT INTO artist (name) VALUES ('Steep Replicators')")
	p.a.Exec(t, "", "DELETE FROM playlist_track WHERE playlist_id = 1 AND track_id < 500")
	pr.waitEqual(t, 30*time.Second)
}
