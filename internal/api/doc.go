// Package api is the one owner of the steep_repl SQL API on the Go side: the typed
// node, job and event records and the calls to the extension's functions. The sidecar,
// the CLI and the console all go through it, so no SQL string is written twice.
//
// Its exported functions are verbs that build and run their SQL; none hands a statement to
// its caller. The SQL lives in the package's .sql files, one named query per "-- name: X"
// block, called through the generated constant qX (queries_gen.go; go generate after
// changing a block), so a query no file defines does not compile. Statements that cannot
// take parameters (DDL, COPY, SET TRANSACTION SNAPSHOT) are built in statements.go and
// replication.go, where every identifier is quoted by Identifier and every literal by
// quoteLiteral.
package api
