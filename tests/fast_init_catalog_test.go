package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// catalogTablespace is the target's tablespace of the catalog tests; its name needs quoting.
const catalogTablespace = "Cat TS"

// addCatalogTables creates, on both nodes, tables a fast init drops objects of (each larger
// than the tests' split_threshold, so their primary keys go too), rows on the source, and on the
// target the properties CREATE INDEX / ADD CONSTRAINT alone would not bring back: comments of
// indexes and constraints, a tablespace (created here, in a directory next to the target's data
// directory), index and constraint storage parameters, CLUSTER ON, an expression index's
// statistics target, a deferrable unique constraint, an exclusion constraint, a NOT VALID
// foreign key (which a row on the source violates), and a partitioned table whose partitions'
// index and primary key have names of their own.
func (p *pair) addCatalogTables(t testing.TB) {
	t.Helper()
	p.addCatalogTablespace(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "CREATE TABLE cat_parent (id int PRIMARY KEY, code text NOT NULL, v text, r int4range)")
		n.Exec(t, "", "CREATE TABLE cat_child (id int PRIMARY KEY, parent_id int, note text)")
		n.Exec(t, "", "CREATE TABLE cat_parts (id int, k int, v text) PARTITION BY RANGE (id)")
		n.Exec(t, "", "CREATE TABLE cat_parts_1 (id int NOT NULL, k int, v text)")
	}
	p.b.Exec(t, "", "ALTER TABLE cat_parts_1 ADD CONSTRAINT cat_parts_1_own_pk PRIMARY KEY (id)")
	p.b.Exec(t, "", "CREATE INDEX cat_parts_1_by_k ON cat_parts_1 (k)")
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", "ALTER TABLE cat_parts ATTACH PARTITION cat_parts_1 FOR VALUES FROM (0) TO (5000)")
		n.Exec(t, "", "CREATE TABLE cat_parts_2 PARTITION OF cat_parts FOR VALUES FROM (5000) TO (10000)")
		n.Exec(t, "", "ALTER TABLE cat_parts ADD PRIMARY KEY (id)")
	}
	p.a.Exec(t, "", `INSERT INTO cat_parent SELECT g, 'c' || g, md5(g::text), int4range(g * 10, g * 10 + 5) FROM generate_series(1, 5000) g`)
	p.a.Exec(t, "", `INSERT INTO cat_child SELECT g, CASE WHEN g = 7 THEN 999999 ELSE g END, md5(g::text) FROM generate_series(1, 5000) g`)
	p.a.Exec(t, "", `INSERT INTO cat_parts SELECT g, g % 100, md5(g::text) FROM generate_series(0, 9999) g`)
	for _, stmt := range []string{
		`ALTER TABLE cat_parent DROP CONSTRAINT cat_parent_pkey`,
		`ALTER TABLE cat_parent ADD CONSTRAINT cat_parent_pkey PRIMARY KEY (id) WITH (fillfactor = 80) USING INDEX TABLESPACE "Cat TS"`,
		`COMMENT ON INDEX cat_parent_pkey IS 'the parent''s key index'`,
		`ALTER TABLE cat_parent ADD CONSTRAINT cat_parent_code_key UNIQUE (code) WITH (fillfactor = 60) USING INDEX TABLESPACE "Cat TS" DEFERRABLE INITIALLY DEFERRED`,
		`COMMENT ON CONSTRAINT cat_parent_code_key ON cat_parent IS 'codes are unique, checked at commit'`,
		`COMMENT ON INDEX cat_parent_code_key IS 'its index'`,
		`ALTER TABLE cat_parent ADD CONSTRAINT cat_parent_r_excl EXCLUDE USING gist (r WITH &&) WITH (fillfactor = 75)`,
		`COMMENT ON CONSTRAINT cat_parent_r_excl ON cat_parent IS 'ranges do not overlap'`,
		`CREATE INDEX cat_parent_v ON cat_parent (v) WITH (fillfactor = 70) TABLESPACE "Cat TS" WHERE id > 10`,
		`COMMENT ON INDEX cat_parent_v IS 'v''s index'`,
		`CREATE INDEX cat_parent_expr ON cat_parent (lower(v), (id % 7))`,
		`ALTER INDEX cat_parent_expr ALTER COLUMN 2 SET STATISTICS 321`,
		`ALTER TABLE cat_parent CLUSTER ON cat_parent_expr`,
		`ALTER TABLE cat_child CLUSTER ON cat_child_pkey`,
		`COMMENT ON CONSTRAINT cat_child_pkey ON cat_child IS 'child key'`,
		`ALTER TABLE cat_child ADD CONSTRAINT "cat child parent" FOREIGN KEY (parent_id) REFERENCES cat_parent (id) ON DELETE CASCADE NOT VALID`,
		`COMMENT ON CONSTRAINT "cat child parent" ON cat_child IS 'not validated: old rows may be orphans'`,
		`CREATE INDEX cat_parts_k ON cat_parts (k)`, // attaches cat_parts_1_by_k, creates cat_parts_2's
		`COMMENT ON INDEX cat_parts_k IS 'by k, every partition'`,
		`COMMENT ON INDEX cat_parts_2_k_idx IS 'partition 2 by k'`,
		`COMMENT ON CONSTRAINT cat_parts_pkey ON cat_parts IS 'the partitioned key'`,
	} {
		p.b.Exec(t, "", stmt)
	}
}

