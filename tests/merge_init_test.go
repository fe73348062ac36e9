package tests

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/tests/harness"
)

// The bidirectional merge (start_init method merge, job init.merge): node_b is the target (its
// sidecar runs the merge), node_a the source; both hold data before it.

// mergePair starts node_a and node_b with the extension, both registered on both, two-phase
// commit available, the sidecar on node_b, and parent/child (a foreign key) holding overlapping
// data: ids 1..200 identical, 201..220 conflicting, 221..260 only on node_a, 261..300 only on
// node_b (children: the same categories, each referencing a parent of its own category).
func mergePair(t *testing.T, sidecarArgs ...string) *pair {
	t.Helper()
	opts := harness.DefaultOptions()
	opts.Settings = maps.Clone(fastSupervisor)
	opts.Settings["max_prepared_transactions"] = "10"
	nodes := harness.StartN(t, 2, opts)
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		failOnTickErrors(t, n)
		n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
		n.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, $2)", libpqConninfo(a), n == a)
		n.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, $2)", libpqConninfo(b), n == b)
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE parent (id bigint PRIMARY KEY, name text NOT NULL, v bigint NOT NULL DEFAULT 0);
			CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parent, note text, n bigint NOT NULL DEFAULT 0);
			GRANT SELECT ON parent, child TO dba;
			INSERT INTO parent SELECT g, 'same ' || g FROM generate_series(1, 200) g;
			INSERT INTO child SELECT g, g, 'same ' || g FROM generate_series(1, 300) g WHERE g <= 200;`)
	}
	a.Exec(t, "", `INSERT INTO parent SELECT g, 'a ' || g FROM generate_series(201, 260) g;
		INSERT INTO child SELECT g, g - 100, 'a ' || g FROM generate_series(301, 360) g`)
	b.Exec(t, "", `INSERT INTO parent SELECT g, 'b ' || g FROM generate_series(201, 220) g UNION ALL SELECT g, 'b ' || g FROM generate_series(261, 300) g;
		INSERT INTO child SELECT g, g - 100, 'b ' || g FROM generate_series(301, 320) g UNION ALL SELECT g, g - 100, 'b ' || g FROM generate_series(361, 400) g`)
	return &pair{a: a, b: b, car: startSidecar(t, b, "sidecar_b", sidecarArgs...)}
}

func mergeNodeState(t testing.TB, n *harness.Node, node string) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", "SELECT init_state FROM steep_repl.nodes WHERE name = $1", node)
}

// waitMergeState waits until node (on its own cluster n) is in state want; FAILED is fatal unless wanted.
func waitMergeState(t *testing.T, n *harness.Node, node, want string, timeout time.Duration) {
	t.Helper()
	n.WaitFor(t, timeout, node+" "+want, func() bool {
		st := mergeNodeState(t, n, node)
		if st == "failed" && want != "failed" {
			t.Fatalf("%s failed: %s", node, harness.QueryOne[string](t, n, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = $1", node))
		}
		return st == want
	})
}

// digest is a hash of every row of parent and child on n (steep_repl.row_hash of each, in key order).
func digest(t testing.TB, n *harness.Node) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", `SELECT
		(SELECT coalesce(md5(string_agg(steep_repl.row_hash(p)::text, ',' ORDER BY id)), '') FROM parent p) || '/' ||
		(SELECT coalesce(md5(string_agg(steep_repl.row_hash(c)::text, ',' ORDER BY id)), '') FROM child c)`)
}

// auditSet is the (table, key, resolution) of every audit row of merge id, sorted.
func auditSet(t testing.TB, n *harness.Node, id int64) []string {
	t.Helper()
	rows, err := n.Pool(t, "").Query(context.Background(), `SELECT table_name || ' ' || key::text || ' ' || resolution
		FROM steep_repl.merge_audit_log WHERE merge_id = $1 ORDER BY 1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func lastMergeID(t testing.TB, n *harness.Node, dryRun bool) int64 {
	t.Helper()
	return harness.QueryOne[int64](t, n, "", "SELECT max(merge_id) FROM steep_repl.merges WHERE dry_run = $1", dryRun)
}

