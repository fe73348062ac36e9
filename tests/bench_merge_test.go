package tests

import (
	"encoding/json"
	"maps"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// BenchmarkMergeOfTwoPopulatedNodes: the bidirectional merge (start_init method merge, strategy
// prefer-source, run as the dba) of two nodes that both hold big, a bench-data-like table with 1%
// of its rows differing (every 200th changed on node_b, every 400th at offset 7 deleted on
// node_b, as many new rows only on node_b), from start_init to both nodes SYNCHRONIZED; with the
// write freeze (init.merge_freeze's freeze_ms) and the rows moved (merges.result). The baseline,
// in the same run, is the server's own hash floor: COPY (SELECT id, row_hash(t) FROM big t) TO
// '/dev/null' on both nodes at once, before and after the merge (their mean). Before reporting it
// checks that both nodes then hold the same rows (a hash of every row) and that no replication
// conflict was counted. STEEP_BENCH_ROWS sets the rows (default 1,000,000).
//
// The pair is built as mergePair builds it (two-phase commit, the dba, the sidecar on node_b), not
// with mergePair itself: that takes a *testing.T and its own small parent/child data set.
func BenchmarkMergeOfTwoPopulatedNodes(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("STEEP_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	opts := harness.DefaultOptions()
	opts.Settings = maps.Clone(fastSupervisor)
	opts.Settings["max_prepared_transactions"] = "10"
	nodes := harness.StartN(b, 2, opts)
	a, t := nodes[0], nodes[1]
	for _, n := range nodes {
		failOnTickErrors(b, n)
		n.Exec(b, "", "CREATE EXTENSION steep_repl CASCADE")
		n.Exec(b, "", "SELECT steep_repl.register_node('node_a', $1, $2)", libpqConninfo(a), n == a)
		n.Exec(b, "", "SELECT steep_repl.register_node('node_b', $1, $2)", libpqConninfo(t), n == t)
		ensureDBA(b, n)
	}
	loadBigDiffering(b, a, t, rows)
	for _, n := range nodes {
		n.Exec(b, "", "GRANT SELECT ON big TO dba")
	}
	car := startSidecar(b, t, "sidecar_b")

	floor := func() time.Duration { return hashFloor(b, nodes) }
	before := floor()

	start := time.Now()
	dbaQuery[int64](b, t, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	for _, w := range []struct {
		n    *harness.Node
		node string
	}{{t, "node_b"}, {a, "node_a"}} {
		w.n.WaitFor(b, 20*time.Minute, w.node+" synchronized", func() bool {
			st := mergeNodeState(b, w.n, w.node)
			if st == "failed" {
				b.Fatalf("%s failed: %s", w.node, harness.QueryOne[string](b, w.n, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = $1", w.node))
			}
			return st == "synchronized"
		})
	}
	took := time.Since(start)
	after := floor()
	base := (before + after) / 2

	// Correct before it is fast: the same rows on both nodes, no conflict counted.
	bigDigest := func(n *harness.Node) string {
		return harness.QueryOne[string](b, n, "", "SELECT md5(string_agg(steep_repl.row_hash(t)::text, ',' ORDER BY id)) FROM big t")
	}
	if da, db := bigDigest(a), bigDigest(t); da != db {
		b.Fatalf("after the merge the nodes differ: node_a %s, node_b %s", da, db)
	}
	want := int64(rows) + int64(rows/400)
	if n := harness.QueryOne[int64](b, a, "", "SELECT count(*) FROM big"); n != want {
		b.Fatalf("after the merge big holds %d rows, want %d (every row of either node)", n, want)
	}
	if ca, cb := conflicts(b, a), conflicts(b, t); ca != 0 || cb != 0 {
		b.Fatalf("conflicts counted: node_a %d, node_b %d", ca, cb)
	}

	id := lastMergeID(b, t, false)
	var res struct {
		ToLocal      int64 `json:"to_local"`
		ToPeer       int64 `json:"to_peer"`
		DeletedLocal int64 `json:"deleted_local"`
		DeletedPeer  int64 `json:"deleted_peer"`
		Pass1        struct {
			ToLocal int64 `json:"to_local"`
			ToPeer  int64 `json:"to_peer"`
		} `json:"pass1"`
	}
	if err := json.Unmarshal([]byte(harness.QueryOne[string](b, t, "", "SELECT result::text FROM steep_repl.merges WHERE merge_id = $1", id)), &res); err != nil {
		b.Fatal(err)
	}
	// prefer-source: node_a's version of the changed rows and its rows node_b lacks come here
	// (to_local), node_b's new rows go to node_a (to_peer).
	changed, gone, added := int64(rows/200), int64((rows+393)/400), int64(rows/400)
	if res.ToLocal != changed+gone || res.ToPeer != added || res.DeletedLocal+res.DeletedPeer != 0 {
		b.Fatalf("the merge moved %+v; want %d to_local, %d to_peer, no deletes", res, changed+gone, added)
	}
	var fr freezeDetail
	raw := harness.QueryOne[string](b, t, "", `SELECT detail::text FROM steep_repl.events WHERE event = 'init.merge_freeze'
		AND (detail->>'merge_id')::bigint = $1 ORDER BY id DESC LIMIT 1`, id)
	if err := json.Unmarshal([]byte(raw), &fr); err != nil {
		b.Fatalf("init.merge_freeze detail %s: %v", raw, err)
	}
	pass1 := "?"
	if ev := car.events("init.merge_moved"); len(ev) > 0 {
		pass1, _ = ev[len(ev)-1]["seconds"].(string)
	}
	moved := res.ToLocal + res.ToPeer + res.DeletedLocal + res.DeletedPeer
	b.Logf("%d rows, 1%% differing, prefer-source: merge to both SYNCHRONIZED %s (%.2fx the hash floor on both nodes at once, %s then %s); "+
		"moved %d rows (pass 1: %d to node_b, %d to node_a, in %s s; the freeze: %d and %d), %.0f rows/s; "+
		"write freeze %.1f ms (draining the capture %d ms, %d keys changed, %d rows re-checked, tables re-planned whole %v)",
		rows, took.Round(time.Millisecond), took.Seconds()/base.Seconds(), before.Round(time.Millisecond), after.Round(time.Millisecond),
		moved, res.Pass1.ToLocal, res.Pass1.ToPeer, pass1, fr.ToLocal, fr.ToPeer, float64(moved)/took.Seconds(),
		fr.FreezeMS, fr.DrainMS, fr.KeysChanged, fr.RowsRechecked, fr.TablesWhole)
	b.Logf("node_b's events: %s", harness.QueryOne[string](b, t, "", `SELECT string_agg(format('%s %s at +%ss', event, to_state, s), ', ' ORDER BY id)
		FROM (SELECT id, event, coalesce(to_state, '') to_state, round(extract(epoch FROM at - min(at) OVER ())::numeric, 1) s
		      FROM steep_repl.events WHERE node = 'node_b') e`))
	for _, ev := range []string{"init.merge_planned", "init.merge_moved", "init.merge_unfrozen"} {
		for _, e := range car.events(ev) {
			b.Logf("%s: %v", ev, e)
		}
	}
	b.ReportMetric(took.Seconds(), "merge_s")
	b.ReportMetric(took.Seconds()/base.Seconds(), "merge_vs_floor_x")
	b.ReportMetric(fr.FreezeMS, "freeze_ms")
	b.ReportMetric(float64(moved), "rows_moved")
	b.ReportMetric(float64(moved)/took.Seconds(), "moved_rows_per_s")
	b.ReportMetric(base.Seconds(), "hash_floor_s")
}
