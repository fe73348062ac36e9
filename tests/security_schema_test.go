package tests

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/tests/harness"
)

// Schema compare and sync under the trust boundary: alice, a member of steep_repl_admin who is
// not a superuser and owns schema app, calls the schema API. Nothing she prepares in her session
// (temp tables), on a peer (column defaults, generation expressions, domains) or in her tables
// (CHECKs) may ever run with the rights of the superuser that owns the API.

// addSchemaAttacker creates alice on n with schema app, the table app.pwned where her payloads
// record who ran them, and the payloads: app.pwn() (for a default), app.ipwn(int) (IMMUTABLE, for
// a generation expression), app.dpwn(int) (for a domain CHECK) and the trigger function
// app.pwn_trigger(). Each records current_user and tries to make alice superuser, which only a
// superuser can do (the error is swallowed so that the caller goes on).
func addSchemaAttacker(t *testing.T, n *harness.Node) {
	t.Helper()
	n.Exec(t, "", "CREATE ROLE alice LOGIN IN ROLE steep_repl_admin; CREATE SCHEMA app AUTHORIZATION alice")
	if err := execAs(t, n, "alice", `
		CREATE TABLE app.pwned (who text NOT NULL, was_superuser boolean NOT NULL);
		CREATE FUNCTION app.payload() RETURNS void LANGUAGE plpgsql AS $$
		BEGIN
		  INSERT INTO app.pwned VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
		  BEGIN EXECUTE 'ALTER ROLE alice SUPERUSER'; EXCEPTION WHEN insufficient_privilege THEN NULL; END;
		END $$;
		CREATE FUNCTION app.pwn() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM app.payload(); RETURN 1; END $$;
		CREATE FUNCTION app.ipwn(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM app.payload(); RETURN x; END $$;
		CREATE FUNCTION app.dpwn(x int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM app.payload(); RETURN true; END $$;
		CREATE DOMAIN app.checked AS int CHECK (app.dpwn(VALUE));
		CREATE FUNCTION app.pwn_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM app.payload(); RETURN NULL; END $$`); err != nil {
		t.Fatalf("alice's payloads on %s: %v", n.Name, err)
	}
}

// assertAliceNotPwned checks that alice is no superuser and that no payload of hers ran.
func assertAliceNotPwned(t *testing.T, n *harness.Node) {
	t.Helper()
	if harness.QueryOne[bool](t, n, "", "SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'") {
		t.Fatalf("%s: alice became superuser", n.Name)
	}
	if got := harness.QueryOne[string](t, n, "", "SELECT coalesce(string_agg(who, ','), '') FROM app.pwned"); got != "" {
		t.Fatalf("%s: alice's payload ran (as %s)", n.Name, got)
	}
}

// The temp tables the schema functions once used, as alice creates them first in her session,
// with a trigger on every write and a statement waiting in the old plan table.
var oldSchemaTempTables = []string{
	"CREATE TEMP TABLE sr_def_local (schema_name text, table_name text, fingerprint text, columns jsonb, primary_key jsonb)",
	"CREATE TEMP TABLE sr_def_peer (schema_name text, table_name text, fingerprint text, columns jsonb, primary_key jsonb)",
	`CREATE TEMP TABLE sr_diff (ord bigint GENERATED ALWAYS AS IDENTITY, schema_name text, table_name text,
		column_name text, kind text, local_value jsonb, peer_value jsonb, description text)`,
	"CREATE TEMP TABLE sr_plan (ord bigint GENERATED ALWAYS AS IDENTITY, rank int NOT NULL, stmt text, refusal text)",
	"CREATE TEMP TABLE sr_capture (relid oid, schema_name text, table_name text, fingerprint text)",
	"INSERT INTO sr_plan (rank, stmt) VALUES (0, 'ALTER ROLE alice SUPERUSER')",
}