// conflicts sums the data-conflict counters of pg_stat_subscription_stats (18; 0 on 17, which has none).
func conflicts(t testing.TB, n *harness.Node) int64 {
	t.Helper()
	if harness.QueryOne[int32](t, n, "", "SELECT current_setting('server_version_num')::int") < 180000 {
		return 0
	}
	return harness.QueryOne[int64](t, n, "", `SELECT coalesce(sum(confl_insert_exists + confl_update_origin_differs + confl_update_exists +
		confl_update_missing + confl_delete_origin_differs + confl_delete_missing + confl_multiple_unique_conflicts), 0)::bigint
		FROM pg_stat_subscription_stats`)
}

// ownWrites inserts parents (with a child each) in its own id range on n, updates the ones it
// inserted (v + 1) and deletes some of them (with their child), one statement per transaction,
// until stop; want is the ledger: each row that must exist, with its expected v (a deleted row
// is not in it and must exist on no node). A write waiting on the merge's freeze just waits.
type ownWrites struct {
	mu      sync.Mutex
	want    map[int64]int64
	deleted int // rows deleted so far
	quit    chan struct{}
	wg      sync.WaitGroup
	errs    []string
	// deadlocks counts writes run again after a deadlock
	deadlocks int
}

func startOwnWrites(t *testing.T, n *harness.Node, base int64, seed uint64) *ownWrites {
	t.Helper()
	w := &ownWrites{want: map[int64]int64{}, quit: make(chan struct{})}
	pool := n.Pool(t, "")
	w.wg.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 1))
		next := base
		var ids []int64
		for {
			select {
			case <-w.quit:
				return
			case <-time.After(5 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			if len(ids) == 0 || rng.IntN(3) == 0 {
				next++
				// One statement: both tables' locks are taken before it writes (no xid while it waits).
				err := w.exec(ctx, pool, `WITH p AS (INSERT INTO parent (id, name) VALUES ($1::bigint, 'load ' || $1::bigint::text) RETURNING id)
					INSERT INTO child (id, parent_id, note) SELECT id, id, 'load' FROM p`, next)
				if err == nil {
					ids = append(ids, next)
					w.mu.Lock()
					w.want[next] = 0
					w.mu.Unlock()
				} else {
					w.fail(err)
				}
			} else if rng.IntN(4) == 0 {
				// A delete: made before the merge, during pass 1, before the freeze or after it,
				// it must hold on both nodes (a row both held is never copied back).
				i := rng.IntN(len(ids))
				id := ids[i]
				if err := w.exec(ctx, pool, `WITH c AS (DELETE FROM child WHERE id = $1::bigint) DELETE FROM parent WHERE id = $1::bigint`, id); err == nil {
					ids = slices.Delete(ids, i, i+1)
					w.mu.Lock()
					delete(w.want, id)
					w.deleted++
					w.mu.Unlock()
				} else {
					w.fail(err)
				}
			} else {
				id := ids[rng.IntN(len(ids))]
				if err := w.exec(ctx, pool, "UPDATE parent SET v = v + 1 WHERE id = $1", id); err == nil {
					w.mu.Lock()
					w.want[id]++
					w.mu.Unlock()
				} else {
					w.fail(err)
				}
			}
			cancel()
		}
	})
	t.Cleanup(w.stop)
	return w
}

// exec runs one write as an application would: a statement that was the victim of a deadlock
// with the merge's pass 1 (rolled back, nothing written) is run again, up to 5 times. Pass 1
// gives way first (its deadlock_timeout is shorter), but the one whose timeout ends first is
// the one aborted, and a user who began waiting earlier can be that one.
func (w *ownWrites) exec(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) error {
	for try := 1; ; try++ {
		_, err := pool.Exec(ctx, sql, args...)
		var pgErr *pgconn.PgError
		if err == nil || try == 5 || !errors.As(err, &pgErr) || pgErr.Code != "40P01" {
			return err
		}
		w.mu.Lock()
		w.deadlocks++
		w.mu.Unlock()
	}
}

func (w *ownWrites) writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.want)
}

func (w *ownWrites) deletes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.deleted
}

func (w *ownWrites) fail(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err.Error())
	w.mu.Unlock()
}

func (w *ownWrites) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	w.wg.Wait()
}

