package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/tests/harness"
)

// The trust boundary: a member of steep_repl_admin who is not a superuser (the attacker, "mallory",
// who also owns a schema of her own) must never act with the rights of the superuser that owns the
// API's SECURITY DEFINER functions. Each test tries one attack class the way such an operator
// would and checks that it fails, that mallory is still not a superuser and that nothing ran.

// addAttacker creates mallory on n: LOGIN, a member of steep_repl_admin, owner of schema app
// with a table app.pwned where her functions record who ran them (a primary key, so an init may
// publish it like any table).
func addAttacker(t *testing.T, n *harness.Node) {
	t.Helper()
	n.Exec(t, "", `CREATE ROLE mallory LOGIN IN ROLE steep_repl_admin;
		CREATE SCHEMA app AUTHORIZATION mallory;
		CREATE TABLE app.pwned (id bigserial PRIMARY KEY, who text NOT NULL, was_superuser boolean NOT NULL);
		ALTER TABLE app.pwned OWNER TO mallory`)
}

// connectAs opens one session on n's postgres database as role (temp tables live per session).
func connectAs(t *testing.T, n *harness.Node, role string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), strings.Replace(n.ConnString(""), "postgres@", role+"@", 1))
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// assertNotPwned checks that mallory is no superuser and that no function of hers recorded a run
// with the superuser's rights.
func assertNotPwned(t *testing.T, n *harness.Node) {
	t.Helper()
	if harness.QueryOne[bool](t, n, "", "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") {
		t.Fatalf("%s: mallory became superuser", n.Name)
	}
	if got := harness.QueryOne[string](t, n, "", "SELECT coalesce(string_agg(who, ','), '') FROM app.pwned WHERE was_superuser"); got != "" {
		t.Fatalf("%s: mallory's code ran as a superuser (%s)", n.Name, got)
	}
}

// pwnFunction is mallory's payload: it records who runs it and tries to make her superuser
// (which only a superuser caller can do; the error is swallowed so the caller goes on).
const pwnFunction = `CREATE FUNCTION app.pwn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app.pwned (who, was_superuser) VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN insufficient_privilege THEN NULL; END;
  RETURN NULL;
END $$`

func TestOperatorCannotHijackStartInitWithTempTables(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	addAttacker(t, p.a) // the same schema on both nodes, as a strict schema check wants
	addAttacker(t, p.b)
	conn := connectAs(t, p.b, "mallory")
	for _, sql := range []string{
		pwnFunction,
		"CREATE TEMP TABLE sr_src (LIKE steep_repl.table_info)",
		"CREATE TEMP TABLE sr_dst (LIKE steep_repl.table_info)",
		"CREATE TRIGGER pwn AFTER INSERT OR TRUNCATE ON pg_temp.sr_src FOR EACH STATEMENT EXECUTE FUNCTION app.pwn()",
		"CREATE TRIGGER pwn AFTER INSERT OR TRUNCATE ON pg_temp.sr_dst FOR EACH STATEMENT EXECUTE FUNCTION app.pwn()",
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("mallory: %s: %v", sql, err)
		}
	}
	if _, err := conn.Exec(t.Context(), "SELECT steep_repl.start_init('node_b', 'node_a')"); err != nil {
		t.Fatalf("start_init as a steep_repl_admin member: %v", err)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM app.pwned"); n != 0 {
		t.Fatalf("start_init used mallory's temp tables: their trigger ran %d times", n)
	}
	assertNotPwned(t, p.b)
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
}

func TestTruncateBeforeAForcedInitRunsAsTheTableOwner(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		addAttacker(t, n)
		n.Exec(t, "", "CREATE TABLE app.t (id int PRIMARY KEY, v text); ALTER TABLE app.t OWNER TO mallory")
		n.Exec(t, "", "INSERT INTO app.t SELECT g, 'row ' || g FROM generate_series(1, 100) g")
	}
	p.b.Exec(t, "", "UPDATE app.t SET v = 'stale'")
	conn := connectAs(t, p.b, "mallory")
	for _, sql := range []string{pwnFunction,
		"CREATE TRIGGER pwn AFTER TRUNCATE ON app.t FOR EACH STATEMENT EXECUTE FUNCTION app.pwn()"} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("mallory: %s: %v", sql, err)
		}
	}
	if _, err := conn.Exec(t.Context(), `SELECT steep_repl.start_init('node_b', 'node_a', 'snapshot', '{"force": true, "tables": ["app.t"]}')`); err != nil {
		t.Fatalf("start_init force: %v", err)
	}
	if got := harness.QueryOne[string](t, p.b, "", "SELECT string_agg(who, ',') FROM app.pwned"); got != "mallory" {
		t.Fatalf("the TRUNCATE trigger of mallory's table ran as %q, want exactly once as mallory", got)
	}
	assertNotPwned(t, p.b)
	p.waitState(t, "synchronized", 120*time.Second)
	rep, err := harness.Compare(t.Context(), p.a.Pool(t, ""), p.b.Pool(t, ""), harness.CompareOptions{Tables: []string{"app.t"}})
	if err != nil || !rep.Equal() {
		t.Fatalf("app.t differs after the forced init: %v %v", rep, err)
	}
}

