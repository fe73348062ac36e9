// Package view is the console's screens: the nodes view (home: one row per node, a status
// line and the help bar) and the overlays its keys open — detail, snapshots, conflicts,
// events, help — plus the cancel confirmation. Enter on a row of the snapshots list opens
// that snapshot's progress (generation and application side by side); Esc goes back to the
// list.
//
// The key table (see keyTable) is the only place keys are bound; the help bar and help page
// are generated from it. A View is driven by the UI goroutine only: the model's states arrive
// through app.QueueUpdateDraw (View.Apply), keys through View.Capture, and the one action
// doing I/O (cancel) runs in a goroutine that reports back through the update queue.
package view