// check proves every write of w is on n exactly as made: each inserted row once, with its v.
func (w *ownWrites) check(t *testing.T, n *harness.Node, base int64) {
	t.Helper()
	got := map[int64]int64{}
	if c := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM child WHERE id > $1 AND id <= $1 + 1000000 AND id <> parent_id", base); c != 0 {
		t.Fatalf("%s: %d children of the load lost their own parent id", n.Name, c)
	}
	if c := harness.QueryOne[int64](t, n, "", `SELECT count(*) FROM (SELECT id FROM parent WHERE id > $1 AND id <= $1 + 1000000
		EXCEPT SELECT id FROM child WHERE id > $1 AND id <= $1 + 1000000) x`, base); c != 0 {
		t.Fatalf("%s: %d parents of the load without their child (a half-applied delete or insert)", n.Name, c)
	}
	rows, err := n.Pool(t, "").Query(context.Background(), "SELECT id, v FROM parent WHERE id > $1 AND id <= $1 + 1000000", base)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got[id] = v
	}
	if !maps.Equal(got, w.want) {
		var diff []string
		for _, id := range slices.Sorted(maps.Keys(w.want)) {
			if g, ok := got[id]; !ok || g != w.want[id] {
				diff = append(diff, fmt.Sprintf("%d: v %d, want %d (present %t)", id, g, w.want[id], ok))
			}
		}
		t.Fatalf("%s: the writes made on one node (%d rows) are not exactly the rows here (%d rows): %d differ, e.g. %v",
			n.Name, len(w.want), len(got), len(diff), diff[:min(len(diff), 8)])
	}
}

