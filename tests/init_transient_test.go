package tests

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// setupProxiedPair is setupPair with node_a registered on node_b through a TCP proxy, so every
// session node_b opens to its source (the sidecar's, tick()'s dblink reads, the subscription's
// workers) crosses it and a test can refuse, reset or blackhole them. No sidecar is started:
// a test starts it when the fault it wants is in place.
func setupProxiedPair(t *testing.T, settings map[string]string) (*pair, *harness.Proxy) {
	t.Helper()
	opts := harness.DefaultOptions()
	opts.Settings = maps.Clone(fastSupervisor)
	maps.Copy(opts.Settings, settings)
	nodes := harness.StartN(t, 2, opts)
	a, b := nodes[0], nodes[1]
	proxy := harness.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", a.Port), harness.ProxyForward)
	viaProxy := fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=postgres", proxy.Port())
	for _, n := range nodes {
		failOnTickErrors(t, n)
		n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
		source := libpqConninfo(a)
		if n == b {
			source = viaProxy
		}
		n.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, $2)", source, n == a)
		n.Exec(t, "", "SELECT steep_repl.register_node('node_b', $1, $2)", libpqConninfo(b), n == b)
		harness.LoadChinook(t, n, "")
	}
	b.Exec(t, "", `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT format('%I.%I', schemaname, tablename) t FROM pg_tables WHERE schemaname = 'public' LOOP
			EXECUTE 'TRUNCATE ' || r.t || ' CASCADE';
		END LOOP; END $$`)
	return &pair{a: a, b: b}, proxy
}

// retryEvents counts node_b's init.retry events, read as the operator.
func retryEvents(t *testing.T, p *pair) int64 {
	t.Helper()
	return dbaQuery[int64](t, p.b, "SELECT count(*) FROM steep_repl.events WHERE node = 'node_b' AND event = 'init.retry'")
}

// The source refuses connections for about 8 s while the init is PREPARING (source_timeout
// 60): the init.start job retries inside the same attempt, each retry an event and one log
// line, and once the source answers again the init ends SYNCHRONIZED and equal.
func TestInitSourceRefusingDuringPreparingIsRetriedAndEndsEqual(t *testing.T) {
	scenario(t)
	t.Parallel()
	p, proxy := setupProxiedPair(t, nil)
	job := p.startInit(t, `{"source_timeout": 60}`)
	proxy.Set(t, harness.ProxyRefuse)
	refusedAt := time.Now()
	car := startSidecar(t, p.b, "sidecar_b")

	p.b.WaitFor(t, 20*time.Second, "8 s of refusals, retried at least twice", func() bool {
		return time.Since(refusedAt) >= 8*time.Second && retryEvents(t, p) >= 2
	})
	if st := p.state(t); st != "preparing" {
		t.Fatalf("node_b is %s after 8 s of an unreachable source with source_timeout 60, want preparing", st)
	}
	proxy.Set(t, harness.ProxyForward)
	p.waitState(t, "synchronized", 40*time.Second)
	p.waitEqual(t, 20*time.Second)

	retries := retryEvents(t, p)
	detail := dbaQuery[map[string]any](t, p.b, `SELECT detail FROM steep_repl.events
		WHERE node = 'node_b' AND event = 'init.retry' ORDER BY id LIMIT 1`)
	if e, _ := detail["error"].(string); detail["source"] != "node_a" || detail["attempt"] != float64(1) ||
		!strings.Contains(e, "connection refused") {
		t.Fatalf("the first init.retry event: %v", detail)
	}
	if logged := len(car.events("init.retry")); int64(logged) != retries {
		t.Fatalf("the sidecar logged init.retry %d times for %d retry events, want once per attempt", logged, retries)
	}
	// Retried within the job: one attempt of it, which succeeded.
	if got := harness.QueryOne[string](t, p.b, "", "SELECT state || ' ' || attempt FROM steep_repl.jobs WHERE id = $1", job); got != "succeeded 1" {
		t.Fatalf("init.start job: %s, want succeeded on its first attempt", got)
	}
}

