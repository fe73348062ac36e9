package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// soak is a source (node_a) under a write load, a target initialized automatically (node_b) and
// a target initialized from snapshots (node_c), each with a sidecar the chaos kills.
type soak struct {
	a, b, c *harness.Node
	root    string
	chaos   *chaos
	load    *soakLoad
	fails   []string // every FAILED outcome, with its reason, before its retry
}

// maxRetries bounds the retries of one target in one cycle: beyond it the soak has found a
// failure a retry does not fix.
const maxRetries = 6

// For the whole soak a write load runs on the source; cycle after cycle node_b is initialized
// automatically while node_c gets a snapshot generated, applied and subscribed from its LSN,
// with the sidecars SIGKILLed at seeded random moments and restarted. Each cycle ends with both
// targets SYNCHRONIZED (an init that goes FAILED must name its reason, and a retry must succeed)
// and equal row for row to the source at a source LSN both caught up to, read while the load
// pauses. make soak runs it (STEEP_SOAK=1, STEEP_SOAK_MINUTES, STEEP_SOAK_SEED).
func TestSoakInitsAndSnapshotsUnderLoadWithSidecarKillsEndEqual(t *testing.T) {
	requireSoak(t)
	dur, seed := soakDuration(), soakSeed()
	t.Logf("soak for %s with seed %d (STEEP_SOAK_SEED=%d replays the kills)", dur, seed, seed)
	s := setupSoak(t, seed)
	end := time.Now().Add(dur)
	cycles := 0
	for cycles == 0 || time.Now().Before(end) {
		cycles++
		start := time.Now()
		s.cycle(t, cycles)
		t.Logf("cycle %d: both targets SYNCHRONIZED and equal in %s; %d kills, %d writes so far",
			cycles, time.Since(start).Round(time.Second), s.chaos.total, s.load.writes.Load())
	}
	s.load.stop()
	t.Logf("soak done: %d cycles, %d sidecar kills, %d FAILED then retried, %d write transactions (%d errors)\nkills:%s\nfailures:\n  %s",
		cycles, s.chaos.total, len(s.fails), s.load.writes.Load(), s.load.errs.Load(), s.chaos.summary(), strings.Join(s.fails, "\n  "))
}

func setupSoak(t *testing.T, seed uint64) *soak {
	opts := harness.DefaultOptions()
	opts.Settings = fastSupervisor
	nodes := harness.StartN(t, 3, opts)
	s := &soak{a: nodes[0], b: nodes[1], c: nodes[2], root: filepath.Join(t.TempDir(), "root")}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatal(err)
	}
	var cars []*soakCar
	for i, n := range nodes {
		failOnTickErrors(t, n)
		n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
		for j, name := range []string{"node_a", "node_b", "node_c"} {
			n.Exec(t, "", "SELECT steep_repl.register_node($1, $2, $3)", name, libpqConninfo(nodes[j]), i == j)
		}
		setSnapshotRoot(t, n, s.root)
		ensureDBA(t, n)
		// A short lease: a killed sidecar's job is taken up again within seconds.
		car := &soakCar{node: n, name: fmt.Sprintf("sidecar_%c", 'a'+i), args: []string{"--snapshot-root", s.root, "--lease", "6s"}}
		car.start(t)
		cars = append(cars, car)
	}
	soakSchema(t, s.a, true)
	soakSchema(t, s.b, false) // node_c gets its tables from the first snapshot's schema
	s.chaos = newChaos(seed, cars...)
	s.load = startSoakLoad(t, s.a.Pool(t, ""), seed)
	return s
}

// cycle runs both inits to SYNCHRONIZED under the kills, compares, and resets both targets.
func (s *soak) cycle(t *testing.T, n int) {
	auto := &autoInit{s: s}
	snap := &snapInit{s: s, cycle: n}
	s.chaos.on = true
	s.chaos.nextKill = time.Now().Add(s.chaos.between(time.Second, 6*time.Second))
	s.poll(t, 10*time.Minute, fmt.Sprintf("cycle %d: both targets SYNCHRONIZED", n), func() bool {
		a, b := auto.step(t), snap.step(t)
		return a && b
	})
	s.chaos.heal(t)
	s.compareCaughtUp(t, n)
	s.reset(t, s.b, "node_b")
	s.reset(t, s.c, "node_c")
	job := dbaQuery[int64](t, s.a, "SELECT steep_repl.delete_snapshot($1)", snap.id)
	waitJobDone(t, s.a, job, "succeeded", 60*time.Second)
}