// The end-to-end test: a write load on both nodes the whole time (inserts, updates and deletes),
// merge with prefer-source, both SYNCHRONIZED, 30 s more writes; then every row equal, the rows
// of the load exactly as its ledger says (every write present once, every deleted row on no
// node: none resurrected by the merge), no conflict counted, the audit log holding each moved row of the initial data, a short freeze.
func TestMergeJoinsTwoPopulatedNodesUnderWriteLoad(t *testing.T) {
	t.Parallel()
	p := mergePair(t)
	wa := startOwnWrites(t, p.a, 1_000_000, 1)
	wb := startOwnWrites(t, p.b, 2_000_000, 2)
	p.b.WaitFor(t, 30*time.Second, "the load under way on both nodes", func() bool { // before the merge plans
		return wa.writes() >= 50 && wb.writes() >= 50 && wa.deletes() > 0 && wb.deletes() > 0
	})
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	// Both nodes show the link: each is the other's init source.
	if src := harness.QueryOne[string](t, p.a, "", "SELECT init_source_node FROM steep_repl.nodes WHERE name = 'node_a'"); src != "node_b" {
		t.Fatalf("node_a's init source is %q, want node_b", src)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if conflicts(t, p.a)+conflicts(t, p.b) != 0 {
			break
		}
		time.Sleep(time.Second)
	}
	wa.stop()
	wb.stop()
	if len(wa.errs)+len(wb.errs) > 0 {
		t.Fatalf("writes failed: %v %v", wa.errs, wb.errs)
	}
	t.Logf("user writes run again after a deadlock with pass 1: %d on node_a, %d on node_b", wa.deadlocks, wb.deadlocks)
	p.waitEqual(t, time.Minute)
	for _, n := range []*harness.Node{p.a, p.b} {
		wa.check(t, n, 1_000_000)
		wb.check(t, n, 2_000_000)
	}
	if ca, cb := conflicts(t, p.a), conflicts(t, p.b); ca != 0 || cb != 0 {
		t.Fatalf("conflicts counted: node_a %d, node_b %d", ca, cb)
	}
	id := lastMergeID(t, p.b, false)
	var want []string
	for _, tbl := range []struct {
		name     string
		conflict [2]int
	}{{"parent", [2]int{201, 300}}, {"child", [2]int{301, 400}}} {
		for k := tbl.conflict[0]; k <= tbl.conflict[1]; k++ {
			res := "to_local" // conflicting (prefer-source) and node_a's own
			if k-tbl.conflict[0] >= 60 {
				res = "to_peer" // node_b's own
			}
			want = append(want, fmt.Sprintf("%s {\"id\": %d} %s", tbl.name, k, res))
		}
	}
	slices.Sort(want)
	var got []string
	for _, s := range auditSet(t, p.b, id) {
		var k int64
		if _, err := fmt.Sscanf(s[strings.Index(s, ":")+2:], "%d", &k); err == nil && k <= 400 {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit of the initial data: %d rows, want %d:\n%v", len(got), len(want), got)
	}
	// Of the initial data (a row of the load deleted before pass 1 read it has no image to keep).
	if n := harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM steep_repl.merge_audit_log WHERE merge_id = $1 AND (key->>'id')::bigint <= 400
		AND ((resolution = 'to_local' AND peer_row IS NULL) OR (resolution = 'to_peer' AND local_row IS NULL)
		  OR (category = 'conflicting' AND (local_row IS NULL OR peer_row IS NULL)))`, id); n != 0 {
		t.Fatalf("%d audit rows lack a row image", n)
	}
	freeze := harness.QueryOne[float64](t, p.b, "", "SELECT freeze_ms::float8 FROM steep_repl.merges WHERE merge_id = $1", id)
	t.Logf("write freeze: %.1f ms; audit rows %d (deleted during the merge %d); rows of the load node_a %d (%d deleted), node_b %d (%d deleted)", freeze,
		harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.merge_audit_log WHERE merge_id = $1", id),
		harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.merge_audit_log WHERE merge_id = $1 AND category = 'deleted_during_merge'", id),
		len(wa.want), wa.deleted, len(wb.want), wb.deleted)
	if freeze <= 0 || freeze > 5000 {
		t.Fatalf("freeze %.1f ms, want (0, 5000]", freeze)
	}
}

// A dry run (the CLI's and start_init's) reports exactly what the real run then moves and changes
// nothing; the real run through the CLI with --follow ends SYNCHRONIZED; a plan afterwards is
// empty, and a merge onto a SYNCHRONIZED node is refused, creating nothing.
func TestMergeDryRunIsWhatTheMergeMovesAndASecondPlanIsEmpty(t *testing.T) {
	t.Parallel()
	p := mergePair(t)
	before := [2]string{digest(t, p.a), digest(t, p.b)}
	out, errOut, code := runCLI(t, "merge", "node_b", "--from", "node_a", "--strategy", "prefer-target", "--dry-run", "--db", dbaURL(t, p.b))
	// prefer-target: 40 rows come from node_a (its own), 60 go to it (conflicting and node_b's own), per table.
	for _, tbl := range []string{"public.parent", "public.child"} {
		if code != 0 || !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
			return slices.Equal(strings.Fields(l), []string{tbl, "40", "60", "0", "0"})
		}) {
			t.Fatalf("merge --dry-run exited %d, want %s 40 60 0 0:\n%s\n%s", code, tbl, out, errOut)
		}
	}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-target", "dry_run": true}')`)
	p.b.WaitFor(t, time.Minute, "init.merge_planned", func() bool {
		return eventCount(t, p.b, "init.merge_planned") == 1
	})
	if st := mergeNodeState(t, p.b, "node_b"); st != "uninitialized" {
		t.Fatalf("after the dry run node_b is %s", st)
	}
	if after := [2]string{digest(t, p.a), digest(t, p.b)}; after != before {
		t.Fatalf("the dry run changed rows")
	}
	planned := auditSet(t, p.b, lastMergeID(t, p.b, true))
	if len(planned) != 2*(20+40+40) {
		t.Fatalf("dry run planned %d rows, want 200: %v", len(planned), planned)
	}
	out, errOut, code = runCLI(t, "merge", "node_b", "--from", "node_a", "--strategy", "prefer-target", "--verify", "--follow", "--timeout", "3m", "--db", dbaURL(t, p.b))
	if code != 0 {
		t.Fatalf("merge --follow exited %d:\n%s\n%s", code, out, errOut)
	}
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	if moved := auditSet(t, p.b, lastMergeID(t, p.b, false)); !slices.Equal(moved, planned) {
		t.Fatalf("the merge moved\n%v\nthe dry run planned\n%v", moved, planned)
	}
	p.waitEqual(t, 30*time.Second)
	// "verify": true: init.verify compared every row with node_a once SYNCHRONIZED.
	p.b.WaitFor(t, time.Minute, "init.verified", func() bool {
		return eventCount(t, p.b, "init.verified") == 1
	})
	if d := harness.QueryOne[string](t, p.b, "", "SELECT detail->>'differences' FROM steep_repl.events WHERE event = 'init.verified'"); d != "0" {
		t.Fatalf("init.verified after the merge: %s differences", d)
	}
	if n := dbaQuery[int64](t, p.b, "SELECT count(*) FROM steep_repl.merge_plan('node_a', '{\"strategy\": \"prefer-target\"}')"); n != 0 {
		t.Fatalf("a plan after the merge has %d rows to move", n)
	}
	// Writes on either node now replicate to the other.
	p.a.Exec(t, "", "INSERT INTO parent VALUES (5000, 'after a')")
	p.b.Exec(t, "", "INSERT INTO parent VALUES (6000, 'after b')")
	p.waitEqual(t, 30*time.Second)
	jobs := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs")
	if st, _ := dbaState(t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`); st != "55000" {
		t.Fatalf("a merge onto a SYNCHRONIZED node: SQLSTATE %q, want 55000", st)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs"); n != jobs {
		t.Fatalf("a refused merge queued a job")
	}
}

// A unique collision on the second table in foreign-key order (child, after parent) fails the
// merge with both nodes exactly as before; strategy manual reports the conflicts and stops before
// subscribing; bad options are refused creating nothing.
func TestMergeRollsBackBothNodesAndStopsOnManualConflicts(t *testing.T) {
	t.Parallel()
	p := mergePair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "ALTER TABLE child ADD CONSTRAINT child_note_key UNIQUE (note)")
	}
	// node_a's own child 360 and node_b's own child 400 carry the same note: moving either collides.
	p.a.Exec(t, "", "UPDATE child SET note = 'collides' WHERE id = 360")
	p.b.Exec(t, "", "UPDATE child SET note = 'collides' WHERE id = 400")
	before := [2]string{digest(t, p.a), digest(t, p.b)}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source"}')`)
	waitMergeState(t, p.b, "node_b", "failed", 2*time.Minute)
	reason := harness.QueryOne[string](t, p.b, "", "SELECT last_error FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "child") || !strings.Contains(reason, "child_note_key") {
		t.Fatalf("failure reason does not name the table and constraint: %s", reason)
	}
	if after := [2]string{digest(t, p.a), digest(t, p.b)}; after != before {
		t.Fatalf("a failed merge changed rows (parent moves before child's collision must be rolled back)")
	}
	noLinks := func() {
		t.Helper()
		for _, n := range []*harness.Node{p.a, p.b} {
			p.b.WaitFor(t, 30*time.Second, "no subscription on "+n.Name, func() bool {
				return harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM pg_subscription") == 0 &&
					harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM pg_replication_slots") == 0 &&
					harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM pg_prepared_xacts") == 0
			})
		}
	}
	noLinks()

	// Manual (the default strategy): the 20 conflicting rows of each table are reported, nothing moves.
	p.a.Exec(t, "", "UPDATE child SET note = 'a 360' WHERE id = 360")
	before = [2]string{digest(t, p.a), digest(t, p.b)}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{}')`)
	waitMergeState(t, p.b, "node_b", "failed", 2*time.Minute)
	reason = harness.QueryOne[string](t, p.b, "", "SELECT last_error FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "40 conflicting row(s)") || !strings.Contains(reason, "merge_audit_log") {
		t.Fatalf("manual stop reason: %s", reason)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.merge_audit_log WHERE merge_id = $1 AND resolution = 'manual'",
		lastMergeID(t, p.b, false)); n != 40 {
		t.Fatalf("%d manual audit rows, want 40", n)
	}
	if after := [2]string{digest(t, p.a), digest(t, p.b)}; after != before {
		t.Fatalf("a merge stopped on manual conflicts changed rows")
	}
	noLinks()

	// Bad input: SQLSTATE 22023 and nothing created.
	jobs := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs")
	merges := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.merges")
	for _, opts := range []string{`{"strategy": "prefer-nobody"}`, `{"dry_run": "yes"}`, `{"parallel": 4}`} {
		if st, _ := dbaState(t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a', 'merge', $1)", opts); st != "22023" {
			t.Fatalf("options %s: SQLSTATE %q, want 22023", opts, st)
		}
	}
	if harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs") != jobs ||
		harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.merges") != merges || mergeNodeState(t, p.b, "node_b") != "failed" {
		t.Fatalf("refused options created something")
	}

	// A transaction on node_a that wrote to parent and stays open: the freeze's lock waits on it,
	// times out (freeze_timeout 1 s) three times, and the merge fails saying so, without links.
	hold, err := p.a.Pool(t, "").Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(context.Background())
	if _, err := hold.Exec(context.Background(), "INSERT INTO parent VALUES (9000, 'held')"); err != nil {
		t.Fatal(err)
	}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source", "freeze_timeout": 1}')`)
	waitMergeState(t, p.b, "node_b", "failed", 2*time.Minute)
	reason = harness.QueryOne[string](t, p.b, "", "SELECT last_error FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "write freeze timed out 3 times") {
		t.Fatalf("freeze failure reason: %s", reason)
	}
	if n := eventCount(t, p.b, "init.merge_freeze_retry"); n != 2 {
		t.Fatalf("%d freeze retries recorded, want 2", n)
	}
	noLinks()
}

