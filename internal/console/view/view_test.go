package view_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/console/render"
	"github.com/steepdb/steep_repl/internal/console/view"
)

type fakeActions struct {
	mu      sync.Mutex
	focus   []string
	cancels []string
	// generates and jobs record the snapshot actions; generateErr is what GenerateSnapshot
	// answers (nil: snapshot snap_new).
	generates   []string
	jobs        []string
	generateErr error
}

func (f *fakeActions) SetFocus(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.focus = append(f.focus, node)
}

func (f *fakeActions) CancelInit(_ context.Context, node string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, node)
	return 42, nil
}

func (f *fakeActions) calls() (focus, cancels []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.focus...), append([]string(nil), f.cancels...)
}

// console is a View running in a tview application on a 160x40 simulation screen.
type console struct {
	t       *testing.T
	app     *tview.Application
	sim     tcell.SimulationScreen
	v       *view.View
	actions *fakeActions
	done    chan error
}

func start(t *testing.T, st model.State) *console {
	t.Helper()
	sim := tcell.NewSimulationScreen("UTF-8")
	app := tview.NewApplication().SetScreen(sim)
	sim.SetSize(160, 40)
	c := &console{t: t, app: app, sim: sim, actions: &fakeActions{}, done: make(chan error, 1)}
	c.v = view.New(context.Background(), app, c.actions)
	app.SetRoot(c.v.Root(), true).SetInputCapture(c.v.Capture)
	go func() { c.done <- app.Run() }()
	t.Cleanup(func() {
		app.Stop()
		<-c.done
	})
	app.QueueUpdateDraw(func() { c.v.Apply(st) })
	return c
}

// screen is the simulation screen's cells, read in the UI goroutine (no draw runs meanwhile).
type screen struct {
	cells []tcell.SimCell
	w, h  int
}

func (c *console) screen() screen {
	ch := make(chan screen, 1) // QueueUpdate returns once f has run
	c.app.QueueUpdate(func() {
		cells, w, h := c.sim.GetContents()
		ch <- screen{append([]tcell.SimCell(nil), cells...), w, h}
	})
	return <-ch
}

func (s screen) line(y int) []rune {
	out := make([]rune, s.w)
	for x := range s.w {
		out[x] = ' '
		if r := s.cells[y*s.w+x].Runes; len(r) > 0 {
			out[x] = r[0]
		}
	}
	return out
}

func (s screen) String() string {
	var b strings.Builder
	for y := range s.h {
		b.WriteString(strings.TrimRight(string(s.line(y)), " ") + "\n")
	}
	return b.String()
}

// find returns where text starts on line y (searching from x0), -1 when absent.
func (s screen) find(y, x0 int, text string) int {
	line, want := s.line(y), []rune(text)
	for x := x0; x+len(want) <= len(line); x++ {
		if string(line[x:x+len(want)]) == string(want) {
			return x
		}
	}
	return -1
}

// rowOf is the line of the nodes table that starts with node, -1 when absent.
func (s screen) rowOf(node string) int {
	for y := range s.h {
		if strings.HasPrefix(strings.TrimLeft(string(s.line(y)), "│║┌╔ "), node+" ") {
			return y
		}
	}
	return -1
}

func (s screen) fg(x, y int) tcell.Color {
	fg, _, _ := s.cells[y*s.w+x].Style.Decompose()
	return fg
}

