// Package console runs steep-console, the live terminal console: it wires the model (one
// poller per node, see package model) to the screens (package view) through tview's update
// queue, coalescing states so a slow terminal never backs the pollers up.
//
// Layers, after k9s: model (pollers, merge), render (pure functions from rows to cells), ui
// (widgets, key table), view (screens).
package console
