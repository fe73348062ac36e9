// Package cli implements the steep-repl command line: the sidecar daemon (run) and the
// administrative commands, each a thin layer over package api. Every command connects with
// --db (a postgres:// URL or conninfo), defaulting to the libpq environment like psql.
package cli
