// Package harness starts real PostgreSQL 18 clusters for integration tests and
// judges their data.
//
// Start and StartN initdb small, fast (fsync = off) clusters in short temporary
// directories under /tmp, listening on 127.0.0.1 at free ports, and stop and
// remove them when the test ends. A failed test keeps the data directories and
// logs the tail of each server log, the data directory and the connection
// string, so the cluster can be inspected afterwards.
//
// The server binaries come from <repo>/.cache/pg18 (made by `make setup`) or
// from the directory named by STEEP_PG_HOME. PostgreSQL refuses to run as root,
// so when the tests run as root the harness runs initdb, pg_ctl and postgres as
// the unprivileged OS user "postgres" (created if absent), and copies the
// installation to a world-readable directory when that user cannot run it in
// place.
//
// LoadChinook loads the Chinook sample database. Compare streams every row of
// every user table of two databases, ordered by primary key, and merge-joins the
// row hashes, so it reports exactly which rows changed, are missing or are
// extra; it is the judge of every replication test. AssertEqual wraps it for
// tests.
//
// Environment:
//
//	STEEP_PG_HOME       PostgreSQL installation (bin, lib, share) to use
//	STEEP_SHARED_DIR    directory holding datasets/ (default <repo>/../shared)
//	STEEP_KEEP_RUNNING  when set, a failed test leaves its servers running
package harness