// cancel_init while pass 1 moves rows rolls it back on both nodes and drops what the merge made:
// both nodes hold exactly their rows of before, no table emptied, no subscription, slot,
// publication or prepared transaction left.
func TestMergeCancelledWhileMovingLeavesBothNodesAsTheyWere(t *testing.T) {
	t.Parallel()
	p := mergePair(t)
	// Enough rows in small batches that pass 1 is still moving when the cancel comes.
	p.a.Exec(t, "", "INSERT INTO parent SELECT g, 'a ' || g FROM generate_series(100001, 200000) g")
	before := [2]string{digest(t, p.a), digest(t, p.b)}
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source", "batch_rows": 100}')`)
	p.b.WaitFor(t, time.Minute, "pass 1 moving rows", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT coalesce((SELECT rows_done FROM steep_repl.init_progress WHERE node = 'node_b'), 0)") >= 1000
	})
	if st := mergeNodeState(t, p.b, "node_b"); st != "copying" {
		t.Fatalf("node_b is %s while pass 1 moves rows", st)
	}
	dbaQuery[int64](t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	waitMergeState(t, p.b, "node_b", "uninitialized", time.Minute)
	if after := [2]string{digest(t, p.a), digest(t, p.b)}; after != before {
		t.Fatalf("a cancelled merge changed rows")
	}
	for _, n := range []*harness.Node{p.a, p.b} {
		for _, q := range []string{"SELECT count(*) FROM pg_subscription", "SELECT count(*) FROM pg_replication_slots",
			"SELECT count(*) FROM pg_publication", "SELECT count(*) FROM pg_prepared_xacts", "SELECT count(*) FROM steep_repl.init_progress"} {
			if c := harness.QueryOne[int64](t, n, "", q); c != 0 {
				t.Errorf("%s after the cancel: %s = %d", n.Name, q, c)
			}
		}
	}
	if st := mergeNodeState(t, p.a, "node_a"); st != "uninitialized" {
		t.Fatalf("node_a is %s after the cancel", st)
	}
}

