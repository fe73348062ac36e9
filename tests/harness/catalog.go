package harness

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// catalogSQL describes every object of schema steep_repl, one row per object (or per column,
// constraint, index, trigger), as a key and a definition. Two databases whose rows are equal hold
// the same extension: functions with their bodies, settings, security and grants; tables with
// their columns in order, defaults, constraints, indexes, triggers and grants; views, types,
// sequences, comments, and whether each object belongs to the extension. ACLs are compared as
// sets: the order of their entries follows the order of the GRANTs, which an upgrade cannot match.
const catalogSQL = `
WITH ns AS (SELECT 'steep_repl'::regnamespace AS oid),
member AS (
  SELECT d.classid, d.objid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
  WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND e.extname = 'steep_repl' AND d.deptype = 'e')
SELECT 'function ' || p.oid::regprocedure::text,
  concat_ws(E'\n',
    'returns ' || pg_catalog.pg_get_function_result(p.oid),
    'arguments ' || pg_catalog.pg_get_function_arguments(p.oid),
    'language ' || l.lanname, 'kind ' || p.prokind::text, 'volatility ' || p.provolatile::text,
    'strict ' || p.proisstrict, 'security definer ' || p.prosecdef, 'parallel ' || p.proparallel::text,
    'config ' || coalesce(p.proconfig::text, '-'), 'acl ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(p.proacl) x), '-'),
    'owner ' || p.proowner::regrole::text,
    'member ' || EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_catalog.pg_proc'::regclass AND m.objid = p.oid),
    'comment ' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '-'),
    'body ' || p.prosrc)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'relation ' || c.relname,
  concat_ws(E'\n', 'kind ' || c.relkind::text, 'acl ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(c.relacl) x), '-'),
    'owner ' || c.relowner::regrole::text, 'options ' || coalesce(c.reloptions::text, '-'),
    'persistence ' || c.relpersistence::text, 'replica identity ' || c.relreplident::text,
    'row security ' || c.relrowsecurity,
    'member ' || EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_catalog.pg_class'::regclass AND m.objid = c.oid),
    'comment ' || coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '-'),
    'view ' || coalesce(CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END, '-'),
    'index ' || coalesce(CASE WHEN c.relkind = 'i' THEN pg_catalog.pg_get_indexdef(c.oid) END, '-'))
FROM pg_catalog.pg_class c
WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind <> 't'
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname,
  concat_ws(E'\n',
    'position ' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
    'type ' || pg_catalog.format_type(a.atttypid, a.atttypmod), 'not null ' || a.attnotnull,
    'default ' || coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '-'),
    'identity ' || a.attidentity::text, 'generated ' || a.attgenerated::text,
    'collation ' || coalesce(NULLIF(a.attcollation, 0)::regcollation::text, '-'),
    'acl ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x), '-'),
    'comment ' || coalesce(pg_catalog.col_description(c.oid, a.attnum), '-'))
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
UNION ALL
SELECT 'constraint ' || coalesce(c.relname, t.typname) || '.' || co.conname,
  concat_ws(E'\n', pg_catalog.pg_get_constraintdef(co.oid),
    'comment ' || coalesce(pg_catalog.obj_description(co.oid, 'pg_constraint'), '-'))
FROM pg_catalog.pg_constraint co
LEFT JOIN pg_catalog.pg_class c ON c.oid = co.conrelid
LEFT JOIN pg_catalog.pg_type t ON t.oid = co.contypid
WHERE co.connamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'trigger ' || c.relname || '.' || tg.tgname,
  concat_ws(E'\n', pg_catalog.pg_get_triggerdef(tg.oid), 'enabled ' || tg.tgenabled::text)
FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT tg.tgisinternal
UNION ALL
SELECT 'type ' || t.typname,
  concat_ws(E'\n', 'kind ' || t.typtype::text, 'acl ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(t.typacl) x), '-'),
    'base ' || coalesce(NULLIF(t.typbasetype, 0)::regtype::text, '-'),
    'labels ' || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                           FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '-'),
    'member ' || EXISTS (SELECT 1 FROM member m WHERE m.classid = 'pg_catalog.pg_type'::regclass AND m.objid = t.oid),
    'comment ' || coalesce(pg_catalog.obj_description(t.oid, 'pg_type'), '-'))
FROM pg_catalog.pg_type t
WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype IN ('c', 'd', 'e', 'r')
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
UNION ALL
SELECT 'sequence ' || c.relname,
  concat_ws(' ', s.seqtypid::regtype::text, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)
FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'policy ' || c.relname || '.' || po.polname,
  concat_ws(E'\n', po.polcmd::text, pg_catalog.pg_get_expr(po.polqual, po.polrelid), pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid))
FROM pg_catalog.pg_policy po JOIN pg_catalog.pg_class c ON c.oid = po.polrelid
WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'schema steep_repl',
  concat_ws(E'\n', 'acl ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(n.nspacl) x), '-'), 'owner ' || n.nspowner::regrole::text,
    'comment ' || coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '-'))
FROM pg_catalog.pg_namespace n WHERE n.oid = (SELECT oid FROM ns)
UNION ALL
SELECT 'extension steep_repl', 'version ' || e.extversion || E'\nconfig ' ||
  coalesce((SELECT string_agg(x::regclass::text, ',' ORDER BY x::regclass::text) FROM unnest(e.extconfig) x), '-')
FROM pg_catalog.pg_extension e WHERE e.extname = 'steep_repl'`

// Catalog is the description of an installed steep_repl: object key -> definition.
type Catalog map[string]string

// ExtensionCatalog reads the catalog of steep_repl in database db of node n.
func ExtensionCatalog(t testing.TB, n *Node, db string) Catalog {
	t.Helper()
	rows, err := n.Pool(t, db).Query(context.Background(), catalogSQL)
	if err != nil {
		t.Fatalf("node %s: read the steep_repl catalog of %s: %v", n.Name, dbName(db), err)
	}
	defer rows.Close()
	c := Catalog{}
	for rows.Next() {
		var key, def string
		if err := rows.Scan(&key, &def); err != nil {
			t.Fatalf("node %s: read the steep_repl catalog of %s: %v", n.Name, dbName(db), err)
		}
		if _, dup := c[key]; dup {
			t.Fatalf("node %s: catalog key %q twice", n.Name, key)
		}
		c[key] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("node %s: read the steep_repl catalog of %s: %v", n.Name, dbName(db), err)
	}
	return c
}

// Diff names every object that differs between want and got, one sentence each, sorted.
func (want Catalog) Diff(got Catalog) []string {
	var out []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s is missing", k))
		case g != w:
			out = append(out, fmt.Sprintf("%s differs:\n%s", k, lineDiff(w, g)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s is extra", k))
		}
	}
	slices.Sort(out)
	return out
}

// lineDiff shows the lines of two definitions that differ (want -, got +).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "  - %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "  + %s\n", l)
		}
	}
	return b.String()
}
