package tests

import (
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// ownerTrapDDL makes a table owner, mallory (no privilege but her own objects), whose table's
// key is of her own enum type with her own cast to json. Printing a key as jsonb runs that cast,
// and her function tries to make her a superuser: it would succeed if it ran as the API's
// definer. Her second table's key is of her domain whose CHECK does the same: parsing keys given
// as jsonb into the key's type runs it. Both record who they ran as, so the test knows they ran.
const ownerTrapDDL = `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mallory') THEN CREATE ROLE mallory LOGIN; END IF;
END $$;
GRANT CREATE ON SCHEMA public TO mallory;
SET ROLE mallory;
CREATE TYPE mood AS ENUM ('a', 'b', 'c', 'd');
CREATE TABLE mallory_seen (who text, was_super boolean);
CREATE FUNCTION mood_json(m mood) RETURNS json LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.mallory_seen SELECT current_user, r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
  BEGIN
    EXECUTE 'ALTER ROLE mallory SUPERUSER';
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
  RETURN pg_catalog.to_json(m::text);
END $f$;
CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood);
CREATE TABLE mallory_t (k mood PRIMARY KEY, v int);
CREATE FUNCTION key_ok(k int) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.mallory_seen SELECT current_user, r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
  BEGIN
    EXECUTE 'ALTER ROLE mallory SUPERUSER';
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
  RETURN k > 0;
END $f$;
CREATE DOMAIN checked_id AS int CHECK (key_ok(VALUE));
CREATE TABLE mallory_d (k checked_id PRIMARY KEY, v text);
GRANT SELECT ON mallory_t, mallory_d TO dba;
RESET ROLE`

// assertCastRanOnlyAsTheOwner: mallory is no superuser on n, and her cast ran (at least once),
// only as herself.
func assertCastRanOnlyAsTheOwner(t *testing.T, n *harness.Node) {
	t.Helper()
	if harness.QueryOne[bool](t, n, "", "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'") {
		t.Fatalf("node %s: the table owner's cast made her a superuser", n.Name)
	}
	got := harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(DISTINCT who || ':' || was_super, ','), '') FROM mallory_seen`)
	if got != "mallory:false" {
		t.Fatalf("node %s: the owner's cast ran as %q, want only as mallory (mallory:false)", n.Name, got)
	}
}

// analyze_overlap and verify, called by the dba operator, and the merge's _merge_rows read the
// owner's tables on both nodes (here, and on the peer through dblink) as the table's owner: her
// cast and her domain's CHECK run as her, so she stays without privileges, and the results are
// still right.
func TestComparisonsReadAsTheTableOwnerSoTheOwnersCastCannotEscalate(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", ownerTrapDDL)
	}
	// Her rows are written by her (the CHECK runs as the writer).
	a.Exec(t, "", "SET ROLE mallory; INSERT INTO mallory_t VALUES ('a', 1), ('b', 2), ('c', 3); INSERT INTO mallory_d VALUES (1, 'x'), (2, 'y'); RESET ROLE")
	b.Exec(t, "", "SET ROLE mallory; INSERT INTO mallory_t VALUES ('a', 1), ('b', 20), ('d', 4); INSERT INTO mallory_d VALUES (1, 'x'), (2, 'z'); RESET ROLE")

	got := overlapSQL(t, b, "ARRAY['public.mallory_t']")
	want := `[{"conflicting":1,"identical":1,"local_only":1,"peer_only":1,"schema_name":"public","table_name":"mallory_t"}]`
	if normJSON(t, got) != want {
		t.Fatalf("analyze_overlap: %s, want %s", got, want)
	}
	wantLines(t, "verify", verifyRows(t, b, "'node_a', ARRAY['public.mallory_t', 'public.mallory_d']"), []string{
		`public.mallory_d {"k": 2} differs`,
		`public.mallory_t {"k": "b"} differs`, `public.mallory_t {"k": "c"} missing`, `public.mallory_t {"k": "d"} extra`})
	// The merge's reads by key parse the keys into the domain: the rows it moves (_merge_rows),
	// the commit times last-modified compares (merge_plan, here and on the peer), and the
	// freeze's checks of what changed or existed since the merge began.
	if got := harness.QueryOne[string](t, b, "", `SELECT steep_repl._merge_rows('mallory_d', '[{"k": 2}]')::text`); got != `[{"k": "2", "v": "z"}]` {
		t.Fatalf("_merge_rows: %s", got)
	}
	plan := dbaQuery[string](t, b, `SELECT string_agg(table_name || ' ' || key::text || ' ' || resolution, ', ' ORDER BY table_name, key::text)
		FROM steep_repl.merge_plan('node_a', '{"strategy": "last-modified", "tables": ["public.mallory_d"]}')`)
	if plan != `mallory_d {"k": 2} to_peer` {
		t.Fatalf("merge_plan last-modified: %s, want node_b's later row to go to the peer", plan)
	}
	if got := harness.QueryOne[string](t, b, "", `SELECT steep_repl._merge_changed_since('mallory_d', '[{"k": 2}]', '-infinity', 'none')::text`); got != `{"{\"k\": 2}"}` {
		t.Fatalf("_merge_changed_since: %s", got)
	}
	if got := harness.QueryOne[string](t, b, "", `SELECT steep_repl._merge_existed_before('mallory_d', '[{"k": 2}]',
		pg_snapshot_xmax(pg_current_snapshot()), '{}')::text`); got != `{"{\"k\": 2}"}` {
		t.Fatalf("_merge_existed_before: %s", got)
	}
	for _, n := range []*harness.Node{a, b} {
		assertCastRanOnlyAsTheOwner(t, n)
	}
}

// Read as the owner, a table whose row-level security is forced on its owner would show only the
// rows its policies let her see: such a table is refused with a clear error, and nothing is
// recorded.
func TestComparisonRefusesATableWithRowLevelSecurityForcedOnItsOwner(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n)
		n.Exec(t, "", `CREATE TABLE guarded (id int PRIMARY KEY, v text);
			ALTER TABLE guarded ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
			CREATE POLICY low_ids ON guarded USING (id < 10);
			GRANT SELECT ON guarded TO dba; ALTER ROLE dba BYPASSRLS`)
		n.Exec(t, "", "INSERT INTO guarded SELECT g, 'x' FROM generate_series(1, 20) g")
	}
	for _, q := range []string{
		"SELECT count(*) FROM steep_repl.analyze_overlap('node_a', ARRAY['public.guarded'])",
		"SELECT count(*) FROM steep_repl.verify('node_a', ARRAY['public.guarded'])",
	} {
		st, pgErr := dbaState(t, b, q)
		if st != "55000" || pgErr == nil || pgErr.Hint == "" {
			t.Fatalf("%s: SQLSTATE %q (%v), want 55000 with a hint", q, st, pgErr)
		}
	}
	if n := harness.QueryOne[int64](t, b, "", "SELECT count(*) FROM steep_repl.overlap_rows"); n != 0 {
		t.Fatalf("a refused analysis recorded %d overlap rows", n)
	}
}