// A sidecar killed while pass 1 moves rows: its transactions die with it; the job, retried by
// another sidecar once the lease expired, starts over and completes the merge.
func TestMergeRetriedAfterAKilledSidecarCompletes(t *testing.T) {
	t.Parallel()
	p := mergePair(t, "--lease", "3s")
	p.a.Exec(t, "", "INSERT INTO parent SELECT g, 'a ' || g FROM generate_series(100001, 150000) g")
	dbaQuery[int64](t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'merge', '{"strategy": "prefer-source", "batch_rows": 100}')`)
	p.b.WaitFor(t, time.Minute, "pass 1 moving rows", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT coalesce((SELECT rows_done FROM steep_repl.init_progress WHERE node = 'node_b'), 0)") >= 1000
	})
	p.car.kill()
	startSidecar(t, p.b, "sidecar_b2", "--lease", "3s")
	waitMergeState(t, p.b, "node_b", "synchronized", 3*time.Minute)
	waitMergeState(t, p.a, "node_a", "synchronized", time.Minute)
	p.waitEqual(t, 30*time.Second)
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.merges WHERE NOT dry_run"); n != 2 {
		t.Fatalf("%d merges recorded, want 2 (the killed attempt and the retry)", n)
	}
	t.Logf("write freeze with %d rows per node: %.1f ms", harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM parent"),
		harness.QueryOne[float64](t, p.b, "", "SELECT freeze_ms::float8 FROM steep_repl.merges WHERE merge_id = $1", lastMergeID(t, p.b, false)))
	if n := dbaQuery[int64](t, p.b, "SELECT count(*) FROM steep_repl.merge_plan('node_a', '{\"strategy\": \"prefer-source\"}')"); n != 0 {
		t.Fatalf("a plan after the retried merge has %d rows to move", n)
	}
}
