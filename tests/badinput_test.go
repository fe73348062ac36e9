package tests

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/tests/harness"
)

// snapshotState is everything the API may change; bad input must leave it identical.
const snapshotStateSQL = `SELECT md5(concat_ws('|',
  (SELECT string_agg(n::text, ',' ORDER BY name) FROM steep_repl.nodes n),
  (SELECT string_agg(j::text, ',' ORDER BY id) FROM steep_repl.jobs j),
  (SELECT count(*) FROM steep_repl.events)))`

func TestBadInputGetsAClearErrorAndChangesNothing(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.Exec(t, "", "SELECT steep_repl.register_node('node_b', 'host=127.0.0.1 port=1 password=hunter2', false)")
	cases := []struct {
		name, sql, code, msg string
	}{
		{"unknown node in transition", "SELECT steep_repl.transition('nope', 'preparing', NULL)", "42704", `node "nope" is not registered`},
		{"unknown node in enqueue", "SELECT steep_repl.enqueue_job('noop', '{}', 'nope')", "42704", `node "nope" is not registered`},
		{"unknown node in unregister", "SELECT steep_repl.unregister_node('nope')", "42704", `node "nope" is not registered`},
		{"unknown state", "SELECT steep_repl.transition('node_b', 'warp_speed', NULL)", "22023", `unknown init state "warp_speed"`},
		{"NULL node name", "SELECT steep_repl.register_node(NULL, 'host=x', false)", "22004", "name must not be NULL"},
		{"NULL conninfo", "SELECT steep_repl.register_node('node_c', NULL, false)", "22004", "conninfo must not be NULL"},
		{"NULL is_local", "SELECT steep_repl.register_node('node_c', 'host=x', NULL)", "22004", "is_local must not be NULL"},
		{"NULL transition node", "SELECT steep_repl.transition(NULL, 'preparing', NULL)", "22004", "node must not be NULL"},
		{"NULL transition state", "SELECT steep_repl.transition('node_b', NULL, NULL)", "22004", "to_state must not be NULL"},
		{"NULL job kind", "SELECT steep_repl.enqueue_job(NULL, '{}')", "22004", "kind must not be NULL"},
		{"NULL job args", "SELECT steep_repl.enqueue_job('noop', NULL)", "22004", "args must not be NULL"},
		{"NULL cancel id", "SELECT steep_repl.cancel_job(NULL)", "22004", "job_id must not be NULL"},
		{"duplicate node", "SELECT steep_repl.register_node('node_b', 'host=elsewhere', false)", "42710", `node "node_b" is already registered`},
		{"second local node", "SELECT steep_repl.register_node('node_c', 'host=x', true)", "42710", `"node_a" already is`},
		{"bad node name", "SELECT steep_repl.register_node('Node-C', 'host=x', false)", "22023", `invalid node name "Node-C"`},
		{"unparsable conninfo", "SELECT steep_repl.register_node('node_c', 'host=x port', false)", "42601", "invalid connection string syntax"},
		{"unknown conninfo option", "SELECT steep_repl.register_node('node_c', 'host=x colour=blue', false)", "42601", "invalid connection option"},
		{"unparsable conninfo URL", "SELECT steep_repl.register_node('node_c', 'postgres://[::1/db', false)", "42601", "invalid connection string syntax"},
		{"bad job kind", "SELECT steep_repl.enqueue_job('Drop Table', '{}')", "22023", `invalid job kind "Drop Table"`},
		{"job args not an object", "SELECT steep_repl.enqueue_job('noop', '[1,2]')", "22023", "must be a JSON object"},
		{"zero max attempts", "SELECT steep_repl.enqueue_job('noop', '{}', NULL, 0)", "22023", "max_attempts must be at least 1"},
		{"unknown job", "SELECT steep_repl.cancel_job(987654)", "42704", "job 987654 does not exist"},
		{"heartbeat of a job not owned", "SELECT steep_repl.heartbeat_job(987654, 'w')", "42704", "job 987654 does not exist"},
		{"bad outcome", "SELECT steep_repl.finish_job(1, 'w', 'meh')", "22023", `invalid job outcome "meh"`},
	}
	before := harness.QueryOne[string](t, n, "", snapshotStateSQL)
	for _, c := range cases {
		code, pgErr := sqlState(t, n, c.sql)
		if code != c.code {
			t.Errorf("%s: SQLSTATE %q, want %s", c.name, code, c.code)
			continue
		}
		if !strings.Contains(pgErr.Message, c.msg) {
			t.Errorf("%s: message %q lacks %q", c.name, pgErr.Message, c.msg)
		}
	}
	if after := harness.QueryOne[string](t, n, "", snapshotStateSQL); after != before {
		t.Fatal("bad input changed the state")
	}
	if conninfo := harness.QueryOne[string](t, n, "", "SELECT conninfo FROM steep_repl.nodes WHERE name = 'node_b'"); !strings.Contains(conninfo, "port=1") {
		t.Fatalf("duplicate registration overwrote the conninfo: %s", conninfo)
	}
}