func TestSecuritySchemaFunctionsNeverUseTheCallersTempTables(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		addSchemaAttacker(t, n)
	}
	if err := execAs(t, a, "alice", `CREATE TABLE app.t (id int PRIMARY KEY, v text DEFAULT 'x');
		CREATE TABLE app.only_a (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if err := execAs(t, b, "alice", "CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	conn := connectAs(t, b, "alice")
	setup := slices.Clone(oldSchemaTempTables)
	for _, table := range []string{"sr_def_local", "sr_def_peer", "sr_diff", "sr_plan", "sr_capture"} {
		setup = append(setup,
			"CREATE TRIGGER pwn_s BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON pg_temp."+table+" FOR EACH STATEMENT EXECUTE FUNCTION app.pwn_trigger()",
			"CREATE TRIGGER pwn_r BEFORE INSERT OR UPDATE OR DELETE ON pg_temp."+table+" FOR EACH ROW EXECUTE FUNCTION app.pwn_trigger()")
	}
	for _, sql := range setup {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("alice: %s: %v", sql, err)
		}
	}

	for _, sql := range []string{
		"SELECT count(*) FROM steep_repl.compare_fingerprints('node_a')",
		"SELECT count(*) FROM steep_repl.schema_diff('node_a')",
		"SELECT count(*) FROM steep_repl.schema_diff('node_a', 'app', 't')",
		"SELECT count(*) FROM steep_repl.schema_ddl('node_a')",
		"SELECT count(*) FROM steep_repl.schema_ddl()",
		"SELECT steep_repl.capture_fingerprints()",
		"SELECT steep_repl.schema_sync('node_a', 'auto')::text",
		"SELECT steep_repl.schema_sync('node_a', 'strict')::text",
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Errorf("alice: %s: %v", sql, err)
		}
	}
	if _, err := conn.Exec(t.Context(), "SELECT steep_repl.check_drift()"); sqlStateOf(err) != "55000" { // node_b has no source
		t.Errorf("alice: check_drift: %v, want 55000", err)
	}

	assertAliceNotPwned(t, b)
	var rows int64
	if err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM pg_temp.sr_def_local) + (SELECT count(*) FROM pg_temp.sr_def_peer)
		+ (SELECT count(*) FROM pg_temp.sr_diff) + (SELECT count(*) FROM pg_temp.sr_plan) + (SELECT count(*) FROM pg_temp.sr_capture)`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("alice's temp tables hold %d rows, want only the one she inserted", rows)
	}
	// The sync did its work, as alice: the new table is hers.
	if s := harness.QueryOne[string](t, b, "", `SELECT string_agg(table_name || ':' || status, ' ' ORDER BY table_name)
		FROM steep_repl.compare_fingerprints('node_a')`); s != "only_a:MATCH pwned:MATCH t:MATCH" {
		t.Fatalf("after auto: %s", s)
	}
	if owner := harness.QueryOne[string](t, b, "", "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'app' AND tablename = 'only_a'"); owner != "alice" {
		t.Fatalf("the table auto created for alice is owned by %s", owner)
	}
}

