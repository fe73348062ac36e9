package view_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/console/render"
)

func (f *fakeActions) GenerateSnapshot(_ context.Context, endpoint, path, compression string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.generates = append(f.generates, endpoint+" "+path+" "+compression)
	if f.generateErr != nil {
		return "", f.generateErr
	}
	return "snap_new", nil
}

func (f *fakeActions) CancelJob(_ context.Context, node string, job int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = append(f.jobs, fmt.Sprintf("%s/%d", node, job))
	return "running", nil
}

func (f *fakeActions) snapshotCalls() (generates, jobs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.generates...), append([]string(nil), f.jobs...)
}

func (f *fakeActions) refuseGenerate(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.generateErr = err
}

func (c *console) typeText(s string) {
	for _, r := range s {
		c.key(r)
	}
}

func (c *console) press(k tcell.Key) { c.sim.InjectKey(k, 0, tcell.ModNone) }

// fixtureWithRoot is the fixture whose selected node, n_copying, is read through endpoint
// ep_copying and has steep_repl.snapshot_root /srv/snap.
func fixtureWithRoot() model.State {
	st := fixture()
	st.Nodes[2].Endpoint, st.Nodes[2].SnapshotRoot = "ep_copying", "/srv/snap"
	return st
}

func TestGAsksForTheDirectoryAndCompressionAndKeepsTheFormOpenOnARefusal(t *testing.T) {
	c := start(t, fixtureWithRoot())
	c.wait("n_copying selected", contains("n_copying COPYING from n_synchronized"))
	c.key('G')
	s := c.wait("the form", contains("Snapshot of n_copying"))
	for _, want := range []string{"/srv/snap/n_copying_", "zstd", "steep_repl.snapshot_root is /srv/snap", "Generate"} {
		if !strings.Contains(s.String(), want) {
			t.Errorf("the form lacks %q:\n%s", want, s)
		}
	}

	// Keys go to the field, not the key table: q does not quit, S opens nothing.
	c.actions.refuseGenerate(errors.New(`ERROR: snapshot path "qS" is not an absolute path (SQLSTATE 22023) · hint: give an absolute directory`))
	c.press(tcell.KeyCtrlU)
	c.typeText("qS")
	c.press(tcell.KeyEnter)
	s = c.wait("the refusal in the form", contains("SQLSTATE 22023"))
	if !strings.Contains(s.String(), "Snapshot of n_copying") || c.overlay() != "" {
		t.Fatalf("the form closed or an overlay opened after a refusal:\n%s", s)
	}
	if gens, _ := c.actions.snapshotCalls(); strings.Join(gens, ",") != "ep_copying qS zstd" {
		t.Fatalf("generate calls %q", gens)
	}

	c.actions.refuseGenerate(nil)
	c.press(tcell.KeyCtrlU)
	c.typeText("/srv/snap/x")
	c.press(tcell.KeyTab)  // the compression
	c.press(tcell.KeyDown) // opens the list on lz4
	c.press(tcell.KeyEnter)
	c.press(tcell.KeyTab) // Generate
	c.press(tcell.KeyEnter)
	s = c.wait("the request's answer", contains("snapshot snap_new of n_copying queued into /srv/snap/x (lz4)"))
	if strings.Contains(s.String(), "Snapshot of n_copying") {
		t.Errorf("the form is still open after a success:\n%s", s)
	}
	if gens, _ := c.actions.snapshotCalls(); len(gens) != 2 || gens[1] != "ep_copying /srv/snap/x lz4" {
		t.Fatalf("generate calls %q", gens)
	}

	c.key('G')
	c.wait("the form again", contains("Snapshot of n_copying"))
	c.press(tcell.KeyEscape)
	c.wait("the form closed", func(s screen) bool { return !strings.Contains(s.String(), "Snapshot of n_copying") })
	if gens, _ := c.actions.snapshotCalls(); len(gens) != 2 {
		t.Errorf("Esc generated: %q", gens)
	}
}

func TestGOnANodeTheConsoleDoesNotReachIsRefusedWithoutAForm(t *testing.T) {
	st := fixtureWithRoot()
	st.Nodes[2].Link, st.Nodes[2].LinkReason = model.LinkUnreachable, "connection refused"
	c := start(t, st)
	c.wait("n_copying", contains("n_copying"))
	c.key('G')
	s := c.wait("the refusal", contains("cannot snapshot n_copying: it is unreachable"))
	if strings.Contains(s.String(), "Snapshot of") {
		t.Errorf("a form was opened:\n%s", s)
	}
}

