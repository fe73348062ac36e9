package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/tests/harness"
)

// initFootprint is everything start_init may create on either node; a refused call leaves it unchanged.
func initFootprint(t *testing.T, p *pair) string {
	t.Helper()
	target := harness.QueryOne[string](t, p.b, "", `SELECT concat_ws('|',
		(SELECT string_agg(format('%s:%s', name, init_state), ',' ORDER BY name) FROM steep_repl.nodes),
		(SELECT count(*) FROM steep_repl.jobs), (SELECT count(*) FROM steep_repl.init_progress),
		(SELECT count(*) FROM steep_repl.events), (SELECT count(*) FROM pg_subscription),
		(SELECT count(*) FROM artist))`)
	source := harness.QueryOne[string](t, p.a, "", `SELECT concat_ws('|',
		(SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_replication_slots))`)
	return target + "||" + source
}

func TestStartInitRefusesBadInputAndCreatesNothing(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.b.Exec(t, "", "SELECT steep_repl.register_node('node_c', 'host=127.0.0.1 port=1 connect_timeout=2', false)")
	p.b.Exec(t, "", "CREATE TABLE only_here (id int PRIMARY KEY)")
	p.a.Exec(t, "", "CREATE TABLE no_key (v int)")
	p.b.Exec(t, "", "CREATE TABLE no_key (v int)")
	before := initFootprint(t, p)

	cases := []struct{ name, sql, code, msg string }{
		{"target is the source", "SELECT steep_repl.start_init('node_b', 'node_b')", "22023", "same node"},
		{"unknown target", "SELECT steep_repl.start_init('node_x', 'node_a')", "42704", `node "node_x" is not registered`},
		{"unknown source", "SELECT steep_repl.start_init('node_b', 'node_x')", "42704", `node "node_x" is not registered`},
		{"target is not this node", "SELECT steep_repl.start_init('node_a', 'node_b')", "22023", "not this database's local node"},
		{"unreachable source", "SELECT steep_repl.start_init('node_b', 'node_c')", "08001", `source node "node_c" is not reachable`},
		{"parallel 0", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"parallel": 0}')`, "22023", "parallel must be between 1 and 16"},
		{"parallel 17", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"parallel": 17}')`, "22023", "parallel must be between 1 and 16"},
		{"parallel not a number", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"parallel": "many"}')`, "22023", "parallel must be between 1 and 16"},
		{"unknown option", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"paralel": 2}')`, "22023", `unknown init option "paralel"`},
		{"parallel not an integer", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"parallel": 1.5}')`, "22023", "parallel must be an integer between 1 and 16"},
		{"negative lag_threshold", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"lag_threshold": -1}')`, "22023", "lag_threshold must be between 0 and"},
		{"negative stall_timeout", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"stall_timeout": -5}')`, "22023", "stall_timeout must be between 1 and 604800"},
		{"zero source_timeout", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"source_timeout": 0}')`, "22023", "source_timeout must be between 1 and 604800"},
		{"NaN stall_timeout", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"stall_timeout": "NaN"}')`, "22023", "stall_timeout must be between"},
		{"Infinity source_timeout", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"source_timeout": "Infinity"}')`, "22023", "source_timeout must be between"},
		{"1e300 lag_threshold", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"lag_threshold": 1e300}')`, "22023", "lag_threshold must be between"},
		{"boolean large_table_threshold", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"large_table_threshold": true}')`, "22023", "large_table_threshold must be between"},
		{"unknown method", "SELECT steep_repl.start_init('node_b', 'node_a', 'teleport')", "22023", `unknown init method "teleport"`},
		{"NULL source", "SELECT steep_repl.start_init('node_b', NULL)", "22004", "source must not be NULL"},
		{"schema differs", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"tables": ["artist", "album"]}')`, "", ""},
		{"table missing on the source", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"tables": ["public.nope"]}')`, "42P01", "tables not found on source"},
		{"no replica identity", `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"tables": ["no_key"]}')`, "55000", "without a primary key or replica identity"},
	}
	for _, c := range cases {
		if c.code == "" {
			continue
		}
		code, pgErr := dbaState(t, p.b, c.sql)
		if code != c.code {
			t.Errorf("%s: SQLSTATE %q, want %s", c.name, code, c.code)
			continue
		}
		if !strings.Contains(pgErr.Message, c.msg) || pgErr.Hint == "" && c.code != "22004" {
			t.Errorf("%s: message %q (hint %q), want %q and a hint", c.name, pgErr.Message, pgErr.Hint, c.msg)
		}
	}

	// strict schema sync lists every difference.
	code, pgErr := dbaState(t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a')")
	if code != "42P16" {
		t.Fatalf("schema difference: SQLSTATE %q, want 42P16", code)
	}
	for _, want := range []string{"public.only_here is on node_b but not on node_a"} {
		if !strings.Contains(pgErr.Detail, want) {
			t.Errorf("schema difference detail %q lacks %q", pgErr.Detail, want)
		}
	}
	p.b.Exec(t, "", "DROP TABLE only_here")
	p.b.Exec(t, "", "ALTER TABLE genre ADD COLUMN mood text")
	_, pgErr = dbaState(t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"tables": ["genre"]}')`)
	if pgErr == nil || !strings.Contains(pgErr.Detail, "table public.genre: column mood text is on node_b but not on node_a") {
		t.Fatalf("column difference not reported: %+v", pgErr)
	}
	p.b.Exec(t, "", "ALTER TABLE genre DROP COLUMN mood")

	// A non-empty target is refused unless force.
	p.b.Exec(t, "", "INSERT INTO artist (name) VALUES ('already here')")
	code, pgErr = dbaState(t, p.b, `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"tables": ["artist"]}')`)
	if code != "55000" || !strings.Contains(pgErr.Message, "is not empty: public.artist") || !strings.Contains(pgErr.Hint, "force") {
		t.Fatalf("non-empty target: %s %+v", code, pgErr)
	}
	p.b.Exec(t, "", "DELETE FROM artist")
	p.b.Exec(t, "", "DROP TABLE no_key")
	p.a.Exec(t, "", "DROP TABLE no_key")
	if after := initFootprint(t, p); after != before {
		t.Fatalf("refused start_init calls changed something:\nbefore %s\nafter  %s", before, after)
	}

	// A second start_init while one runs.
	p.addSlowTable(t, 20000, 2*time.Millisecond)
	p.startInit(t, "{}")
	code, pgErr = dbaState(t, p.b, "SELECT steep_repl.start_init('node_b', 'node_a')")
	if code != "55000" || !strings.Contains(pgErr.Message, "already has an init in state PREPARING") && !strings.Contains(pgErr.Message, "already has an init in state COPYING") {
		t.Fatalf("second start_init: %s %+v", code, pgErr)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs WHERE kind = 'init.start'"); n != 1 {
		t.Fatalf("%d init.start jobs, want 1", n)
	}
	dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	p.waitState(t, "uninitialized", 30*time.Second)
}

func TestForceTruncatesANonEmptyTargetAndSaysSo(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.b.Exec(t, "", "INSERT INTO genre (name) VALUES ('stale')")
	cfg, err := pgx.ParseConfig(p.b.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"force": true}')`); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "truncated 11 table(s)") || !strings.Contains(notices[0], "public.genre") {
		t.Fatalf("force did not say what it truncated: %q", notices)
	}
	p.waitState(t, "synchronized", 90*time.Second)
	harness.AssertEqual(t, p.a, p.b, "")
}