func TestSecuritySchemaSyncNeverEvaluatesAPeersExpressions(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		addSchemaAttacker(t, n)
	}
	if err := execAs(t, a, "alice", `
		CREATE TABLE app.h (id int PRIMARY KEY, u int DEFAULT app.pwn(), w int DEFAULT app.pwn(),
			g int GENERATED ALWAYS AS (app.ipwn(id)) STORED, dd app.checked);
		CREATE TABLE app.newt (id int PRIMARY KEY, w int DEFAULT app.pwn());
		CREATE TABLE app.t (id int PRIMARY KEY, v text DEFAULT 'it''s', n numeric(8,2) DEFAULT 0, s serial, flag boolean DEFAULT false,
			tags text[] DEFAULT '{}', since date DEFAULT '2020-01-01', gone int DEFAULT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := execAs(t, b, "alice", `CREATE TABLE app.h (id int PRIMARY KEY, u int); INSERT INTO app.h VALUES (1, 1), (2, 2);
		CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	before := harness.QueryOne[string](t, b, "", `SELECT string_agg(table_name || '=' || fingerprint, ' ' ORDER BY table_name)
		FROM steep_repl._local_definitions(false)`)

	// Everything that would evaluate a peer's expression is refused, with the DDL to run by hand.
	conn := connectAs(t, b, "alice")
	_, err := conn.Exec(t.Context(), "SELECT steep_repl.schema_sync('node_a', 'auto')")
	pgErr := asPg(t, err)
	if pgErr.Code != "42P16" || !strings.Contains(pgErr.Message, "schema_sync auto refuses 5 change(s)") {
		t.Fatalf("auto with a peer's expressions: %v", err)
	}
	for _, want := range []string{
		"add column w to app.h: its default app.pwn() is neither a constant nor nextval() of a sequence schema sync creates, and would be evaluated on this node; " +
			"review it, then run by hand: ALTER TABLE app.h ADD COLUMN w integer DEFAULT app.pwn()",
		"set the default of column u of app.h: its default app.pwn() is neither a constant",
		"run by hand: ALTER TABLE app.h ALTER COLUMN u SET DEFAULT app.pwn()",
		"add column g to app.h: its expression GENERATED ALWAYS AS (app.ipwn(id)) STORED would be evaluated on this node; " +
			"review it, then run by hand: ALTER TABLE app.h ADD COLUMN g integer GENERATED ALWAYS AS (app.ipwn(id)) STORED",
		"add column dd to app.h: its type app.checked is a domain whose CHECK constraints would run over the table's rows; " +
			"review it, then run by hand: ALTER TABLE app.h ADD COLUMN dd app.checked",
		"create table app.newt: column w: its default app.pwn() is neither a constant",
		"run by hand: CREATE TABLE app.newt (id integer NOT NULL, w integer DEFAULT app.pwn(), PRIMARY KEY (id))",
	} {
		if !strings.Contains(pgErr.Detail, want) {
			t.Errorf("refusal DETAIL lacks %q:\n%s", want, pgErr.Detail)
		}
	}
	assertAliceNotPwned(t, b)
	if after := harness.QueryOne[string](t, b, "", `SELECT string_agg(table_name || '=' || fingerprint, ' ' ORDER BY table_name)
		FROM steep_repl._local_definitions(false)`); after != before {
		t.Fatalf("a refused auto sync changed node_b:\nbefore %s\nafter  %s", before, after)
	}

	// Constants and a serial column are synced (the sequence created for it, as alice).
	var raw string
	if err := conn.QueryRow(t.Context(), `SELECT steep_repl.schema_sync('node_a', 'auto', '{"tables": ["app.t"]}')::text`).Scan(&raw); err != nil {
		t.Fatalf("auto on app.t: %v", err)
	}
	for _, want := range []string{
		`"CREATE SEQUENCE IF NOT EXISTS app.t_s_seq"`,
		`"ALTER TABLE app.t ADD COLUMN s integer NOT NULL DEFAULT pg_catalog.nextval('app.t_s_seq'::pg_catalog.regclass)"`,
		`"ALTER TABLE app.t ADD COLUMN v text DEFAULT 'it''s'::text"`,
		`"ALTER TABLE app.t ADD COLUMN n numeric(8,2) DEFAULT 0"`,
		`"ALTER TABLE app.t ADD COLUMN flag boolean DEFAULT false"`,
		`"ALTER TABLE app.t ADD COLUMN tags text[] DEFAULT '{}'::text[]"`,
		`"ALTER TABLE app.t ADD COLUMN since date DEFAULT '2020-01-01'::date"`,
		`"status": "synced"`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("auto on app.t: no %s in %s", want, raw)
		}
	}
	if s := harness.QueryOne[string](t, b, "", `SELECT status FROM steep_repl.compare_fingerprints('node_a') WHERE table_name = 't'`); s != "MATCH" {
		t.Fatalf("app.t after auto: %s", s)
	}
	if got := harness.QueryOne[string](t, b, "", `SELECT string_agg(format('%s %s %s %s %s', id, s, v, n, flag), '; ' ORDER BY id) FROM app.t`); got != "1 1 it's 0.00 f; 2 2 it's 0.00 f; 3 3 it's 0.00 f" {
		t.Fatalf("app.t rows after auto: %s", got)
	}
	if owner := harness.QueryOne[string](t, b, "", "SELECT sequenceowner::text FROM pg_sequences WHERE schemaname = 'app' AND sequencename = 't_s_seq'"); owner != "alice" {
		t.Fatalf("the sequence auto created is owned by %s", owner)
	}
	assertAliceNotPwned(t, b)
}

