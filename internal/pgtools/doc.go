// Package pgtools finds and runs PostgreSQL's client programs (pg_dump, pg_restore) for the
// sidecar's snapshots and the CLI's schema export: where they are (--pg-bindir, the PATH, or
// `pg_config --bindir`), whether they are new enough for the server or archive at hand, and
// how they reach a node (libpq variables, the password only in PGPASSWORD, never on a command
// line or in an error).
package pgtools
