package cli

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"orders", []string{"orders"}},
		{"public.orders,sales.items", []string{"public.orders", "sales.items"}},
		{" a , b,,c ", []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		if got := splitList(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitList(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestInitOutcome(t *testing.T) {
	tests := []struct {
		state    string
		done, ok bool
	}{
		{api.StatePreparing, false, false},
		{api.StateCopying, false, false},
		{api.StateCatchingUp, false, false},
		{api.StateReinitializing, false, false},
		{api.StateSynchronized, true, true},
		{api.StateFailed, true, false},
		{api.StateUninitialized, true, false},
		{api.StateDiverged, true, false},
	}
	for _, tt := range tests {
		if done, ok := initOutcome(tt.state); done != tt.done || ok != tt.ok {
			t.Errorf("initOutcome(%q) = %v, %v, want %v, %v", tt.state, done, ok, tt.done, tt.ok)
		}
	}
}

func TestLineGate(t *testing.T) {
	steps := []struct {
		state   string
		percent float64
		print   bool
	}{
		{"preparing", 0, true},  // first sample
		{"preparing", 0, false}, // nothing new
		{"copying", 0, true},    // state change
		{"copying", 0.9, false}, // same integer percent
		{"copying", 1.0, true},  // next percent
		{"copying", 1.7, false},
		{"copying", 42.3, true},     // jump
		{"catching_up", 42.3, true}, // state change, same percent
		{"catching_up", 100, true},
		{"synchronized", 100, true},
		{"synchronized", 100, false},
	}
	var g lineGate
	for i, s := range steps {
		if got := g.changed(s.state, s.percent); got != s.print {
			t.Errorf("step %d (%s %.1f): print = %v, want %v", i, s.state, s.percent, got, s.print)
		}
	}
}

func TestChooseModeAndColor(t *testing.T) {
	modes := []struct {
		json, quiet, tty bool
		term             string
		want             followMode
	}{
		{false, false, true, "xterm-256color", modeTTY},
		{false, false, true, "dumb", modePlain},
		{false, false, false, "xterm", modePlain},
		{false, true, true, "xterm", modeQuiet},
		{true, false, true, "xterm", modeJSON},
		{true, true, false, "", modeJSON},
	}
	for _, m := range modes {
		if got := chooseMode(m.json, m.quiet, m.tty, m.term); got != m.want {
			t.Errorf("chooseMode(json=%v, quiet=%v, tty=%v, %q) = %v, want %v", m.json, m.quiet, m.tty, m.term, got, m.want)
		}
	}
	colors := []struct {
		tty, noColor    bool
		noColorEnv, env string
		want            bool
	}{
		{true, false, "", "xterm", true},
		{false, false, "", "xterm", false},
		{true, true, "", "xterm", false},
		{true, false, "1", "xterm", false},
		{true, false, "", "dumb", false},
	}
	for _, c := range colors {
		if got := useColor(c.tty, c.noColor, c.noColorEnv, c.env); got != c.want {
			t.Errorf("useColor(%+v) = %v, want %v", c, got, c.want)
		}
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
}

func fptr(v float64) *float64 { return &v }

func sampleProgress() *api.InitProgress {
	msg := "note"
	return &api.InitProgress{
		Node: "node_b", Source: "node_a", State: "copying", Phase: "copying", Percent: 42.3,
		TablesTotal: 11, TablesDone: 3, CurrentTables: []string{"public.orders"}, LargeTables: []string{"public.orders"},
		BytesTotal: 36e9, BytesDone: 15.2e9, RowsTotal: 9e6, RowsDone: 4e6, RowsPerSec: fptr(52100), BytesPerSec: fptr(125e6),
		ETASeconds: fptr(168), ParallelWorkers: 4, StartedAt: time.Unix(1000, 0), UpdatedAt: time.Unix(1100, 0), Message: &msg,
	}
}

func TestSnapshotOf(t *testing.T) {
	now := time.Unix(1101, 0)
	p := sampleProgress()
	s := snapshotOf(p, now)
	if s.Time != now || s.Node != "node_b" || s.Source != "node_a" || s.State != "copying" || s.Percent != 42.3 ||
		s.TablesTotal != 11 || s.TablesDone != 3 || s.BytesDone != 15.2e9 || s.BytesTotal != 36e9 ||
		s.RowsDone != 4e6 || *s.RowsPerSec != 52100 || *s.BytesPerSec != 125e6 || *s.ETASeconds != 168 ||
		s.Message != "note" || !s.StartedAt.Equal(p.StartedAt) || !s.UpdatedAt.Equal(p.UpdatedAt) ||
		!reflect.DeepEqual(s.CurrentTables, p.CurrentTables) || !reflect.DeepEqual(s.LargeTables, p.LargeTables) {
		t.Errorf("snapshotOf = %+v", s)
	}
	p.Message = nil
	if s := snapshotOf(p, now); s.Message != "" {
		t.Errorf("nil message = %q", s.Message)
	}
}

func TestTableRows(t *testing.T) {
	got := tableRows([]api.InitTable{
		{Schema: "public", Table: "orders", SyncState: "copying", SourceBytes: 1_500_000_000, SourceRows: 3_400_000,
			RowsCopied: 1_200_000, Fraction: 0.353, IsLarge: true},
		{Schema: "public", Table: "fresh", SyncState: "pending", SourceRows: -1},
		{Schema: "s", Table: "unanalyzed", SyncState: "ready", RowsCopied: 347, Fraction: 1},
	})
	want := [][]string{
		{"public.orders", "copying", "1.2M / 3.4M", "1.5 GB", "35.3%", "large"},
		{"public.fresh", "pending", "0 / --", "0 B", "0.0%", ""},
		{"s.unanalyzed", "ready", "347 / --", "0 B", "100.0%", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tableRows =\n%q\nwant\n%q", got, want)
	}
}

func TestPrintStatus(t *testing.T) {
	p := sampleProgress()
	var b bytes.Buffer
	err := printStatus(&b, p, snapshotOf(p, p.UpdatedAt.Add(2*time.Second)), []api.InitTable{
		{Schema: "public", Table: "orders", SyncState: "copying", SourceRows: 10, RowsCopied: 5, Fraction: 0.5},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"42.3% | 15.2 GB / 36.0 GB", "COPYING 3/11 tables", "copying public.orders (large)",
		"from node_a, 4 parallel workers", "sampled 2s ago", "TABLE", "public.orders  copying  5 / 10"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("status without color has escapes:\n%s", out)
	}
}

func TestFollowerShow(t *testing.T) {
	snap := snapshotOf(sampleProgress(), time.Unix(1101, 0))
	show := func(mode followMode, n int) string {
		var out bytes.Buffer
		f := follower{mode: mode, out: &out, width: func() int { return 0 }}
		var g lineGate
		var p progress.Painter
		for range n {
			if err := f.show(snap, &g, &p); err != nil {
				t.Fatal(err)
			}
		}
		return out.String()
	}
	if got := show(modePlain, 3); strings.Count(got, "\n") != 1 || !strings.Contains(got, "COPYING 3/11 tables") {
		t.Errorf("plain: three equal samples gave %q, want one line", got)
	}
	if got := show(modeJSON, 2); strings.Count(got, "\n") != 2 || !strings.HasPrefix(got, `{"time":`) {
		t.Errorf("json: two samples gave %q, want two NDJSON lines", got)
	}
	if got := show(modeTTY, 2); strings.Count(got, "\x1b[1A") != 1 || strings.Count(got, "\n") != 2 {
		t.Errorf("tty: two frames gave %q", got)
	}
	if got := show(modeQuiet, 2); got != "" {
		t.Errorf("quiet showed %q", got)
	}
}

func TestFollowerResult(t *testing.T) {
	var human bytes.Buffer
	f := follower{target: "node_b", source: "node_a", human: &human}
	done := snapshotOf(sampleProgress(), time.Unix(1101, 0))
	done.State, done.TablesDone = "synchronized", 11
	if err := f.result(api.StateSynchronized, &done, true); err != nil {
		t.Fatal(err)
	}
	if got, want := human.String(), "node_b SYNCHRONIZED from node_a: 11 tables, 15.2 GB, 1m40s\n"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}

	failed := done
	failed.State, failed.TablesDone, failed.Message = "failed", 3, "source unreachable"
	tests := []struct {
		state string
		last  *progress.Snapshot
		want  string
	}{
		{api.StateFailed, &failed, "node_b FAILED from node_a after 3/11 tables, 15.2 GB, 1m40s: source unreachable (clean up with 'steep-repl init cancel node_b'"},
		{api.StateUninitialized, nil, "init of node_b from node_a was cancelled; node_b is UNINITIALIZED"},
		{api.StateDiverged, &done, "ended in state DIVERGED"},
	}
	for _, tt := range tests {
		err := f.result(tt.state, tt.last, false)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("result(%s) = %v, want it to contain %q", tt.state, err, tt.want)
		}
	}
}

func TestFollowerStopped(t *testing.T) {
	f := follower{target: "node_b", source: "node_a", timeout: time.Minute}
	last := progress.Snapshot{State: "copying", Percent: 12.34}

	ctx, cancel := context.WithTimeoutCause(context.Background(), time.Nanosecond, errFollowTimeout)
	defer cancel()
	<-ctx.Done()
	err := f.stopped(ctx, &last, ctx.Err())
	if want := "init of node_b not finished after 1m0s (COPYING at 12.3%); the init goes on"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("timeout: %v, want %q", err, want)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := f.stopped(ctx, nil, ctx.Err()); err == nil || !strings.HasPrefix(err.Error(), "stopped following the init of node_b; the init goes on") {
		t.Errorf("interrupt: %v", err)
	}

	boom := errors.New("boom")
	if err := f.stopped(context.Background(), nil, boom); !errors.Is(err, boom) {
		t.Errorf("query error: %v, want it wrapped", err)
	}
}

func TestCancelDone(t *testing.T) {
	tests := []struct {
		gone  bool
		state string
		want  bool
	}{
		{true, api.StateUninitialized, true},
		{false, api.StateUninitialized, false}, // the progress is still there
		{true, api.StateCopying, false},
		{false, api.StateFailed, false},
	}
	for _, tt := range tests {
		if got := cancelDone(tt.gone, tt.state); got != tt.want {
			t.Errorf("cancelDone(%v, %q) = %v, want %v", tt.gone, tt.state, got, tt.want)
		}
	}
}

func TestInitCommandLine(t *testing.T) {
	cmds := commands()
	for _, tt := range []struct {
		argv     []string
		name     string
		rest     []string
		reorders []string
	}{
		{[]string{"init", "node_b", "--from", "node_a", "--follow", "--quiet"}, "init", []string{"node_b", "--from", "node_a", "--follow", "--quiet"},
			[]string{"--from", "node_a", "--follow", "--quiet", "node_b"}},
		{[]string{"init", "node_b", "--force", "--json-progress", "--no-color", "--from", "node_a"}, "init", nil,
			[]string{"--force", "--json-progress", "--no-color", "--from", "node_a", "node_b"}},
		{[]string{"init", "cancel", "node_b", "--wait"}, "init cancel", []string{"node_b", "--wait"}, []string{"--wait", "node_b"}},
		{[]string{"init", "status", "node_b", "--json"}, "init status", []string{"node_b", "--json"}, []string{"--json", "node_b"}},
	} {
		c, rest, ok := findCommand(cmds, tt.argv)
		if !ok || c.name != tt.name {
			t.Errorf("findCommand(%q) = %q, %v; want %q", tt.argv, c.name, ok, tt.name)
			continue
		}
		if tt.rest != nil && !reflect.DeepEqual(rest, tt.rest) {
			t.Errorf("findCommand(%q) rest = %q, want %q", tt.argv, rest, tt.rest)
		}
		if got := interleave(rest); !reflect.DeepEqual(got, tt.reorders) {
			t.Errorf("interleave(%q) = %q, want %q", rest, got, tt.reorders)
		}
		if c.summary == "" || !strings.HasPrefix(c.example, "steep-repl "+tt.name) {
			t.Errorf("%s: summary %q, example %q", c.name, c.summary, c.example)
		}
	}
}

func TestInitUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{[]string{"init", "node_b"}, "need a TARGET node and --from SOURCE"},
		{[]string{"init", "--from", "node_a"}, "need a TARGET node and --from SOURCE"},
		{[]string{"init", "node_b", "--from", "node_a", "--parallel", "-1"}, "--parallel must be positive"},
		{[]string{"init", "node_b", "--from", "node_a", "--timeout", "-1s"}, "--timeout must not be negative"},
		{[]string{"init", "cancel"}, "need a NODE"},
		{[]string{"init", "status", "a", "b"}, "need a NODE"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tt.argv, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.argv, code, stderr.String(), tt.want)
		}
	}
}
