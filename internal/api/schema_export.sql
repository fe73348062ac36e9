-- Queries of steep-repl schema export, run on the node whose schema is exported (the --db
-- node, or --peer through its conninfo).

-- name: SchemaExportTables
-- The user tables (not steep_repl's, not an extension's) within the tables ($1: schema.table,
-- or table for public) and schemas ($2) filters; NULL: no filter.
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
  AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema,steep_repl}'::text[])
  AND n.nspname::text NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')
  AND ($1::text[] IS NULL OR pg_catalog.concat(n.nspname, '.', c.relname) OPERATOR(pg_catalog.=) ANY ($1::text[])
       OR (n.nspname OPERATOR(pg_catalog.=) 'public' AND c.relname::text OPERATOR(pg_catalog.=) ANY ($1::text[])))
  AND ($2::text[] IS NULL OR n.nspname::text OPERATOR(pg_catalog.=) ANY ($2::text[]))
ORDER BY 1, 2;

-- name: SchemaExportSchemas
-- The user schemas (not steep_repl, not an extension's) within the schemas filter $1 (NULL: all).
SELECT n.nspname::text FROM pg_catalog.pg_namespace n
WHERE n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema,steep_repl}'::text[])
  AND n.nspname::text NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                    AND d.objid OPERATOR(pg_catalog.=) n.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')
  AND ($1::text[] IS NULL OR n.nspname::text OPERATOR(pg_catalog.=) ANY ($1::text[]))
ORDER BY 1;
