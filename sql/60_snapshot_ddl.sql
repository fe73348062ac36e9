-- What a snapshot records about each table, built from the catalogs (there is no pg_dump on
-- every host): the columns COPY moves, its schema fingerprint (steep_repl.compute_fingerprint),
-- and the DDL that recreates the table on an empty target.

-- The columns COPY reads and writes: every stored, non-generated column in attnum order.
CREATE FUNCTION steep_repl._snapshot_columns(relid oid) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(pg_catalog.array_agg(a.attname::text ORDER BY a.attnum), '{}')
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
$$;
COMMENT ON FUNCTION steep_repl._snapshot_columns(oid) IS 'Internal: the columns a snapshot copies (stored, not generated), in attnum order.';

-- Tables a snapshot covers: the user tables within the tables/schemas options, largest first.
CREATE FUNCTION steep_repl._snapshot_scope(opts jsonb)
RETURNS TABLE (schema_name text, table_name text, relid bigint, bytes bigint, row_estimate bigint,
               columns text[], fingerprint text, is_partition boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT t.schema_name, t.table_name, t.relid, t.bytes, t.row_estimate,
         steep_repl._snapshot_columns(t.relid::oid), steep_repl.compute_fingerprint(t.schema_name, t.table_name),
         c.relispartition
  FROM steep_repl._local_tables() t JOIN pg_catalog.pg_class c ON c.oid = t.relid::oid
  WHERE steep_repl._in_scope(opts, t.schema_name, t.table_name)
  ORDER BY t.bytes DESC, t.schema_name, t.table_name;
$$;
COMMENT ON FUNCTION steep_repl._snapshot_scope(jsonb) IS 'Internal: the tables a snapshot with these options covers, largest first.';

CREATE FUNCTION steep_repl._snapshot_identity(relid oid, attname name, kind "char") RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(' GENERATED %s AS IDENTITY (SEQUENCE NAME %I.%I INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s)',
           CASE kind WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END, sn.nspname, sc.relname,
           s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END)
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
  JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
  JOIN pg_catalog.pg_sequence s ON s.seqrelid = sc.oid
  JOIN pg_catalog.pg_attribute a ON a.attrelid = relid AND a.attname = _snapshot_identity.attname
  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = relid
    AND d.refobjsubid = a.attnum AND d.deptype = 'i';
$$;
COMMENT ON FUNCTION steep_repl._snapshot_identity(oid, name, "char") IS 'Internal: the identity clause of a column, with its sequence''s name and options.';

-- DDL of one table: "create" (columns, defaults, identity, generated, NOT NULL), "post"
-- (primary key, unique, check and exclusion constraints, other indexes, replica identity: run
-- after the data is loaded) and "foreign_keys" (run once every table is loaded).
CREATE FUNCTION steep_repl._snapshot_table_ddl(relid oid) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_name text;
  v_cols text;
  v_post jsonb;
  v_fks jsonb;
  v_ident text;
BEGIN
  SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) INTO v_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = relid;
  SELECT pg_catalog.string_agg(pg_catalog.format('  %I %s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod))
      || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
              THEN (SELECT pg_catalog.format(' COLLATE %I.%I', cn.nspname, co.collname)
                    FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                    WHERE co.oid = a.attcollation) ELSE '' END
      || CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) || ') STORED'
              WHEN a.attgenerated = 'v' THEN ' GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) || ') VIRTUAL'
              WHEN a.attidentity IN ('a', 'd') THEN coalesce(steep_repl._snapshot_identity(relid, a.attname, a.attidentity), '')
              WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid)
              ELSE '' END
      || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
      E',\n' ORDER BY a.attnum) INTO v_cols
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped;

  SELECT coalesce(pg_catalog.jsonb_agg(x.stmt ORDER BY x.ord, x.name), '[]') INTO v_post FROM (
    SELECT 1 AS ord, co.conname::text AS name,
           pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_name, co.conname, pg_catalog.pg_get_constraintdef(co.oid)) AS stmt
    FROM pg_catalog.pg_constraint co WHERE co.conrelid = relid AND co.contype IN ('p', 'u', 'c', 'x')
    UNION ALL
    SELECT 2, ic.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid)
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid = relid
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint co WHERE co.conindid = i.indexrelid AND co.conrelid = relid)
  ) x;

  SELECT CASE c.relreplident
           WHEN 'f' THEN pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', v_name)
           WHEN 'n' THEN pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY NOTHING', v_name)
           WHEN 'i' THEN (SELECT pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY USING INDEX %I', v_name, ic.relname)
                          FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                          WHERE i.indrelid = relid AND i.indisreplident)
         END INTO v_ident
  FROM pg_catalog.pg_class c WHERE c.oid = relid;
  IF v_ident IS NOT NULL THEN
    v_post := v_post || pg_catalog.to_jsonb(v_ident);
  END IF;

  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_name, co.conname,
                                       pg_catalog.pg_get_constraintdef(co.oid)) ORDER BY co.conname), '[]')
    INTO v_fks
  FROM pg_catalog.pg_constraint co WHERE co.conrelid = relid AND co.contype = 'f';

  RETURN pg_catalog.jsonb_build_object(
    'create', pg_catalog.format(E'CREATE TABLE %s (\n%s\n)', v_name, coalesce(v_cols, '')),
    'post', v_post, 'foreign_keys', v_fks);
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_table_ddl(oid) IS
  'Internal: the DDL recreating a table on an empty target: create, post (constraints, indexes, replica identity) and foreign_keys.';

-- Sequences a snapshot carries: those owned by its tables (serial and identity) and the free
-- ones in the schemas of its tables. ddl is NULL for identity sequences (the table creates them).
CREATE FUNCTION steep_repl._snapshot_sequences(opts jsonb)
RETURNS TABLE (schema_name text, sequence_name text, ddl text, owned_by text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH scope AS (SELECT s.relid::oid AS relid, s.schema_name FROM steep_repl._snapshot_scope(opts) s),
  seqs AS (
    SELECT c.oid, n.nspname::text AS nsp, c.relname::text AS rel,
           (SELECT d.deptype FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS deptype,
           (SELECT pg_catalog.format('%I.%I.%I', tn.nspname, tc.relname, ta.attname)
            FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class tc ON tc.oid = d.refobjid
            JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace
            JOIN pg_catalog.pg_attribute ta ON ta.attrelid = tc.oid AND ta.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owner_col,
           (SELECT d.refobjid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owner_rel
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'steep_repl')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e'))
  SELECT s.nsp, s.rel,
         CASE WHEN s.deptype = 'i' THEN NULL ELSE
           (SELECT pg_catalog.format('CREATE SEQUENCE IF NOT EXISTS %I.%I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s',
                     s.nsp, s.rel, pg_catalog.format_type(q.seqtypid, NULL), q.seqincrement, q.seqmin, q.seqmax, q.seqstart,
                     q.seqcache, CASE WHEN q.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END)
            FROM pg_catalog.pg_sequence q WHERE q.seqrelid = s.oid) END,
         CASE WHEN s.deptype = 'a' THEN pg_catalog.format('ALTER SEQUENCE %I.%I OWNED BY %s', s.nsp, s.rel, s.owner_col) END
  FROM seqs s
  WHERE s.owner_rel IN (SELECT relid FROM scope)
     OR (s.owner_rel IS NULL AND s.nsp IN (SELECT schema_name FROM scope))
  ORDER BY 1, 2;
$$;
COMMENT ON FUNCTION steep_repl._snapshot_sequences(jsonb) IS
  'Internal: sequences of a snapshot with the DDL creating them (NULL for identity sequences) and their OWNED BY.';
