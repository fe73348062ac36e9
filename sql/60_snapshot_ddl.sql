-- What a snapshot records about each table, from the catalogs: the columns COPY moves, its
-- schema fingerprint (steep_repl.compute_fingerprint) and its sequences. The schema itself is
-- taken by the sidecar with pg_dump inside the snapshot's exported snapshot and restored with
-- pg_restore; the catalog-built DDL of a table is only schema_ddl's (58_schema_sync*.sql).

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

-- Sequences a snapshot carries: those owned by its tables or by the partitioned tables its
-- partitions belong to (serial and identity) and the free ones in the schemas of its tables. ddl (NULL for identity sequences) creates a missing one when
-- an apply loads only the data into tables that exist already.
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
     OR s.owner_rel IN (SELECT a.relid FROM scope, pg_catalog.pg_partition_ancestors(scope.relid) a)
     OR (s.owner_rel IS NULL AND s.nsp IN (SELECT schema_name FROM scope))
  ORDER BY 1, 2;
$$;
COMMENT ON FUNCTION steep_repl._snapshot_sequences(jsonb) IS
  'Internal: sequences of a snapshot with the DDL creating them (NULL for identity sequences) and their OWNED BY.';