// The source refuses for longer than a short source_timeout (5 s): FAILED with a reason that
// names the source and the attempts; once it forwards again a new start_init ends equal.
func TestInitSourceRefusingPastSourceTimeoutFailsWithTheAttemptsThenARetrySucceeds(t *testing.T) {
	scenario(t)
	t.Parallel()
	p, proxy := setupProxiedPair(t, nil)
	job := p.startInit(t, `{"source_timeout": 5}`)
	proxy.Set(t, harness.ProxyRefuse)
	p.car = startSidecar(t, p.b, "sidecar_b")

	p.waitState(t, "failed", 25*time.Second)
	reason := dbaQuery[string](t, p.b, "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'")
	for _, want := range []string{"source node node_a", "connection refused", "attempts over", "source_timeout 5s"} {
		if !strings.Contains(reason, want) {
			t.Fatalf("reason of the failed init lacks %q: %s", want, reason)
		}
	}
	if n := retryEvents(t, p); n < 2 {
		t.Fatalf("%d init.retry events before FAILED, want the retries recorded", n)
	}
	// The retries took source_timeout, counted from the first failure.
	span := harness.QueryOne[float64](t, p.b, "", `SELECT extract(epoch FROM
		(SELECT at FROM steep_repl.events WHERE node = 'node_b' AND event = 'init.state_change' AND to_state = 'failed')
		- (SELECT min(at) FROM steep_repl.events WHERE node = 'node_b' AND event = 'init.retry'))::float8`)
	if span < 4.5 || span > 10 {
		t.Fatalf("FAILED %.1f s after the first retry, want about source_timeout (5 s)", span)
	}
	p.b.WaitFor(t, 10*time.Second, "the init.start job failed", func() bool {
		return harness.QueryOne[string](t, p.b, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", job) == "failed"
	})

	proxy.Set(t, harness.ProxyForward)
	p.startInit(t, `{"source_timeout": 5}`)
	p.waitState(t, "synchronized", 40*time.Second)
	p.waitEqual(t, 20*time.Second)
}

// A permanent failure (a table in scope dropped on the source between start_init and the job)
// fails the init at once, without a retry.
func TestInitPermanentFailureFailsAtOnceWithoutRetries(t *testing.T) {
	t.Parallel()
	p, _ := setupProxiedPair(t, nil)
	job := p.startInit(t, `{"source_timeout": 60}`)
	p.a.Exec(t, "", "DROP TABLE playlist_track")
	startSidecar(t, p.b, "sidecar_b")
	start := time.Now()
	p.waitState(t, "failed", 15*time.Second)
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("a permanent failure took %s to fail the init, want at once", took)
	}
	reason := dbaQuery[string](t, p.b, "SELECT coalesce(last_error, '') FROM steep_repl.nodes WHERE name = 'node_b'")
	if !strings.Contains(reason, "source node node_a") || !strings.Contains(reason, "playlist_track") ||
		strings.Contains(reason, "attempts") {
		t.Fatalf("reason of the permanent failure: %s", reason)
	}
	if n := retryEvents(t, p); n != 0 {
		t.Fatalf("%d init.retry events for a permanent failure, want none", n)
	}
	p.b.WaitFor(t, 10*time.Second, "the init.start job failed on its first attempt", func() bool {
		return harness.QueryOne[string](t, p.b, "", "SELECT state || ' ' || attempt FROM steep_repl.jobs WHERE id = $1", job) == "failed 1"
	})
}

// A cancel while init.start waits to retry an unreachable source ends the wait at once (the
// heartbeat sees the request within 2 s; the backoff is by then 4-5 s): the job is cancelled and
// the node UNINITIALIZED, though the source still refuses.
func TestInitCancelInterruptsTheRetryWait(t *testing.T) {
	scenario(t)
	t.Parallel()
	p, proxy := setupProxiedPair(t, nil)
	job := p.startInit(t, `{"source_timeout": 60}`)
	proxy.Set(t, harness.ProxyRefuse)
	startSidecar(t, p.b, "sidecar_b")
	p.b.WaitFor(t, 30*time.Second, "three retries (the next wait is 4 s or more)", func() bool {
		return retryEvents(t, p) >= 3
	})
	dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	start := time.Now()
	p.b.WaitFor(t, 10*time.Second, "the init.start job cancelled", func() bool {
		return jobState(t, p.b, job) == "cancelled"
	})
	took := time.Since(start)
	t.Logf("init.start cancelled %s after cancel_init", took.Round(time.Millisecond))
	if took > 4*time.Second {
		t.Fatalf("the cancel took %s to end the retry wait, want within the heartbeat (2 s)", took)
	}
	p.waitState(t, "uninitialized", 20*time.Second)
}