func TestRolesWithoutSteepReplAdminAreRefused(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	n.Exec(t, "", "CREATE ROLE outsider LOGIN")
	n.Exec(t, "", "CREATE ROLE operator LOGIN IN ROLE steep_repl_admin")
	n.Exec(t, "", "SELECT steep_repl.register_node('node_b', 'host=127.0.0.1 password=hunter2', false)")
	before := harness.QueryOne[string](t, n, "", snapshotStateSQL)

	as := func(role, sql string) error { return execAs(t, n, role, sql) }
	for _, sql := range []string{
		"SELECT steep_repl.register_node('node_c', 'host=x', false)",
		"SELECT steep_repl.transition('node_b', 'preparing', NULL)",
		"SELECT steep_repl.enqueue_job('noop')",
		"SELECT steep_repl.tick()",
		"SELECT name FROM steep_repl.nodes",
		"SELECT conninfo FROM steep_repl.nodes",
		"SELECT * FROM steep_repl.jobs",
	} {
		err := as("outsider", sql)
		if code := sqlStateOf(err); code != "42501" {
			t.Errorf("outsider: %s: got %v, want SQLSTATE 42501", sql, err)
		}
	}
	if after := harness.QueryOne[string](t, n, "", snapshotStateSQL); after != before {
		t.Fatal("a refused role changed the state")
	}
	// steep_repl_admin runs the API and reads state, but never a conninfo; registering a node
	// (choosing where superuser connections go) is the superuser's, the queue the sidecar's.
	for _, sql := range []string{
		"SELECT name, init_state, last_error FROM steep_repl.nodes",
		"SELECT id, state FROM steep_repl.jobs",
	} {
		if err := as("operator", sql); err != nil {
			t.Errorf("operator: %s: %v", sql, err)
		}
	}
	for _, sql := range []string{
		"SELECT steep_repl.register_node('node_c', 'host=x', false)",
		"SELECT steep_repl.enqueue_job('noop')",
		"SELECT steep_repl.transition('node_b', 'preparing', NULL)",
		"SELECT steep_repl.tick('infinity')",
	} {
		if code := sqlStateOf(as("operator", sql)); code != "42501" {
			t.Errorf("operator: %s: SQLSTATE %q, want 42501", sql, code)
		}
	}
	if after := harness.QueryOne[string](t, n, "", snapshotStateSQL); after != before {
		t.Fatal("a refused operator changed the state")
	}
	n.Exec(t, "", "CREATE ROLE sidecar LOGIN IN ROLE steep_repl_sidecar")
	if err := as("sidecar", "SELECT steep_repl.enqueue_job('noop')"); err != nil {
		t.Errorf("steep_repl_sidecar cannot enqueue: %v", err)
	}
	if code := sqlStateOf(as("operator", "SELECT conninfo FROM steep_repl.nodes")); code != "42501" {
		t.Errorf("steep_repl_admin can read conninfo (SQLSTATE %q), which may hold passwords", code)
	}
	public := harness.QueryOne[int64](t, n, "", `SELECT count(*) FROM information_schema.role_table_grants
		WHERE table_schema = 'steep_repl' AND grantee = 'PUBLIC'`)
	// row_hash and _written_here alone: comparisons read each table as its owner, and the
	// executor checks EXECUTE on row_hash as that owner, as on _written_here in _merge_apply's
	// read-back (README, security model). Without USAGE on the schema an outsider cannot name them.
	publicFns := harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid::regprocedure::text), '') FROM pg_proc p
		WHERE p.pronamespace = 'steep_repl'::regnamespace AND has_function_privilege('outsider', p.oid, 'EXECUTE')`)
	usage := harness.QueryOne[bool](t, n, "", "SELECT has_schema_privilege('outsider', 'steep_repl', 'USAGE')")
	const wantFns = "steep_repl._written_here(xid), steep_repl.row_hash(record)"
	if public != 0 || publicFns != wantFns || usage {
		t.Fatalf("PUBLIC holds %d table grants, can execute %q (want only %s), schema USAGE %v", public, publicFns, wantFns, usage)
	}
}

func sqlStateOf(err error) string {
	var pgErr *pgconn.PgError
	if err != nil && asPgError(err, &pgErr) {
		return pgErr.Code
	}
	return fmt.Sprint(err)
}
