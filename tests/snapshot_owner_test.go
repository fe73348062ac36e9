package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// shopRoles makes the schema fixture's objects belong to shop_owner, with grants to
// shop_reader, on the source; both roles exist on the target too (roles are cluster-wide).
const shopRoles = `DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shop_owner') THEN CREATE ROLE shop_owner; END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shop_reader') THEN CREATE ROLE shop_reader; END IF;
	END $$; GRANT CREATE ON DATABASE postgres TO shop_owner`

// ownersOf lists, in schema shop, every relation, type and function with its owner, and the
// schema's own owner: "name=owner, ..." (range constructors, which PostgreSQL gives the
// bootstrap superuser whoever creates the type, left out).
const ownersOf = `SELECT string_agg(o, ', ' ORDER BY o) FROM (
	SELECT format('schema %s=%s', n.nspname, pg_get_userbyid(n.nspowner)) o FROM pg_namespace n WHERE n.nspname = 'shop'
	UNION ALL SELECT format('%s=%s', c.oid::regclass, pg_get_userbyid(c.relowner)) FROM pg_class c
	  WHERE c.relnamespace = 'shop'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c')
	UNION ALL SELECT format('type %s=%s', t.oid::regtype, pg_get_userbyid(t.typowner)) FROM pg_type t
	  WHERE t.typnamespace = 'shop'::regnamespace AND t.typtype IN ('d', 'e', 'c', 'r') AND t.typrelid = 0
	UNION ALL SELECT format('function %s=%s', p.oid::regprocedure, pg_get_userbyid(p.proowner)) FROM pg_proc p
	  WHERE p.pronamespace = 'shop'::regnamespace
	    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i')) x`

// An operator's apply restores the schema as the operator (pg_restore --role), so what it
// creates is the operator's, not the sidecar's; keep_owner, a superuser's option, restores the
// source's owners and grants exactly; an operator asking for keep_owner is refused and
// nothing is queued.
func TestSnapshotApplyRestoresTheSchemaAsTheRoleThatAskedAndKeepOwnerOnlyForASuperuser(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*harness.Node{a, b} {
		ensureDBA(t, n) // on both: its grants are part of what pg_dump compares
		n.Exec(t, "", shopRoles)
		setSnapshotRoot(t, n, root)
	}
	a.Exec(t, "", "SET ROLE shop_owner;\n"+schemaFixture+`
		RESET ROLE;
		GRANT USAGE ON SCHEMA shop TO shop_reader;
		GRANT SELECT ON shop.customer, shop.big_invoice TO shop_reader;
		GRANT UPDATE (total) ON shop.invoice TO shop_reader;
		GRANT EXECUTE ON FUNCTION shop.is_positive(numeric) TO shop_reader`)
	startSidecar(t, a, "sidecar_a", "--snapshot-root", root)
	startSidecar(t, b, "sidecar_b", "--snapshot-root", root)
	dir := filepath.Join(root, "shop")
	generateSnapshot(t, a, dir, `{"schemas": ["shop"], "parallel": 2}`)
	sidecarRole := harness.QueryOne[string](t, b, "", "SELECT current_user")

	// keep_owner asked by an operator: 42501 with a hint, and no apply, job or init recorded.
	counts := `SELECT format('%s applies, %s jobs, %s', (SELECT count(*) FROM steep_repl.snapshot_applies),
		(SELECT count(*) FROM steep_repl.jobs), (SELECT init_state FROM steep_repl.nodes WHERE is_local))`
	before := harness.QueryOne[string](t, b, "", counts)
	code, pe := dbaState(t, b, "SELECT steep_repl.apply_snapshot($1, $2)", dir, `{"keep_owner": true}`)
	if code != "42501" || !strings.Contains(pe.Hint, "without keep_owner") {
		t.Fatalf("keep_owner as an operator: %s %+v", code, pe)
	}
	if after := harness.QueryOne[string](t, b, "", counts); after != before {
		t.Fatalf("the refused apply changed something: %s, then %s", before, after)
	}

	// The operator's apply: every object of the restored schema is dba's, the data equal.
	job := dbaQuery[int64](t, b, "SELECT steep_repl.apply_snapshot($1, $2)", dir, `{"parallel": 2}`)
	waitJobDone(t, b, job, "succeeded", 120*time.Second)
	if got := harness.QueryOne[string](t, b, "", "SELECT requested_by::text FROM steep_repl.snapshot_applies WHERE job_id = $1", job); got != dbaRole {
		t.Fatalf("the apply records requested_by %q, want %s", got, dbaRole)
	}
	owners := harness.QueryOne[string](t, b, "", ownersOf)
	if strings.Contains(owners, "="+sidecarRole) || strings.Contains(owners, "=shop_owner") || strings.Count(owners, "="+dbaRole) < 15 {
		t.Fatalf("owners after the operator's apply (want all %s):\n%s", dbaRole, owners)
	}
	if got := harness.QueryOne[bool](t, b, "", "SELECT has_table_privilege('shop_reader', 'shop.customer', 'SELECT')"); got {
		t.Fatal("the operator's apply restored the snapshot's grants")
	}
	harness.AssertEqual(t, a, b, "")

	// keep_owner by a superuser, into an empty database again: owners and grants as on the
	// source, pg_dump --schema-only (with its OWNER TO and GRANT lines) identical.
	b.Exec(t, "", "DROP SCHEMA shop CASCADE")
	job = applySnapshot(t, b, dir, `{"keep_owner": true, "parallel": 2}`, "succeeded")
	if da, db := schemaDump(t, a), schemaDump(t, b); da != db {
		t.Fatalf("pg_dump --schema-only differs after a keep_owner apply (lines of one not in the other):\n%s", lineDiff(da, db))
	}
	if got, want := harness.QueryOne[string](t, b, "", ownersOf), harness.QueryOne[string](t, a, "", ownersOf); got != want || !strings.Contains(got, "=shop_owner") {
		t.Fatalf("owners after keep_owner:\n got %s\nwant %s", got, want)
	}
	for _, want := range []string{"OWNER TO shop_owner", "GRANT SELECT ON TABLE shop.customer TO shop_reader"} {
		if !strings.Contains(schemaDump(t, b), want) {
			t.Errorf("the target's schema lacks %q", want)
		}
	}
	harness.AssertEqual(t, a, b, "")
}

// lineDiff lists the lines of a missing from b ("- ") and of b missing from a ("+ ").
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out []string
	for l, n := range count {
		for ; n > 0; n-- {
			out = append(out, "- "+l)
		}
		for ; n < 0; n++ {
			out = append(out, "+ "+l)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}
