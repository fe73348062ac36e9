// Package view is the console's screens: the nodes view (home: one row per node, a status
// line and the help bar) and the overlays its keys open — detail, snapshots, conflicts,
// events, help — plus the cancel confirmation.
//
// The key table (see keyTable) is the only place keys are bound; the help bar and help page
// are generated from it. A View is driven by the UI goroutine only: the model's states arrive
// through app.QueueUpdateDraw (View.Apply), keys through View.Capture, and the one action
// doing I/O (cancel) runs in a goroutine that reports back through the update queue.
package view
