// Package render turns the console's data into what is drawn: pure functions from model rows
// to cells (text, color, alignment) and lines of colored segments. Nothing here touches a
// widget, a screen or a connection, so every rule of the display (state colors, progress
// bar, ETA, conflict thresholds, sparkline, help bar, snapshot marks and the two sides of a
// snapshot's progress) is unit-tested here.
//
// Numbers are formatted by package progress (SI bytes, rates, durations), as in the CLI.
package render
