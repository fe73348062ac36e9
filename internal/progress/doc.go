// Package progress renders the progress of a node init (and the status line of a snapshot
// job) for people and for programs: a bar, human units (bytes, rates, row counts,
// durations), a one-line status, a detail line naming the tables being copied, a final
// summary and an NDJSON object, plus the ANSI frames that redraw the status lines in
// place on a terminal (Painter, Fit).
//
// Everything here is pure (mostly functions of a Snapshot): no I/O, no clock, no terminal
// detection. The CLI reads steep_repl.init_progress (or steep_repl.snapshot_progress)
// through package api, converts the row into a Snapshot and decides where and how often
// to print. It is the CLI's only writer of ANSI escape codes.
//
// It also holds the CLI's one sanitizer of text from the database or the user: Escape and
// Text write control characters (C0, DEL, C1) as escapes, Ident quotes names as
// format('%I.%I') does. The names, states and messages that Line, Detail and Summary embed
// are escaped, so their output (and Painter's frames) can go to a terminal as it is.
//
// Byte quantities use SI (decimal) units, 1 kB = 1000 B, 1 MB = 1000 kB and so on, the
// units of disk and network rates. Note that PostgreSQL's pg_size_pretty uses 1024 per
// step with the same unit names, so its figures are up to ~10% smaller than these.
package progress
