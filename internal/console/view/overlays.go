package view

import (
	"fmt"
	"slices"

	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/console/render"
	"github.com/steepdb/steep_repl/internal/console/ui"
)

// refreshOverlay redraws the open overlay from the current state.
func (v *View) refreshOverlay() {
	switch v.overlay {
	case pageDetail:
		v.refreshDetail()
	case pageEvents:
		rows := make([][]render.Cell, len(v.state.Events))
		for i, e := range v.state.Events {
			rows[i] = render.EventCells(e)
		}
		if len(rows) == 0 {
			rows = [][]render.Cell{{{Text: "no events (or no node connected)", Color: render.ColorMuted}}}
		}
		keepOffset(v.events, func() { ui.FillTable(v.events, render.Titles(render.EventColumns), rows, nil) })
	case pageConflicts:
		var rows [][]render.Cell
		for _, c := range v.state.Conflicts {
			rows = append(rows, render.ConflictCells(c)...)
		}
		if len(rows) == 0 {
			rows = [][]render.Cell{{{Text: "no subscriptions on the connected nodes", Color: render.ColorMuted}}}
		}
		keepOffset(v.conflTable, func() { ui.FillTable(v.conflTable, render.Titles(render.ConflictColumns), rows, nil) })
	case pageSnapshots:
		v.refreshSnapshots()
	case pageSnapshot:
		v.refreshSnapshot()
	case pageDuties:
		now := v.now()
		rows := make([][]render.Cell, len(v.state.Duties))
		for i, d := range v.state.Duties {
			rows[i] = render.DutyCells(d, now)
		}
		if len(rows) == 0 {
			rows = [][]render.Cell{{{Text: render.NoDuties, Color: render.ColorMuted}}}
		}
		keepOffset(v.duties, func() { ui.FillTable(v.duties, render.Titles(render.DutyColumns), rows, nil) })
	}
}

func (v *View) refreshDetail() {
	d := v.state.Detail
	if d == nil || d.Node != v.selected {
		// The model has not read the newly selected node yet: show its row meanwhile.
		d = nil
		if r := v.selectedRow(); r != nil {
			d = &model.Detail{Node: r.Name, Row: *r}
		}
	}
	lines := render.DetailLines(d, v.now())
	v.detailText.SetText(ui.TaggedLines(lines))
	v.detail.ResizeItem(v.detailText, len(lines)+1, 0)
	var rows [][]render.Cell
	if d != nil {
		var current []string
		if d.Progress != nil {
			current = d.Progress.CurrentTables
		}
		for _, t := range render.SortTables(d.Tables) {
			name := t.Schema + "." + t.Table
			isCurrent := t.SyncState == "copying" || slices.Contains(current, name) ||
				slices.Contains(current, fmt.Sprintf("%q.%q", t.Schema, t.Table))
			rows = append(rows, render.TableCells(t, isCurrent))
		}
	}
	if len(rows) == 0 {
		rows = [][]render.Cell{{{}, {Text: "no per-table progress", Color: render.ColorMuted}}}
	}
	keepOffset(v.detailTable, func() { ui.FillTable(v.detailTable, render.TableHeaderCells(), rows, nil) })
}

func (v *View) refreshSnapshots() {
	s := v.state.Snapshots
	rows := make([][]render.Cell, len(s.Items))
	refs := make([]any, len(s.Items))
	for i, it := range s.Items {
		rows[i], refs[i] = render.SnapshotCells(it), it.Key
	}
	if len(rows) == 0 {
		rows = [][]render.Cell{{{Text: render.EmptySnapshotsText(s), Color: render.ColorMuted}}}
	}
	sel := v.snapSel // refilling moves the selection: keep it on the same snapshot
	keepOffset(v.snapList, func() { ui.FillTable(v.snapList, render.Titles(render.SnapshotColumns), rows, refs) })
	if i := slices.Index(refs, any(sel)); i >= 0 {
		v.snapList.Select(i+1, 0)
	}
	notes := render.SnapshotNotes(s)
	v.snapNote.SetText(ui.TaggedLines(notes))
	v.snapshots.ResizeItem(v.snapNote, len(notes), 0)
}

