package tests

import (
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// holderConnected reports whether the fast init's snapshot holder still holds its replication
// connection on the source (the exported snapshot lives exactly as long as it).
func holderConnected(t testing.TB, p *pair) bool {
	t.Helper()
	return harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM pg_stat_replication WHERE application_name LIKE '%holder%'") > 0
}

// The exported snapshot of a fast init is held however long a copy that makes progress runs (a
// terabyte copies for hours, and a sidecar killed late in it must still resume), and let go
// once the init made no progress for the sidecar's --snapshot-holder-idle: a sidecar killed and
// not restarted must not pin the source's xmin horizon for ever. The job retried after that
// starts over from a new slot and still ends equal.
func TestFastInitSnapshotHolderIsKeptWhileTheCopyProgressesAndLetGoOnceItStops(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.car.kill()
	const idle = 3 * time.Second
	p.car = startSidecar(t, p.b, "sidecar_b2", "--lease", "3s", "--snapshot-holder-idle", idle.String())
	p.fastInitLoadingSlow(t, 12000, 3*time.Millisecond, `{"parallel": 2, "split_threshold": 16384}`)
	started := time.Now()
	// Well past idle since the holder started, with chunks still to copy: still held.
	p.b.WaitFor(t, 60*time.Second, "the copy running for twice the holder's idle time", func() bool {
		if !holderConnected(t, p) {
			t.Fatalf("the snapshot holder let go %s after the copy started, while the copy progressed (idle bound %s)", time.Since(started).Round(time.Millisecond), idle)
		}
		return time.Since(started) > 2*idle+time.Second
	})
	if left := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_tables WHERE table_name = 'slow' AND chunks_done < chunks_total"); left == 0 {
		t.Fatal("the copy of slow ended before twice the idle time: nothing proven, make the table slower")
	}
	p.car.kill() // its sessions end with it: no chunk commits after this
	p.a.WaitFor(t, 30*time.Second, "the snapshot holder let go once the init made no progress", func() bool {
		return !holderConnected(t, p)
	})
	if gap := harness.QueryOne[float64](t, p.b, "", `SELECT extract(epoch FROM now() - last_progress_at)::float8
		FROM steep_repl.init_progress WHERE node = 'node_b'`); gap < idle.Seconds() {
		t.Fatalf("the snapshot holder let go %.2fs after the init's last progress, before its idle bound %s", gap, idle)
	}
	p.removeSlowDown(t)
	p.car = startSidecar(t, p.b, "sidecar_b3", "--lease", "3s")
	p.waitState(t, "synchronized", 120*time.Second)
	logEvents(t, p)
	p.waitEqual(t, 60*time.Second)
	if n := eventCount(t, p.b, "init.fast_restarted"); n != 1 {
		t.Fatalf("%d init.fast_restarted events, want 1 (the snapshot was let go)", n)
	}
}
