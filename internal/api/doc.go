// Package api is the one owner of the steep_repl SQL API on the Go side: the typed
// node, job and event records and the calls to the extension's functions. The sidecar,
// the CLI and the console all go through it, so no SQL string is written twice.
//
// The SQL lives in queries.sql, one named query per "-- name: X" block.
package api