// wait polls the screen until cond holds (2 s at most).
func (c *console) wait(what string, cond func(s screen) bool) screen {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := c.screen()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// overlay is the open overlay, read in the UI goroutine.
func (c *console) overlay() string {
	ch := make(chan string, 1)
	c.app.QueueUpdate(func() { ch <- c.v.OverlayName() })
	return <-ch
}

func (c *console) key(r rune) { c.sim.InjectKey(tcell.KeyRune, r, tcell.ModNone) }

func contains(text string) func(s screen) bool {
	return func(s screen) bool { return strings.Contains(s.String(), text) }
}

func ptr[T any](v T) *T { return &v }

// fixture has a node in each of the eight states; n_copying (the --db node) is 42.3% done
// at 52.1k rows/s with 2m48s left; conflict counts n/a, 0, 7 and 11 are spread over them.
// Snapshot snap_run is generated on n_uninitialized (42.3%) while n_preparing applies it.
func fixture() model.State {
	st := model.State{At: time.Now(), Listening: true, Snapshots: snapshotFixture()}
	conflicts := map[string]*int64{"uninitialized": nil, "preparing": ptr(int64(0)), "copying": ptr(int64(7)),
		"catching_up": ptr(int64(11))}
	for _, s := range api.States {
		row := model.NodeRow{Name: "n_" + s, Addr: "10.0.0.1:5432", Role: "remote", Link: model.LinkOK, State: s,
			ServerVersion: 180004, Conflicts: ptr(int64(0))}
		if c, ok := conflicts[s]; ok {
			row.Conflicts = c
		}
		if s == "uninitialized" {
			row.Snapshots = []model.SnapshotSide{*st.Snapshots.Items[0].Generation}
		}
		if s == "preparing" {
			row.Snapshots = st.Snapshots.Items[0].Applications
		}
		if s == "copying" {
			row.Role, row.Source = "local", "n_synchronized"
			row.Progress = &api.InitProgress{Node: row.Name, State: s, Phase: s, Percent: 42.3, RowsPerSec: ptr(52100.0),
				ETASeconds: ptr(168.0), CurrentTables: []string{"public.slow"}, ParallelWorkers: 2, TablesTotal: 2, TablesDone: 1}
		}
		st.Nodes = append(st.Nodes, row)
	}
	st.Detail = &model.Detail{Node: "n_copying", Row: st.Nodes[2], Progress: st.Nodes[2].Progress,
		Tables: []api.InitTable{{Schema: "public", Table: "album", SyncState: "ready", Fraction: 1},
			{Schema: "public", Table: "slow", SyncState: "copying", Fraction: 0.25, RowsCopied: 5000, SourceRows: 20000}}}
	st.Conflicts = []model.ConflictRow{{Node: "n_copying", Subscription: "sr_a_b", Counts: []int64{0, 7, 0, 0, 0, 0, 0},
		ServerVersion: 180004}}
	return st
}

// snapshotFixture: snap_run generating on n_uninitialized (42.3%, compression 3.2x) and
// applied to n_preparing (12.5%, 4 checksums verified, 1 failed, 12 tuples skipped);
// snap_done complete.
func snapshotFixture() model.Snapshots {
	now := time.Now()
	gen := &model.SnapshotSide{Node: "n_uninitialized",
		Info: api.SnapshotInfo{ID: ptr("snap_run"), Role: model.RoleGenerated, State: "generating", Path: "/srv/snap/run",
			Compression: ptr("zstd"), JobID: ptr(int64(5)), CreatedAt: now.Add(-time.Minute)},
		Progress: &api.SnapshotProgress{JobID: 5, Phase: "generation", Step: "writing", Percent: 42.3, BytesDone: 169_200,
			BytesTotal: 400_000, TablesDone: 3, TablesTotal: 11, ThroughputBytesS: ptr(40_000.0), ETASeconds: ptr(6.0),
			CurrentTable: ptr("public.track"), CompressionRatio: ptr(3.2), UpdatedAt: now}}
	app := model.SnapshotSide{Node: "n_preparing",
		Info: api.SnapshotInfo{ID: ptr("snap_run"), Role: model.RoleApplied, State: "applying", Path: "/srv/snap/run",
			SourceNode: ptr("n_uninitialized"), JobID: ptr(int64(9)), CreatedAt: now.Add(-30 * time.Second)},
		Progress: &api.SnapshotProgress{JobID: 9, Phase: "application", Step: "loading", Percent: 12.5, TablesDone: 4,
			TablesTotal: 11, CompressionRatio: ptr(2.9), ChecksumsVerified: 4, ChecksumsFailed: 1, TuplesSkipped: 12,
			CurrentTable: ptr("public.album"), UpdatedAt: now}}
	done := &model.SnapshotSide{Node: "n_uninitialized",
		Info: api.SnapshotInfo{ID: ptr("snap_done"), Role: model.RoleGenerated, State: "complete", Path: "/srv/snap/done",
			JobID: ptr(int64(2)), CreatedAt: now.Add(-time.Hour)}}
	return model.Snapshots{Available: true, Items: []model.SnapshotRow{
		{Key: "snap_run", ID: "snap_run", Source: "n_uninitialized", Generation: gen, Applications: []model.SnapshotSide{app},
			CreatedAt: app.Info.CreatedAt},
		{Key: "snap_done", ID: "snap_done", Source: "n_uninitialized", Generation: done, CreatedAt: done.Info.CreatedAt},
	}}
}

func TestEveryStateIsDrawnWithItsTextAndColor(t *testing.T) {
	c := start(t, fixture())
	s := c.wait("the nodes", contains("n_failed"))
	for _, st := range api.States {
		y := s.rowOf("n_" + st)
		if y < 0 {
			t.Fatalf("no row for %s:\n%s", st, s)
		}
		x := s.find(y, len("n_"+st)+2, strings.ToUpper(st))
		if x < 0 {
			t.Errorf("row of %s does not say %s: %q", st, strings.ToUpper(st), string(s.line(y)))
			continue
		}
		if got := s.fg(x, y); got != render.StateColor(st) {
			t.Errorf("%s drawn in %v, want %v", strings.ToUpper(st), got, render.StateColor(st))
		}
	}
}

func TestProgressBarRatesAndETAAreDrawn(t *testing.T) {
	c := start(t, fixture())
	s := c.wait("the nodes", contains("n_copying"))
	y := s.rowOf("n_copying")
	for _, want := range []string{"[████████░░░░░░░░░░░░]  42.3%", "52.1k", "2m48s"} {
		if s.find(y, 0, want) < 0 {
			t.Errorf("copying row lacks %q: %q", want, string(s.line(y)))
		}
	}
	if x := s.find(y, 0, "[████"); s.fg(x+1, y) != tcell.ColorYellow {
		t.Errorf("bar drawn in %v", s.fg(x+1, y))
	}
	if y2 := s.rowOf("n_synchronized"); s.find(y2, 0, "%") >= 0 {
		t.Errorf("a node without an init shows a percent: %q", string(s.line(y2)))
	}
}

func TestConflictCountsAreColoredByThreshold(t *testing.T) {
	c := start(t, fixture())
	s := c.wait("the nodes", contains("n_catching_up"))
	hy := s.rowOf("NODE")
	end := s.find(hy, 0, "CONFL") + len("CONFL") // the column is right-aligned
	cases := map[string]struct {
		text  string
		color tcell.Color
	}{
		"n_uninitialized": {"n/a", tcell.ColorGray}, "n_preparing": {"0", tcell.ColorLime},
		"n_copying": {"7", tcell.ColorYellow}, "n_catching_up": {"11", tcell.ColorRed},
	}
	for node, want := range cases {
		y := s.rowOf(node)
		got := string(s.line(y)[end-len(want.text) : end])
		if got != want.text || s.fg(end-1, y) != want.color {
			t.Errorf("%s conflicts %q in %v, want %q in %v", node, got, s.fg(end-1, y), want.text, want.color)
		}
	}
}

func TestHelpBarIsGeneratedFromTheKeyTable(t *testing.T) {
	c := start(t, fixture())
	s := c.wait("the nodes", contains("n_copying"))
	keys := c.v.Keys()
	var names []string
	for _, k := range keys {
		names = append(names, string(k.Rune))
		if (k.Rune == 'C' || k.Rune == 'G') != k.Dangerous {
			t.Errorf("key %c dangerous=%v", k.Rune, k.Dangerous)
		}
	}
	if strings.Join(names, "") != "DCGSFEU?q" {
		t.Errorf("key table %q", names)
	}
	bar := strings.TrimRight(string(s.line(s.h-1)), " ")
	if want := render.HelpBar(keys.Hints()).Text(); bar != want {
		t.Errorf("help bar %q, want %q", bar, want)
	}
	if x := s.find(s.h-1, 0, "<C>"); s.fg(x+1, s.h-1) != tcell.ColorRed {
		t.Error("the dangerous key is not red")
	}
	c.key('?')
	s = c.wait("the help page", contains("asks for confirmation"))
	for _, k := range keys {
		if !strings.Contains(s.String(), k.Help) {
			t.Errorf("help page lacks %q", k.Help)
		}
	}
}

func TestCancelAsksForConfirmationFirst(t *testing.T) {
	c := start(t, fixture())
	c.wait("n_copying selected", contains("n_copying COPYING from n_synchronized"))
	c.key('C')
	c.wait("the confirmation", contains("Cancel the init of n_copying (COPYING 42.3% from")) // wrapped
	c.key('n')
	c.wait("the confirmation gone", func(s screen) bool { return !strings.Contains(s.String(), "Cancel the init") })
	c.key('c')
	c.wait("the confirmation", contains("Cancel the init of n_copying"))
	c.sim.InjectKey(tcell.KeyEscape, 0, tcell.ModNone)
	c.wait("the confirmation gone", func(s screen) bool { return !strings.Contains(s.String(), "Cancel the init") })
	if _, cancels := c.actions.calls(); len(cancels) != 0 {
		t.Fatalf("cancel_init called without a yes: %v", cancels)
	}
	c.key('C')
	c.wait("the confirmation", contains("Cancel the init of n_copying"))
	c.key('y')
	c.wait("the answer", contains("cancel of n_copying's init requested (job 42)"))
	if _, cancels := c.actions.calls(); strings.Join(cancels, ",") != "n_copying" {
		t.Fatalf("cancel_init calls %v", cancels)
	}
}

func TestCancelOfANodeWithoutInitIsRefusedWithoutAsking(t *testing.T) {
	st := fixture()
	st.Nodes = st.Nodes[4:5] // n_synchronized only
	c := start(t, st)
	c.wait("the nodes", contains("n_synchronized SYNCHRONIZED"))
	c.key('C')
	s := c.wait("the refusal", contains("n_synchronized has no init to cancel (SYNCHRONIZED)"))
	if strings.Contains(s.String(), "Cancel the init") {
		t.Error("a confirmation was shown")
	}
}

func TestDetailListsTablesWithTheCurrentOnesHighlighted(t *testing.T) {
	c := start(t, fixture())
	c.wait("n_copying selected", contains("n_copying COPYING from n_synchronized"))
	c.key('D')
	s := c.wait("the detail", contains("public.slow"))
	for _, want := range []string{"public.album", "parallel workers 2", "tables 1/2", "throughput, last 60 s"} {
		if !strings.Contains(s.String(), want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	for y := range s.h {
		if x := s.find(y, 0, "public.slow"); x >= 0 {
			if s.find(y, 0, "▶") < 0 || s.fg(x, y) != tcell.ColorYellow {
				t.Errorf("current table not highlighted: %q in %v", string(s.line(y)), s.fg(x, y))
			}
		}
	}
	c.sim.InjectKey(tcell.KeyEscape, 0, tcell.ModNone)
	c.wait("the detail closed", func(s screen) bool { return !strings.Contains(s.String(), "public.slow") })
	if focus, _ := c.actions.calls(); strings.Join(focus, ",") != "n_copying," {
		t.Errorf("focus calls %q, want the node then none", focus)
	}
}

func TestOverlaysForSnapshotsConflictsAndEvents(t *testing.T) {
	c := start(t, fixture())
	c.wait("the nodes", contains("n_copying"))
	c.key('S')
	c.wait("the snapshots list", contains("snap_done"))
	c.key('F')
	s := c.wait("the conflicts", contains("confl_update_origin_differs"))
	if strings.Contains(s.String(), "snap_done") {
		t.Error("F did not replace the snapshots overlay")
	}
	c.key('E')
	c.wait("the events", contains("no events"))
	c.key('e')
	c.wait("the events closed", func(s screen) bool { return !strings.Contains(s.String(), "no events") })
}

func TestQuitStopsTheApplication(t *testing.T) {
	c := start(t, fixture())
	c.wait("the nodes", contains("n_copying"))
	c.key('q')
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		c.done <- nil // for the cleanup
	case <-time.After(2 * time.Second):
		t.Fatal("q did not stop the application")
	}
}

func TestNodesViewMarksSnapshotsBeingGeneratedOrApplied(t *testing.T) {
	st := fixture()
	st.Nodes[4].SnapshotsUnsupported = true // n_synchronized: an extension without snapshots
	c := start(t, st)
	s := c.wait("the nodes", contains("n_failed"))
	hy := s.rowOf("NODE")
	x := s.find(hy, 0, "SNAP")
	cases := map[string]string{"n_uninitialized": "GEN 42%", "n_preparing": "APPLY 12%", "n_synchronized": "n/a", "n_failed": ""}
	for node, want := range cases {
		y := s.rowOf(node)
		got := strings.TrimRight(string(s.line(y)[x:]), " │║")
		if got != want {
			t.Errorf("%s SNAP %q, want %q", node, got, want)
		}
		if want != "" && want != "n/a" && s.fg(x, y) != render.ColorWarn {
			t.Errorf("%s mark drawn in %v", node, s.fg(x, y))
		}
	}
}

func TestSnapshotProgressShowsGenerationAndApplicationSideBySide(t *testing.T) {
	c := start(t, fixture())
	c.wait("the nodes", contains("n_copying"))
	c.key('S')
	s := c.wait("the snapshots list", contains("snap_done"))
	t.Logf("list:\n%s", s)
	y := -1
	for yy := range s.h {
		if s.find(yy, 0, "snap_run") >= 0 {
			y = yy
		}
	}
	if y < 0 || s.find(y, 0, "GENERATING [████░░░░░░]  42.3%") < 0 || s.find(y, 0, "n_preparing APPLYING 12.5%") < 0 {
		t.Fatalf("snap_run's row %q", string(s.line(y)))
	}
	c.sim.InjectKey(tcell.KeyEnter, 0, tcell.ModNone) // the newest, snap_run, is selected
	s = c.wait("the progress", contains("APPLICATION to n_preparing"))
	t.Logf("progress:\n%s", s)
	// Side by side: the two titles on one line, the generation left of the application.
	ty := -1
	for yy := range s.h {
		if s.find(yy, 0, "GENERATION on n_uninitialized") >= 0 {
			ty = yy
		}
	}
	if ty < 0 || s.find(ty, 0, "APPLICATION to n_preparing") <= s.find(ty, 0, "GENERATION on n_uninitialized") {
		t.Fatalf("generation and application are not side by side:\n%s", s)
	}
	appX := s.find(ty, 0, "APPLICATION")
	for _, want := range []string{"snap_run · source n_uninitialized", "[████████████", "42.3%", "12.5%",
		"compression ratio 3.2x", "compression ratio 2.9x", "throughput 40.0 kB/s · ETA 6s", "tuples skipped 12",
		"checksums verified 4 · failed 1", "step writing", "step loading", "current public.track"} {
		if !strings.Contains(s.String(), want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	for yy := range s.h {
		if x := s.find(yy, 0, "checksums verified 4 · failed 1"); x >= 0 {
			fx := x + len([]rune("checksums verified 4 · failed "))
			if x < appX || s.fg(fx, yy) != tcell.ColorRed {
				t.Errorf("failed count at x %d (application at %d) in %v, want red on the right", fx, appX, s.fg(fx, yy))
			}
		}
	}
	c.sim.InjectKey(tcell.KeyEscape, 0, tcell.ModNone)
	c.wait("back to the list", func(s screen) bool {
		return strings.Contains(s.String(), "snap_done") && !strings.Contains(s.String(), "APPLICATION to")
	})
	if o := c.overlay(); o != "snapshots" {
		t.Errorf("overlay %q after Esc, want the list", o)
	}
	c.sim.InjectKey(tcell.KeyEscape, 0, tcell.ModNone)
	c.wait("the list closed", func(s screen) bool { return !strings.Contains(s.String(), "snap_done") })
}

func TestSnapshotsOfAnOlderExtensionSayThereIsNoSupport(t *testing.T) {
	st := fixture()
	st.Snapshots = model.Snapshots{Unsupported: []string{"n_copying"}}
	c := start(t, st)
	c.wait("the nodes", contains("n_copying"))
	c.key('S')
	s := c.wait("the note", contains("n_copying: no snapshot support on this node"))
	if !strings.Contains(s.String(), render.NoSnapshotSupport) {
		t.Errorf("no empty-list text:\n%s", s)
	}
	c.sim.InjectKey(tcell.KeyEnter, 0, tcell.ModNone) // on the "no snapshot support" line: nothing to open
	time.Sleep(50 * time.Millisecond)
	if o := c.overlay(); o != "snapshots" {
		t.Errorf("Enter on the empty list opened %q", o)
	}
}
