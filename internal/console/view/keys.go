package view

import (
	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/console/ui"
)

// keyTable is the console's one key table: bindings, help bar and help page.
func (v *View) keyTable() ui.KeyTable {
	return ui.KeyTable{
		{Rune: 'D', Label: "detail", Help: "detail of the selected node: phase, per-table progress, rates, ETA, workers, 60 s throughput",
			Action: func() { v.toggle(pageDetail) }},
		{Rune: 'C', Label: "cancel", Dangerous: true,
			Help:   "cancel the selected node's init (cancel_init); in the snapshots list, the selected snapshot (cancel_job)",
			Action: v.cancelKey},
		{Rune: 'G', Label: "snapshot", Dangerous: true,
			Help:   "snapshot the selected node, asking for the directory and compression (generate_snapshot)",
			Action: v.askGenerate},
		{Rune: 'S', Label: "snapshots", Help: "snapshots generated on or applied to the connected nodes (Enter: one's progress)",
			Action: func() { v.toggle(pageSnapshots) }},
		{Rune: 'F', Label: "conflicts", Help: "subscription conflicts per type (PostgreSQL 18)",
			Action: func() { v.toggle(pageConflicts) }},
		{Rune: 'E', Label: "events", Help: "recent events of every connected node",
			Action: func() { v.toggle(pageEvents) }},
		{Rune: 'U', Label: "duties", Help: "the supervisor's duties on every connected node: a failing one with its failures, last success and error",
			Action: func() { v.toggle(pageDuties) }},
		{Rune: '?', Label: "help", Help: "this help", Action: func() { v.toggle(pageHelp) }},
		{Rune: 'q', Label: "quit", Help: "quit the console", Action: v.app.Stop},
	}
}

// Capture is the application's input capture: the confirmation dialog first, then the
// snapshot form, then Esc for overlays, then the key table; anything else goes to the focused widget (table navigation).
func (v *View) Capture(ev *tcell.EventKey) *tcell.EventKey {
	if v.confirm != nil {
		if v.confirm.Answer(ev) {
			return nil
		}
		if ev.Key() == tcell.KeyEscape {
			v.closeConfirm()
			return nil
		}
		return ev // Tab, arrows and Enter work the buttons
	}
	if v.form != nil {
		if v.form.HandleKey(ev) {
			return nil
		}
		return ev // typing, Tab, the list of compressions and the buttons
	}
	if ev.Key() == tcell.KeyEscape && v.overlay == pageSnapshot {
		v.toggle(pageSnapshots)
		return nil
	}
	if ev.Key() == tcell.KeyEscape && v.overlay != "" {
		v.closeOverlay()
		return nil
	}
	if v.keys.Handle(ev) {
		return nil
	}
	return ev
}

// toggle opens an overlay, or closes it when it is the one open.
func (v *View) toggle(name string) {
	if v.overlay == name {
		v.closeOverlay()
		return
	}
	v.closeOverlay()
	v.overlay = name
	if name == pageDetail {
		v.actions.SetFocus(v.selected)
	}
	v.refreshOverlay()
	v.pages.ShowPage(name)
	v.focusOverlay()
}

// focusOverlay gives the keys to the open overlay's list, or to the nodes table.
func (v *View) focusOverlay() {
	switch v.overlay {
	case pageDetail:
		v.app.SetFocus(v.detailTable)
	case pageEvents:
		v.app.SetFocus(v.events)
	case pageConflicts:
		v.app.SetFocus(v.conflTable)
	case pageSnapshots:
		v.app.SetFocus(v.snapList)
	case pageSnapshot:
		v.app.SetFocus(v.snapApp)
	case pageDuties:
		v.app.SetFocus(v.duties)
	default:
		v.app.SetFocus(v.nodes)
	}
}

func (v *View) closeOverlay() {
	if v.overlay == "" {
		return
	}
	if v.overlay == pageDetail {
		v.actions.SetFocus("")
	}
	v.pages.HidePage(v.overlay)
	v.overlay = ""
	v.focusOverlay()
}

// openSnapshot shows the progress of the snapshot on row of the snapshots list.
func (v *View) openSnapshot(row int) {
	key, _ := v.snapList.GetCell(row, 0).GetReference().(string)
	if key == "" {
		return // the list's "no snapshots" line
	}
	v.snapKey = key
	v.toggle(pageSnapshot)
}

// OverlayName is the open overlay ("" for none).
func (v *View) OverlayName() string { return v.overlay }
