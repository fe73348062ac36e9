package tests

import (
	"fmt"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// fingerprintOf is steep_repl.compute_fingerprint of public.<table> on n.
func fingerprintOf(t *testing.T, n *harness.Node, schema, table string) string {
	t.Helper()
	return dbaQuery[string](t, n, "SELECT steep_repl.compute_fingerprint($1, $2)", schema, table)
}

// Each change a subscription cares about changes the fingerprint, and undoing it restores the
// fingerprint exactly: no false positive from dropped-column leftovers, new attnums or catalog
// churn. Changes that do not matter to replication leave it alone.
func TestFingerprintDetectsEachColumnChangeWithoutFalsePositives(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	const base = `(id integer NOT NULL, code varchar(10), qty integer DEFAULT 1, note text, PRIMARY KEY (id))`
	changes := []struct {
		name     string
		do, undo string
	}{
		{"column added", "ALTER TABLE %[1]s ADD COLUMN extra int", "ALTER TABLE %[1]s DROP COLUMN extra"},
		{"column dropped", "ALTER TABLE %[1]s DROP COLUMN note", "ALTER TABLE %[1]s ADD COLUMN note text"},
		{"column renamed", "ALTER TABLE %[1]s RENAME COLUMN note TO remark", "ALTER TABLE %[1]s RENAME COLUMN remark TO note"},
		{"type changed", "ALTER TABLE %[1]s ALTER COLUMN qty TYPE bigint", "ALTER TABLE %[1]s ALTER COLUMN qty TYPE integer"},
		{"typmod changed", "ALTER TABLE %[1]s ALTER COLUMN code TYPE varchar(20)", "ALTER TABLE %[1]s ALTER COLUMN code TYPE varchar(10)"},
		{"default changed", "ALTER TABLE %[1]s ALTER COLUMN qty SET DEFAULT 2", "ALTER TABLE %[1]s ALTER COLUMN qty SET DEFAULT 1"},
		{"default dropped", "ALTER TABLE %[1]s ALTER COLUMN qty DROP DEFAULT", "ALTER TABLE %[1]s ALTER COLUMN qty SET DEFAULT 1"},
		{"nullability changed", "ALTER TABLE %[1]s ALTER COLUMN code SET NOT NULL", "ALTER TABLE %[1]s ALTER COLUMN code DROP NOT NULL"},
		// A primary key makes its columns NOT NULL, which dropping it does not undo.
		{"primary key changed", "ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey, ADD PRIMARY KEY (id, qty)",
			"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey, ADD PRIMARY KEY (id); ALTER TABLE %[1]s ALTER COLUMN qty DROP NOT NULL"},
		{"primary key dropped", "ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey", "ALTER TABLE %[1]s ADD PRIMARY KEY (id)"},
		{"primary key order changed", "ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey, ADD PRIMARY KEY (qty, id)",
			"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey, ADD PRIMARY KEY (id); ALTER TABLE %[1]s ALTER COLUMN qty DROP NOT NULL"},
	}
	seen := map[string]string{}
	for i, c := range changes {
		table := fmt.Sprintf("fp_%d", i)
		n.Exec(t, "", "CREATE TABLE "+table+" "+base)
		before := fingerprintOf(t, n, "public", table)
		n.Exec(t, "", fmt.Sprintf(c.do, table))
		after := fingerprintOf(t, n, "public", table)
		if after == before {
			t.Errorf("%s: fingerprint unchanged (%s)", c.name, before)
		}
		if other, dup := seen[after]; dup {
			t.Errorf("%s: same fingerprint as %s", c.name, other)
		}
		seen[after] = c.name
		n.Exec(t, "", fmt.Sprintf(c.undo, table))
		if undone := fingerprintOf(t, n, "public", table); undone != before {
			t.Errorf("%s undone: fingerprint %s, want the original %s (false positive)", c.name, undone, before)
		}
	}

	// Neutral to replication: data, indexes, checks, comments, triggers, statistics, storage.
	n.Exec(t, "", "CREATE TABLE neutral "+base)
	before := fingerprintOf(t, n, "public", "neutral")
	n.Exec(t, "", `INSERT INTO neutral SELECT g, 'c' || g, g, 'n' FROM generate_series(1, 1000) g;
		CREATE INDEX neutral_code ON neutral (code); ALTER TABLE neutral ADD CONSTRAINT qty_positive CHECK (qty > 0);
		COMMENT ON TABLE neutral IS 'x'; COMMENT ON COLUMN neutral.note IS 'y';
		ALTER TABLE neutral ALTER COLUMN note SET STATISTICS 500; ALTER TABLE neutral ALTER COLUMN note SET STORAGE EXTERNAL;
		CREATE FUNCTION neutral_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
		CREATE TRIGGER neutral_trg BEFORE INSERT ON neutral FOR EACH ROW EXECUTE FUNCTION neutral_trg()`)
	n.Exec(t, "", "VACUUM ANALYZE neutral")
	n.Exec(t, "", "CLUSTER neutral USING neutral_pkey")
	if after := fingerprintOf(t, n, "public", "neutral"); after != before {
		t.Errorf("changes that do not matter to replication changed the fingerprint: %s -> %s", before, after)
	}
	// The same definition in another table, spelled differently, has the same fingerprint.
	n.Exec(t, "", `CREATE TABLE spelled (note TEXT, qty INT4 DEFAULT (1), code CHARACTER VARYING(10), id INT NOT NULL PRIMARY KEY)`)
	if got := fingerprintOf(t, n, "public", "spelled"); got != before {
		t.Errorf("same columns in another order and spelling: %s, want %s", got, before)
	}

	// capture_fingerprints records what compute_fingerprint computes, with the columns.
	if got := dbaQuery[int64](t, n, "SELECT steep_repl.capture_fingerprints()"); got != int64(len(changes)+2) {
		t.Fatalf("capture_fingerprints() = %d, want %d", got, len(changes)+2)
	}
	row := dbaQuery[string](t, n, `SELECT concat_ws(' | ', fingerprint = steep_repl.compute_fingerprint('public', 'neutral'),
		(SELECT string_agg(c->>'name', ',') FROM jsonb_array_elements(columns) c), primary_key::text)
		FROM steep_repl.schema_fingerprints WHERE schema_name = 'public' AND table_name = 'neutral'`)
	if row != `t | code,id,note,qty | ["id"]` {
		t.Fatalf("captured row: %s", row)
	}
	since := harness.QueryOne[string](t, n, "", "SELECT captured_at::text FROM steep_repl.schema_fingerprints WHERE table_name = 'neutral'")
	n.Exec(t, "", "DROP TABLE spelled; ALTER TABLE fp_0 ADD COLUMN later int")
	dbaQuery[int64](t, n, "SELECT steep_repl.capture_fingerprints()")
	got := harness.QueryOne[string](t, n, "", `SELECT concat_ws(' ', count(*),
		bool_and(captured_at::text = $1) FILTER (WHERE table_name = 'neutral'),
		bool_and(fingerprint = steep_repl.compute_fingerprint(schema_name, table_name)))
		FROM steep_repl.schema_fingerprints`, since)
	if got != fmt.Sprintf("%d t t", len(changes)+1) {
		t.Fatalf("second capture: %s (want dropped table forgotten, unchanged row kept, changed row updated)", got)
	}
}

// compare_fingerprints gives each status, a table whose columns are in another physical order
// is a MATCH, and schema_diff names every difference, seen from the local node.
func TestCompareFingerprintsStatusesAndSchemaDiff(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	a.Exec(t, "", `CREATE SCHEMA "Sales Dept";
		CREATE TABLE same (id int PRIMARY KEY, name text NOT NULL, at timestamptz DEFAULT now());
		CREATE TABLE reordered (id int PRIMARY KEY, a text, b numeric(12,2) DEFAULT 0, c boolean NOT NULL);
		CREATE TABLE "Sales Dept"."Order ""Lines""" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			"Qty" integer NOT NULL DEFAULT 1, "unit price" numeric(10,2), total numeric GENERATED ALWAYS AS ("Qty" * "unit price") STORED);
		CREATE TABLE only_on_a (id int PRIMARY KEY);
		CREATE TABLE drifted (id int PRIMARY KEY, code varchar(10), qty int DEFAULT 1, gone text, n int NOT NULL)`)
	b.Exec(t, "", `CREATE SCHEMA "Sales Dept";
		CREATE TABLE same (id int PRIMARY KEY, name text NOT NULL, at timestamptz DEFAULT now());
		CREATE TABLE reordered (c boolean NOT NULL, b numeric(12,2) DEFAULT 0, a text, id int PRIMARY KEY);
		CREATE TABLE "Sales Dept"."Order ""Lines""" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			"Qty" integer NOT NULL DEFAULT 1, "unit price" numeric(10,2), total numeric GENERATED ALWAYS AS ("Qty" * "unit price") STORED);
		CREATE TABLE only_on_b (id int PRIMARY KEY);
		CREATE TABLE drifted (id int, code varchar(20), qty int DEFAULT 2, added text, n int, PRIMARY KEY (id, code))`)

	got := map[string]string{}
	rows, err := b.Pool(t, "").Query(t.Context(), "SELECT schema_name, table_name, status FROM steep_repl.compare_fingerprints('node_a')")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s, tb, st string
		if err := rows.Scan(&s, &tb, &st); err != nil {
			t.Fatal(err)
		}
		got[s+"."+tb] = st
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"public.same": "MATCH", "public.reordered": "MATCH", `Sales Dept.Order "Lines"`: "MATCH",
		"public.only_on_a": "REMOTE_ONLY", "public.only_on_b": "LOCAL_ONLY", "public.drifted": "MISMATCH"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("compare_fingerprints from node_b:\n got %v\nwant %v", got, want)
	}
	// The same comparison from the other side swaps LOCAL_ONLY and REMOTE_ONLY.
	if s := harness.QueryOne[string](t, a, "", `SELECT string_agg(table_name || ':' || status, ' ' ORDER BY table_name)
		FROM steep_repl.compare_fingerprints('node_b') WHERE status LIKE '%ONLY'`); s != "only_on_a:LOCAL_ONLY only_on_b:REMOTE_ONLY" {
		t.Fatalf("from node_a: %s", s)
	}

	diff := harness.QueryOne[string](t, b, "", `SELECT string_agg(concat_ws(' ', table_name, coalesce(column_name, '-'), difference,
		coalesce(local_definition, '-'), '/', coalesce(peer_definition, '-')), E'\n')
		FROM steep_repl.schema_diff('node_a', 'public', 'drifted')`)
	wantDiff := strings.Join([]string{
		"drifted added extra added text / -",
		"drifted gone missing - / gone text",
		"drifted code type code character varying(20) NOT NULL / code character varying(10)",
		"drifted qty default qty integer DEFAULT 2 / qty integer DEFAULT 1",
		"drifted code nullability code character varying(20) NOT NULL / code character varying(10)",
		"drifted n nullability n integer / n integer NOT NULL",
		"drifted - primary_key id, code / id",
	}, "\n")
	if diff != wantDiff {
		t.Fatalf("schema_diff:\n%s\nwant:\n%s", diff, wantDiff)
	}
	descr := dbaQuery[string](t, b, `SELECT string_agg(description, E'\n') FROM steep_repl.schema_diff('node_a')`)
	for _, want := range []string{
		"table public.only_on_a is on node_a but not on node_b",
		"table public.only_on_b is on node_b but not on node_a",
		"table public.drifted: column gone text is on node_a but not on node_b",
		"table public.drifted: column code has type character varying(10) on node_a but character varying(20) on node_b",
		"table public.drifted: column qty has DEFAULT 1 on node_a but DEFAULT 2 on node_b",
		"table public.drifted: column n is NOT NULL on node_a but nullable on node_b",
		"table public.drifted has primary key (id) on node_a but primary key (id, code) on node_b",
	} {
		if !strings.Contains(descr, want) {
			t.Errorf("schema_diff descriptions lack %q:\n%s", want, descr)
		}
	}
	if strings.Contains(descr, "reordered") || strings.Contains(descr, "Sales Dept") {
		t.Errorf("matching tables reported as different:\n%s", descr)
	}
	if n := dbaQuery[int64](t, b, `SELECT count(*) FROM steep_repl.schema_diff('node_a', 'Sales Dept', 'Order "Lines"')`); n != 0 {
		t.Errorf("%d differences for a matching table with quoted names", n)
	}
}