// refreshSnapshot draws the progress of the snapshot opened from the list: the generation
// on the left, the applications on the right.
func (v *View) refreshSnapshot() {
	r := v.state.Snapshots.Find(v.snapKey)
	head := render.SnapshotHeaderLines(r)
	v.snapHead.SetText(ui.TaggedLines(head))
	v.snapshot.ResizeItem(v.snapHead, len(head)+1, 0)
	if r == nil {
		v.snapGen.SetText("")
		v.snapApp.SetText("")
		return
	}
	now := v.now()
	v.snapGen.SetText(ui.TaggedLines(render.GenerationLines(r, now)))
	v.snapApp.SetText(ui.TaggedLines(render.ApplicationLines(r, now)))
}

// keepOffset refills a table without losing its scroll position and selection.
func keepOffset(t *tview.Table, fill func()) {
	row, col := t.GetOffset()
	sr, sc := t.GetSelection()
	fill()
	t.SetOffset(row, col)
	if sr < 1 {
		sr = 1
	}
	t.Select(min(sr, max(1, t.GetRowCount()-1)), sc)
}

// cancellable are the states cancel_init accepts.
var cancellable = []string{api.StatePreparing, api.StateCopying, api.StateCatchingUp, api.StateReinitializing, api.StateFailed}

// askCancel opens the confirmation of the selected node's cancel.
func (v *View) askCancel() {
	r := v.selectedRow()
	switch {
	case r == nil:
		v.say("no node selected", render.ColorWarn)
		return
	case r.Link != model.LinkOK:
		v.say(fmt.Sprintf("cannot cancel: %s is %s", r.Name, r.Link), render.ColorBad)
		return
	case !slices.Contains(cancellable, r.State):
		v.say(fmt.Sprintf("%s has no init to cancel (%s)", r.Name, render.StateText(r.State)), render.ColorWarn)
		return
	}
	node, what := r.Name, render.StateText(r.State)
	if r.Progress != nil {
		what += fmt.Sprintf(" %.1f%%", r.Progress.Percent)
	}
	if r.Source != "" {
		what += " from " + r.Source
	}
	text := fmt.Sprintf("Cancel the init of %s (%s)?\n\nsteep_repl.cancel_init drops the init's subscription, "+
		"slots and publication and empties the tables copied so far on %s.\n\ny: cancel the init · n or Esc: keep it running",
		node, what, node)
	v.confirm = ui.NewConfirm(text, "Cancel init", "Keep running", func() {
		v.closeConfirm()
		v.runCancel(node)
	}, v.closeConfirm)
	v.pages.AddPage(pageConfirm, v.confirm, true, true)
	v.app.SetFocus(v.confirm)
}

// ConfirmOpen reports whether the cancel confirmation is showing.
func (v *View) ConfirmOpen() bool { return v.confirm != nil }

func (v *View) closeConfirm() {
	if v.confirm == nil {
		return
	}
	v.pages.RemovePage(pageConfirm)
	v.confirm = nil
	v.focusOverlay()
}

// runCancel calls cancel_init off the UI goroutine; the answer comes back through the
// update queue (from that goroutine, never from the key handler).
func (v *View) runCancel(node string) {
	v.say("cancelling the init of "+node+"…", render.ColorWarn)
	go func() {
		id, err := v.actions.CancelInit(v.ctx, node)
		v.app.QueueUpdateDraw(func() {
			switch {
			case err != nil:
				v.say(err.Error(), render.ColorBad)
			case id == 0:
				v.say(node+" has no init to cancel", render.ColorWarn)
			default:
				v.say(fmt.Sprintf("cancel of %s's init requested (job %d); the sidecar on %s completes it", node, id, node),
					render.ColorWarn)
			}
		})
	}()
}
