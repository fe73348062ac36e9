package tests

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/tests/harness"
)

// dbaRole is how the tests call the API where an operator would: a LOGIN member of
// steep_repl_admin, not a superuser (README, "Security model"). Setup (tables, register_node,
// the extension) stays with the superuser, as the README says.
const dbaRole = "dba"

// ensureDBA creates the dba role on n's cluster once (roles are cluster-wide; a node started from
// another's data directory already has it). Like a DBA's own role it may create schemas and tables:
// a schema sync creates new tables as the role that asked for it.
func ensureDBA(t testing.TB, n *harness.Node) {
	t.Helper()
	n.Exec(t, "", `DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dba') THEN CREATE ROLE dba LOGIN; END IF;
		IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'steep_repl_admin') THEN GRANT steep_repl_admin TO dba; END IF;
		END $$;
		GRANT CREATE ON DATABASE postgres TO dba; GRANT CREATE ON SCHEMA public TO dba`)
}

// dbaPool is a pool of sessions as the dba role on n's postgres database.
func dbaPool(t testing.TB, n *harness.Node) *pgxpool.Pool {
	t.Helper()
	ensureDBA(t, n)
	return n.PoolAs(t, dbaRole, "")
}

// dbaURL is the connection string the CLI gets when a DBA runs it.
func dbaURL(t testing.TB, n *harness.Node) string {
	t.Helper()
	ensureDBA(t, n)
	return n.ConnStringAs(dbaRole, "")
}

// dbaExec runs sql as the dba role and fails the test on error.
func dbaExec(t testing.TB, n *harness.Node, sql string, args ...any) {
	t.Helper()
	if _, err := dbaPool(t, n).Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("node %s: as %s: %v\nSQL: %s", n.Name, dbaRole, err, sql)
	}
}

// dbaQuery runs sql as the dba role and returns the single value of its single row.
func dbaQuery[T any](t testing.TB, n *harness.Node, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := dbaPool(t, n).QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("node %s: as %s: %v\nSQL: %s", n.Name, dbaRole, err, sql)
	}
	return v
}

// dbaState runs sql as the dba role and returns the SQLSTATE of its error ("" when it succeeded).
func dbaState(t testing.TB, n *harness.Node, sql string, args ...any) (string, *pgconn.PgError) {
	t.Helper()
	return execState(t, dbaPool(t, n), sql, args...)
}
