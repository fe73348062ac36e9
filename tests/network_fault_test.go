package tests

import (
	"sort"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// subscriptionErrors is the sync + apply error count of node_b's subscription.
func subscriptionErrors(t *testing.T, p *pair) int64 {
	t.Helper()
	return harness.QueryOne[int64](t, p.b, "", `SELECT coalesce(sum(s.apply_error_count + s.sync_error_count), 0)::bigint
		FROM pg_stat_subscription_stats s JOIN pg_subscription sub ON sub.oid = s.subid`)
}

// The network between the nodes resets every connection while a table is being copied: the
// subscription's table-sync and apply workers lose theirs (errors counted by the subscription),
// which is the source's outage, not the init's failure; they reconnect once it forwards again
// and the init ends SYNCHRONIZED and equal.
func TestNetworkResetDuringCopyingEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p, proxy := setupProxiedPair(t, nil)
	p.addSlowTable(t, 300, 10*time.Millisecond) // a copy of about 3 s
	p.car = startSidecar(t, p.b, "sidecar_b")
	p.startInit(t, `{"source_timeout": 60}`)
	p.b.WaitFor(t, 30*time.Second, "the slow table being copied", func() bool {
		return harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy WHERE relid = 'slow'::regclass)")
	})

	// Reset until the workers lost their connections and tick() has seen the source unreachable.
	proxy.Set(t, harness.ProxyReset)
	// The table-sync worker notices only when it reads again, after the rows it holds are in: its
	// copy is then gone from pg_stat_progress_copy.
	p.b.WaitFor(t, 15*time.Second, "the workers' connections reset and the source seen unreachable", func() bool {
		return subscriptionErrors(t, p) > 0 && harness.QueryOne[bool](t, p.b, "",
			`SELECT source_unreachable_since IS NOT NULL FROM steep_repl.init_progress WHERE node = 'node_b'`) &&
			!harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy WHERE relid = 'slow'::regclass)")
	})
	if st := p.state(t); st != "copying" {
		t.Fatalf("node_b is %s while the network resets, want copying", st)
	}
	proxy.Set(t, harness.ProxyForward)
	p.waitState(t, "synchronized", 40*time.Second)
	p.waitEqual(t, 20*time.Second)
	t.Logf("the subscription counted %d sync/apply errors from the reset", subscriptionErrors(t, p))
}

// reapLatencies measures the supervisor's rhythm for d: again and again, a job of a kind no
// sidecar runs is claimed with a 1 s lease and never heartbeated, and the time until tick()'s
// reap_leases duty takes it back (failed: its one attempt is used) is recorded.
func reapLatencies(t *testing.T, n *harness.Node, d time.Duration) []time.Duration {
	t.Helper()
	var out []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		job := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.enqueue_job('test.reap', '{}', NULL, 1)")
		claimed := harness.QueryOne[int64](t, n, "", "SELECT id FROM steep_repl.claim_job('test', '{test.reap}', '1 second')")
		if claimed != job {
			t.Fatalf("claimed job %d, want %d", claimed, job)
		}
		start := time.Now()
		n.WaitFor(t, 20*time.Second, "the expired lease reaped", func() bool {
			return jobState(t, n, job) != "running"
		})
		out = append(out, time.Since(start))
	}
	return out
}