func TestPeerSessionsIgnoreASearchPathInTheConninfo(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	addAttacker(t, p.a)
	// On the source, mallory's own "=" for "char" records every call; a session whose
	// search_path starts with her schema would pick it over pg_catalog's in the catalog queries.
	p.a.Exec(t, "", `CREATE FUNCTION app.char_eq("char", "char") RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO app.pwned (who, was_superuser) VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
		RETURN $1::text = $2::text; END $$;
		CREATE OPERATOR app.= (LEFTARG = "char", RIGHTARG = "char", FUNCTION = app.char_eq);
		ALTER FUNCTION app.char_eq("char", "char") OWNER TO mallory; ALTER OPERATOR app.= ("char", "char") OWNER TO mallory`)
	p.b.Exec(t, "", "SELECT steep_repl.unregister_node('node_a')")
	p.b.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, false)",
		libpqConninfo(p.a)+" options='-csearch_path=app,pg_catalog'")
	addAttacker(t, p.b)
	if err := execAs(t, p.b, "mallory", "SELECT steep_repl.start_init('node_b', 'node_a')"); err != nil {
		t.Fatalf("start_init as mallory: %v", err)
	}
	p.waitState(t, "synchronized", 120*time.Second)
	if n := harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM app.pwned"); n != 0 {
		t.Fatalf("a peer session used mallory's operator %d times", n)
	}
	assertNotPwned(t, p.a)
}

// TestNoPasswordInAnyOutput places a password in the source's conninfo (registered by the
// superuser) and makes an unreachable source, a failed complete_init and a failed init happen;
// the password must appear in no error, event, job, progress row, server log or sidecar log.
func TestNoPasswordInAnyOutput(t *testing.T) {
	t.Parallel()
	const secret = "S3cret-pw-never-shown"
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		harness.LoadChinook(t, n, "")
		addAttacker(t, n)
	}
	car := startSidecar(t, b, "sidecar_b")
	// norepl may read what the API reads through dblink, but not start a walsender or publish.
	a.Exec(t, "", "CREATE ROLE norepl LOGIN IN ROLE steep_repl_admin")
	b.Exec(t, "", "SELECT steep_repl.unregister_node('node_a')")
	b.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, false)",
		fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=norepl password=%s", a.Port, secret))
	b.Exec(t, "", "SELECT steep_repl.register_node('node_x', $1, false)",
		"host=127.0.0.1 port=1 dbname=postgres user=postgres password="+secret)
	var errs []string
	record := func(what string, err error) {
		if err == nil {
			t.Fatalf("%s succeeded; it must fail for this test", what)
		}
		errs = append(errs, what+": "+pgErrorText(err))
	}

	record("start_init from an unreachable source", execAs(t, b, "mallory", "SELECT steep_repl.start_init('node_b', 'node_x')"))
	var slot, lsn string
	if err := a.Pool(t, "").QueryRow(t.Context(), "SELECT slot, lsn::text FROM steep_repl.prepare_init('node_b')").Scan(&slot, &lsn); err != nil {
		t.Fatal(err)
	}
	record("complete_init whose subscription cannot connect",
		execAs(t, b, "mallory", fmt.Sprintf("SELECT steep_repl.complete_init('node_b', 'node_a', '%s', '%s')", slot, lsn)))
	b.Exec(t, "", "TRUNCATE invoice_line, invoice, customer, employee, track, album, artist, genre, media_type, playlist_track, playlist")
	if err := execAs(t, b, "mallory", "SELECT steep_repl.start_init('node_b', 'node_a')"); err != nil {
		t.Fatalf("start_init: %v", err)
	}
	p := &pair{a: a, b: b}
	p.waitState(t, "failed", 120*time.Second)

	dump := strings.Join(errs, "\n") + "\n" + harness.QueryOne[string](t, b, "", `SELECT concat_ws(E'\n',
		(SELECT string_agg(e::text, E'\n') FROM steep_repl.events e),
		(SELECT string_agg(j::text, E'\n') FROM steep_repl.jobs j),
		(SELECT string_agg(p::text, E'\n') FROM steep_repl.init_progress p),
		(SELECT string_agg(n.last_error, E'\n') FROM steep_repl.nodes n))`)
	t.Logf("what the DBA saw:\n%s", dump)
	out, errOut, _ := runCLI(t, "init", "status", "node_b", "--db", dbaURL(t, b))
	for what, text := range map[string]string{"errors and tables": dump, "CLI output": out + errOut, "sidecar log": car.out.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("the password appears in the %s", what)
		}
	}
	for _, n := range []*harness.Node{a, b} {
		if n.LogContains(secret) {
			t.Errorf("the password appears in the server log of %s", n.Name)
		}
	}
	assertNotPwned(t, b)
}