func TestSecuritySchemaSyncAltersATableAsItsOwner(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		addSchemaAttacker(t, n)
		// seen: who ran the CHECKs (written by the tables' owners, on both nodes so that it matches).
		n.Exec(t, "", `CREATE TABLE public.seen (who text, what text); GRANT INSERT ON public.seen TO PUBLIC;
			CREATE ROLE bob; CREATE SCHEMA bobs AUTHORIZATION bob;
			CREATE TABLE bobs.trip (on_purpose boolean); ALTER TABLE bobs.trip OWNER TO bob`)
	}
	a.Exec(t, "", `CREATE TABLE app.c (id int PRIMARY KEY, n bigint); ALTER TABLE app.c OWNER TO alice;
		CREATE TABLE bobs.c (id int PRIMARY KEY, n bigint); ALTER TABLE bobs.c OWNER TO bob;
		CREATE TABLE app.fresh (id int PRIMARY KEY, v text DEFAULT 'x'); ALTER TABLE app.fresh OWNER TO alice`)
	// On node_b each table's CHECK calls a function that records current_user.
	b.Exec(t, "", `CREATE FUNCTION app.who(x numeric) RETURNS boolean LANGUAGE plpgsql AS $$
		  BEGIN INSERT INTO public.seen VALUES (current_user, 'app.c'); RETURN true; END $$;
		ALTER FUNCTION app.who(numeric) OWNER TO alice;
		CREATE TABLE app.c (id int PRIMARY KEY, n int CHECK (app.who(n))); ALTER TABLE app.c OWNER TO alice;
		CREATE FUNCTION bobs.who(x numeric) RETURNS boolean LANGUAGE plpgsql AS $$
		  BEGIN INSERT INTO public.seen VALUES (current_user, 'bobs.c'); IF x >= 1000 AND EXISTS (SELECT 1 FROM bobs.trip) THEN RAISE 'too big'; END IF; RETURN true; END $$;
		ALTER FUNCTION bobs.who(numeric) OWNER TO bob;
		CREATE TABLE bobs.c (id int PRIMARY KEY, n int CHECK (bobs.who(n))); ALTER TABLE bobs.c OWNER TO bob;
		INSERT INTO app.c VALUES (1, 1), (2, 2); INSERT INTO bobs.c VALUES (1, 1), (2, 2);
		DELETE FROM public.seen`)

	conn := connectAs(t, b, "alice")
	var raw string
	if err := conn.QueryRow(t.Context(), "SELECT steep_repl.schema_sync('node_a', 'auto')::text").Scan(&raw); err != nil {
		t.Fatalf("auto as alice: %v", err)
	}
	for _, want := range []string{`"ALTER TABLE app.c ALTER COLUMN n TYPE bigint"`, `"ALTER TABLE bobs.c ALTER COLUMN n TYPE bigint"`,
		`"CREATE TABLE app.fresh (id integer NOT NULL, v text DEFAULT 'x'::text, PRIMARY KEY (id))"`} {
		if !strings.Contains(raw, want) {
			t.Errorf("auto applied no %s: %s", want, raw)
		}
	}
	// The type change rewrote both tables and re-checked their rows: as each table's owner.
	if got := harness.QueryOne[string](t, b, "", "SELECT string_agg(what || ' as ' || who, ', ' ORDER BY what, who) FROM public.seen"); got != "app.c as alice, app.c as alice, bobs.c as bob, bobs.c as bob" {
		t.Fatalf("the CHECKs ran as: %s", got)
	}
	if owner := harness.QueryOne[string](t, b, "", "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'app' AND tablename = 'fresh'"); owner != "alice" {
		t.Fatalf("app.fresh, created for alice, is owned by %s", owner)
	}
	assertAliceNotPwned(t, b)

	// A CHECK that fails mid-sync rolls everything back and leaves alice's session as it was.
	a.Exec(t, "", "ALTER TABLE bobs.c ALTER COLUMN n TYPE numeric; ALTER TABLE app.c ALTER COLUMN n TYPE numeric")
	b.Exec(t, "", "INSERT INTO bobs.c VALUES (3, 1000); INSERT INTO bobs.trip VALUES (true); DELETE FROM public.seen")
	_, err := conn.Exec(t.Context(), "SELECT steep_repl.schema_sync('node_a', 'auto')")
	if pgErr := asPg(t, err); !strings.Contains(pgErr.Message, `schema_sync auto rolled back on node "node_b": too big`) {
		t.Fatalf("auto with a failing CHECK: %v", err)
	}
	var user, super string
	if err := conn.QueryRow(t.Context(), "SELECT current_user::text, current_setting('is_superuser')").Scan(&user, &super); err != nil {
		t.Fatal(err)
	}
	if user != "alice" || super != "off" {
		t.Fatalf("after a failed sync alice's session runs as %s (superuser %s)", user, super)
	}
	if got := harness.QueryOne[string](t, b, "", "SELECT string_agg(DISTINCT format_type(atttypid, atttypmod), ',') FROM pg_attribute WHERE attrelid IN ('app.c'::regclass, 'bobs.c'::regclass) AND attname = 'n'"); got != "bigint" {
		t.Fatalf("a failed sync left column types %s", got)
	}
	assertAliceNotPwned(t, b)
}

// asPg is err as a PostgreSQL error; the test fails when it is none.
func asPg(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	if err == nil || !asPgError(err, &pgErr) {
		t.Fatalf("want a PostgreSQL error, got %v", err)
	}
	return pgErr
}
