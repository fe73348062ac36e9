package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

// catchingUpFrom makes node_a (the local node) an init in CATCHING_UP from source, without
// copying anything: a disabled subscription that never connects, an init_progress row, and the
// state walked there by transition(). tick()'s inits duty then reads the source every time it is
// due, which is what these tests point at a failing or silent peer.
func catchingUpFrom(t *testing.T, n *harness.Node, source string) {
	t.Helper()
	sub := "sr_" + source + "_node_a"
	n.Exec(t, "", fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION 'host=127.0.0.1 port=1 dbname=postgres'
		PUBLICATION nothing WITH (connect = false)`, sub))
	n.Exec(t, "", `INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, subscription,
		slot_name, subscription_oid, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout)
		SELECT 'node_a', $1, 'snapshot', '{}', 'sr_pub_node_a', $2::text, $2::text, s.oid, 1, 0, '1 hour', '1 hour'
		FROM pg_subscription s WHERE s.subname = $2::text`, source, sub)
	n.Exec(t, "", "UPDATE steep_repl.nodes SET init_source_node = $1 WHERE name = 'node_a'", source)
	// One statement, so a tick cannot come between COPYING and CATCHING_UP (with no tables to
	// copy it would move the node on itself).
	n.Exec(t, "", `SELECT steep_repl.transition('node_a', s, 'test')
		FROM unnest(ARRAY['preparing', 'copying', 'catching_up']) WITH ORDINALITY AS x(s, o) ORDER BY o`)
}

// expiredLeaseAndSlot queues a job whose lease expired at 2000-01-01 00:01 and records a
// prepared slot that expired at 00:05, so the next tick() reaps one and drops the other.
func expiredLeaseAndSlot(t *testing.T, n *harness.Node) (job int64) {
	t.Helper()
	job = harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop', '{}', NULL, 3, '2000-01-01')")
	if c := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.claim_job('w', '{noop}', '1 minute', '2000-01-01 00:00')"); c != 1 {
		t.Fatal("claim found no job")
	}
	n.Exec(t, "", `INSERT INTO steep_repl.init_slots (slot_name, target_node, publication, consistent_lsn, created_at, expires_at)
		VALUES ('sr_forgotten', 'node_x', 'sr_pub_node_x', '0/0', '2000-01-01', '2000-01-01 00:05')`)
	return job
}

// TestDutyFailureIsIsolatedRecordedLoggedOnceAndRecovers: the source of node_a's init answers
// every read with an error (its role may not call pg_current_wal_lsn()), so the inits duty fails.
// In the same tick the lease is still reaped and the slot still dropped; the failure is recorded,
// backed off (1 s, 2 s, 4 s), logged once however often it repeats, and once more when it
// recovers; it is never a failed tick.
func TestDutyFailureIsIsolatedRecordedLoggedOnceAndRecovers(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	n.Exec(t, "", "CREATE ROLE limited LOGIN")
	n.Exec(t, "", "REVOKE EXECUTE ON FUNCTION pg_current_wal_lsn() FROM PUBLIC")
	n.Exec(t, "", "SELECT steep_repl.register_node('node_src', $1, false)",
		fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=limited", n.Port))
	catchingUpFrom(t, n, "node_src")
	job := expiredLeaseAndSlot(t, n)

	tick := func(at string) map[string]any {
		t.Helper()
		return harness.QueryOne[map[string]any](t, n, "", "SELECT steep_repl.tick($1)", at)
	}
	duties := func(r map[string]any) map[string]any { return r["duties"].(map[string]any) }

	r := tick("2000-01-01 00:10")
	failed := duties(r)["failed"].(map[string]any)
	if e, _ := failed["inits"].(string); !strings.Contains(e, "permission denied for function pg_current_wal_lsn") {
		t.Fatalf("tick() with a failing source read: failed = %v, want inits with permission denied", failed)
	}
	if ran := fmt.Sprint(duties(r)["ran"]); ran != "[reap_leases expire_slots drift]" {
		t.Fatalf("duties that ran alongside the failing one: %s", ran)
	}
	if r["jobs_requeued"] != float64(1) || r["slots_expired"] != float64(1) {
		t.Fatalf("the failing inits duty stopped the others: %v", r)
	}
	if st := jobState(t, n, job); st != "queued" {
		t.Fatalf("job %d is %s after its lease expired, want queued", job, st)
	}
	if dropped := harness.QueryOne[bool](t, n, "", "SELECT dropped_at IS NOT NULL FROM steep_repl.init_slots WHERE slot_name = 'sr_forgotten'"); !dropped {
		t.Fatal("the expired slot was not dropped")
	}
	row := func() string {
		t.Helper()
		return harness.QueryOne[string](t, n, "", `SELECT format('%s %s %s', consecutive_failures, last_error_at, next_try_at)
			FROM steep_repl.supervisor_duties WHERE name = 'inits'`)
	}
	if got := row(); got != "1 2000-01-01 00:10:00+00 2000-01-01 00:10:01+00" {
		t.Fatalf("supervisor_duties after the first failure: %q", got)
	}

	// Backed off: skipped until next_try_at, then 2 s, then 4 s.
	r = tick("2000-01-01 00:10:00.5")
	if _, ok := duties(r)["skipped"].(map[string]any)["inits"]; !ok || r["inits"] != nil {
		t.Fatalf("tick() inside the backoff ran the failing duty: %v", duties(r))
	}
	tick("2000-01-01 00:10:01")
	if got := row(); got != "2 2000-01-01 00:10:01+00 2000-01-01 00:10:03+00" {
		t.Fatalf("after the second failure: %q", got)
	}
	tick("2000-01-01 00:10:02")
	tick("2000-01-01 00:10:03")
	if got := row(); got != "3 2000-01-01 00:10:03+00 2000-01-01 00:10:07+00" {
		t.Fatalf("after the third failure: %q", got)
	}
	const failing = "steep_repl supervisor: duty inits failed: permission denied for function pg_current_wal_lsn"
	if c := n.LogCount(failing); c != 1 {
		t.Fatalf("the failing duty was logged %d times over 3 failures, want once", c)
	}

	// The source answers again: the duty succeeds, says so once, and the lag is read.
	n.Exec(t, "", "GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO PUBLIC")
	r = tick("2000-01-01 00:10:07")
	if len(duties(r)["failed"].(map[string]any)) != 0 || r["inits"] != float64(1) {
		t.Fatalf("tick() after the source was fixed: %v", r)
	}
	if got := harness.QueryOne[string](t, n, "", `SELECT format('%s %s %s %s', consecutive_failures, last_ok, next_try_at IS NULL, last_error IS NOT NULL)
		FROM steep_repl.supervisor_duties WHERE name = 'inits'`); got != "0 2000-01-01 00:10:07+00 t t" {
		t.Fatalf("supervisor_duties after the recovery: %q", got)
	}
	tick("2000-01-01 00:10:08")
	if c := n.LogCount("steep_repl supervisor: duty inits succeeds again after 3 failure(s)"); c != 1 {
		t.Fatalf("the recovery was logged %d times, want once", c)
	}
	if c := n.LogCount(failing); c != 1 {
		t.Fatalf("the failure was logged again after the recovery (%d times)", c)
	}
	if st := harness.QueryOne[string](t, n, "", "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_a'"); st != "catching_up" {
		t.Fatalf("node_a is %s, want catching_up (its source has no slot: no lag, no SYNCHRONIZED)", st)
	}
	// An operator sees the duties, never changes them.
	ensureDBA(t, n)
	if c := dbaQuery[int64](t, n, "SELECT count(*) FROM steep_repl.supervisor_duties"); c != 4 {
		t.Fatalf("steep_repl_admin sees %d duties, want 4", c)
	}
	if code, _ := dbaState(t, n, "DELETE FROM steep_repl.supervisor_duties"); code != "42501" {
		t.Fatalf("steep_repl_admin deleting supervisor_duties: SQLSTATE %q, want 42501", code)
	}
}

// blackhole is the port of a peer that accepts connections and never sends a byte: a peer
// that is up and does not answer (harness.Proxy without a target).
func blackhole(t *testing.T) int {
	t.Helper()
	return harness.StartProxy(t, "", harness.ProxyBlackhole).Port()
}

// TestDutyBlackholePeerDoesNotHangTick: a peer that accepts connections and never answers costs
// the drift duty the duty timeout (10 s: failed, logged once, backed off); the other duties run
// in the same tick, the next tick is quick, and the caller's statement timer is left as it was.
func TestDutyBlackholePeerDoesNotHangTick(t *testing.T) {
	scenario(t)
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	port := blackhole(t)
	n.Exec(t, "", "SELECT steep_repl.register_node('node_bh', $1, false)",
		fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=postgres", port))
	// SYNCHRONIZED from the silent node: the drift check connects to it and hangs until the
	// duty timeout; the lease is reaped in the same tick anyway.
	catchingUpFrom(t, n, "node_bh")
	n.Exec(t, "", "SELECT steep_repl.transition('node_a', 'synchronized', 'test')")
	job := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('noop', '{}', NULL, 3, '2000-01-01')")
	n.Exec(t, "", "SELECT count(*) FROM steep_repl.claim_job('w', '{noop}', '1 minute', '2000-01-01 00:00')")
	start := time.Now()
	r := harness.QueryOne[map[string]any](t, n, "", "SELECT steep_repl.tick()")
	took := time.Since(start)
	t.Logf("tick() with a silent drift peer took %s: %v", took.Round(time.Millisecond), r["duties"])
	if took < 9*time.Second || took > 14*time.Second {
		t.Fatalf("tick() took %s with a silent drift peer, want the duty timeout (10 s)", took)
	}
	failed := r["duties"].(map[string]any)["failed"].(map[string]any)
	if e, _ := failed["drift"].(string); !strings.Contains(e, "did not finish within 00:00:10 (steep_repl.duty_timeout)") {
		t.Fatalf("the hanging drift duty: failed = %v", failed)
	}
	if st := jobState(t, n, job); st != "queued" {
		t.Fatalf("job %d is %s: the hanging drift duty stopped lease reaping", job, st)
	}

	// Backed off: the next tick skips it and is quick.
	start = time.Now()
	r = harness.QueryOne[map[string]any](t, n, "", "SELECT steep_repl.tick()")
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the tick after a timed-out duty took %s", took)
	}
	if _, ok := r["duties"].(map[string]any)["skipped"].(map[string]any)["drift"]; !ok {
		t.Fatalf("the timed-out drift duty was not backed off: %v", r["duties"])
	}
	if c := n.LogCount("steep_repl supervisor: duty drift failed: did not finish within"); c != 1 {
		t.Fatalf("the timed-out duty was logged %d times, want once", c)
	}

	// Each duty puts the caller's statement timer back as it was: none (a statement that goes on
	// after tick() past a duty's deadline is not cancelled) or the caller's own statement_timeout.
	conn, err := pgx.Connect(t.Context(), n.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "DO $$ BEGIN PERFORM steep_repl.tick(); PERFORM pg_sleep(10.5); END $$"); err != nil {
		t.Fatalf("a statement going on after tick() was cancelled by a duty deadline left behind: %v", err)
	}
	conn.Exec(t.Context(), "SET statement_timeout = '2s'")
	start = time.Now()
	_, err = conn.Exec(t.Context(), "DO $$ BEGIN PERFORM steep_repl.tick(); PERFORM pg_sleep(5); END $$")
	if sqlStateOf(err) != "57014" || time.Since(start) > 4*time.Second {
		t.Fatalf("statement_timeout 2 s around tick() and a 5 s sleep: %v after %s, want 57014 after 2 s", err, time.Since(start))
	}
}
