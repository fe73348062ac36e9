package view

import (
	"fmt"
	"path"
	"strings"

	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/console/render"
	"github.com/steepdb/steep_repl/internal/console/ui"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// The snapshot actions: G asks for a new snapshot of the selected node, C in the snapshots
// list cancels the selected one. Both call the SQL API off the UI goroutine (the model's
// actions) and show the server's answer, a refusal included, in the status line.

// cancelKey is C: a snapshot's cancel in the snapshots list or progress, else the init's.
func (v *View) cancelKey() {
	switch v.overlay {
	case pageSnapshots:
		row, _ := v.snapList.GetSelection()
		key, _ := v.snapList.GetCell(row, 0).GetReference().(string)
		v.askCancelSnapshot(key)
	case pageSnapshot:
		v.askCancelSnapshot(v.snapKey)
	default:
		v.askCancel()
	}
}

// askGenerate opens the form of a new snapshot of the selected node.
func (v *View) askGenerate() {
	r := v.selectedRow()
	switch {
	case r == nil:
		v.say("no node selected", render.ColorWarn)
		return
	case r.Endpoint == "" || r.Link != model.LinkOK && r.Link != model.LinkError:
		v.say(fmt.Sprintf("cannot snapshot %s: it is %s", r.Name, r.Link), render.ColorBad)
		return
	}
	node, endpoint := r.Name, r.Endpoint
	intro := []render.Line{{{Text: "steep_repl.generate_snapshot on " + node + ": the sidecar on its host writes the " +
		"snapshot's files into the directory, with the tables read in one exported snapshot, and keeps a slot for subscribers."}}}
	dir := ""
	if r.SnapshotRoot != "" {
		dir = path.Join(r.SnapshotRoot, node+"_"+v.now().UTC().Format("20060102_150405"))
		intro = append(intro, render.Line{{Text: "steep_repl.snapshot_root is " + r.SnapshotRoot +
			": the directory must be beneath it.", Color: render.ColorMuted}})
	} else {
		intro = append(intro, render.Line{{Text: "steep_repl.snapshot_root is not set on " + node +
			": only a superuser may name a directory.", Color: render.ColorMuted}})
	}
	v.form = ui.NewSnapshotForm(intro, dir, snapshot.Compressions,
		func(dir, compression string) { v.runGenerate(node, endpoint, dir, compression) }, v.closeForm)
	v.pages.AddPage(pageGenerate, ui.Centered(framed(v.form, " Snapshot of "+tview.Escape(render.Clean(node))+" (Esc: close) "), -10, 20), true, true)
	v.app.SetFocus(v.form)
}

// FormOpen reports whether the snapshot form is showing.
func (v *View) FormOpen() bool { return v.form != nil }

func (v *View) closeForm() {
	if v.form == nil {
		return
	}
	v.pages.RemovePage(pageGenerate)
	v.form = nil
	v.focusOverlay()
}

// runGenerate calls generate_snapshot off the UI goroutine. A refusal keeps the form open
// with the server's answer, so the DBA can correct the field; a success closes it.
func (v *View) runGenerate(node, endpoint, dir, compression string) {
	if v.generating {
		return
	}
	v.generating = true
	form := v.form
	form.Say(render.Line{{Text: "requesting a snapshot of " + node + "…", Color: render.ColorWarn}})
	go func() {
		id, err := v.actions.GenerateSnapshot(v.ctx, endpoint, dir, compression)
		v.app.QueueUpdateDraw(func() {
			v.generating = false
			if err != nil {
				msg := fmt.Sprintf("snapshot of %s refused: %s", node, err)
				if v.form == form {
					form.Say(render.Line{{Text: render.SafeText(msg), Color: render.ColorBad, Bold: true}})
				}
				v.say(msg, render.ColorBad)
				return
			}
			if v.form == form {
				v.closeForm()
			}
			v.say(fmt.Sprintf("snapshot %s of %s queued into %s (%s); S shows its progress", id, node, dir, compression),
				render.ColorWarn)
		})
	}()
}

// askCancelSnapshot opens the confirmation of the cancel of the snapshot key: every side
// of it being generated or applied.
func (v *View) askCancelSnapshot(key string) {
	r := v.state.Snapshots.Find(key)
	if r == nil {
		v.say("no snapshot selected", render.ColorWarn)
		return
	}
	name := r.ID
	if name == "" {
		name = r.Key
	}
	var sides []model.SnapshotSide
	if g := r.Generation; g != nil && g.Active() {
		sides = append(sides, *g)
	}
	for _, a := range r.Applications {
		if a.Active() {
			sides = append(sides, a)
		}
	}
	var what []string
	for _, s := range sides {
		switch {
		case s.Stale:
			v.say(fmt.Sprintf("cannot cancel snapshot %s: %s is not connected", name, s.Node), render.ColorBad)
			return
		case s.Info.JobID == nil:
			v.say(fmt.Sprintf("cannot cancel snapshot %s: its %s on %s has no job", name, s.Info.Role, s.Node), render.ColorBad)
			return
		}
		w := fmt.Sprintf("%s on %s, job %d", render.StateText(s.Info.State), s.Node, *s.Info.JobID)
		if p := s.Progress; p != nil {
			w += fmt.Sprintf(", %.1f%%", p.Percent)
		}
		what = append(what, w)
	}
	if len(sides) == 0 {
		v.say(fmt.Sprintf("snapshot %s is not being generated or applied: nothing to cancel", name), render.ColorWarn)
		return
	}
	text := fmt.Sprintf("Cancel snapshot %s (%s)?\n\nsteep_repl.cancel_job cancels a queued job at once; a running one "+
		"stops at its sidecar's next heartbeat and removes what it wrote (a generation: its files, slot and publication)."+
		"\n\ny: cancel the snapshot · n or Esc: keep it running", name, strings.Join(what, "; "))
	v.confirm = ui.NewConfirm(text, "Cancel snapshot", "Keep running", func() {
		v.closeConfirm()
		v.runCancelSnapshot(name, sides)
	}, v.closeConfirm)
	v.pages.AddPage(pageConfirm, v.confirm, true, true)
	v.app.SetFocus(v.confirm)
}

// runCancelSnapshot calls cancel_job for each side off the UI goroutine.
func (v *View) runCancelSnapshot(name string, sides []model.SnapshotSide) {
	v.say("cancelling snapshot "+name+"…", render.ColorWarn)
	go func() {
		var done, failed []string
		for _, s := range sides {
			job := *s.Info.JobID
			state, err := v.actions.CancelJob(v.ctx, s.Node, job)
			switch {
			case err != nil:
				failed = append(failed, err.Error())
			case state == "running":
				done = append(done, fmt.Sprintf("job %d on %s stops at its sidecar's next heartbeat", job, s.Node))
			default:
				done = append(done, fmt.Sprintf("job %d on %s is %s", job, s.Node, state))
			}
		}
		v.app.QueueUpdateDraw(func() {
			if len(failed) > 0 {
				v.say(fmt.Sprintf("cancel of snapshot %s refused: %s", name, strings.Join(failed, "; ")), render.ColorBad)
				return
			}
			v.say(fmt.Sprintf("cancel of snapshot %s requested: %s", name, strings.Join(done, "; ")), render.ColorWarn)
		})
	}()
}