// pgErrorText is every field of a PostgreSQL error a client shows (message, detail, hint, context).
func pgErrorText(err error) string {
	var pgErr *pgconn.PgError
	if asPgError(err, &pgErr) {
		return strings.Join([]string{pgErr.Code, pgErr.Message, pgErr.Detail, pgErr.Hint, pgErr.Where}, " | ")
	}
	return err.Error()
}

func TestCompleteInitRefusesToRunOnTheSource(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	addAttacker(t, a)
	var slot string
	if err := a.Pool(t, "").QueryRow(t.Context(), "SELECT slot FROM steep_repl.prepare_init('node_b')").Scan(&slot); err != nil {
		t.Fatal(err)
	}
	err := execAs(t, a, "mallory", fmt.Sprintf("SELECT steep_repl.complete_init('node_b', 'node_a', '%s', '0/1')", slot))
	if code := sqlStateOf(err); code != "55000" || !strings.Contains(err.Error(), "not on the source") {
		t.Fatalf("complete_init on the source: %v, want 55000", err)
	}
	if got := harness.QueryOne[string](t, a, "", "SELECT name FROM steep_repl.nodes WHERE is_local"); got != "node_a" {
		t.Fatalf("the source took the identity of %s", got)
	}
	if n := harness.QueryOne[int64](t, a, "", "SELECT count(*) FROM steep_repl.init_slots WHERE slot_name = $1", slot); n != 1 {
		t.Fatal("the source lost its prepared slot's record")
	}
}

func TestCreateExtensionRefusesASchemaItDidNotCreate(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	n.CreateDatabase(t, "other")
	n.Exec(t, "", "CREATE ROLE mallory LOGIN; GRANT CREATE ON DATABASE other TO mallory")
	conn, err := pgx.Connect(t.Context(), strings.Replace(n.ConnString("other"), "postgres@", "mallory@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA steep_repl"); err != nil {
		t.Fatal(err)
	}
	_, err = n.Pool(t, "other").Exec(t.Context(), "CREATE EXTENSION steep_repl CASCADE")
	if code := sqlStateOf(err); code != "42501" {
		t.Fatalf("CREATE EXTENSION into mallory's schema: %v, want 42501", err)
	}
	if harness.QueryOne[bool](t, n, "other", "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'steep_repl')") {
		t.Fatal("the extension was installed into a schema mallory owns")
	}
}

// TestSecurityDefinerFunctionsPinSearchPathAndUseNoTempTables reads the catalog, so a function
// added later cannot slip past: every SECURITY DEFINER function pins search_path, and no function
// of the extension (they all run inside the API) names a temp table a caller could create first.
func TestSecurityDefinerFunctionsPinSearchPathAndUseNoTempTables(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	unpinned := harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
		FROM pg_proc p WHERE p.pronamespace = 'steep_repl'::regnamespace AND p.prosecdef
		  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=pg\_catalog%')`)
	if unpinned != "" {
		t.Errorf("SECURITY DEFINER functions without search_path = pg_catalog: %s", unpinned)
	}
	temp := harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
		FROM pg_proc p WHERE p.pronamespace = 'steep_repl'::regnamespace
		  AND p.prosrc ~* '(create\s+(global\s+|local\s+)?temp(orary)?\s+table|pg_temp\.)'`)
	if temp != "" {
		t.Errorf("functions using temp tables: %s", temp)
	}
	definers := harness.QueryOne[int64](t, n, "", `SELECT count(*) FROM pg_proc p
		WHERE p.pronamespace = 'steep_repl'::regnamespace AND p.prosecdef`)
	if definers < 10 {
		t.Errorf("only %d SECURITY DEFINER functions found: the catalog query is wrong", definers)
	}
}