// poll calls cond every 100 ms, letting the chaos kill and restart sidecars in between.
func (s *soak) poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		s.chaos.step(t)
		time.Sleep(100 * time.Millisecond)
	}
}

// failed records a FAILED outcome; it fails the test when the reason is empty or the retries
// are used up.
func (s *soak) failed(t *testing.T, what, reason string, retries *int) {
	t.Helper()
	t.Logf("%s FAILED: %s", what, reason)
	if strings.TrimSpace(reason) == "" {
		t.Fatalf("%s FAILED without a reason", what)
	}
	s.fails = append(s.fails, what+": "+reason)
	if *retries++; *retries > maxRetries {
		t.Fatalf("%s: still failing after %d retries", what, maxRetries)
	}
}

func nodeState(t *testing.T, n *harness.Node, node string) (state, reason string) {
	t.Helper()
	state = harness.QueryOne[string](t, n, "", "SELECT init_state FROM steep_repl.nodes WHERE name = $1", node)
	if state == "failed" {
		reason = harness.QueryOne[string](t, n, "", "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = $1", node)
	}
	return state, reason
}

func jobOutcome(t *testing.T, n *harness.Node, job int64) (state, reason string) {
	t.Helper()
	state = harness.QueryOne[string](t, n, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", job)
	return state, jobError(t, n, job)
}

// autoInit drives start_init of node_b from node_a to SYNCHRONIZED, retrying a FAILED one
// after cancel_init.
type autoInit struct {
	s       *soak
	phase   string
	retries int
}

func (x *autoInit) step(t *testing.T) bool {
	b := x.s.b
	switch x.phase {
	case "":
		dbaExec(t, b, `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"parallel": 2, "force": true}')`)
		x.phase = "running"
	case "running":
		switch st, reason := nodeState(t, b, "node_b"); st {
		case "synchronized":
			x.phase = "done"
		case "failed":
			x.s.failed(t, "automatic init of node_b", reason, &x.retries)
			dbaExec(t, b, "SELECT steep_repl.cancel_init('node_b')")
			x.phase = "cancelling"
		}
	case "cancelling":
		if st, _ := nodeState(t, b, "node_b"); st == "uninitialized" {
			x.phase = ""
		}
	}
	return x.phase == "done"
}

// snapInit drives a snapshot of node_a into node_c: generate, apply with subscribe,
// SYNCHRONIZED; a failed generation is deleted and generated again, a failed apply applied
// again (from a new snapshot when its slot is gone).
type snapInit struct {
	s       *soak
	cycle   int
	n       int // snapshots generated this cycle
	id, dir string
	job     int64
	phase   string
	next    string // the phase after a cancel
	retries int
}

func (x *snapInit) step(t *testing.T) bool {
	a, c := x.s.a, x.s.c
	switch x.phase {
	case "":
		x.n++
		x.dir = filepath.Join(x.s.root, fmt.Sprintf("cycle%d_%d", x.cycle, x.n))
		x.id = dbaQuery[string](t, a, "SELECT steep_repl.generate_snapshot($1, $2)", x.dir, `{"parallel": 2, "compression": "zstd"}`)
		x.job = harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", x.id)
		x.phase = "generating"
	case "generating":
		switch st, reason := jobOutcome(t, a, x.job); st {
		case "succeeded":
			x.phase = "apply"
		case "failed", "cancelled":
			x.s.failed(t, "snapshot generation "+x.id, reason, &x.retries)
			dbaExec(t, a, "SELECT steep_repl.delete_snapshot($1)", x.id)
			x.phase = ""
		}
	case "apply":
		x.job = dbaQuery[int64](t, c, "SELECT steep_repl.apply_snapshot($1, $2)", x.dir, `{"subscribe": true, "truncate": true, "parallel": 2}`)
		x.phase = "applying"
	case "applying":
		st, reason := jobOutcome(t, c, x.job)
		if st == "succeeded" {
			x.phase = "subscribed"
		} else if st == "failed" || st == "cancelled" {
			x.retry(t, "snapshot apply of "+x.id, reason)
		}
	case "subscribed":
		switch st, reason := nodeState(t, c, "node_c"); st {
		case "synchronized":
			x.phase = "done"
		case "failed":
			x.retry(t, "snapshot init of node_c from "+x.id, reason)
		}
	case "cancelling":
		if st, _ := nodeState(t, c, "node_c"); st == "uninitialized" {
			x.phase = x.next
		}
	}
	return x.phase == "done"
}

// retry cancels node_c's failed init, then applies the same snapshot again, or a new one when
// the reason says its slot is gone.
func (x *snapInit) retry(t *testing.T, what, reason string) {
	x.s.failed(t, what, reason, &x.retries)
	x.next = "apply"
	if strings.Contains(reason, "is gone") {
		dbaExec(t, x.s.a, "SELECT steep_repl.delete_snapshot($1)", x.id)
		x.next = ""
	}
	if st, _ := nodeState(t, x.s.c, "node_c"); st == "uninitialized" {
		x.phase = x.next
		return
	}
	dbaExec(t, x.s.c, "SELECT steep_repl.cancel_init('node_c')")
	x.phase = "cancelling"
}

// compareCaughtUp pauses the load, reads the source's LSN, waits until both targets confirmed
// it on their slots, and compares both with the source by row hash.
func (s *soak) compareCaughtUp(t *testing.T, cycle int) {
	t.Helper()
	s.load.pause()
	defer s.load.resume()
	lsn := harness.QueryOne[string](t, s.a, "", "SELECT pg_current_wal_lsn()::text")
	for _, n := range []*harness.Node{s.b, s.c} {
		slot := harness.QueryOne[string](t, n, "", "SELECT subslotname::text FROM pg_subscription")
		s.a.WaitFor(t, 2*time.Minute, fmt.Sprintf("slot %s confirmed at %s", slot, lsn), func() bool {
			return harness.QueryOne[bool](t, s.a, "", `SELECT coalesce((SELECT confirmed_flush_lsn >= $2::pg_lsn
				FROM pg_replication_slots WHERE slot_name = $1), false)`, slot, lsn)
		})
		rep, err := harness.Compare(context.Background(), s.a.Pool(t, ""), n.Pool(t, ""), harness.CompareOptions{})
		if err != nil {
			t.Fatalf("cycle %d: compare with %s: %v", cycle, n.Name, err)
		}
		if !rep.Equal() {
			t.Fatalf("cycle %d: %s caught up to %s and differs from the source:\n%s", cycle, n.Name, lsn, rep)
		}
	}
	t.Logf("cycle %d: both targets equal to the source at %s (%d rows on the source)", cycle, lsn, userRowCount(t, s.a))
}

// reset takes a SYNCHRONIZED target out for the next cycle, as a DBA retiring its link would:
// its subscription dropped (with its slot on the source), the publication made for it, and
// the node back to UNINITIALIZED through the legal transitions.
func (s *soak) reset(t *testing.T, n *harness.Node, node string) {
	t.Helper()
	sub := harness.QueryOne[string](t, n, "", "SELECT subname::text FROM pg_subscription")
	n.Exec(t, "", fmt.Sprintf("DROP SUBSCRIPTION %q", sub))
	s.a.Exec(t, "", fmt.Sprintf("DROP PUBLICATION IF EXISTS %q", "sr_pub_"+node))
	n.Exec(t, "", fmt.Sprintf(`SELECT steep_repl.transition(%[1]s, 'diverged', 'soak: next cycle');
		SELECT steep_repl.transition(%[1]s, 'reinitializing', 'soak: next cycle');
		SELECT steep_repl.transition(%[1]s, 'uninitialized', 'soak: next cycle')`, "'"+node+"'"))
}
