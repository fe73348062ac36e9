-- Comparing this node's tables with a peer's: per-table status (compare_fingerprints), per-column
-- differences (schema_diff) and the DDL that recreates tables (schema_ddl). All read the live
-- catalogs of both sides (steep_repl._load_definitions), never a stale capture, and pass them
-- between functions as arrays of steep_repl.table_definition (no temp table).

-- Every difference between the local and the peer definitions, seen from this node: "missing"
-- is on the peer but not here, "extra" is here but not on the peer. One row per difference, with
-- a one-line description naming both nodes.
CREATE FUNCTION steep_repl._differences(local_defs steep_repl.table_definition[], peer_defs steep_repl.table_definition[],
                                        local_node text, peer text)
RETURNS TABLE (schema_name text, table_name text, column_name text, kind text,
               local_value jsonb, peer_value jsonb, description text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY
  WITH t AS (
    SELECT coalesce(l.schema_name, p.schema_name) AS s, coalesce(l.table_name, p.table_name) AS tb,
           l.table_name IS NOT NULL AS here, p.table_name IS NOT NULL AS there,
           l.columns AS lcols, p.columns AS pcols, l.primary_key AS lpk, p.primary_key AS ppk
    FROM pg_catalog.unnest(local_defs) l
    FULL JOIN pg_catalog.unnest(peer_defs) p ON p.schema_name = l.schema_name AND p.table_name = l.table_name
    WHERE l.fingerprint IS DISTINCT FROM p.fingerprint),
  c AS (
    SELECT t.s, t.tb, coalesce(x.lc->>'name', x.pc->>'name') AS col, x.lc, x.pc
    FROM t CROSS JOIN LATERAL (
      SELECT lc, pc FROM pg_catalog.jsonb_array_elements(t.lcols) lc
      FULL JOIN pg_catalog.jsonb_array_elements(t.pcols) pc ON lc->>'name' = pc->>'name') x
    WHERE t.here AND t.there),
  d AS (
    SELECT t.s, t.tb, NULL::text AS col, 1 AS ord, 'missing' AS kind, NULL::jsonb AS lv, t.pcols AS pv,
           pg_catalog.format('table %I.%I is on %s but not on %s', t.s, t.tb, peer, local_node) AS descr
    FROM t WHERE NOT t.here
    UNION ALL
    SELECT t.s, t.tb, NULL, 1, 'extra', t.lcols, NULL,
           pg_catalog.format('table %I.%I is on %s but not on %s', t.s, t.tb, local_node, peer)
    FROM t WHERE NOT t.there
    UNION ALL
    SELECT c.s, c.tb, c.col, 2, 'missing', NULL, c.pc,
           pg_catalog.format('table %I.%I: column %s is on %s but not on %s', c.s, c.tb, steep_repl._column_ddl(c.pc), peer, local_node)
    FROM c WHERE c.lc IS NULL
    UNION ALL
    SELECT c.s, c.tb, c.col, 2, 'extra', c.lc, NULL,
           pg_catalog.format('table %I.%I: column %s is on %s but not on %s', c.s, c.tb, steep_repl._column_ddl(c.lc), local_node, peer)
    FROM c WHERE c.pc IS NULL
    UNION ALL
    SELECT c.s, c.tb, c.col, 3, 'type', c.lc, c.pc,
           pg_catalog.format('table %I.%I: column %I has type %s on %s but %s on %s', c.s, c.tb, c.col,
                             c.pc->>'type', peer, c.lc->>'type', local_node)
    FROM c WHERE c.lc->>'type' <> c.pc->>'type'  -- NULL unless the column is on both sides
    UNION ALL
    SELECT c.s, c.tb, c.col, 4, 'default', c.lc, c.pc,
           pg_catalog.format('table %I.%I: column %I has %s on %s but %s on %s', c.s, c.tb, c.col,
                             coalesce('DEFAULT ' || (c.pc->>'default'), c.pc->>'generated', 'no default'), peer,
                             coalesce('DEFAULT ' || (c.lc->>'default'), c.lc->>'generated', 'no default'), local_node)
    FROM c WHERE c.lc IS NOT NULL AND c.pc IS NOT NULL
      AND (c.lc->>'default', c.lc->>'generated') IS DISTINCT FROM (c.pc->>'default', c.pc->>'generated')
    UNION ALL
    SELECT c.s, c.tb, c.col, 5, 'nullability', c.lc, c.pc,
           pg_catalog.format('table %I.%I: column %I is %s on %s but %s on %s', c.s, c.tb, c.col,
                             CASE WHEN (c.pc->>'not_null')::boolean THEN 'NOT NULL' ELSE 'nullable' END, peer,
                             CASE WHEN (c.lc->>'not_null')::boolean THEN 'NOT NULL' ELSE 'nullable' END, local_node)
    FROM c WHERE c.lc->>'not_null' <> c.pc->>'not_null'
    UNION ALL
    SELECT t.s, t.tb, NULL, 6, 'primary_key', t.lpk, t.ppk,
           pg_catalog.format('table %I.%I has %s on %s but %s on %s', t.s, t.tb,
                             coalesce('primary key (' || steep_repl._ident_list(t.ppk) || ')', 'no primary key'), peer,
                             coalesce('primary key (' || steep_repl._ident_list(t.lpk) || ')', 'no primary key'), local_node)
    FROM t WHERE t.here AND t.there AND t.lpk IS DISTINCT FROM t.ppk)
  SELECT d.s, d.tb, d.col, d.kind, d.lv, d.pv, d.descr FROM d ORDER BY d.s, d.tb, d.ord, d.col COLLATE "C", d.kind;
END
$$;
COMMENT ON FUNCTION steep_repl._differences(steep_repl.table_definition[], steep_repl.table_definition[], text, text) IS
  'Internal: the differences between local and peer definitions (kind missing | extra | type | default | nullability | primary_key), each with a one-line description.';

CREATE FUNCTION steep_repl._ident_list(names jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x.v), ', ' ORDER BY x.i)
  FROM pg_catalog.jsonb_array_elements_text(names) WITH ORDINALITY AS x(v, i);