// addCatalogTablespace creates catalogTablespace on the target in a directory of the server's
// OS user next to its data directory; the test drops and removes it when it passes (when it
// fails, it is kept with the data directory).
func (p *pair) addCatalogTablespace(t testing.TB) {
	t.Helper()
	dir := filepath.Join(p.b.BaseDir, "cat_ts")
	st, err := os.Stat(p.b.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	owner := st.Sys().(*syscall.Stat_t)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(owner.Uid), int(owner.Gid)); err != nil {
		t.Fatal(err)
	}
	p.b.Exec(t, "", `CREATE TABLESPACE "Cat TS" LOCATION '`+dir+`'`)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		p.b.Exec(t, "", "DROP TABLE cat_child, cat_parent")
		p.b.Exec(t, "", `DROP TABLESPACE "Cat TS"`)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the tablespace directory: %v", err)
		}
	})
}

// catalogFingerprint is every property of the indexes and constraints of the target's public
// tables, by name (never by oid): pg_index and the index's pg_class row (tablespace, storage
// parameters, access method), its columns' pg_attribute rows (statistics targets), the
// partitioned index it is attached to, pg_constraint with its index and parent, and the
// comments of both. Expression trees are compared as their deparsed definitions (their stored
// form holds the offsets of the statement that made them).
func catalogFingerprint(t testing.TB, n *harness.Node) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", `SELECT string_agg(x, E'\n' ORDER BY x) FROM (
		SELECT format('index %s on %s: %s | am=%s kind=%s persistence=%s options=%s tablespace=%s | %s | attached to %s | comment %s',
			ic.relname, t.relname, pg_get_indexdef(i.indexrelid), am.amname, ic.relkind, ic.relpersistence, ic.reloptions,
			coalesce(ts.spcname, '-'), to_jsonb(i) - '{indexrelid,indrelid,indexprs,indpred,indcheckxmin}'::text[],
			coalesce((SELECT pi.relname FROM pg_inherits h JOIN pg_class pi ON pi.oid = h.inhparent WHERE h.inhrelid = i.indexrelid), '-'),
			coalesce(obj_description(i.indexrelid, 'pg_class'), '-')) x
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
		JOIN pg_am am ON am.oid = ic.relam LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
		WHERE t.relnamespace = 'public'::regnamespace
		UNION ALL
		SELECT format('index column %s.%s: %s', ic.relname, a.attnum, to_jsonb(a) - 'attrelid')
		FROM pg_attribute a JOIN pg_class ic ON ic.oid = a.attrelid
		WHERE ic.relkind IN ('i', 'I') AND ic.relnamespace = 'public'::regnamespace
		UNION ALL
		SELECT format('constraint %s on %s: %s | %s | index %s | parent %s | comment %s', c.conname, t.relname, pg_get_constraintdef(c.oid),
			to_jsonb(c) - '{oid,conrelid,conindid,conparentid,confrelid,connamespace,conbin,contypid}'::text[],
			coalesce(ci.relname, '-'), coalesce(pc.conname, '-'), coalesce(obj_description(c.oid, 'pg_constraint'), '-'))
		FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
		LEFT JOIN pg_class ci ON ci.oid = c.conindid LEFT JOIN pg_constraint pc ON pc.oid = c.conparentid
		WHERE c.connamespace = 'public'::regnamespace) s`)
}

// catalogRebuilt are the objects of addCatalogTables a fast init must drop and re-create.
var catalogRebuilt = []string{"cat_parent_pkey", "cat_parent_code_key", "cat_parent_r_excl", "cat_parent_v", "cat_parent_expr",
	"cat_child_pkey", "cat child parent", "cat_parts_k", "cat_parts_1_by_k", "cat_parts_2_k_idx", "cat_parts_pkey",
	"cat_parts_1_own_pk", "cat_parts_2_pkey"}

// catalogOids are the oids of catalogRebuilt's objects (a constraint's, else the index's), by name.
func catalogOids(t testing.TB, n *harness.Node) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	rows, err := n.Pool(t, "").Query(context.Background(), `SELECT x, coalesce(
		(SELECT c.oid FROM pg_constraint c WHERE c.conname = x AND c.connamespace = 'public'::regnamespace),
		(SELECT c.oid FROM pg_class c WHERE c.relname = x AND c.relnamespace = 'public'::regnamespace))::int8
		FROM unnest($1::text[]) x`, catalogRebuilt)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var oid *int64
		if err := rows.Scan(&name, &oid); err != nil {
			t.Fatal(err)
		}
		if oid != nil {
			out[name] = *oid
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertCatalogBack fails unless the target's catalog fingerprint is before's again, with each
// of catalogRebuilt's objects there under a new oid (it was dropped for the load and re-created),
// and nothing left recorded to restore.
func assertCatalogBack(t testing.TB, p *pair, before string, oids map[string]int64) {
	t.Helper()
	if after := catalogFingerprint(t, p.b); after != before {
		t.Fatalf("the target's catalog differs from before the init:\n%s", diffLines(before, after))
	}
	now := catalogOids(t, p.b)
	for _, name := range catalogRebuilt {
		if oids[name] == 0 || now[name] == 0 {
			t.Fatalf("%s: oid %d before, %d after: the fixture is not what the test expects", name, oids[name], now[name])
		}
		if now[name] == oids[name] {
			t.Errorf("%s has its oid of before the init: the fast init did not drop and re-create it", name)
		}
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects"); n != 0 {
		t.Fatalf("%d dropped objects still recorded", n)
	}
}

// diffLines lists the lines only before has (-) and only after has (+).
func diffLines(before, after string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	b, a := in(before), in(after)
	var out []string
	for _, l := range strings.Split(before, "\n") {
		if !a[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(after, "\n") {
		if !b[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// A completed fast init leaves every property of the indexes and constraints it dropped and
// re-created as it was (tablespace, storage parameters, comments, CLUSTER ON, statistics target,
// deferrable, NOT VALID, a partitioned table's partitions' own index and key names attached as
// before), and the data equal to the source's.
func TestFastInitRebuildsEveryPropertyOfTheDroppedIndexesAndConstraints(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.addCatalogTables(t)
	before := catalogFingerprint(t, p.b)
	oids := catalogOids(t, p.b)
	p.startFastInit(t, `{"parallel": 2, "split_threshold": 16384}`)
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	assertCatalogBack(t, p, before, oids)
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM cat_child WHERE parent_id = 999999"); n != 1 {
		t.Fatalf("%d rows of cat_child with the orphan parent, want the source's 1", n)
	}
}

// A cancel while the indexes are rebuilt (a slow index building, the partitioned tables' and
// the foreign keys still to come) re-creates the rest as they were: the catalog of the target
// equals what it was, and nothing of the init is left.
func TestFastInitCancelDuringIndexingRebuildsEveryPropertyAsItWas(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	p.addCatalogTables(t)
	p.addSlowIndexes(t, 1, 4000, 2*time.Millisecond)
	before := catalogFingerprint(t, p.b)
	oids := catalogOids(t, p.b)
	p.startFastInit(t, `{"parallel": 2, "split_threshold": 16384}`)
	p.b.WaitFor(t, 120*time.Second, "the indexing step under way with the slow index building", func() bool {
		_, done, _, _, finished := indexingRow(t, p)
		return done > 0 && !finished && harness.QueryOne[int64](t, p.b, "",
			"SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = 'ix_1'::regclass") > 0
	})
	if pending := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.init_fast_objects WHERE stage > 0 OR kind = 'foreign_key'"); pending == 0 {
		t.Fatal("nothing of the partitioned tables or foreign keys is left for the cancel to re-create")
	}
	dbaExec(t, p.b, "SELECT steep_repl.cancel_init('node_b')")
	p.b.WaitFor(t, 90*time.Second, "node_b uninitialized and the cancel done", func() bool {
		return p.state(t) == "uninitialized" &&
			harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.jobs WHERE state IN ('queued', 'running')") == 0
	})
	assertCatalogBack(t, p, before, oids)
	p.assertNoInitLeftovers(t)
}