// The network between the nodes accepts and forwards nothing (a blackhole) while the init is
// CATCHING_UP: tick() keeps its rhythm (leases are reaped within a second or two, the reads of
// the silent source end within their 5 s bound and fail no duty), the init sees its source
// unreachable instead of hanging, and once the network forwards again it reaches SYNCHRONIZED
// and equal.
func TestNetworkBlackholeDuringCatchingUpKeepsTickRhythmAndRecovers(t *testing.T) {
	scenario(t)
	t.Parallel()
	// Status every second: once forwarding again the confirmed position (the lag) follows quickly.
	p, proxy := setupProxiedPair(t, map[string]string{"wal_receiver_status_interval": "1s"})
	// Hold the init in CATCHING_UP: artist is never reported ready until the hold is dropped.
	p.b.Exec(t, "", `CREATE FUNCTION public.hold_artist() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.sync_state = 'ready' THEN NEW.sync_state := 'synced'; END IF; RETURN NEW; END $$`)
	p.b.Exec(t, "", `CREATE TRIGGER hold_artist BEFORE UPDATE ON steep_repl.init_tables
		FOR EACH ROW WHEN (NEW.table_name = 'artist') EXECUTE FUNCTION public.hold_artist()`)
	p.car = startSidecar(t, p.b, "sidecar_b")
	p.startInit(t, `{"source_timeout": 60}`)
	p.waitState(t, "catching_up", 40*time.Second)
	t0 := time.Now()

	// Writes on the source all along: the blackhole holds changes the target has to get.
	stopWrites := chinookLoad(t, p)

	proxy.Set(t, harness.ProxyBlackhole)
	blackholed := time.Now()
	lat := reapLatencies(t, p.b, 8*time.Second)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("blackhole: %d leases reaped, median %s, max %s", len(lat), lat[len(lat)/2].Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond))
	// A 1 s lease, ticks every 200 ms; a tick that reads the silent source costs up to its 5 s bound.
	if med, max := lat[len(lat)/2], lat[len(lat)-1]; med > 2500*time.Millisecond || max > 8*time.Second {
		t.Fatalf("tick lost its rhythm in the blackhole: lease reaped after median %s, max %s", med, max)
	}
	got := harness.QueryOne[string](t, p.b, "", `SELECT coalesce(message, '') FROM steep_repl.init_progress
		WHERE node = 'node_b' AND source_unreachable_since IS NOT NULL`)
	if got != "source node node_a unreachable: no answer within 00:00:05" {
		t.Fatalf("init_progress %s into the blackhole: message %q, want the source unreachable", time.Since(blackholed).Round(time.Second), got)
	}
	if f := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.supervisor_duties WHERE consecutive_failures > 0"); f != 0 {
		t.Fatalf("%d duties failing in the blackhole, want none (a silent source is unreachable, not a failure)", f)
	}
	if st := p.state(t); st != "catching_up" {
		t.Fatalf("node_b is %s after 8 s of a blackhole with source_timeout 60, want catching_up", st)
	}

	proxy.Set(t, harness.ProxyForward)
	forwarded := time.Now()
	stopWrites()
	p.b.Exec(t, "", "DROP TRIGGER hold_artist ON steep_repl.init_tables")
	p.waitState(t, "synchronized", 40*time.Second)
	// A source back after a short outage is read again within as long as it was unreachable.
	took := time.Since(forwarded)
	t.Logf("SYNCHRONIZED %s after the network forwarded again (%s after CATCHING_UP)", took.Round(time.Millisecond),
		time.Since(t0).Round(time.Millisecond))
	if took > 15*time.Second {
		t.Fatalf("SYNCHRONIZED %s after the source answered again, want within the read backoff (about 10 s)", took)
	}
	p.waitEqual(t, 20*time.Second)
}

// A blip: every connection between the nodes is reset once, and the network is back before
// tick() sees the source unreachable. The subscription's workers count errors while the source
// answers; they do not recur, so after the quiet period they are forgiven (init.errors_forgiven)
// and the init ends SYNCHRONIZED and equal instead of FAILED.
func TestNetworkBlipDuringCopyingIsForgivenAndEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p, proxy := setupProxiedPair(t, nil)
	p.addSlowTable(t, 300, 10*time.Millisecond) // a copy of about 3 s
	p.car = startSidecar(t, p.b, "sidecar_b")
	p.startInit(t, `{"source_timeout": 60}`)
	p.b.WaitFor(t, 30*time.Second, "the slow table being copied", func() bool {
		return harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy WHERE relid = 'slow'::regclass)")
	})
	// Every open connection is reset; new ones (tick's probe, the workers' reconnects) go through.
	proxy.Set(t, harness.ProxyReset)
	proxy.Set(t, harness.ProxyForward)
	p.b.WaitFor(t, 30*time.Second, "the workers' errors from the reset", func() bool { return subscriptionErrors(t, p) > 0 })
	p.waitState(t, "synchronized", 60*time.Second)
	p.waitEqual(t, 20*time.Second)
	p.b.WaitFor(t, 30*time.Second, "init.errors_forgiven", func() bool {
		return dbaQuery[bool](t, p.b, `SELECT EXISTS (SELECT 1 FROM steep_repl.events
			WHERE node = 'node_b' AND event = 'init.errors_forgiven' AND detail->>'reason' LIKE '%while the source answered')`)
	})
	if st := p.state(t); st != "synchronized" {
		t.Fatalf("node_b is %s after the blip was forgiven, want synchronized", st)
	}
	t.Logf("%d sync/apply errors from the blip, forgiven", subscriptionErrors(t, p))
}