$$;
COMMENT ON FUNCTION steep_repl._ident_list(jsonb) IS 'Internal: a jsonb array of names as a quoted, comma-separated list.';

CREATE FUNCTION steep_repl.compare_fingerprints(peer text)
RETURNS TABLE (schema_name text, table_name text, status text, local_fingerprint text, peer_fingerprint text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local steep_repl.table_definition[];
  v_peer steep_repl.table_definition[];
BEGIN
  SELECT x.local_defs, x.peer_defs INTO v_local, v_peer FROM steep_repl._load_definitions(peer, false) x;
  RETURN QUERY
  SELECT coalesce(l.schema_name, p.schema_name), coalesce(l.table_name, p.table_name),
         CASE WHEN p.table_name IS NULL THEN 'LOCAL_ONLY' WHEN l.table_name IS NULL THEN 'REMOTE_ONLY'
              WHEN l.fingerprint = p.fingerprint THEN 'MATCH' ELSE 'MISMATCH' END,
         l.fingerprint, p.fingerprint
  FROM pg_catalog.unnest(v_local) l
  FULL JOIN pg_catalog.unnest(v_peer) p ON p.schema_name = l.schema_name AND p.table_name = l.table_name
  ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION steep_repl.compare_fingerprints(text) IS
  'Compares every user table''s fingerprint here and on peer (read live through its registered conninfo): MATCH, MISMATCH, LOCAL_ONLY or REMOTE_ONLY. Errors: 22004 NULL, 42704 unknown peer, 08001 unreachable.';

CREATE FUNCTION steep_repl.schema_diff(peer text, only_schema text DEFAULT NULL, only_table text DEFAULT NULL)
RETURNS TABLE (schema_name text, table_name text, column_name text, difference text,
               local_definition text, peer_definition text, description text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := '{}';
  v_local steep_repl.table_definition[];
  v_peer steep_repl.table_definition[];
BEGIN
  IF only_table IS NOT NULL THEN
    PERFORM steep_repl._require_arg('only_schema', only_schema,
      'With a table name, give its schema too: schema_diff(''node_a'', ''public'', ''orders'').');
    v_opts := pg_catalog.jsonb_build_object('tables', pg_catalog.jsonb_build_array(only_schema || '.' || only_table));
  ELSIF only_schema IS NOT NULL THEN
    v_opts := pg_catalog.jsonb_build_object('schemas', pg_catalog.jsonb_build_array(only_schema));
  END IF;
  SELECT x.local_defs, x.peer_defs INTO v_local, v_peer FROM steep_repl._load_definitions(peer, true, v_opts) x;
  IF only_table IS NOT NULL AND pg_catalog.cardinality(v_local) = 0 AND pg_catalog.cardinality(v_peer) = 0 THEN
    RAISE EXCEPTION 'table %.% is neither here nor on node "%"', pg_catalog.quote_ident(only_schema),
        pg_catalog.quote_ident(only_table), peer
      USING ERRCODE = 'undefined_table',
            HINT = 'Pass the schema and table names as stored, without quotes; compare_fingerprints(peer) lists the tables.';
  END IF;
  RETURN QUERY
  SELECT d.schema_name, d.table_name, d.column_name, d.kind,
         CASE WHEN d.column_name IS NOT NULL THEN steep_repl._column_ddl(d.local_value)
              WHEN d.kind = 'primary_key' THEN steep_repl._ident_list(d.local_value) END,
         CASE WHEN d.column_name IS NOT NULL THEN steep_repl._column_ddl(d.peer_value)
              WHEN d.kind = 'primary_key' THEN steep_repl._ident_list(d.peer_value) END,
         d.description
  FROM steep_repl._differences(v_local, v_peer, steep_repl._local_name(), peer) d;
END
$$;
COMMENT ON FUNCTION steep_repl.schema_diff(text, text, text) IS
  'Every difference between this node''s tables and peer''s (all tables, one schema, or one table): difference is missing (on the peer, not here), extra (here, not on the peer), type, default, nullability or primary_key. Errors: 22004, 42704, 08001, 42P01.';

-- The tables/schemas options shared by every scoped call (see steep_repl._in_scope).
CREATE FUNCTION steep_repl._check_scope(opts jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF opts IS NULL OR pg_catalog.jsonb_typeof(opts) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'For example {"tables": ["public.orders"], "schemas": ["sales"]}, or ''{}'' for everything.';
  END IF;
  PERFORM steep_repl._check_scope_options(opts);
  RETURN opts;
END
$$;
COMMENT ON FUNCTION steep_repl._check_scope(jsonb) IS 'Internal: 22023 unless options is an object whose tables/schemas are arrays of strings.';

CREATE FUNCTION steep_repl._create_table_ddl(d steep_repl.table_definition) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('CREATE TABLE %I.%I (%s)', d.schema_name, d.table_name, pg_catalog.concat_ws(', ',
    (SELECT pg_catalog.string_agg(steep_repl._column_ddl(c), ', ' ORDER BY (c->>'position')::int)
     FROM pg_catalog.jsonb_array_elements(d.columns) c),
    'PRIMARY KEY (' || steep_repl._ident_list(d.primary_key) || ')'));
$$;
COMMENT ON FUNCTION steep_repl._create_table_ddl(steep_repl.table_definition) IS
  'Internal: CREATE TABLE for a definition, columns in their physical order, with its primary key.';

-- The sequence a nextval('seq'::regclass) default names, re-quoted from its parsed parts (the
-- text comes from a peer and is spliced into DDL), or NULL.
CREATE FUNCTION steep_repl._default_sequence(default_expr text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m text[] := pg_catalog.regexp_match(default_expr, '^nextval\(''(.+)''::regclass\)$');
  v text;
BEGIN
  IF m IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x.part), '.' ORDER BY x.i) INTO v
  FROM pg_catalog.unnest(pg_catalog.parse_ident(pg_catalog.replace(m[1], '''''', ''''))) WITH ORDINALITY AS x(part, i);
  RETURN v;
EXCEPTION WHEN invalid_parameter_value OR syntax_error THEN
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION steep_repl._default_sequence(text) IS 'Internal: the quoted name of the sequence a nextval() default uses, NULL when there is none.';

-- CREATE SEQUENCE for the sequence a nextval() default names, NULL when it exists here or there is none.
CREATE FUNCTION steep_repl._sequence_ddl(default_expr text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'CREATE SEQUENCE IF NOT EXISTS ' || s.name
  FROM (SELECT steep_repl._default_sequence(default_expr) AS name) s
  WHERE s.name IS NOT NULL AND pg_catalog.to_regclass(s.name) IS NULL;
$$;
COMMENT ON FUNCTION steep_repl._sequence_ddl(text) IS 'Internal: CREATE SEQUENCE for the sequence a nextval() default names, NULL when it exists or there is none.';

CREATE FUNCTION steep_repl.schema_ddl(peer text DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS TABLE (schema_name text, table_name text, statement text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_defs steep_repl.table_definition[];
BEGIN
  PERFORM steep_repl._check_scope(options);
  IF peer IS NULL THEN
    v_defs := ARRAY(SELECT d FROM steep_repl._local_definitions(true) d WHERE steep_repl._in_scope(options, d.schema_name, d.table_name));
  ELSE
    v_defs := (SELECT x.peer_defs FROM steep_repl._load_definitions(peer, true, options) x);
  END IF;
  RETURN QUERY
  SELECT x.s, x.t, x.stmt FROM (
    SELECT DISTINCT d.schema_name AS s, NULL::text AS t, 1 AS ord, pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I', d.schema_name) AS stmt
    FROM pg_catalog.unnest(v_defs) d WHERE d.schema_name <> 'public'
    UNION ALL
    SELECT d.schema_name, d.table_name, 2, 'CREATE SEQUENCE IF NOT EXISTS ' || q.name
    FROM pg_catalog.unnest(v_defs) d, pg_catalog.jsonb_array_elements(d.columns) c,
         steep_repl._default_sequence(c->>'default') q(name)
    WHERE q.name IS NOT NULL
    UNION ALL
    SELECT d.schema_name, d.table_name, 3, steep_repl._create_table_ddl(ROW(d.*)::steep_repl.table_definition) FROM pg_catalog.unnest(v_defs) d) x
  ORDER BY x.ord, x.s COLLATE "C", x.t COLLATE "C", x.stmt;
END
$$;
COMMENT ON FUNCTION steep_repl.schema_ddl(text, jsonb) IS
  'The DDL recreating the user tables of this node (peer NULL) or of peer, within options {"tables": [...], "schemas": [...]}: schemas, sequences named by defaults, CREATE TABLE with primary keys. Errors: 22023, 42704, 08001.';