func TestCInTheSnapshotsListCancelsEverySideUnderWayAfterAYes(t *testing.T) {
	c := start(t, fixture())
	c.wait("the nodes", contains("n_copying"))
	c.key('S')
	c.wait("the list", contains("snap_done"))
	c.key('C')
	s := c.wait("the confirmation", contains("Cancel snapshot snap_run"))
	for _, want := range []string{"GENERATING on n_uninitialized, job 5, 42.3%", "APPLYING on n_preparing, job 9, 12.5%"} {
		if !strings.Contains(flowed(s), want) {
			t.Errorf("the confirmation lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s.String(), "Cancel the init") {
		t.Error("C in the snapshots list asked about the init")
	}
	c.key('n')
	c.wait("the confirmation gone", func(s screen) bool { return !strings.Contains(s.String(), "Cancel snapshot") })
	if _, jobs := c.actions.snapshotCalls(); len(jobs) != 0 {
		t.Fatalf("cancel_job called after a no: %v", jobs)
	}
	if o := c.overlay(); o != "snapshots" {
		t.Errorf("overlay %q after no, want the list", o)
	}
	c.key('C')
	c.wait("the confirmation", contains("Cancel snapshot snap_run"))
	c.key('y')
	c.wait("the answer", contains("cancel of snapshot snap_run requested: job 5 on n_uninitialized stops at its sidecar's next heartbeat"))
	if _, jobs := c.actions.snapshotCalls(); strings.Join(jobs, ",") != "n_uninitialized/5,n_preparing/9" {
		t.Fatalf("cancel_job calls %v", jobs)
	}
	if _, cancels := c.actions.calls(); len(cancels) != 0 {
		t.Errorf("cancel_init called: %v", cancels)
	}

	c.press(tcell.KeyDown) // snap_done: complete
	c.key('C')
	s = c.wait("the refusal", contains("snapshot snap_done is not being generated or applied: nothing to cancel"))
	if strings.Contains(s.String(), "Cancel snapshot") {
		t.Error("a confirmation was shown for a complete snapshot")
	}
}

func TestAFailingDutyIsInTheHeaderInRedAndItsErrorReachesTheScreenEscaped(t *testing.T) {
	st := fixture()
	st.Duties = []model.DutyRow{
		{Node: "n_copying", Duty: api.Duty{Name: "inits", Failures: 3, LastError: ptr("permission denied\x1b]0;pwned\x07 (SQLSTATE 42501)\nsecond line"),
			LastErrorAt: ptr(st.At), NextTryAt: ptr(st.At.Add(4e9))}},
		{Node: "n_copying", Duty: api.Duty{Name: "reap_leases", LastOK: ptr(st.At)}},
	}
	c := start(t, st)
	s := c.wait("the alert", contains("duty inits failing on n_copying (3× in a row, last ok never)"))
	x := s.find(0, 0, "⚠ duty inits")
	if x < 0 || s.fg(x, 0) != render.ColorBad {
		t.Fatalf("the alert is not in red on the header line:\n%s", s)
	}
	c.key('U')
	s = c.wait("the duties", contains("FAILING"))
	if !strings.Contains(s.String(), `permission denied\x1b]0;pwned\x07 (SQLSTATE 42501) second line`) {
		t.Errorf("the error is not shown escaped on one line:\n%s", s)
	}
	for _, cell := range s.cells {
		for _, r := range cell.Runes {
			if r < 0x20 || r >= 0x7f && r <= 0x9f {
				t.Fatalf("a control character %U reached the screen", r)
			}
		}
	}
	if y := lineOf(s, "reap_leases"); y < 0 || s.find(y, 0, " ok ") < 0 {
		t.Errorf("the healthy duty is not listed as ok:\n%s", s)
	}

	st.Duties = st.Duties[1:] // recovered
	c.app.QueueUpdateDraw(func() { c.v.Apply(st) })
	s = c.wait("the alert gone", func(s screen) bool { return !strings.Contains(s.String(), "⚠ duty") })
	if strings.Contains(s.String(), "FAILING") {
		t.Errorf("the duties view still shows a failing duty:\n%s", s)
	}
}

// lineOf is the first line holding text, -1 when none.
func lineOf(s screen, text string) int {
	for y := range s.h {
		if s.find(y, 0, text) >= 0 {
			return y
		}
	}
	return -1
}

// flowed is the screen's words without box drawing, one space between them: text a dialog
// wrapped reads as one line.
func flowed(s screen) string {
	noBoxes := strings.Map(func(r rune) rune {
		if r >= 0x2500 && r <= 0x257f {
			return ' '
		}
		return r
	}, s.String())
	return strings.Join(strings.Fields(noBoxes), " ")
}
