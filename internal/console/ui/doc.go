// Package ui holds the console's widgets and its key table: turning rendered cells and lines
// into tview tables and tagged text, a centered overlay, the confirmation dialog, and the one
// KeyTable that drives both the key bindings and the help bar.
//
// Everything here runs in tview's UI goroutine: build and update widgets only there, and
// never queue an update from a key handler (see tview's Concurrency notes).
package ui
