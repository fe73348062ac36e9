package tests

import (
	"context"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

func TestStalledCopyRaisesAnEventWithoutFailingAndLargeTablesAreReported(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	// A SHARE lock on one target table blocks its table-sync worker (COPY needs ROW EXCLUSIVE)
	// but not start_init's reads: no progress at all.
	ctx := context.Background()
	blocker, err := p.b.Pool(t, "").Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, "LOCK TABLE playlist_track IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	p.startInit(t, `{"stall_timeout": 2, "large_table_threshold": 300000}`)
	p.b.WaitFor(t, 30*time.Second, "an init.stalled event", func() bool {
		return eventCount(t, p.b, "init.stalled") == 1
	})
	if st := p.state(t); st != "copying" {
		t.Fatalf("a stall changed the state to %s", st)
	}
	if !harness.QueryOne[bool](t, p.b, "", "SELECT stalled_since IS NOT NULL FROM steep_repl.init_progress") {
		t.Fatal("progress does not show the stall")
	}
	large := harness.QueryOne[string](t, p.b, "", "SELECT array_to_string(large_tables, ',') FROM steep_repl.init_progress")
	if large != "public.playlist_track,public.track" {
		t.Fatalf("large tables reported: %q", large)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitState(t, "synchronized", 60*time.Second)
	if harness.QueryOne[bool](t, p.b, "", "SELECT stalled_since IS NOT NULL FROM steep_repl.init_progress") {
		t.Fatal("the stall is still shown after progress resumed")
	}
	harness.AssertEqual(t, p.a, p.b, "")
}
