-- steep_repl 1.0 -> 1.1. Every change to sql/*.sql since 1.0 is repeated here, in the order
-- it was made; tests/upgrade_test.go proves that 1.0 + this script equals a fresh 1.1 install.
\echo Use "ALTER EXTENSION steep_repl UPDATE TO '1.1'" to load this file. \quit

-- ---- One list of init states (issue 9): steep_repl.init_states, referenced by every state column;
-- init_progress.phase is written only by transition().
CREATE TABLE steep_repl.init_states (
  state       text PRIMARY KEY CONSTRAINT state_format CHECK (state ~ '^[a-z_]+$'),
  position    integer NOT NULL UNIQUE,
  description text NOT NULL
);
COMMENT ON TABLE steep_repl.init_states IS
  'Every init state of a node, in lifecycle order; the legal moves between them are steep_repl.init_transitions.';

INSERT INTO steep_repl.init_states (state, position, description) VALUES
  ('uninitialized', 1, 'not initialized: no subscription of an init'),
  ('preparing', 2, 'checks done; publication, slot and subscription being created'),
  ('copying', 3, 'tables being copied (subscription table sync, a snapshot load or a restored backup)'),
  ('catching_up', 4, 'every table copied; applying the changes made on the source since'),
  ('synchronized', 5, 'replicating with an apply lag under the threshold'),
  ('reinitializing', 6, 'chosen tables, a schema or the whole node being copied again'),
  ('diverged', 7, 'schema drift or a difference was found; replication may be stopped'),
  ('failed', 8, 'the init stopped on an error (nodes.last_error)');
GRANT SELECT ON steep_repl.init_states TO steep_repl_admin;
ALTER TABLE steep_repl.nodes DROP CONSTRAINT init_state_valid,
  ADD CONSTRAINT init_state_known FOREIGN KEY (init_state) REFERENCES steep_repl.init_states (state);
COMMENT ON COLUMN steep_repl.nodes.init_state IS
  'one of steep_repl.init_states; changed only by steep_repl.transition()';
ALTER TABLE steep_repl.init_transitions DROP CONSTRAINT states_valid,
  ADD CONSTRAINT from_state_known FOREIGN KEY (from_state) REFERENCES steep_repl.init_states (state),
  ADD CONSTRAINT to_state_known FOREIGN KEY (to_state) REFERENCES steep_repl.init_states (state);
ALTER TABLE steep_repl.init_progress DROP CONSTRAINT phase_valid,
  ADD CONSTRAINT phase_known FOREIGN KEY (phase) REFERENCES steep_repl.init_states (state);
COMMENT ON COLUMN steep_repl.init_progress.phase IS
  'The node''s init state while this init runs; written only by steep_repl.transition().';
CREATE OR REPLACE FUNCTION steep_repl._snapshot_subscribed(apply_id bigint, subscription text, slot_name text, publication text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a steep_repl.snapshot_applies;
  v_node text := steep_repl._local_node();
  v_state text;
  v_sub oid;
BEGIN
  SELECT * INTO a FROM steep_repl.snapshot_applies sa WHERE sa.id = apply_id;
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = v_node FOR UPDATE;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = _snapshot_subscribed.subscription
    AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription USING ERRCODE = 'undefined_object';
  END IF;
  IF v_state = 'catching_up' AND EXISTS (SELECT 1 FROM steep_repl.init_progress p WHERE p.node = v_node AND p.subscription_oid = v_sub) THEN
    RETURN; -- recorded by an earlier attempt
  END IF;
  DELETE FROM steep_repl.init_progress p WHERE p.node = v_node;
  INSERT INTO steep_repl.init_progress (node, source_node, job_id, method, options, publication, publication_created,
    subscription, slot_name, subscription_oid, tables_total, tables_done, bytes_total, bytes_done, rows_total, rows_done,
    percent, eta_seconds, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, copy_done_at, message)
  SELECT v_node, a.source_node, a.job_id, 'two_phase', a.options, publication, false, subscription, slot_name, v_sub,
    pg_catalog.count(*), pg_catalog.count(*), coalesce(pg_catalog.sum(t.raw_bytes), 0), coalesce(pg_catalog.sum(t.raw_bytes), 0),
    coalesce(pg_catalog.sum(t.rows), 0), coalesce(pg_catalog.sum(t.rows), 0), 100, 0,
    steep_repl._snapshot_int_option(a.options, 'parallel', 4, 1, 16, ''),
    steep_repl._snapshot_int_option(a.options, 'lag_threshold', 1048576, 0, 9223372036854775807, ''),
    interval '60 seconds', interval '60 seconds', pg_catalog.now(),
    pg_catalog.format('snapshot %s applied; subscribed from LSN %s', a.snapshot_id, a.lsn)
  FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id;
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows, sync_state,
    rows_copied, bytes_copied, fraction, started_at, finished_at)
  SELECT v_node, t.schema_name, t.table_name, pg_catalog.to_regclass(pg_catalog.format('%I.%I', t.schema_name, t.table_name))::oid,
    t.raw_bytes, t.rows, 'ready', t.rows, t.raw_bytes, 1, t.loaded_at, t.loaded_at
  FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id;
  UPDATE steep_repl.snapshot_applies sa SET subscription = _snapshot_subscribed.subscription WHERE sa.id = a.id;
  UPDATE steep_repl.nodes n SET init_source_node = a.source_node WHERE n.name = v_node;
  IF v_state = 'preparing' THEN
    PERFORM steep_repl.transition(v_node, 'copying', pg_catalog.format('loading snapshot %s', a.snapshot_id));
    v_state := 'copying';
  END IF;
  PERFORM steep_repl.transition(v_node, 'catching_up',
    pg_catalog.format('snapshot %s loaded; subscription %s streams from LSN %s', a.snapshot_id, subscription, a.lsn));
END
$$;

-- ---- Trust boundary (issue 10): user tables are emptied as their owner, start_init keeps its
-- table lists in arrays (no temp table a caller could create first).
-- Acting as a table's owner (extension/src/as_role.c): SECURITY DEFINER functions cannot SET ROLE.
CREATE FUNCTION steep_repl._exec_as(role regrole, stmt text) RETURNS void
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_exec_as';
COMMENT ON FUNCTION steep_repl._exec_as(regrole, text) IS
  'Internal: runs stmt as role in a security-restricted operation (search_path pg_catalog), as VACUUM or REFRESH MATERIALIZED VIEW run as the table owner.';

CREATE FUNCTION steep_repl._caller() RETURNS regrole
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'steep_repl_caller';
COMMENT ON FUNCTION steep_repl._caller() IS
  'Internal: the role that called the API (current_user outside every SECURITY DEFINER function).';

CREATE FUNCTION steep_repl._exec_as_owner(rel regclass, stmt text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._exec_as((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = rel)::regrole, stmt);
$$;
COMMENT ON FUNCTION steep_repl._exec_as_owner(regclass, text) IS
  'Internal: runs stmt (a TRUNCATE, COPY or DDL of rel) as rel''s owner, so its triggers, defaults and CHECKs never run with the definer''s rights.';
REVOKE ALL ON FUNCTION steep_repl._exec_as(regrole, text), steep_repl._caller(),
  steep_repl._exec_as_owner(regclass, text) FROM PUBLIC;

-- ---- Trust boundary (issue 10): register_node is the superuser's, the queue is the sidecar's
-- (steep_repl_sidecar), dblink sessions are pinned, complete_init keeps the conninfo out of
-- its errors and refuses to run on the source.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'steep_repl_sidecar') THEN
    CREATE ROLE steep_repl_sidecar NOLOGIN;
  END IF;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.register_node(name text, conninfo text, is_local boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text;
BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = steep_repl._caller()) THEN
    RAISE EXCEPTION 'permission denied to register a node'
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Only a superuser registers nodes or changes their conninfo: it decides where superuser connections go.';
  END IF;
  PERFORM steep_repl._require('name', name);
  PERFORM steep_repl._require('conninfo', conninfo);
  PERFORM steep_repl._require('is_local', is_local);
  IF name !~ '^[a-z][a-z0-9_]{0,27}$' THEN
    RAISE EXCEPTION 'invalid node name "%"', name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A node name starts with a lowercase letter and has at most 28 lowercase letters, digits or underscores (it becomes part of slot and publication names).';
  END IF;
  PERFORM steep_repl.check_conninfo(conninfo);
  IF EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = register_node.name) THEN
    RAISE EXCEPTION 'node "%" is already registered', name
      USING ERRCODE = 'duplicate_object',
            HINT = 'Node names are unique; pick another name or unregister the existing node first.';
  END IF;
  IF is_local THEN
    SELECT n.name INTO v_local FROM steep_repl.nodes n WHERE n.is_local;
    IF FOUND THEN
      RAISE EXCEPTION 'cannot register "%" as the local node: "%" already is', name, v_local
        USING ERRCODE = 'duplicate_object',
              HINT = 'A database is exactly one node; register the other nodes with is_local => false.';
    END IF;
  END IF;
  INSERT INTO steep_repl.nodes (name, conninfo, is_local)
  VALUES (register_node.name, register_node.conninfo, register_node.is_local);
  INSERT INTO steep_repl.events (node, event, to_state, detail)
  VALUES (register_node.name, 'node.registered', 'uninitialized',
          pg_catalog.jsonb_build_object('is_local', register_node.is_local));
END
$$;
COMMENT ON FUNCTION steep_repl.register_node(text, text, boolean) IS
  'Superuser only: registers a node (name, libpq conninfo used to reach it, whether it is this database). Errors: 42501 not superuser, 22004 NULL, 22023 bad name, 42601 bad conninfo, 42710 duplicate.';
COMMENT ON FUNCTION steep_repl._conninfo(text) IS
  'Internal: a node''s conninfo for dblink, with search_path = pg_catalog, statement_timeout 60 s, keepalives and (when absent) connect_timeout=5 forced.';
REVOKE EXECUTE ON FUNCTION steep_repl.register_node(text, text, boolean),
  steep_repl.transition(text, text, text),
  steep_repl.enqueue_job(text, jsonb, text, integer, timestamptz),
  steep_repl.claim_job(text, text[], interval, timestamptz),
  steep_repl.heartbeat_job(bigint, text, interval, jsonb, timestamptz),
  steep_repl.finish_job(bigint, text, text, jsonb, text, timestamptz),
  steep_repl.release_job(bigint, text),
  steep_repl.tick(timestamptz) FROM steep_repl_admin;
GRANT USAGE ON SCHEMA steep_repl TO steep_repl_sidecar;
GRANT EXECUTE ON FUNCTION
  steep_repl.transition(text, text, text),
  steep_repl.enqueue_job(text, jsonb, text, integer, timestamptz),
  steep_repl.claim_job(text, text[], interval, timestamptz),
  steep_repl.heartbeat_job(bigint, text, interval, jsonb, timestamptz),
  steep_repl.finish_job(bigint, text, text, jsonb, text, timestamptz),
  steep_repl.release_job(bigint, text),
  steep_repl.tick(timestamptz),
  steep_repl.wake_supervisor()
TO steep_repl_sidecar;

-- init_plan returns the publication name and the tables ([{schema, table}]) instead of DDL text:
-- the sidecar builds and quotes the statements it runs.
COMMENT ON FUNCTION steep_repl.init_plan(text) IS
  'For the sidecar (superuser): what the init of node must create: source conninfo, publication, subscription, slot, and the tables to publish as [{schema, table}].';

-- check_conninfo (C) also refuses invalid port and hostaddr values: its comment says so.
COMMENT ON FUNCTION steep_repl.check_conninfo(text) IS
  'Raises 42601 when conninfo is not a valid libpq connection string (same parser as CREATE SUBSCRIPTION), and 22023 for values libpq refuses only when it connects: a port that is not an integer 1..65535 (in a multi-host list: any element), more than one port but not one per host, a hostaddr that is not a numeric IP address.';

-- ---- Trust boundary (issue 10), schema compare and sync: no temp tables (definitions,
-- differences and auto mode's plan pass as arrays of steep_repl.table_definition and jsonb), a
-- peer's default applied only when it is a constant or nextval() of a sequence the sync creates
-- (anything else is refused with its DDL), each statement run as the table's owner (the caller
-- for new tables), and the catalog queries sent to peers qualify every operator.
DROP FUNCTION steep_repl._load_definitions(text, boolean, jsonb);
DROP FUNCTION steep_repl._differences(text, text);
DROP FUNCTION steep_repl._auto_plan(text, text);
DROP FUNCTION steep_repl._schema_sync_loaded(text, text, jsonb);
CREATE OR REPLACE FUNCTION steep_repl._fingerprint_sql(with_columns boolean DEFAULT true, only_relids oid[] DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $q$
  SELECT pg_catalog.replace(pg_catalog.replace($$
  WITH t AS (
    SELECT c.oid, n.nspname, c.relname
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) 'r' AND c.relpersistence OPERATOR(pg_catalog.=) 'p' {filter}
      AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'steep_repl']::pg_catalog.name[])
      AND n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast|temp)'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                      WHERE e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                        AND e.objid OPERATOR(pg_catalog.=) c.oid AND e.deptype OPERATOR(pg_catalog.=) 'e')),
  a AS (
    SELECT a.attrelid, a.attname AS name, a.attnum AS position, a.attnotnull AS not_null,
           pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
           CASE WHEN a.attgenerated OPERATOR(pg_catalog.=) '' THEN pg_catalog.pg_get_expr(d.adbin, 0) END AS dflt,
           CASE WHEN a.attidentity OPERATOR(pg_catalog.=) 'a' THEN 'GENERATED ALWAYS AS IDENTITY'
                WHEN a.attidentity OPERATOR(pg_catalog.=) 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY'
                WHEN a.attgenerated OPERATOR(pg_catalog.=) 's'
                  THEN 'GENERATED ALWAYS AS (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(d.adbin, d.adrelid) OPERATOR(pg_catalog.||) ') STORED'
                WHEN a.attgenerated OPERATOR(pg_catalog.=) 'v'
                  THEN 'GENERATED ALWAYS AS (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(d.adbin, d.adrelid) OPERATOR(pg_catalog.||) ') VIRTUAL'
           END AS gen
    FROM t JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.oid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
    WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped),
  cols AS (
    SELECT a.attrelid,
           pg_catalog.string_agg(pg_catalog.quote_ident(a.name) OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) a.type
                                 OPERATOR(pg_catalog.||) CASE WHEN a.not_null THEN ' NOT NULL' ELSE '' END
                                 OPERATOR(pg_catalog.||) coalesce(' DEFAULT ' OPERATOR(pg_catalog.||) a.dflt, '')
                                 OPERATOR(pg_catalog.||) coalesce(' ' OPERATOR(pg_catalog.||) a.gen, ''), ', ' ORDER BY a.name) AS canon,
           {columns} AS columns
    FROM a GROUP BY a.attrelid),
  pk AS (
    SELECT i.indrelid, pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord) AS canon,
           pg_catalog.jsonb_agg(a.attname ORDER BY k.ord) AS cols
    FROM t JOIN pg_catalog.pg_index i ON i.indrelid OPERATOR(pg_catalog.=) t.oid AND i.indisprimary
    CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.attnum
    GROUP BY i.indrelid)
  SELECT t.nspname::pg_catalog.text AS schema_name, t.relname::pg_catalog.text AS table_name,
         pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
           coalesce(cols.canon, '') OPERATOR(pg_catalog.||)
           coalesce(' PRIMARY KEY (' OPERATOR(pg_catalog.||) pk.canon OPERATOR(pg_catalog.||) ')', ''), 'UTF8')), 'hex') AS fingerprint,
         coalesce(cols.columns, '[]'::pg_catalog.jsonb) AS columns, pk.cols AS primary_key
  FROM t LEFT JOIN cols ON cols.attrelid OPERATOR(pg_catalog.=) t.oid LEFT JOIN pk ON pk.indrelid OPERATOR(pg_catalog.=) t.oid
  $$,
  '{columns}', CASE WHEN with_columns THEN
    $$pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('name', a.name, 'type', a.type, 'not_null', a.not_null,
        'default', a.dflt, 'generated', a.gen, 'position', a.position) ORDER BY a.name)$$
    ELSE 'NULL::pg_catalog.jsonb' END),
  '{filter}', CASE WHEN only_relids IS NULL THEN ''
                   ELSE pg_catalog.format('AND c.oid OPERATOR(pg_catalog.=) ANY (%L::pg_catalog.oid[])', only_relids) END);
$q$;
CREATE OR REPLACE FUNCTION steep_repl._load_definitions(peer text, with_columns boolean, opts jsonb DEFAULT '{}',
                                             OUT local_defs steep_repl.table_definition[],
                                             OUT peer_defs steep_repl.table_definition[])
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_dblink text := steep_repl._dblink_schema();
  v_conninfo text;
  v_conn text := 'steep_repl_schema';
  v_detail text;
BEGIN
  PERFORM steep_repl._require_arg('peer', peer, 'Name a registered node: SELECT name FROM steep_repl.nodes.');
  v_conninfo := steep_repl._conninfo(peer);  -- 42704 when not registered
  EXECUTE pg_catalog.format('SELECT %1$I.dblink_disconnect($1) WHERE $1 OPERATOR(pg_catalog.=) ANY (%1$I.dblink_get_connections())', v_dblink)
    USING v_conn;
  BEGIN
    EXECUTE pg_catalog.format('SELECT %I.dblink_connect($1, $2)', v_dblink) USING v_conn, v_conninfo;
  EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'node "%" is not reachable: %', peer, pg_catalog.rtrim(coalesce(NULLIF(v_detail, ''), SQLERRM), E'\n')
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check that the node is up and that its registered conninfo (steep_repl.nodes) works from this server.';
  END;
  BEGIN
    -- The same search_path as here, so both sides print types and defaults alike, and string
    -- literals in defaults printed the standard way (schema sync parses them).
    EXECUTE pg_catalog.format('SELECT %I.dblink_exec($1, $2)', v_dblink)
      USING v_conn, 'SET search_path = pg_catalog, pg_temp; SET standard_conforming_strings = on';
    EXECUTE pg_catalog.format('SELECT %I.dblink_send_query($1, $2)', v_dblink) USING v_conn, steep_repl._fingerprint_sql(with_columns);
    local_defs := ARRAY(SELECT d FROM steep_repl._local_definitions(with_columns) d
                        WHERE steep_repl._in_scope(opts, d.schema_name, d.table_name) ORDER BY d.schema_name, d.table_name);
    EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(ROW(t.*)::steep_repl.table_definition ORDER BY t.schema_name, t.table_name)
      FROM %I.dblink_get_result($1) AS t(schema_name text, table_name text, fingerprint text, columns jsonb, primary_key jsonb)
      WHERE steep_repl._in_scope($2, t.schema_name, t.table_name)', v_dblink) INTO peer_defs USING v_conn, opts;
    peer_defs := coalesce(peer_defs, '{}');
    EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_dblink) USING v_conn;
  EXCEPTION WHEN OTHERS THEN
    EXECUTE pg_catalog.format('SELECT %1$I.dblink_disconnect($1) WHERE $1 OPERATOR(pg_catalog.=) ANY (%1$I.dblink_get_connections())', v_dblink)
      USING v_conn;
    RAISE;
  END;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.capture_fingerprints() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_defs steep_repl.table_definition[] := ARRAY(SELECT d FROM steep_repl._local_definitions(false) d);
  v_changed oid[];
BEGIN
  DELETE FROM steep_repl.schema_fingerprints f
  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_defs) d WHERE d.schema_name = f.schema_name AND d.table_name = f.table_name);
  SELECT pg_catalog.array_agg(pg_catalog.to_regclass(pg_catalog.format('%I.%I', d.schema_name, d.table_name))) INTO v_changed
  FROM pg_catalog.unnest(v_defs) d
  WHERE NOT EXISTS (SELECT 1 FROM steep_repl.schema_fingerprints f
                    WHERE f.schema_name = d.schema_name AND f.table_name = d.table_name AND f.fingerprint = d.fingerprint);
  IF v_changed IS NOT NULL THEN
    EXECUTE pg_catalog.format('INSERT INTO steep_repl.schema_fingerprints AS f (schema_name, table_name, fingerprint, columns, primary_key)
      SELECT d.schema_name, d.table_name, d.fingerprint, d.columns, d.primary_key FROM (%s) d
      ON CONFLICT (schema_name, table_name) DO UPDATE SET fingerprint = excluded.fingerprint, columns = excluded.columns,
        primary_key = excluded.primary_key, captured_at = excluded.captured_at', steep_repl._fingerprint_sql(true, v_changed));
  END IF;
  RETURN pg_catalog.cardinality(v_defs);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._differences(local_defs steep_repl.table_definition[], peer_defs steep_repl.table_definition[],
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
CREATE OR REPLACE FUNCTION steep_repl.compare_fingerprints(peer text)
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
CREATE OR REPLACE FUNCTION steep_repl.schema_diff(peer text, only_schema text DEFAULT NULL, only_table text DEFAULT NULL)
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
CREATE OR REPLACE FUNCTION steep_repl.schema_ddl(peer text DEFAULT NULL, options jsonb DEFAULT '{}')
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
CREATE OR REPLACE FUNCTION steep_repl._unsafe_column(col jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_type text := col->>'type';
  v_oid oid;
  v_ok boolean;
BEGIN
  BEGIN
    v_oid := pg_catalog.to_regtype(v_type);
    v_ok := pg_catalog.format_type(v_oid, pg_catalog.to_regtypemod(v_type)) = v_type;
  EXCEPTION WHEN OTHERS THEN
    v_ok := false;
  END;
  IF NOT coalesce(v_ok, false) OR EXISTS (
       SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = v_oid
         AND (t.typnamespace = pg_catalog.pg_my_temp_schema() OR pg_catalog.pg_is_other_temp_schema(t.typnamespace))) THEN
    RETURN pg_catalog.format('its type %s is not a type here', v_type);
  END IF;
  IF pg_catalog.strpos(coalesce(col->>'default', '') || coalesce(col->>'generated', ''), ';') > 0 THEN
    RETURN 'its default or generation expression contains ";"';
  END IF;
  RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._constant_type(type_name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_oid oid;
  v_text text;
BEGIN
  BEGIN
    v_oid := pg_catalog.to_regtype(type_name);
    v_text := pg_catalog.format_type(v_oid, pg_catalog.to_regtypemod(type_name));
  EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
  END;
  IF v_oid IS NULL OR v_text IS DISTINCT FROM type_name OR EXISTS (
       SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type b ON b.oid IN (t.oid, t.typelem)
       WHERE t.oid = v_oid
         AND (NOT (b.typtype IN ('b', 'e') OR b.typnamespace = 'pg_catalog'::pg_catalog.regnamespace)
              OR b.typnamespace = pg_catalog.pg_my_temp_schema() OR pg_catalog.pg_is_other_temp_schema(b.typnamespace))) THEN
    RETURN NULL;
  END IF;
  RETURN v_text;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._constant_default(default_expr text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  m text[];
  v_type text;
  v_seq text[];
  v_name text;
BEGIN
  IF default_expr IS NULL THEN
    RETURN NULL;
  END IF;
  m := pg_catalog.regexp_match(default_expr, $re$^(?:'((?:[^']|'')*)'|(NULL))(?:::(.+))?$$re$);
  IF m IS NOT NULL THEN
    v_type := steep_repl._constant_type(m[3]);
    IF m[3] IS NOT NULL AND v_type IS NULL THEN
      RETURN NULL;
    END IF;
    RETURN CASE WHEN m[2] IS NOT NULL THEN 'NULL' ELSE pg_catalog.quote_literal(pg_catalog.replace(m[1], '''''', '''')) END
           || coalesce('::' || v_type, '');
  END IF;
  m := pg_catalog.regexp_match(default_expr, $re$^([0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|true|false)(?:::(.+))?$$re$);
  IF m IS NOT NULL THEN
    v_type := steep_repl._constant_type(m[2]);
    IF m[2] IS NOT NULL AND (v_type IS NULL OR NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = pg_catalog.to_regtype(v_type)
           AND t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace)) THEN
      RETURN NULL;
    END IF;
    RETURN m[1] || coalesce('::' || v_type, '');
  END IF;
  m := pg_catalog.regexp_match(default_expr, $re$^nextval\('((?:[^']|'')+)'::regclass\)$$re$);
  IF m IS NULL THEN
    RETURN NULL;
  END IF;
  BEGIN
    v_seq := pg_catalog.parse_ident(pg_catalog.replace(m[1], '''''', ''''));
  EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
  END;
  IF pg_catalog.cardinality(v_seq) <> 2 OR v_seq[1] ~ '^pg_' THEN
    RETURN NULL;
  END IF;
  v_name := pg_catalog.quote_ident(v_seq[1]) || '.' || pg_catalog.quote_ident(v_seq[2]);
  IF pg_catalog.to_regclass(v_name) IS NOT NULL THEN
    RETURN NULL;  -- not a sequence this sync creates
  END IF;
  RETURN pg_catalog.format('pg_catalog.nextval(%L::pg_catalog.regclass)', v_name);
END
$f$;
CREATE OR REPLACE FUNCTION steep_repl._unapplied_expression(col jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF col->>'generated' IS NOT NULL
     AND col->>'generated' NOT IN ('GENERATED ALWAYS AS IDENTITY', 'GENERATED BY DEFAULT AS IDENTITY') THEN
    RETURN pg_catalog.format('its expression %s would be evaluated on this node', col->>'generated');
  END IF;
  IF col->>'default' IS NOT NULL AND steep_repl._constant_default(col->>'default') IS NULL THEN
    RETURN pg_catalog.format('its default %s is neither a constant nor nextval() of a sequence schema sync creates, and would be evaluated on this node',
                             col->>'default');
  END IF;
  RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._applied_column(col jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF col->>'default' IS NULL THEN
    RETURN col;
  END IF;
  RETURN col || pg_catalog.jsonb_build_object('default', steep_repl._constant_default(col->>'default'));
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._type_has_user_checks(type_name text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_oid oid;
BEGIN
  BEGIN
    v_oid := pg_catalog.to_regtype(type_name);
  EXCEPTION WHEN OTHERS THEN
    RETURN true;
  END;
  RETURN EXISTS (
    WITH RECURSIVE ty(oid) AS (
      SELECT v_oid
      UNION
      SELECT v.x FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
      CROSS JOIN LATERAL (VALUES (NULLIF(t.typbasetype, 0::oid)), (NULLIF(t.typelem, 0::oid))) v(x)
      WHERE v.x IS NOT NULL)
    SELECT 1 FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
    JOIN pg_catalog.pg_constraint c ON c.contypid = t.oid AND c.contype = 'c'
    WHERE t.typnamespace <> ALL (ARRAY['pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace]::oid[]));
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._plan_step(rank integer, run_as oid, stmt text, refusal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN stmt IS NULL AND refusal IS NULL THEN '[]'::pg_catalog.jsonb
              ELSE pg_catalog.jsonb_build_array(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                     'rank', rank, 'run_as', run_as::pg_catalog.int8, 'stmt', stmt, 'refusal', refusal))) END;
$$;
CREATE OR REPLACE FUNCTION steep_repl._auto_plan(local_defs steep_repl.table_definition[], peer_defs steep_repl.table_definition[],
                                      diffs jsonb, local_node text, peer text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_plan jsonb := '[]';
  v_caller oid := steep_repl._caller();
  d record;
  v_qt text;
  v_owner oid;
  v_def steep_repl.table_definition;
  v_pk text;
  v_nulls boolean;
  v_unsafe text;
  v_stmt text;
BEGIN
  FOR d IN SELECT DISTINCT l.schema_name, l.table_name FROM pg_catalog.unnest(local_defs) l
           JOIN pg_catalog.jsonb_array_elements(diffs) x ON x->>'schema_name' = l.schema_name AND x->>'table_name' = l.table_name
           ORDER BY 1, 2 LOOP
    EXECUTE pg_catalog.format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', d.schema_name, d.table_name);
  END LOOP;

  FOR d IN SELECT x->>'schema_name' AS schema_name, x->>'table_name' AS table_name, x->>'column_name' AS column_name,
                  x->>'kind' AS kind, NULLIF(x->'local_value', 'null') AS lc, NULLIF(x->'peer_value', 'null') AS pc
           FROM pg_catalog.jsonb_array_elements(diffs) WITH ORDINALITY AS e(x, ord) ORDER BY e.ord LOOP
    v_qt := pg_catalog.format('%I.%I', d.schema_name, d.table_name);
    v_owner := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(v_qt));
    v_unsafe := CASE WHEN d.kind IN ('missing', 'type', 'default') AND d.column_name IS NOT NULL
                     THEN steep_repl._unsafe_column(d.pc) END;
    IF d.column_name IS NULL AND d.kind = 'missing' THEN
      SELECT * INTO v_def FROM pg_catalog.unnest(peer_defs) p WHERE p.schema_name = d.schema_name AND p.table_name = d.table_name;
      SELECT pg_catalog.format('create table %s: column %I: %s', v_qt, c->>'name', steep_repl._unsafe_column(c)) INTO v_unsafe
      FROM pg_catalog.jsonb_array_elements(v_def.columns) c WHERE steep_repl._unsafe_column(c) IS NOT NULL LIMIT 1;
      IF v_unsafe IS NULL THEN
        SELECT pg_catalog.format('create table %s: %s; review it, then run by hand: %s', v_qt,
                                 pg_catalog.string_agg(pg_catalog.format('column %I: %s', c->>'name', steep_repl._unapplied_expression(c)), '; '),
                                 pg_catalog.concat_ws('; ',
                                   (SELECT pg_catalog.string_agg(DISTINCT 'CREATE SEQUENCE IF NOT EXISTS ' || q.name, '; ')
                                    FROM pg_catalog.jsonb_array_elements(v_def.columns) sc, steep_repl._default_sequence(sc->>'default') q(name)),
                                   steep_repl._create_table_ddl(v_def)))
          INTO v_unsafe
        FROM pg_catalog.jsonb_array_elements(v_def.columns) c WHERE steep_repl._unapplied_expression(c) IS NOT NULL
        HAVING pg_catalog.count(*) > 0;
      END IF;
      IF v_unsafe IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(3, NULL, NULL, v_unsafe);
        CONTINUE;
      END IF;
      v_stmt := pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I', d.schema_name);
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = d.schema_name)
         AND NOT v_plan @> pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('stmt', v_stmt)) THEN
        v_plan := v_plan || steep_repl._plan_step(1, v_caller, v_stmt);
      END IF;
      FOR v_stmt IN SELECT s.ddl FROM pg_catalog.jsonb_array_elements(v_def.columns) c,
                      steep_repl._sequence_ddl(c->>'default') s(ddl) WHERE s.ddl IS NOT NULL LOOP
        v_plan := v_plan || steep_repl._plan_step(2, v_caller, v_stmt);
      END LOOP;
      v_def.columns := (SELECT pg_catalog.jsonb_agg(steep_repl._applied_column(c) ORDER BY e.i)
                        FROM pg_catalog.jsonb_array_elements(v_def.columns) WITH ORDINALITY AS e(c, i));
      v_plan := v_plan || steep_repl._plan_step(3, v_caller, steep_repl._create_table_ddl(v_def));
    ELSIF v_unsafe IS NOT NULL THEN
      v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format('column %I of %s: %s', d.column_name, v_qt, v_unsafe));
    ELSIF d.column_name IS NULL AND d.kind = 'extra' THEN
      IF steep_repl._has_rows(v_qt) THEN
        v_plan := v_plan || steep_repl._plan_step(0, NULL, NULL, pg_catalog.format(
          'drop table %s: it is not on %s but holds rows on %s', v_qt, peer, local_node));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(0, v_owner, 'DROP TABLE ' || v_qt);
      END IF;
    ELSIF d.kind = 'missing' THEN
      v_unsafe := coalesce(steep_repl._unapplied_expression(d.pc),
        CASE WHEN steep_repl._type_has_user_checks(d.pc->>'type') THEN pg_catalog.format(
          'its type %s is a domain whose CHECK constraints would run over the table''s rows', d.pc->>'type') END);
      IF v_unsafe IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format(
          'add column %I to %s: %s; review it, then run by hand: %s', d.column_name, v_qt, v_unsafe,
          pg_catalog.concat_ws('; ', steep_repl._sequence_ddl(d.pc->>'default'),
                               pg_catalog.format('ALTER TABLE %s ADD COLUMN %s', v_qt, steep_repl._column_ddl(d.pc)))));
      ELSIF (d.pc->>'not_null')::boolean AND d.pc->>'default' IS NULL AND d.pc->>'generated' IS NULL AND steep_repl._has_rows(v_qt) THEN
        v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format(
          'add column %I to %s: it is NOT NULL without a default and the table holds rows', d.column_name, v_qt));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(2, v_owner, steep_repl._sequence_ddl(d.pc->>'default'))
                         || steep_repl._plan_step(7, v_owner, pg_catalog.format('ALTER TABLE %s ADD COLUMN %s', v_qt,
                              steep_repl._column_ddl(steep_repl._applied_column(d.pc))));
      END IF;
    ELSIF d.kind = 'extra' THEN
      v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format(
        'drop column %I of %s: it is not on %s, and dropping a column destroys its data', d.column_name, v_qt, peer));
    ELSIF d.kind = 'type' THEN
      IF steep_repl._type_has_user_checks(d.pc->>'type') THEN
        v_plan := v_plan || steep_repl._plan_step(6, NULL, NULL, pg_catalog.format(
          'change column %I of %s from %s to %s: a domain whose CHECK constraints would run over the table''s rows; review it, then run by hand: ALTER TABLE %s ALTER COLUMN %I TYPE %s',
          d.column_name, v_qt, d.lc->>'type', d.pc->>'type', v_qt, d.column_name, d.pc->>'type'));
      ELSIF steep_repl._type_widens(d.lc->>'type', d.pc->>'type') THEN
        v_plan := v_plan || steep_repl._plan_step(6, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s',
          v_qt, d.column_name, d.pc->>'type'));
      ELSIF NOT steep_repl._has_rows(v_qt) THEN
        v_plan := v_plan || steep_repl._plan_step(6, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s',
          v_qt, d.column_name, d.pc->>'type', d.column_name, d.pc->>'type'));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(6, NULL, NULL, pg_catalog.format(
          'change column %I of %s from %s to %s: not a widening, and the table holds rows that could be lost or fail to convert',
          d.column_name, v_qt, d.lc->>'type', d.pc->>'type'));
      END IF;
    ELSIF d.kind = 'default' THEN
      IF d.lc->>'generated' IS NOT NULL OR d.pc->>'generated' IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(8, NULL, NULL, pg_catalog.format(
          'change column %I of %s from %s to %s: identity and generated columns are changed by hand', d.column_name, v_qt,
          coalesce(d.lc->>'generated', 'DEFAULT ' || (d.lc->>'default'), 'no default'),
          coalesce(d.pc->>'generated', 'DEFAULT ' || (d.pc->>'default'), 'no default')));
      ELSIF d.pc->>'default' IS NULL THEN
        v_plan := v_plan || steep_repl._plan_step(8, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', v_qt, d.column_name));
      ELSIF steep_repl._unapplied_expression(d.pc) IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(8, NULL, NULL, pg_catalog.format(
          'set the default of column %I of %s: %s; review it, then run by hand: %s', d.column_name, v_qt,
          steep_repl._unapplied_expression(d.pc),
          pg_catalog.concat_ws('; ', steep_repl._sequence_ddl(d.pc->>'default'),
            pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', v_qt, d.column_name, d.pc->>'default'))));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(2, v_owner, steep_repl._sequence_ddl(d.pc->>'default'))
                         || steep_repl._plan_step(8, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s',
                              v_qt, d.column_name, steep_repl._constant_default(d.pc->>'default')));
      END IF;
    ELSIF d.kind = 'nullability' AND (d.pc->>'not_null')::boolean THEN
      EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I IS NULL)', v_qt, d.column_name) INTO v_nulls;
      IF v_nulls THEN
        v_plan := v_plan || steep_repl._plan_step(9, NULL, NULL, pg_catalog.format(
          'set NOT NULL on column %I of %s: it holds NULLs', d.column_name, v_qt));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(9, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', v_qt, d.column_name));
      END IF;
    ELSIF d.kind = 'nullability' THEN
      v_plan := v_plan || steep_repl._plan_step(5, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', v_qt, d.column_name));
    ELSIF d.kind = 'primary_key' THEN
      -- Dropped early (before nullability changes), added last (after the columns exist).
      SELECT c.conname INTO v_pk FROM pg_catalog.pg_constraint c
      WHERE c.conrelid = pg_catalog.to_regclass(v_qt) AND c.contype = 'p';
      IF v_pk IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(4, v_owner, pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', v_qt, v_pk));
      END IF;
      IF d.pc IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(10, v_owner, pg_catalog.format('ALTER TABLE %s ADD PRIMARY KEY (%s)', v_qt, steep_repl._ident_list(d.pc)));
      END IF;
    END IF;
  END LOOP;
  RETURN v_plan;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._schema_sync(peer text, mode text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := coalesce(options, '{}');
  v_mode text := steep_repl._sync_mode(mode);
  v_local steep_repl.table_definition[];
  v_peer steep_repl.table_definition[];
BEGIN
  PERFORM steep_repl._require_arg('peer', peer, 'Name the registered node to compare with: SELECT name FROM steep_repl.nodes.');
  PERFORM steep_repl._check_sync_options(v_opts);
  SELECT x.local_defs, x.peer_defs INTO v_local, v_peer FROM steep_repl._load_definitions(peer, true, v_opts) x;
  RETURN steep_repl._schema_sync_loaded(v_local, v_peer, peer, v_mode, v_opts);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._schema_sync_from(definitions jsonb, peer text, mode text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := coalesce(options, '{}');
  v_mode text := steep_repl._sync_mode(mode);
BEGIN
  PERFORM steep_repl._require_arg('definitions', definitions, 'Pass the source''s steep_repl._schema_definitions().');
  PERFORM steep_repl._require_arg('peer', peer, 'Name the node the definitions come from (used in messages).');
  PERFORM steep_repl._check_sync_options(v_opts);
  IF pg_catalog.jsonb_typeof(definitions) <> 'array' THEN
    RAISE EXCEPTION 'definitions must be a JSON array of table definitions' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Pass the source''s steep_repl._schema_definitions().';
  END IF;
  RETURN steep_repl._schema_sync_loaded(
    ARRAY(SELECT d FROM steep_repl._local_definitions(true) d
          WHERE steep_repl._in_scope(v_opts, d.schema_name, d.table_name) ORDER BY d.schema_name, d.table_name),
    ARRAY(SELECT d FROM pg_catalog.jsonb_populate_recordset(NULL::steep_repl.table_definition, definitions) d
          WHERE steep_repl._in_scope(v_opts, d.schema_name, d.table_name) ORDER BY d.schema_name, d.table_name),
    peer, v_mode, v_opts);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._schema_sync_loaded(local_defs steep_repl.table_definition[], peer_defs steep_repl.table_definition[],
                                               peer text, sync_mode text, opts jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text := steep_repl._local_name();
  v_node text := (SELECT n.name FROM steep_repl.nodes n WHERE n.is_local);
  v_diff jsonb;
  v_diffs text[];
  v_plan jsonb;
  v_refused text[];
  v_applied text[] := '{}';
  v_step record;
  v_stmt text;
  v_tables integer := pg_catalog.cardinality(peer_defs);
  v_state text;
  v_msg text;
  v_detail text;
BEGIN
  SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.ord), pg_catalog.array_agg(x.description ORDER BY x.ord)
    INTO v_diff, v_diffs
  FROM steep_repl._differences(local_defs, peer_defs, v_local, peer)
       WITH ORDINALITY AS x(schema_name, table_name, column_name, kind, local_value, peer_value, description, ord);

  IF v_diffs IS NULL THEN
    RETURN steep_repl._sync_report(peer, v_local, sync_mode, 'match', v_tables, '{}', '{}');
  ELSIF sync_mode = 'strict' THEN
    RAISE EXCEPTION 'schemas of "%" and "%" differ', peer, v_local
      USING ERRCODE = 'invalid_table_definition', DETAIL = pg_catalog.array_to_string(v_diffs, E'\n'),
            HINT = 'schema_sync is strict: create the same tables here first (steep_repl.schema_ddl, pg_dump --schema-only), limit the scope with the tables/schemas options, or use schema_sync auto or manual.';
  ELSIF sync_mode = 'manual' THEN
    IF NOT coalesce((opts->>'confirm')::boolean, false) THEN
      RAISE EXCEPTION 'schemas of "%" and "%" differ and schema_sync is manual', peer, v_local
        USING ERRCODE = 'invalid_table_definition', DETAIL = pg_catalog.array_to_string(v_diffs, E'\n'),
              HINT = 'Review the differences; to go on anyway, call again with the option confirm => true (it is recorded as a schema.differences_accepted event).';
    END IF;
    RAISE WARNING 'schemas of "%" and "%" differ in % place(s); going on because confirm is true', peer, v_local,
      pg_catalog.cardinality(v_diffs) USING DETAIL = pg_catalog.array_to_string(v_diffs, E'\n');
    INSERT INTO steep_repl.schema_accepted_differences (peer, description)
    SELECT peer, x FROM pg_catalog.unnest(v_diffs) x ON CONFLICT DO NOTHING;
    INSERT INTO steep_repl.events (node, event, detail) VALUES (v_node, 'schema.differences_accepted',
      pg_catalog.jsonb_build_object('peer', peer, 'differences', pg_catalog.to_jsonb(v_diffs)));
    RETURN steep_repl._sync_report(peer, v_local, sync_mode, 'accepted', v_tables, v_diffs, '{}');
  END IF;

  v_plan := steep_repl._auto_plan(local_defs, peer_defs, v_diff, v_local, peer);
  SELECT pg_catalog.array_agg(e.s->>'refusal' ORDER BY (e.s->>'rank')::integer, e.ord) INTO v_refused
  FROM pg_catalog.jsonb_array_elements(v_plan) WITH ORDINALITY AS e(s, ord) WHERE e.s ? 'refusal';
  IF v_refused IS NOT NULL THEN
    RAISE EXCEPTION 'schema_sync auto refuses % change(s) to node "%"', pg_catalog.cardinality(v_refused), v_local
      USING ERRCODE = 'invalid_table_definition', DETAIL = pg_catalog.array_to_string(v_refused, E'\n'),
            HINT = 'Nothing was changed. Make these changes by hand (steep_repl.schema_diff lists every difference), or use schema_sync manual with confirm => true.';
  END IF;
  BEGIN
    -- Each statement as the role the plan names (steep_repl._exec_as: a security-restricted
    -- operation with search_path pg_catalog; an error restores the definer's identity).
    FOR v_step IN SELECT (e.s->>'run_as')::pg_catalog.oid::pg_catalog.regrole AS run_as, e.s->>'stmt' AS stmt
                  FROM pg_catalog.jsonb_array_elements(v_plan) WITH ORDINALITY AS e(s, ord)
                  ORDER BY (e.s->>'rank')::integer, e.ord LOOP
      v_stmt := v_step.stmt;
      PERFORM steep_repl._exec_as(v_step.run_as, v_step.stmt);
      v_applied := v_applied || v_stmt;
    END LOOP;
    v_stmt := NULL;
    -- Verify: this side, read again, now matches the peer.
    SELECT pg_catalog.string_agg(x.description, E'\n') INTO v_detail
    FROM steep_repl._differences(ARRAY(SELECT d FROM steep_repl._local_definitions(true) d
                                       WHERE steep_repl._in_scope(opts, d.schema_name, d.table_name)),
                                 peer_defs, v_local, peer) x;
    IF v_detail IS NOT NULL THEN
      RAISE EXCEPTION 'the tables still differ after % statement(s)', pg_catalog.cardinality(v_applied)
        USING ERRCODE = 'invalid_table_definition', DETAIL = v_detail;
    END IF;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'schema_sync auto rolled back on node "%": %', v_local, v_msg
      USING ERRCODE = v_state,
            DETAIL = pg_catalog.concat_ws(E'\n', 'failed statement: ' || v_stmt, NULLIF(v_detail, ''),
                                          pg_catalog.format('%s statement(s) before it were rolled back', pg_catalog.cardinality(v_applied))),
            HINT = 'Nothing was changed: fix the cause (or make the changes by hand) and try again.';
  END;
  INSERT INTO steep_repl.events (node, event, detail) VALUES (v_node, 'schema.synced', pg_catalog.jsonb_build_object(
    'peer', peer, 'mode', 'auto', 'differences', pg_catalog.to_jsonb(v_diffs), 'applied', pg_catalog.to_jsonb(v_applied),
    'caller', steep_repl._caller()::text));
  RETURN steep_repl._sync_report(peer, v_local, sync_mode, 'synced', v_tables, v_diffs, v_applied);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._drift_check(node text, source text, now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := '{}';
  v_diffs text[];
  v_state text;
  v_diverged boolean := false;
  v_local steep_repl.table_definition[];
  v_peer steep_repl.table_definition[];
BEGIN
  -- Lock order everywhere: the nodes row first (tick() holds it already), then drift_checks.
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = _drift_check.node FOR UPDATE;
  SELECT pg_catalog.jsonb_build_object('tables', pg_catalog.jsonb_agg(t.schema_name || '.' || t.table_name))
    INTO v_opts FROM steep_repl.init_tables t WHERE t.node = _drift_check.node HAVING pg_catalog.count(*) > 0;
  SELECT x.local_defs, x.peer_defs INTO v_local, v_peer FROM steep_repl._load_definitions(source, true, coalesce(v_opts, '{}')) x;
  SELECT pg_catalog.array_agg(d.description) INTO v_diffs FROM steep_repl._differences(v_local, v_peer, node, source) d
  WHERE NOT EXISTS (SELECT 1 FROM steep_repl.schema_accepted_differences a WHERE a.peer = source AND a.description = d.description);
  INSERT INTO steep_repl.drift_checks AS c (node, source_node, checked_at, status, differences, error)
  VALUES (node, source, now, CASE WHEN v_diffs IS NULL THEN 'match' ELSE 'drift' END,
          coalesce(pg_catalog.to_jsonb(v_diffs), '[]'), NULL)
  ON CONFLICT ON CONSTRAINT drift_checks_pkey DO UPDATE SET source_node = excluded.source_node, checked_at = excluded.checked_at,
    status = excluded.status, differences = excluded.differences, error = NULL;
  IF v_diffs IS NOT NULL AND v_state = 'synchronized' THEN
    INSERT INTO steep_repl.events (node, event, detail) VALUES (node, 'schema.drift',
      pg_catalog.jsonb_build_object('source', source, 'differences', pg_catalog.to_jsonb(v_diffs)));
    PERFORM steep_repl.transition(node, 'diverged', pg_catalog.format('schema drift from %s: %s', source,
      pg_catalog.array_to_string(v_diffs, E'\n')));
    v_diverged := true;
  END IF;
  RETURN pg_catalog.jsonb_build_object('node', node, 'source', source, 'checked_at', now,
    'status', CASE WHEN v_diffs IS NULL THEN 'match' ELSE 'drift' END,
    'differences', coalesce(pg_catalog.to_jsonb(v_diffs), '[]'), 'diverged', v_diverged);
END
$$;
COMMENT ON FUNCTION steep_repl._fingerprint_sql(boolean, oid[]) IS
  'Internal: the query describing user tables as steep_repl.table_definition rows (columns NULL unless with_columns; only the tables only_relids when given); operators, types and functions qualified with pg_catalog, as it also runs on peers.';
COMMENT ON FUNCTION steep_repl._load_definitions(text, boolean, jsonb) IS
  'Internal: the table definitions in scope on both sides, as arrays local_defs and peer_defs (42704 unknown peer, 08001 unreachable).';
COMMENT ON FUNCTION steep_repl._differences(steep_repl.table_definition[], steep_repl.table_definition[], text, text) IS
  'Internal: the differences between local and peer definitions (kind missing | extra | type | default | nullability | primary_key), each with a one-line description.';
COMMENT ON FUNCTION steep_repl._unsafe_column(jsonb) IS
  'Internal: why auto mode will not put a peer''s column definition into DDL (unknown or temporary type, ";" in an expression), or NULL.';
COMMENT ON FUNCTION steep_repl._constant_type(text) IS
  'Internal: the type name (format_type spelling) when a constant of a peer''s default may be cast to it without running a user''s code (base types, enums, pg_catalog types, arrays of those), else NULL.';
COMMENT ON FUNCTION steep_repl._constant_default(text) IS
  'Internal: a peer''s column default re-spelled for auto mode''s DDL when it is a constant or nextval() of a schema-qualified sequence that does not exist here; NULL for anything else (nothing is evaluated).';
COMMENT ON FUNCTION steep_repl._unapplied_expression(jsonb) IS
  'Internal: why auto mode leaves a peer column''s default or generation expression to a DBA (not a constant, not nextval() of a sequence it creates, a generation expression), or NULL.';
COMMENT ON FUNCTION steep_repl._applied_column(jsonb) IS 'Internal: a peer''s column with its default spelled as auto mode''s DDL applies it.';
COMMENT ON FUNCTION steep_repl._type_has_user_checks(text) IS
  'Internal: whether a type (format_type spelling) is, or is an array of, a domain with CHECK constraints outside pg_catalog and information_schema.';
COMMENT ON FUNCTION steep_repl._plan_step(integer, oid, text, text) IS
  'Internal: a one-element jsonb array {rank, run_as (role oid), stmt} or {rank, refusal} to append to auto mode''s plan; [] when stmt and refusal are NULL.';
COMMENT ON FUNCTION steep_repl._auto_plan(steep_repl.table_definition[], steep_repl.table_definition[], jsonb, text, text) IS
  'Internal: auto mode''s plan for the differences diffs, as a jsonb array of {rank, run_as, stmt} (the statement and the role it runs as: the table''s owner, or the caller for a new table) and {rank, refusal} (a change it will not make).';
COMMENT ON FUNCTION steep_repl._schema_sync_loaded(steep_repl.table_definition[], steep_repl.table_definition[], text, text, jsonb) IS
  'Internal: strict, manual or auto on both sides'' definitions (auto runs each statement as the table''s owner, or the caller for a new table); see steep_repl._schema_sync.';
REVOKE ALL ON FUNCTION
  steep_repl._load_definitions(text, boolean, jsonb),
  steep_repl._differences(steep_repl.table_definition[], steep_repl.table_definition[], text, text),
  steep_repl._constant_type(text),
  steep_repl._constant_default(text),
  steep_repl._unapplied_expression(jsonb),
  steep_repl._applied_column(jsonb),
  steep_repl._type_has_user_checks(text),
  steep_repl._plan_step(integer, oid, text, text),
  steep_repl._auto_plan(steep_repl.table_definition[], steep_repl.table_definition[], jsonb, text, text),
  steep_repl._schema_sync_loaded(steep_repl.table_definition[], steep_repl.table_definition[], text, text, jsonb)
FROM PUBLIC;

-- ---- One definition of rate and ETA (sql/45_rate.sql): the init tick and the snapshot progress
-- write (now in SQL, steep_repl._snapshot_progress_set, over steep_repl.snapshot_samples) both use it.
CREATE FUNCTION steep_repl._rate_window() RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT interval '10 seconds'
$$;
COMMENT ON FUNCTION steep_repl._rate_window() IS
  'Internal: the rolling window rates are measured over (10 s): from the oldest sample in it to now.';

CREATE FUNCTION steep_repl._rate_eta(done bigint, total bigint, now timestamptz, since_done bigint, since timestamptz,
  OUT per_sec numeric, OUT eta_seconds numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT r.per_sec,
         CASE WHEN total - done <= 0 THEN 0
              WHEN r.per_sec > 0 THEN (total - done) / r.per_sec END
  FROM (SELECT CASE WHEN now - since >= interval '200 milliseconds'
                    THEN greatest(0, (done - since_done) / extract(epoch FROM now - since)) END AS per_sec) r
$$;
COMMENT ON FUNCTION steep_repl._rate_eta(bigint, bigint, timestamptz, bigint, timestamptz) IS
  'Internal: the rate of done since an earlier sample (since_done at since; NULL when none or under 200 ms old) and the ETA to total at that rate (0 when done >= total, NULL when unknown).';

CREATE TABLE steep_repl.snapshot_samples (
  job_id     bigint NOT NULL REFERENCES steep_repl.snapshot_progress (job_id) ON DELETE CASCADE,
  at         timestamptz NOT NULL,
  bytes_done bigint NOT NULL,
  PRIMARY KEY (job_id, at)
);
COMMENT ON TABLE steep_repl.snapshot_samples IS
  'Progress samples of the snapshot jobs of the last rate window (steep_repl._rate_window()), of the current attempt and phase: what throughput_bytes_s and eta_seconds of snapshot_progress are computed from.';
GRANT SELECT ON steep_repl.snapshot_samples TO steep_repl_admin;

CREATE FUNCTION steep_repl._snapshot_progress_set(job_id bigint, progress jsonb, restart boolean,
  now timestamptz DEFAULT NULL) RETURNS steep_repl.snapshot_progress
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.clock_timestamp());
  x steep_repl.snapshot_progress := pg_catalog.jsonb_populate_record(NULL::steep_repl.snapshot_progress, progress);
  v_then record;
  v_row steep_repl.snapshot_progress;
BEGIN
  -- A restarted attempt or a new phase measures its rate afresh.
  IF restart OR NOT EXISTS (SELECT 1 FROM steep_repl.snapshot_progress p
                            WHERE p.job_id = _snapshot_progress_set.job_id AND p.phase = x.phase) THEN
    DELETE FROM steep_repl.snapshot_samples s WHERE s.job_id = _snapshot_progress_set.job_id;
  END IF;
  DELETE FROM steep_repl.snapshot_samples s WHERE s.at < v_now - steep_repl._rate_window();
  SELECT s.at, s.bytes_done INTO v_then FROM steep_repl.snapshot_samples s
  WHERE s.job_id = _snapshot_progress_set.job_id AND s.at >= v_now - steep_repl._rate_window() AND s.at < v_now
  ORDER BY s.at LIMIT 1;
  SELECT r.per_sec, r.eta_seconds INTO x.throughput_bytes_s, x.eta_seconds
  FROM steep_repl._rate_eta(x.bytes_done, x.bytes_total, v_now, v_then.bytes_done, v_then.at) r;

  INSERT INTO steep_repl.snapshot_progress AS p (job_id, snapshot_id, phase, step, percent, bytes_done, bytes_total,
    rows_done, rows_total, tables_done, tables_total, throughput_bytes_s, eta_seconds, current_table, compression_ratio,
    checksums_verified, checksums_failed, tuples_skipped, message, started_at, updated_at)
  VALUES (_snapshot_progress_set.job_id, x.snapshot_id, x.phase, x.step, x.percent, x.bytes_done, x.bytes_total,
    x.rows_done, x.rows_total, x.tables_done, x.tables_total, x.throughput_bytes_s, x.eta_seconds, x.current_table,
    x.compression_ratio, x.checksums_verified, x.checksums_failed, x.tuples_skipped, x.message, v_now, v_now)
  ON CONFLICT ON CONSTRAINT snapshot_progress_pkey DO UPDATE SET
    snapshot_id = coalesce(EXCLUDED.snapshot_id, p.snapshot_id), phase = EXCLUDED.phase, step = EXCLUDED.step,
    -- percent never decreases within a phase, unless the caller restarts it.
    percent = CASE WHEN restart OR p.phase <> EXCLUDED.phase THEN EXCLUDED.percent ELSE greatest(p.percent, EXCLUDED.percent) END,
    bytes_done = EXCLUDED.bytes_done, bytes_total = EXCLUDED.bytes_total, rows_done = EXCLUDED.rows_done,
    rows_total = EXCLUDED.rows_total, tables_done = EXCLUDED.tables_done, tables_total = EXCLUDED.tables_total,
    throughput_bytes_s = EXCLUDED.throughput_bytes_s, eta_seconds = EXCLUDED.eta_seconds,
    current_table = EXCLUDED.current_table, compression_ratio = EXCLUDED.compression_ratio,
    checksums_verified = EXCLUDED.checksums_verified, checksums_failed = EXCLUDED.checksums_failed,
    tuples_skipped = EXCLUDED.tuples_skipped, message = EXCLUDED.message,
    started_at = CASE WHEN restart OR p.phase <> EXCLUDED.phase THEN v_now ELSE p.started_at END,
    updated_at = v_now
  RETURNING * INTO v_row;
  INSERT INTO steep_repl.snapshot_samples (job_id, at, bytes_done) VALUES (_snapshot_progress_set.job_id, v_now, x.bytes_done)
  ON CONFLICT DO NOTHING;
  RETURN v_row;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_progress_set(bigint, jsonb, boolean, timestamptz) IS
  'Sidecar step: writes a snapshot job''s progress row from the counts in progress (a snapshot_progress row as jsonb; its throughput and ETA are ignored) and computes throughput_bytes_s and eta_seconds with steep_repl._rate_eta over snapshot_samples. Percent never decreases within a phase unless restart. now defaults to clock_timestamp().';
REVOKE ALL ON FUNCTION steep_repl._rate_window(), steep_repl._rate_eta(bigint, bigint, timestamptz, bigint, timestamptz),
  steep_repl._snapshot_progress_set(bigint, jsonb, boolean, timestamptz) FROM PUBLIC;

-- _tick_init takes its rates and ETA from steep_repl._rate_eta.
-- ---- Bad input (issue 16): every numeric init option finite and in range; prepare_init never
-- publishes a table without a replica identity.
CREATE FUNCTION steep_repl._num_option(options jsonb, key text, dflt numeric, lo numeric, hi numeric, hint text)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v numeric;
BEGIN
  IF options IS NULL OR NOT options ? key OR pg_catalog.jsonb_typeof(options->key) = 'null' THEN
    RETURN dflt;
  END IF;
  IF pg_catalog.jsonb_typeof(options->key) IN ('number', 'string') THEN
    BEGIN
      v := (options->>key)::numeric;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
      v := NULL;
    END;
  END IF;
  IF v IS NULL OR v = 'NaN'::numeric OR v < lo OR v > hi THEN
    RAISE EXCEPTION '% must be between % and %, got %', key, lo, hi, options->key
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._num_option(jsonb, text, numeric, numeric, numeric, text) IS
  'Internal: a finite number option within [lo, hi] (default dflt when absent or null), or 22023 naming the range.';

CREATE FUNCTION steep_repl._int_option(options jsonb, key text, dflt bigint, lo bigint, hi bigint, hint text)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v numeric := steep_repl._num_option(options, key, dflt, lo, hi, hint);
BEGIN
  IF v <> pg_catalog.trunc(v) THEN
    RAISE EXCEPTION '% must be an integer between % and %, got %', key, lo, hi, options->key
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  RETURN v::bigint;
END
$$;
COMMENT ON FUNCTION steep_repl._int_option(jsonb, text, bigint, bigint, bigint, text) IS
  'Internal: an integer option within [lo, hi] (default dflt), or 22023 naming the range.';
REVOKE ALL ON FUNCTION steep_repl._num_option(jsonb, text, numeric, numeric, numeric, text), steep_repl._int_option(jsonb, text, bigint, bigint, bigint, text) FROM PUBLIC;
-- Snapshot files under a trust boundary: steep_repl.snapshot_root (superuser-only, defined by the
-- library) and the snapshot paths confined strictly beneath it; without it only a superuser names one.
CREATE OR REPLACE FUNCTION steep_repl._snapshot_root() RETURNS text
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'steep_repl_get_snapshot_root';
COMMENT ON FUNCTION steep_repl._snapshot_root() IS
  'Internal: the superuser-only setting steep_repl.snapshot_root ('''' when unset), read from the loaded library so that a placeholder a session set before the library was loaded never counts.';
REVOKE ALL ON FUNCTION steep_repl._snapshot_root() FROM PUBLIC;

COMMENT ON FUNCTION steep_repl._snapshot_path(text) IS
  'Internal: normalizes a snapshot directory (absolute, no . or .. components; 22023) and checks that it is strictly beneath steep_repl.snapshot_root or, with no root set, that the session user is a superuser (42501).';


-- _snapshot_path again: a parenthesized root comparison (OPERATOR() binds like ||).
CREATE OR REPLACE FUNCTION steep_repl._snapshot_path(path text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text := pg_catalog.rtrim(pg_catalog.btrim(path), '/');
  v_root text := pg_catalog.btrim(steep_repl._snapshot_root());
BEGIN
  IF v = '' OR pg_catalog.left(v, 1) <> '/' THEN
    RAISE EXCEPTION 'snapshot path "%" is not an absolute path', path
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The sidecar on the node''s host reads and writes it: give an absolute directory such as /var/lib/steep/snap1.';
  END IF;
  IF v ~ '(^|/)\.\.?(/|$)' OR pg_catalog.strpos(v, '//') > 0 THEN
    RAISE EXCEPTION 'snapshot path "%" has an empty, "." or ".." component', path USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_root = '' THEN
    IF NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) session_user), false) THEN
      RAISE EXCEPTION 'only a superuser may name a snapshot path while steep_repl.snapshot_root is not set'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'A DBA sets the directory snapshots live under, ALTER SYSTEM SET steep_repl.snapshot_root = ''/var/lib/steep/snapshots''; SELECT pg_reload_conf(); and gives the node''s sidecar the same --snapshot-root. Then name a directory beneath it.';
    END IF;
    RETURN v;
  END IF;
  v_root := pg_catalog.rtrim(v_root, '/');
  IF pg_catalog.left(v, pg_catalog.length(v_root) + 1) OPERATOR(pg_catalog.<>) (v_root || '/')
     OR pg_catalog.length(v) OPERATOR(pg_catalog.<=) (pg_catalog.length(v_root) + 1) THEN
    RAISE EXCEPTION 'snapshot path "%" is not beneath the snapshot root', path
      USING ERRCODE = 'insufficient_privilege',
            HINT = pg_catalog.format('Snapshots are written and read only in directories strictly beneath steep_repl.snapshot_root (%s): name one such as %s/snap1.',
                                     coalesce(NULLIF(v_root, ''), '/'), v_root);
  END IF;
  RETURN v;
END
$$;


-- ---- Limits (issue 16): prepared slots and held snapshots capped by superuser settings.
-- A duration setting of the library (an int in seconds, shown with its unit) as an interval.
-- Missing (the library is not loaded in this session) is an error, never "no limit".
CREATE OR REPLACE FUNCTION steep_repl._setting_interval(name text) RETURNS interval
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v float8;
BEGIN
  SELECT s.setting::float8 INTO v FROM pg_catalog.pg_settings s WHERE s.name = _setting_interval.name;
  IF v IS NULL THEN
    RAISE EXCEPTION 'setting % is not defined', name USING ERRCODE = 'undefined_object',
      HINT = 'Load the library: shared_preload_libraries = ''steep_repl'' (a restart is needed).';
  END IF;
  RETURN pg_catalog.justify_hours(pg_catalog.make_interval(secs => v));
END
$$;
COMMENT ON FUNCTION steep_repl._setting_interval(text) IS 'Internal: a seconds setting (steep_repl.max_slot_expiry, ...) as an interval.';
REVOKE ALL ON FUNCTION steep_repl._setting_interval(text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION steep_repl._prepare_checks(node text, slot_name text, expires interval,
  OUT local_node text, OUT slot text, OUT publication text, OUT publication_sql text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tables text;
  v_bad text;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('expires', expires);
  local_node := steep_repl._local_node();
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = _prepare_checks.node) THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF node = local_node THEN
    RAISE EXCEPTION 'a slot is prepared on the source for another node: "%" is this node', node
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Call it on the source with the name of the node to seed.';
  END IF;
  IF expires <= interval '0' OR expires > steep_repl._setting_interval('steep_repl.max_slot_expiry') THEN
    RAISE EXCEPTION 'expires must be positive and at most %', steep_repl._setting_interval('steep_repl.max_slot_expiry')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A prepared slot holds WAL on the source until it is used or expires; a superuser may raise steep_repl.max_slot_expiry.';
  END IF;
  IF (SELECT pg_catalog.count(*) FROM steep_repl.init_slots i
      WHERE i.target_node = _prepare_checks.node AND i.used_at IS NULL AND i.dropped_at IS NULL)
     >= pg_catalog.current_setting('steep_repl.max_prepared_slots')::int THEN
    RAISE EXCEPTION 'node "%" already has % prepared slots on this node', node, pg_catalog.current_setting('steep_repl.max_prepared_slots')
      USING ERRCODE = 'configuration_limit_exceeded',
            HINT = 'Use or release one (SELECT * FROM steep_repl.init_slots), or a superuser may raise steep_repl.max_prepared_slots.';
  END IF;
  slot := coalesce(slot_name, (steep_repl._init_names(node, local_node)).slot_name);
  IF slot !~ '^[a-z0-9_]{1,63}$' THEN
    RAISE EXCEPTION 'invalid slot name "%"', slot
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Slot names are 1 to 63 lowercase letters, digits or underscores.';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = _prepare_checks.slot)
     OR EXISTS (SELECT 1 FROM steep_repl.init_slots i WHERE i.slot_name = _prepare_checks.slot AND i.dropped_at IS NULL) THEN
    RAISE EXCEPTION 'replication slot "%" already exists', slot
      USING ERRCODE = 'duplicate_object',
            HINT = 'Pick another slot_name, or drop it (SELECT pg_drop_replication_slot(...)) if it is a leftover.';
  END IF;
  publication := (steep_repl._init_names(node, local_node)).publication;
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ' ORDER BY 1)
    INTO v_tables FROM steep_repl._local_tables() t;
  IF v_tables IS NULL THEN
    RAISE EXCEPTION 'node "%" has no user tables to publish', local_node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- A published table without a replica identity makes the application's own UPDATE and DELETE
  -- fail on this node: never publish one.
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ' ORDER BY 1)
    INTO v_bad FROM steep_repl._local_tables() t WHERE NOT t.has_identity;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables without a primary key or replica identity on node "%": %', local_node, v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Published tables need one, or UPDATE/DELETE on this node would fail: add a primary key or ALTER TABLE ... REPLICA IDENTITY FULL.';
  END IF;
  publication_sql := CASE
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_publication p WHERE p.pubname = _prepare_checks.publication)
    THEN pg_catalog.format('ALTER PUBLICATION %I SET TABLE %s', publication, v_tables)
    ELSE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s', publication, v_tables) END;
END
$$;
-- Partial reinit (issue 12): start_reinit and its sidecar steps; DIVERGED | FAILED -> REINITIALIZING, REINITIALIZING -> DIVERGED.
INSERT INTO steep_repl.init_transitions (from_state, to_state) VALUES
  ('diverged', 'reinitializing'), ('failed', 'reinitializing'), ('reinitializing', 'diverged');
CREATE OR REPLACE FUNCTION steep_repl.transition(node text, to_state text, reason text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_from text;
  v_to   text := pg_catalog.lower(pg_catalog.btrim(to_state));
  v_allowed text;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('to_state', to_state);
  SELECT n.init_state INTO v_from FROM steep_repl.nodes n WHERE n.name = transition.node FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.init_states s WHERE s.state = v_to) THEN
    RAISE EXCEPTION 'unknown init state "%"', to_state
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'States: ' || (SELECT pg_catalog.string_agg(pg_catalog.upper(s.state), ', ' ORDER BY s.position)
                                 FROM steep_repl.init_states s) || '.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.init_transitions t WHERE t.from_state = v_from AND t.to_state = v_to) THEN
    SELECT pg_catalog.string_agg(pg_catalog.upper(t.to_state), ', ' ORDER BY t.to_state) INTO v_allowed
      FROM steep_repl.init_transitions t WHERE t.from_state = v_from;
    RAISE EXCEPTION 'illegal init state transition for node "%": % -> %', node, pg_catalog.upper(v_from), pg_catalog.upper(v_to)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('From %s a node can go to: %s.', pg_catalog.upper(v_from), coalesce(v_allowed, 'nothing'));
  END IF;
  IF v_to = 'failed' AND reason IS NULL THEN
    reason := 'no reason given';
  END IF;

  UPDATE steep_repl.nodes n SET
    init_state = v_to,
    state_changed_at = pg_catalog.now(),
    init_started_at = CASE WHEN v_to IN ('preparing', 'reinitializing') THEN pg_catalog.now() ELSE n.init_started_at END,
    init_completed_at = CASE WHEN v_to = 'synchronized' THEN pg_catalog.now()
                             WHEN v_to IN ('preparing', 'reinitializing', 'uninitialized') THEN NULL
                             ELSE n.init_completed_at END,
    last_error = CASE WHEN v_to = 'failed' THEN reason
                      WHEN v_to IN ('preparing', 'reinitializing', 'uninitialized') THEN NULL
                      ELSE n.last_error END,
    init_source_node = CASE WHEN v_to = 'uninitialized' THEN NULL ELSE n.init_source_node END
  WHERE n.name = transition.node;
  -- The init's progress row shows the node's state; this is its only writer.
  UPDATE steep_repl.init_progress p SET phase = v_to, updated_at = pg_catalog.now() WHERE p.node = transition.node;

  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (transition.node, 'init.state_change', v_from, v_to,
          pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('reason', reason)));
  RETURN v_to;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._init_fail(node text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = _init_fail.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying', 'catching_up', 'reinitializing') THEN
    RETURN;
  END IF;
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = _init_fail.node;
  IF v_state = 'reinitializing' THEN
    -- A reinit: the other tables keep replicating; its own may be empty, and the reason says so.
    reason := pg_catalog.format('%s; tables of the reinit possibly empty and not replicated: %s', reason,
                                pg_catalog.array_to_string(steep_repl._reinit_tables(node), ', '));
  ELSIF FOUND AND p.options ? 'reinit' AND v_state = 'catching_up' THEN
    NULL;  -- a reinit catching up: its tables are copied; the subscription stays enabled
  ELSIF FOUND AND EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname = p.subscription) THEN
    EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', p.subscription);
  END IF;
  UPDATE steep_repl.init_progress ip SET message = reason, updated_at = pg_catalog.now(),
    current_tables = '{}', rows_per_sec = NULL, bytes_per_sec = NULL, eta_seconds = NULL
  WHERE ip.node = _init_fail.node;
  PERFORM steep_repl.transition(node, 'failed', reason);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.start_reinit(node text, scope jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_known text[] := ARRAY['tables', 'schemas', 'full', 'cascade', 'parallel', 'lag_threshold', 'stall_timeout', 'source_timeout'];
  v_node steep_repl.nodes;
  p steep_repl.init_progress;
  k text;
  x text;
  v_sub oid;
  v_subrels oid[];  -- what the subscription replicates (and the tables a failed or cancelled reinit left out)
  v_rels oid[] := '{}';
  v_rel oid;
  v_refs oid[];
  v_bad text;
  v_cascade boolean;
  v_tables text[];
  v_errors bigint;
  v_job bigint;
  v_parallel int;
  v_lag bigint;
  v_stall float8;
  v_srctimeout float8;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('scope', scope);
  IF pg_catalog.jsonb_typeof(scope) <> 'object' THEN
    RAISE EXCEPTION 'scope must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'One of {"tables": ["public.orders"]}, {"schemas": ["public"]} or {"full": true}, with options such as "cascade": true.';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(scope) LOOP
    IF NOT k = ANY (v_known) THEN
      RAISE EXCEPTION 'unknown reinit option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: ' || pg_catalog.array_to_string(v_known, ', ') || '.';
    END IF;
  END LOOP;
  FOREACH k IN ARRAY ARRAY['full', 'cascade'] LOOP
    IF scope ? k AND pg_catalog.jsonb_typeof(scope->k) <> 'boolean' THEN
      RAISE EXCEPTION '% must be true or false', k USING ERRCODE = 'invalid_parameter_value',
        HINT = '"full": true reinitializes every replicated table; "cascade": true adds the tables that reference the scope''s by a foreign key.';
    END IF;
  END LOOP;
  IF (scope ? 'tables')::int + (scope ? 'schemas')::int + coalesce((scope->>'full')::boolean, false)::int <> 1 THEN
    RAISE EXCEPTION 'scope must name exactly one of tables, schemas or full' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'One of {"tables": ["public.orders"]}, {"schemas": ["public"]} or {"full": true}.';
  END IF;
  PERFORM steep_repl._check_scope_options(scope);
  IF EXISTS (SELECT 1 FROM pg_catalog.unnest(ARRAY['tables', 'schemas']) k2
             WHERE scope ? k2 AND CASE WHEN pg_catalog.jsonb_typeof(scope->k2) = 'array'
                                       THEN pg_catalog.jsonb_array_length(scope->k2) = 0 ELSE true END) THEN
    RAISE EXCEPTION 'tables and schemas must name at least one' USING ERRCODE = 'invalid_parameter_value',
      HINT = '{"tables": ["public.orders"]} or {"schemas": ["public"]}; {"full": true} for every replicated table.';
  END IF;
  v_cascade := coalesce((scope->>'cascade')::boolean, false);

  -- The node row lock serializes start_reinit, start_init and cancel_init for the node.
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = start_reinit.node FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', node
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Call start_reinit on the node to reinitialize (the node registered with is_local => true).';
  END IF;
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = start_reinit.node;
  IF v_node.init_state NOT IN ('synchronized', 'diverged', 'failed')
     OR (v_node.init_state = 'failed' AND NOT (FOUND AND p.options ? 'reinit')) THEN
    RAISE EXCEPTION 'node "%" is % and cannot be reinitialized', node, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = CASE WHEN v_node.init_state = 'failed'
                        THEN 'Its init failed: retry it with steep_repl.start_init, or clean it up with steep_repl.cancel_init.'
                        ELSE 'A node is reinitialized once SYNCHRONIZED, DIVERGED, or FAILED after a reinit; watch a running init with SELECT * FROM steep_repl.init_progress.' END;
  END IF;
  IF p.node IS NULL THEN
    RAISE EXCEPTION 'node "%" has no record of its init', node
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Initialize it with steep_repl.start_init or complete_init first.';
  END IF;
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.cancel', 'reinit.start') AND j.node = start_reinit.node
             AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'an init job for node "%" is still queued or running', node
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.jobs) or cancel it.';
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = p.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'the subscription % of node "%" does not exist', p.subscription, node
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Without it nothing replicates: initialize the node again (steep_repl.cancel_init, then start_init).';
  END IF;
  v_subrels := ARRAY(SELECT sr.srrelid FROM pg_catalog.pg_subscription_rel sr WHERE sr.srsubid = v_sub
                     UNION SELECT t.relid FROM steep_repl.init_tables t
                     WHERE t.node = start_reinit.node AND p.options ? 'reinit' AND v_node.init_state IN ('diverged', 'failed')
                       AND pg_catalog.to_regclass(pg_catalog.format('%I.%I', t.schema_name, t.table_name)) = t.relid);

  -- The tables in scope.
  IF scope ? 'tables' THEN
    FOR x IN SELECT pg_catalog.jsonb_array_elements_text(scope->'tables') LOOP
      SELECT c.oid INTO v_rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND (n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname = x
                                        OR (n.nspname = 'public' AND c.relname = x))
      ORDER BY (n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname = x) DESC LIMIT 1;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" does not exist on node "%"', x, node
          USING ERRCODE = 'undefined_table', HINT = 'Names as stored, without quotes: ["public.orders", "My Schema.Odd Table"]; a bare name means schema public.';
      END IF;
      v_rels := v_rels || v_rel;
    END LOOP;
    SELECT pg_catalog.string_agg(r::regclass::text, ', ' ORDER BY r::regclass::text) INTO v_bad
    FROM pg_catalog.unnest(v_rels) r WHERE NOT r = ANY (v_subrels);
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'tables not replicated by subscription % of node "%": %', p.subscription, node, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Only the tables the node''s subscription copies can be reinitialized (pg_subscription_rel); leave these out.';
    END IF;
  ELSIF scope ? 'schemas' THEN
    FOR x IN SELECT pg_catalog.jsonb_array_elements_text(scope->'schemas') LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = x) THEN
        RAISE EXCEPTION 'schema "%" does not exist on node "%"', x, node
          USING ERRCODE = 'invalid_schema_name', HINT = 'Names as stored, without quotes: ["public", "My Schema"].';
      END IF;
      v_refs := ARRAY(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = x AND c.oid = ANY (v_subrels));
      IF pg_catalog.cardinality(v_refs) = 0 THEN
        RAISE EXCEPTION 'schema "%" has no table replicated by subscription % of node "%"', x, p.subscription, node
          USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Name a schema whose tables the node replicates (pg_subscription_rel).';
      END IF;
      v_rels := v_rels || v_refs;
    END LOOP;
  ELSE
    v_rels := v_subrels;
    IF pg_catalog.cardinality(v_rels) = 0 THEN
      RAISE EXCEPTION 'subscription % of node "%" replicates no table', p.subscription, node
        USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Nothing to reinitialize.';
    END IF;
  END IF;
  v_rels := ARRAY(SELECT DISTINCT r FROM pg_catalog.unnest(v_rels) r);

  -- A table referenced by a table outside the scope cannot be emptied alone: refuse, or with
  -- cascade add the referencing tables (transitively). Never TRUNCATE ... CASCADE.
  LOOP
    v_refs := ARRAY(SELECT DISTINCT con.conrelid FROM pg_catalog.pg_constraint con
                    WHERE con.contype = 'f' AND con.confrelid = ANY (v_rels) AND NOT con.conrelid = ANY (v_rels));
    EXIT WHEN pg_catalog.cardinality(v_refs) = 0;
    IF NOT v_cascade THEN
      SELECT pg_catalog.string_agg(pg_catalog.format('%s (references %s)', con.conrelid::regclass, con.confrelid::regclass), ', '
                                   ORDER BY con.conrelid::regclass::text, con.confrelid::regclass::text) INTO v_bad
      FROM pg_catalog.pg_constraint con
      WHERE con.contype = 'f' AND con.confrelid = ANY (v_rels) AND NOT con.conrelid = ANY (v_rels);
      RAISE EXCEPTION 'tables in the scope are referenced by foreign keys of tables outside it: %', v_bad
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = 'Emptying them would break those foreign keys: add the referencing tables to the scope, or pass "cascade": true to add them.';
    END IF;
    SELECT pg_catalog.string_agg(r::regclass::text, ', ' ORDER BY r::regclass::text) INTO v_bad
    FROM pg_catalog.unnest(v_refs) r WHERE NOT r = ANY (v_subrels);
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'cascade would add tables not replicated by subscription % of node "%": %', p.subscription, node, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'They reference the scope''s tables but cannot be copied again: drop or fix their foreign keys first.';
    END IF;
    v_rels := v_rels || v_refs;
  END LOOP;

  v_parallel := steep_repl._int_option(scope, 'parallel', p.parallel_workers, 1, 16, 'parallel is the number of tables copied at once (default: the init''s).');
  v_lag := steep_repl._int_option(scope, 'lag_threshold', p.lag_threshold_bytes, 0, 1099511627776,
    'lag_threshold is the apply lag in bytes under which the node is SYNCHRONIZED again (default: the init''s, at most 1 TiB).');
  v_stall := steep_repl._num_option(scope, 'stall_timeout', extract(epoch FROM p.stall_timeout), 1, 604800,
    'stall_timeout is the number of seconds without copy progress before init.stalled is raised (default: the init''s, at most a week).');
  v_srctimeout := steep_repl._num_option(scope, 'source_timeout', extract(epoch FROM p.source_timeout), 1, 604800,
    'source_timeout is the number of seconds the source may be unreachable before the reinit fails (default: the init''s, at most a week).');

  -- Everything checked: record the reinit and hand it to the sidecar.
  v_tables := ARRAY(SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.unnest(v_rels) r
                    JOIN pg_catalog.pg_class c ON c.oid = r JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1);
  SELECT s.apply_error_count + s.sync_error_count INTO v_errors FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = v_sub;
  DELETE FROM steep_repl.init_tables t WHERE t.node = start_reinit.node;
  DELETE FROM steep_repl.init_samples s WHERE s.node = start_reinit.node;
  -- The target's own size stands in for the source's (the table held a copy of it).
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows, is_large)
  SELECT start_reinit.node, n.nspname, c.relname, c.oid, pg_catalog.pg_table_size(c.oid), greatest(c.reltuples, 0)::bigint, false
  FROM pg_catalog.unnest(v_rels) r JOIN pg_catalog.pg_class c ON c.oid = r JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
  UPDATE steep_repl.init_progress ip SET
    options = (ip.options - 'reinit') || pg_catalog.jsonb_build_object('reinit', pg_catalog.jsonb_build_object(
      'scope', scope, 'tables', pg_catalog.to_jsonb(v_tables), 'truncated', false, 'error_base', coalesce(v_errors, 0))),
    subscription_oid = NULL, parallel_workers = v_parallel, lag_threshold_bytes = v_lag,
    stall_timeout = pg_catalog.make_interval(secs => v_stall), source_timeout = pg_catalog.make_interval(secs => v_srctimeout),
    tables_total = pg_catalog.cardinality(v_tables), tables_done = 0, current_tables = '{}', large_tables = '{}',
    bytes_total = (SELECT coalesce(pg_catalog.sum(t.source_bytes), 0) FROM steep_repl.init_tables t WHERE t.node = start_reinit.node),
    rows_total = (SELECT coalesce(pg_catalog.sum(t.source_rows), 0) FROM steep_repl.init_tables t WHERE t.node = start_reinit.node),
    bytes_done = 0, rows_done = 0, percent = 0, rows_per_sec = NULL, bytes_per_sec = NULL, eta_seconds = NULL, lag_bytes = NULL,
    stalled_since = NULL, source_unreachable_since = NULL, last_progress_at = pg_catalog.now(), started_at = pg_catalog.now(),
    copy_done_at = NULL, synchronized_at = NULL, updated_at = pg_catalog.now(),
    message = pg_catalog.format('reinit of %s table(s): %s', pg_catalog.cardinality(v_tables), pg_catalog.array_to_string(v_tables, ', '))
  WHERE ip.node = start_reinit.node;
  PERFORM steep_repl.transition(node, 'reinitializing',
    pg_catalog.format('start_reinit of %s', pg_catalog.array_to_string(v_tables, ', ')));
  v_job := steep_repl.enqueue_job('reinit.start', pg_catalog.jsonb_build_object('target', node), node, 3);
  UPDATE steep_repl.init_progress ip SET job_id = v_job WHERE ip.node = start_reinit.node;
  RETURN v_job;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._reinit_tables(node text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ARRAY(SELECT pg_catalog.format('%I.%I', t.schema_name, t.table_name) FROM steep_repl.init_tables t
               WHERE t.node = _reinit_tables.node ORDER BY 1);
$$;
CREATE OR REPLACE FUNCTION steep_repl._reinit_empty(node text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(x.t, ', ' ORDER BY x.t) AS tables
           FROM pg_catalog.unnest(steep_repl._reinit_tables(node)) x(t)
           JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(x.t)
           GROUP BY c.relowner ORDER BY c.relowner LOOP
    PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
  END LOOP;
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    started_at = NULL, finished_at = NULL, n_tup_ins_base = coalesce(pg_catalog.pg_stat_get_tuples_inserted(t.relid), 0)
  WHERE t.node = _reinit_empty.node;
  RETURN pg_catalog.array_to_string(steep_repl._reinit_tables(node), ', ');
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.reinit_truncate(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_done boolean;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = reinit_truncate.node FOR UPDATE;
  SELECT coalesce((p.options->'reinit'->>'truncated')::boolean, false) INTO v_done
  FROM steep_repl.init_progress p WHERE p.node = reinit_truncate.node FOR UPDATE;
  IF v_state IS DISTINCT FROM 'reinitializing' OR v_done IS NULL THEN
    RAISE EXCEPTION 'node "%" has no reinit under way', node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF v_done THEN
    RETURN;  -- a retried job: the tables may be being copied already
  END IF;
  PERFORM steep_repl._reinit_empty(node);
  UPDATE steep_repl.init_progress p SET options = pg_catalog.jsonb_set(p.options, '{reinit,truncated}', 'true'),
    updated_at = pg_catalog.now() WHERE p.node = reinit_truncate.node;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.reinit_copying(node text, parallel_workers integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sub oid;
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = reinit_copying.node AND n.init_state = 'reinitializing' FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'node "%" has no reinit under way', node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s JOIN steep_repl.init_progress p ON p.subscription = s.subname
  WHERE p.node = reinit_copying.node AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'the subscription of node "%" does not exist', node USING ERRCODE = 'undefined_object';
  END IF;
  -- From now on tick() samples the table-sync workers (before, pg_subscription_rel still
  -- showed the tables as they were before the reinit).
  UPDATE steep_repl.init_progress p SET subscription_oid = v_sub, parallel_workers = reinit_copying.parallel_workers,
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now(),
    message = pg_catalog.format('copying %s table(s) again', p.tables_total)
  WHERE p.node = reinit_copying.node;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.reinit_cancelled(node text, detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_tables text;
  v_reason text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = reinit_cancelled.node FOR UPDATE;
  IF v_state IS DISTINCT FROM 'reinitializing' THEN
    RETURN;
  END IF;
  v_tables := steep_repl._reinit_empty(node);
  v_reason := pg_catalog.format('reinit cancelled; tables not replicated: %s', v_tables);
  UPDATE steep_repl.init_progress p SET message = v_reason, current_tables = '{}', rows_per_sec = NULL,
    bytes_per_sec = NULL, eta_seconds = NULL, updated_at = pg_catalog.now()
  WHERE p.node = reinit_cancelled.node;
  PERFORM steep_repl.transition(node, 'diverged', v_reason);
  UPDATE steep_repl.nodes n SET last_error = v_reason WHERE n.name = reinit_cancelled.node;
  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (node, 'reinit.cancelled', v_state, 'diverged',
          coalesce(detail, '{}') || pg_catalog.jsonb_build_object('truncated', v_tables));
END
$$;
COMMENT ON FUNCTION steep_repl.start_reinit(text, jsonb) IS
  'Copies chosen tables ({"tables": [...]}), schemas ({"schemas": [...]}) or every replicated table ({"full": true}) of the local node again while the other tables keep replicating; "cascade": true adds tables referencing them. Validates first (22023, 42704, 42P01, 3F000, 2BP01, 55000), creates nothing on error. Returns the reinit.start job id; watch steep_repl.init_progress.';
COMMENT ON FUNCTION steep_repl._reinit_tables(text) IS 'Internal: the quoted tables of node''s reinit.';
COMMENT ON FUNCTION steep_repl._reinit_empty(text) IS 'Internal: truncates the tables of node''s reinit as their owners and resets their progress.';
COMMENT ON FUNCTION steep_repl.reinit_truncate(text) IS
  'Sidecar step: the reinit''s tables left the subscription; truncate them (as their owners) once, and reset their progress.';
COMMENT ON FUNCTION steep_repl.reinit_copying(text, integer) IS
  'Sidecar step: the reinit''s tables are back in the publication and the subscription refreshed with copy_data; tick() follows their copy.';
COMMENT ON FUNCTION steep_repl.reinit_cancelled(text, jsonb) IS
  'Sidecar step: the reinit''s tables are out of the publication and subscription; truncate them, DIVERGED with the tables named.';
COMMENT ON FUNCTION steep_repl.init_plan(text) IS
  'For the sidecar (superuser): what the init of node must create: source conninfo, publication, subscription, slot, and the tables to publish as [{schema, table}] (for a reinit: its tables, and reinit {truncated}).';
COMMENT ON FUNCTION steep_repl.cancel_init(text) IS
  'Cancels the init of node: the sidecar drops the subscription, its slots on the source and a publication created for it, truncates the tables it filled; the node goes back to UNINITIALIZED. A reinit in REINITIALIZING is cancelled instead by taking its tables out of the publication and emptying them, the node DIVERGED with them named. Idempotent; returns the init.cancel job id (NULL with a notice when there is nothing to cancel).';
REVOKE ALL ON FUNCTION steep_repl.start_reinit(text, jsonb), steep_repl._reinit_tables(text), steep_repl._reinit_empty(text),
  steep_repl.reinit_truncate(text), steep_repl.reinit_copying(text, integer), steep_repl.reinit_cancelled(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl.start_reinit(text, jsonb) TO steep_repl_admin;

-- ---- Limits (issue 16): snapshot max_rate 0 or >= 1000 bytes/s, slot_expiry capped by
-- steep_repl.max_slot_expiry; _snapshot_int_option is the one option checker.
CREATE OR REPLACE FUNCTION steep_repl._snapshot_int_option(options jsonb, key text, dflt bigint, lo bigint, hi bigint, hint text)
RETURNS bigint
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._int_option(options, key, dflt, lo, hi, hint);  -- one checker (sql/04_options.sql)
$$;
CREATE OR REPLACE FUNCTION steep_repl._max_rate_option(options jsonb) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v bigint := steep_repl._int_option(options, 'max_rate', 0, 0, 1099511627776,
                'max_rate caps each worker''s COPY stream in bytes per second (0: no cap, else at least 1000).');
BEGIN
  IF v BETWEEN 1 AND 999 THEN
    RAISE EXCEPTION 'max_rate must be 0 (no cap) or at least 1000 bytes per second, got %', v
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A slower stream would hold the snapshot, its slot and a sidecar worker for days.';
  END IF;
  RETURN v;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._snapshot_generate_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_compression text := coalesce(options->>'compression', 'zstd');
BEGIN
  PERFORM steep_repl._snapshot_check_options(options,
    ARRAY['compression', 'parallel', 'tables', 'schemas', 'slot_expiry', 'subscribable', 'max_rate'], 'snapshot');
  IF v_compression NOT IN ('none', 'gzip', 'lz4', 'zstd') THEN
    RAISE EXCEPTION 'unknown compression "%"', v_compression
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Compression: zstd (default), lz4, gzip or none.';
  END IF;
  PERFORM steep_repl._check_scope_options(options);
  RETURN pg_catalog.jsonb_build_object(
    'compression', v_compression,
    'parallel', steep_repl._snapshot_int_option(options, 'parallel', 4, 1, 16, 'parallel is the number of tables written at once.'),
    'tables', coalesce(options->'tables', 'null'::jsonb),
    'schemas', coalesce(options->'schemas', 'null'::jsonb),
    'slot_expiry', steep_repl._snapshot_int_option(options, 'slot_expiry', 86400, 60,
                     pg_catalog.date_part('epoch', steep_repl._setting_interval('steep_repl.max_slot_expiry'))::bigint,
                     'slot_expiry is how many seconds the slot is kept for subscribers (default 86400, at most steep_repl.max_slot_expiry); it holds WAL on this node meanwhile.'),
    'subscribable', coalesce((options->>'subscribable')::boolean, true),
    'max_rate', steep_repl._max_rate_option(options));
END
$$;
COMMENT ON FUNCTION steep_repl._max_rate_option(jsonb) IS 'Internal: the max_rate option of snapshots (0, or 1000 bytes/s to 1 TiB/s), or 22023.';
REVOKE ALL ON FUNCTION steep_repl._max_rate_option(jsonb) FROM PUBLIC;

-- ---- tick()'s duties isolated and time-bounded (issue 15): each runs in its own subtransaction
-- under steep_repl._duty_deadline() (the statement timer re-armed per duty), its health in
-- steep_repl.supervisor_duties, a failing one backed off and logged once per change of state.
CREATE TABLE steep_repl.supervisor_duties (
  name                 text PRIMARY KEY,
  last_ok              timestamptz,
  last_error           text,
  last_error_at        timestamptz,
  consecutive_failures integer NOT NULL DEFAULT 0 CONSTRAINT failures_not_negative CHECK (consecutive_failures >= 0),
  next_try_at          timestamptz,
  CONSTRAINT failing_has_error CHECK (consecutive_failures = 0 OR (last_error IS NOT NULL AND last_error_at IS NOT NULL)),
  CONSTRAINT backoff_only_when_failing CHECK (next_try_at IS NULL OR consecutive_failures > 0)
);
COMMENT ON TABLE steep_repl.supervisor_duties IS
  'One row per duty of tick() (reap_leases, inits, expire_slots, drift): when it last succeeded (written at most once a minute while it keeps succeeding), its last error, how many times in a row it failed, and until when it is skipped (a backoff of 1 s doubling up to 5 min).';
COMMENT ON COLUMN steep_repl.supervisor_duties.last_ok IS
  'The tick() time of the last run without error; refreshed at most once a minute while the duty keeps succeeding, so an idle node writes nothing every second.';
COMMENT ON COLUMN steep_repl.supervisor_duties.consecutive_failures IS
  'Failures since the last success; 0 when the duty is healthy.';
COMMENT ON COLUMN steep_repl.supervisor_duties.next_try_at IS
  'While failing: the duty is skipped until then: as long as the failed run took, plus 1 s after the first failure, doubling up to 5 minutes.';
GRANT SELECT ON steep_repl.supervisor_duties TO steep_repl_admin;

CREATE FUNCTION steep_repl._duty_deadline(at timestamptz) RETURNS timestamptz
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_duty_deadline';
COMMENT ON FUNCTION steep_repl._duty_deadline(timestamptz) IS
  'Internal: makes this backend''s statement timeout fire at "at" (NULL: never) and returns the deadline it replaced (NULL: none), to be put back afterwards.';

CREATE OR REPLACE FUNCTION steep_repl._duty_timeout() RETURNS interval
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text := pg_catalog.current_setting('steep_repl.duty_timeout', true);
BEGIN
  IF v IS NULL OR v = '' THEN
    RETURN interval '10 seconds';
  END IF;
  IF v ~ '^[0-9]+$' THEN
    RETURN v::bigint * interval '1 millisecond';
  END IF;
  RETURN v::interval;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow OR numeric_value_out_of_range THEN
  RETURN interval '10 seconds';
END
$$;
COMMENT ON FUNCTION steep_repl._duty_timeout() IS
  'Internal: how long one duty of tick() may run before it is cancelled and counted as failed: the setting steep_repl.duty_timeout when the server defines it, else 10 s (0: unbounded).';

CREATE OR REPLACE FUNCTION steep_repl._duty_backoff(failures integer) RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT least(interval '5 minutes', interval '1 second' * pg_catalog.power(2, least(greatest(failures, 1), 20) - 1));
$$;
COMMENT ON FUNCTION steep_repl._duty_backoff(integer) IS
  'Internal: how long a duty that failed this many times in a row is skipped: 1 s, 2 s, 4 s ... at most 5 minutes.';

CREATE OR REPLACE FUNCTION steep_repl._run_duty(duty text, now timestamptz,
  OUT outcome text, OUT result jsonb, OUT error text, OUT next_try_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d steep_repl.supervisor_duties;
  v_timeout interval := steep_repl._duty_timeout();
  v_deadline timestamptz;
  v_prev timestamptz;
  v_failures integer;
  v_started timestamptz := pg_catalog.clock_timestamp();
BEGIN
  SELECT * INTO d FROM steep_repl.supervisor_duties sd WHERE sd.name = duty;
  -- Backed off, unless next_try_at is beyond any backoff (a clock that went back, or a test's).
  IF d.consecutive_failures > 0 AND d.next_try_at > now AND d.next_try_at <= now + interval '5 minutes' THEN
    outcome := 'skipped';
    next_try_at := d.next_try_at;
    error := d.last_error;
    RETURN;
  END IF;

  BEGIN
    IF v_timeout > interval '0' THEN
      v_deadline := pg_catalog.clock_timestamp() + v_timeout;
      v_prev := steep_repl._duty_deadline(v_deadline);
      IF v_prev < v_deadline THEN
        PERFORM steep_repl._duty_deadline(v_prev); -- the caller's own statement_timeout comes first
      END IF;
    END IF;
    result := steep_repl._tick_duty(duty, now);
    IF v_deadline IS NOT NULL THEN
      PERFORM steep_repl._duty_deadline(v_prev);
    END IF;
  EXCEPTION
    WHEN query_canceled THEN
      IF v_deadline IS NOT NULL THEN
        PERFORM steep_repl._duty_deadline(v_prev);
      END IF;
      -- A cancel, or the caller's statement_timeout: not this duty's deadline, so not ours to survive.
      IF v_deadline IS NULL OR pg_catalog.clock_timestamp() < v_deadline OR v_prev <= v_deadline THEN
        RAISE;
      END IF;
      error := pg_catalog.format('did not finish within %s (steep_repl.duty_timeout): cancelled', v_timeout);
    WHEN OTHERS THEN
      IF v_deadline IS NOT NULL THEN
        PERFORM steep_repl._duty_deadline(v_prev);
      END IF;
      error := pg_catalog.format('%s (SQLSTATE %s)', SQLERRM, SQLSTATE);
  END;

  IF error IS NULL THEN
    outcome := 'ok';
    IF d.name IS NULL THEN
      INSERT INTO steep_repl.supervisor_duties AS sd (name, last_ok) VALUES (duty, now)
      ON CONFLICT ON CONSTRAINT supervisor_duties_pkey DO NOTHING;
    ELSIF d.consecutive_failures > 0 THEN
      -- SKIP LOCKED: a concurrent tick() holding the row records its own outcome; never wait.
      UPDATE steep_repl.supervisor_duties sd SET last_ok = now, consecutive_failures = 0, next_try_at = NULL
      WHERE sd.name = (SELECT x.name FROM steep_repl.supervisor_duties x WHERE x.name = duty FOR UPDATE SKIP LOCKED);
      IF FOUND THEN
        RAISE LOG 'steep_repl supervisor: duty % succeeds again after % failure(s)', duty, d.consecutive_failures;
      END IF;
    ELSIF d.last_ok IS NULL OR d.last_ok <= now - interval '1 minute' OR d.last_ok > now THEN
      UPDATE steep_repl.supervisor_duties sd SET last_ok = now
      WHERE sd.name = (SELECT x.name FROM steep_repl.supervisor_duties x WHERE x.name = duty FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN;
  END IF;

  -- The backoff counts from the end of the failed run (in whole seconds): a duty that hung
  -- until its deadline is skipped at least as long again.
  outcome := 'failed';
  v_failures := coalesce(d.consecutive_failures, 0) + 1;
  next_try_at := now + pg_catalog.date_trunc('second', pg_catalog.clock_timestamp() - v_started)
                 + steep_repl._duty_backoff(v_failures);
  IF d.name IS NULL THEN
    INSERT INTO steep_repl.supervisor_duties AS sd (name, last_error, last_error_at, consecutive_failures, next_try_at)
    VALUES (duty, error, now, v_failures, _run_duty.next_try_at)
    ON CONFLICT ON CONSTRAINT supervisor_duties_pkey DO NOTHING;
  ELSE
    UPDATE steep_repl.supervisor_duties sd SET last_error = error, last_error_at = now,
      consecutive_failures = v_failures, next_try_at = _run_duty.next_try_at
    WHERE sd.name = (SELECT x.name FROM steep_repl.supervisor_duties x WHERE x.name = duty FOR UPDATE SKIP LOCKED);
  END IF;
  IF FOUND AND v_failures = 1 THEN
    RAISE WARNING 'steep_repl supervisor: duty % failed: %', duty, error
      USING DETAIL = 'The other duties go on. This one is retried with a backoff (1 s, doubling up to 5 minutes) and logged again when it succeeds.',
            HINT = 'SELECT * FROM steep_repl.supervisor_duties shows every duty''s last error and next try.';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._run_duty(text, timestamptz) IS
  'Internal: runs one duty of tick() unless it is backed off, in a subtransaction bounded by steep_repl.duty_timeout; records the outcome in supervisor_duties (WARNING when the duty starts failing, LOG when it recovers).';

CREATE OR REPLACE FUNCTION steep_repl._tick_reap_leases(now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := now;
  v_requeued integer := 0;
  v_failed integer := 0;
  v_cancelled integer := 0;
  r record;
BEGIN
  FOR r IN
    SELECT j.id, j.kind, j.node, j.attempt, j.max_attempts, j.lease_owner, j.cancel_requested_at
    FROM steep_repl.jobs j
    WHERE j.state = 'running' AND j.lease_expires_at < v_now
    ORDER BY j.id
    FOR UPDATE SKIP LOCKED
  LOOP
    IF r.cancel_requested_at IS NOT NULL THEN
      UPDATE steep_repl.jobs j SET state = 'cancelled', finalized_at = v_now, lease_owner = NULL, lease_expires_at = NULL
      WHERE j.id = r.id;
      v_cancelled := v_cancelled + 1;
    ELSIF r.attempt < r.max_attempts THEN
      UPDATE steep_repl.jobs j SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
        scheduled_at = v_now + steep_repl._backoff(r.attempt),
        errors = j.errors || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('attempt', r.attempt, 'at', v_now,
          'error', pg_catalog.format('lease expired: worker %s stopped heartbeating', r.lease_owner)))
      WHERE j.id = r.id;
      v_requeued := v_requeued + 1;
    ELSE
      UPDATE steep_repl.jobs j SET state = 'failed', finalized_at = v_now, lease_owner = NULL, lease_expires_at = NULL,
        error = pg_catalog.format('lease expired on attempt %s of %s: worker %s stopped heartbeating',
                                  r.attempt, r.max_attempts, r.lease_owner),
        errors = j.errors || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('attempt', r.attempt, 'at', v_now,
          'error', pg_catalog.format('lease expired: worker %s stopped heartbeating', r.lease_owner)))
      WHERE j.id = r.id;
      INSERT INTO steep_repl.events (node, event, detail)
      VALUES (r.node, 'job.failed', pg_catalog.jsonb_build_object('job', r.id, 'kind', r.kind,
              'error', pg_catalog.format('lease expired after %s attempts', r.attempt)));
      v_failed := v_failed + 1;
    END IF;
  END LOOP;
  IF v_requeued > 0 THEN
    PERFORM pg_catalog.pg_notify('steep_repl_jobs', '{"requeued":true}');
  END IF;
  RETURN pg_catalog.jsonb_build_object('jobs_requeued', v_requeued, 'jobs_failed', v_failed,
                                       'jobs_cancelled', v_cancelled);
END
$$;
COMMENT ON FUNCTION steep_repl._tick_reap_leases(timestamptz) IS
  'Internal: tick()''s reaping of expired job leases: requeued with backoff, failed after max_attempts, or cancelled when a cancel was requested.';

CREATE OR REPLACE FUNCTION steep_repl._duties() RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ARRAY['reap_leases', 'inits', 'expire_slots', 'drift'];
$$;
COMMENT ON FUNCTION steep_repl._duties() IS
  'Internal: the duties of tick() in the order it runs them (the names of steep_repl.supervisor_duties).';

CREATE OR REPLACE FUNCTION steep_repl._tick_duty(duty text, now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  CASE duty
    WHEN 'reap_leases' THEN RETURN steep_repl._tick_reap_leases(now);
    WHEN 'inits' THEN RETURN pg_catalog.jsonb_build_object('inits', steep_repl._tick_inits(now));
    WHEN 'expire_slots' THEN RETURN pg_catalog.jsonb_build_object('slots_expired', steep_repl._tick_expire_slots(now));
    WHEN 'drift' THEN RETURN pg_catalog.jsonb_build_object('drift', steep_repl._tick_drift(now));
    ELSE RAISE EXCEPTION 'unknown duty "%"', duty USING ERRCODE = 'invalid_parameter_value';
  END CASE;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_duty(text, timestamptz) IS 'Internal: runs one duty of tick() (see steep_repl._duties()).';

CREATE OR REPLACE FUNCTION steep_repl.tick(now timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.now());
  v_result jsonb := '{}';
  v_ran text[] := '{}';
  v_failed jsonb := '{}';
  v_skipped jsonb := '{}';
  v_duty text;
  r record;
BEGIN
  FOREACH v_duty IN ARRAY steep_repl._duties() LOOP
    SELECT * INTO r FROM steep_repl._run_duty(v_duty, v_now);
    CASE r.outcome
      WHEN 'ok' THEN
        v_ran := v_ran || v_duty;
        v_result := v_result || coalesce(r.result, '{}');
      WHEN 'failed' THEN
        v_failed := v_failed || pg_catalog.jsonb_build_object(v_duty, r.error);
      ELSE
        v_skipped := v_skipped || pg_catalog.jsonb_build_object(v_duty, r.next_try_at);
    END CASE;
  END LOOP;
  RETURN v_result || pg_catalog.jsonb_build_object('duties', pg_catalog.jsonb_build_object(
    'ran', pg_catalog.to_jsonb(v_ran), 'failed', v_failed, 'skipped', v_skipped));
END
$$;
COMMENT ON FUNCTION steep_repl.tick(timestamptz) IS
  'The supervisor''s periodic work (run every steep_repl.naptime), as duties each run in its own subtransaction bounded by a duty timeout (10 s, or steep_repl.duty_timeout where the server defines that setting): reap_leases (expired job leases requeued with backoff, or failed after max_attempts), inits (every active init sampled into init_progress and moved COPYING -> CATCHING_UP -> SYNCHRONIZED or FAILED), expire_slots (expired prepared slots dropped), drift (SYNCHRONIZED nodes checked for schema drift every drift_check_interval -> DIVERGED). A failing duty does not stop the others: it is recorded in steep_repl.supervisor_duties, skipped for a backoff and logged once per change of state. Returns each duty''s counts (jobs_requeued, jobs_failed, jobs_cancelled, inits, slots_expired, drift) and duties: {ran: [names], failed: {name: error}, skipped: {name: next_try_at}}.';

REVOKE ALL ON FUNCTION steep_repl._duty_deadline(timestamptz), steep_repl._duty_timeout(), steep_repl._duty_backoff(integer),
  steep_repl._run_duty(text, timestamptz), steep_repl._tick_reap_leases(timestamptz), steep_repl._duties(),
  steep_repl._tick_duty(text, timestamptz) FROM PUBLIC;

-- ---- The source of a CATCHING_UP (or stalled) init read by tick() in one bounded dblink session
-- at most every 5 s (steep_repl.init_source_reads), the lag followed locally in between (issue 15).
DROP FUNCTION steep_repl._tick_source_reachable(steep_repl.init_progress, timestamptz);

CREATE TABLE steep_repl.init_source_reads (
  node                text PRIMARY KEY REFERENCES steep_repl.init_progress (node) ON DELETE CASCADE,
  read_at             timestamptz NOT NULL,
  source_lsn          pg_lsn,
  confirmed_flush_lsn pg_lsn,
  received_lsn        pg_lsn,
  error               text,
  CONSTRAINT read_or_error CHECK ((error IS NULL) = (source_lsn IS NOT NULL))
);
COMMENT ON TABLE steep_repl.init_source_reads IS
  'The last read of each init''s source by tick() (one dblink session 5 s after the previous one ended, while the init is CATCHING_UP or stalled; up to 30 s apart while the source does not answer): the source''s pg_current_wal_lsn(), the slot''s confirmed_flush_lsn (NULL: no such slot), the local subscription''s received_lsn at that moment, or the error when the source did not answer.';
COMMENT ON COLUMN steep_repl.init_source_reads.received_lsn IS
  'pg_stat_subscription.received_lsn of the init''s apply worker when the source was read; the lag between two reads is the lag read minus what was received since.';
GRANT SELECT ON steep_repl.init_source_reads TO steep_repl_admin;

CREATE OR REPLACE FUNCTION steep_repl._source_read_interval() RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT interval '5 seconds';
$$;
COMMENT ON FUNCTION steep_repl._source_read_interval() IS
  'Internal: tick() reads an init''s source at most this often (5 s), and waits at most this long for it to answer.';

CREATE OR REPLACE FUNCTION steep_repl._source_read_remote(node text, slot text,
  OUT source_lsn pg_lsn, OUT confirmed_flush_lsn pg_lsn, OUT error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_bound interval := steep_repl._source_read_interval();
  v_deadline timestamptz := pg_catalog.clock_timestamp() + v_bound;
  v_prev timestamptz;
  v_detail text;
BEGIN
  BEGIN
    v_prev := steep_repl._duty_deadline(v_deadline);
    IF v_prev < v_deadline THEN
      PERFORM steep_repl._duty_deadline(v_prev); -- the duty's own deadline comes first
    END IF;
    EXECUTE pg_catalog.format('SELECT lsn, flush FROM %I.dblink($1, $2) AS t(lsn pg_lsn, flush pg_lsn)',
                              steep_repl._dblink_schema())
      INTO source_lsn, confirmed_flush_lsn
      USING steep_repl._conninfo(node), pg_catalog.format(
        'SELECT pg_catalog.pg_current_wal_lsn(), (SELECT s.confirmed_flush_lsn FROM pg_catalog.pg_replication_slots s
           WHERE s.slot_name OPERATOR(pg_catalog.=) %L)', slot);
    PERFORM steep_repl._duty_deadline(v_prev);
  EXCEPTION
    WHEN query_canceled THEN
      PERFORM steep_repl._duty_deadline(v_prev);
      IF pg_catalog.clock_timestamp() < v_deadline OR v_prev <= v_deadline THEN
        RAISE; -- a cancel, or the duty's deadline: not this read's to survive
      END IF;
      error := pg_catalog.format('no answer within %s', v_bound);
    WHEN OTHERS THEN
      PERFORM steep_repl._duty_deadline(v_prev);
      -- 08: connection exception (dblink puts libpq's reason in the detail); 57P: the source is
      -- shutting down, starting up or was restarted.
      IF SQLSTATE NOT LIKE '08%' AND SQLSTATE NOT LIKE '57P%' THEN
        RAISE;
      END IF;
      GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
      error := pg_catalog.rtrim(SQLERRM || coalesce(': ' || NULLIF(v_detail, ''), ''), E'\n');
  END;
END
$$;
COMMENT ON FUNCTION steep_repl._source_read_remote(text, text) IS
  'Internal: one dblink session to a node, bounded by _source_read_interval(): its pg_current_wal_lsn() and the confirmed_flush_lsn of slot, or the reason it did not answer (other errors are raised).';

CREATE OR REPLACE FUNCTION steep_repl._tick_source_read(p steep_repl.init_progress, now timestamptz,
  OUT fresh boolean, OUT reachable boolean, OUT lag_bytes bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c steep_repl.init_source_reads;
  v_received pg_lsn;
  v_read record;
  v_gap interval := steep_repl._source_read_interval();
  v_started timestamptz;
BEGIN
  SELECT s.received_lsn INTO v_received FROM pg_catalog.pg_stat_subscription s
  WHERE s.subid = p.subscription_oid AND s.relid IS NULL AND s.leader_pid IS NULL;
  SELECT * INTO c FROM steep_repl.init_source_reads r WHERE r.node = p.node;
  -- A source that does not answer is read less and less often (each try may cost the whole
  -- bound): after as long as it has been unreachable, 30 s at most.
  IF c.error IS NOT NULL AND p.source_unreachable_since IS NOT NULL THEN
    v_gap := least(interval '30 seconds', greatest(v_gap, now - p.source_unreachable_since));
  END IF;
  IF FOUND AND c.read_at <= now AND now - c.read_at < v_gap THEN
    fresh := false;
    reachable := p.source_unreachable_since IS NULL;
    -- greatest() skips NULLs: no lag read (no slot, no answer) stays NULL.
    lag_bytes := CASE WHEN c.source_lsn IS NOT NULL AND c.confirmed_flush_lsn IS NOT NULL THEN
                   greatest(0, pg_catalog.pg_wal_lsn_diff(c.source_lsn, c.confirmed_flush_lsn)
                               - greatest(0, coalesce(pg_catalog.pg_wal_lsn_diff(v_received, c.received_lsn), 0)))::bigint END;
    RETURN;
  END IF;

  v_started := pg_catalog.clock_timestamp();
  SELECT * INTO v_read FROM steep_repl._source_read_remote(p.source_node, p.slot_name);
  -- read_at is when the read ended, on the tick's clock: the next one is due a gap after it.
  INSERT INTO steep_repl.init_source_reads AS r (node, read_at, source_lsn, confirmed_flush_lsn, received_lsn, error)
  VALUES (p.node, now + (pg_catalog.clock_timestamp() - v_started), v_read.source_lsn, v_read.confirmed_flush_lsn,
          v_received, v_read.error)
  ON CONFLICT ON CONSTRAINT init_source_reads_pkey DO UPDATE SET read_at = excluded.read_at,
    source_lsn = excluded.source_lsn, confirmed_flush_lsn = excluded.confirmed_flush_lsn,
    received_lsn = excluded.received_lsn, error = excluded.error;
  fresh := true;
  IF v_read.error IS NULL THEN
    IF p.source_unreachable_since IS NOT NULL THEN
      UPDATE steep_repl.init_progress ip SET source_unreachable_since = NULL WHERE ip.node = p.node;
    END IF;
    reachable := true;
    lag_bytes := pg_catalog.pg_wal_lsn_diff(v_read.source_lsn, v_read.confirmed_flush_lsn)::bigint;
    RETURN;
  END IF;
  reachable := false;
  IF p.source_unreachable_since IS NULL THEN
    UPDATE steep_repl.init_progress ip SET source_unreachable_since = now,
      message = pg_catalog.format('source node %s unreachable: %s', p.source_node, v_read.error)
    WHERE ip.node = p.node;
  ELSIF now - p.source_unreachable_since > p.source_timeout THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('source node %s unreachable for more than %s: %s',
                                                            p.source_node, p.source_timeout, v_read.error));
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_source_read(steep_repl.init_progress, timestamptz) IS
  'Internal: is the source of an init reachable, and its slot''s lag in bytes: read from the source _source_read_interval() after the previous read ended (fresh; up to 30 s apart while it does not answer), estimated locally in between; an unreachable source fails the init after source_timeout.';

REVOKE ALL ON FUNCTION steep_repl._source_read_interval(), steep_repl._source_read_remote(text, text),
  steep_repl._tick_source_read(steep_repl.init_progress, timestamptz) FROM PUBLIC;

-- ---- Limits (issue 16): complete_init checks its numeric options first; init_slot_usage shows
-- the WAL each prepared slot retains.
-- What each prepared slot costs the source right now, read live (no write every tick).
CREATE VIEW steep_repl.init_slot_usage AS
SELECT i.slot_name, i.target_node, i.expires_at, i.used_at, i.dropped_at,
       s.slot_name IS NOT NULL AS slot_exists, coalesce(s.active, false) AS active, s.wal_status,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint AS retained_wal_bytes
FROM steep_repl.init_slots i
LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name OPERATOR(pg_catalog.=) i.slot_name;
COMMENT ON VIEW steep_repl.init_slot_usage IS
  'Each prepared slot of steep_repl.init_slots with the WAL it makes this source keep (bytes from its restart_lsn to the current WAL position), whether it exists and is in use, and its wal_status.';
GRANT SELECT ON steep_repl.init_slot_usage TO steep_repl_admin;
-- Reinit: full scope as a new subscription (automatic init with the node's last options), schema_sync in the scope, errors counted from the copy.
CREATE OR REPLACE FUNCTION steep_repl.start_reinit(node text, scope jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_known text[] := ARRAY['tables', 'schemas', 'full', 'cascade', 'schema_sync', 'confirm', 'parallel', 'lag_threshold',
                          'stall_timeout', 'source_timeout'];
  v_node steep_repl.nodes;
  p steep_repl.init_progress;
  k text;
  x text;
  v_sub oid;
  v_subrels oid[];  -- what the subscription replicates (and the tables a failed or cancelled reinit left out)
  v_rels oid[] := '{}';
  v_rel oid;
  v_refs oid[];
  v_bad text;
  v_cascade boolean;
  v_tables text[];
  v_errors bigint;
  v_job bigint;
  v_parallel int;
  v_lag bigint;
  v_stall float8;
  v_srctimeout float8;
  v_full boolean;
  v_mode text;
  v_sync jsonb;
  v_msg text;
  v_detail text;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('scope', scope);
  IF pg_catalog.jsonb_typeof(scope) <> 'object' THEN
    RAISE EXCEPTION 'scope must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'One of {"tables": ["public.orders"]}, {"schemas": ["public"]} or {"full": true}, with options such as "cascade": true.';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(scope) LOOP
    IF NOT k = ANY (v_known) THEN
      RAISE EXCEPTION 'unknown reinit option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: ' || pg_catalog.array_to_string(v_known, ', ') || '.';
    END IF;
  END LOOP;
  FOREACH k IN ARRAY ARRAY['full', 'cascade', 'confirm'] LOOP
    IF scope ? k AND pg_catalog.jsonb_typeof(scope->k) <> 'boolean' THEN
      RAISE EXCEPTION '% must be true or false', k USING ERRCODE = 'invalid_parameter_value',
        HINT = '"full": true reinitializes every replicated table; "cascade": true adds the tables that reference the scope''s by a foreign key; "confirm": true lets "schema_sync": "manual" go on despite differences.';
    END IF;
  END LOOP;
  IF (scope ? 'tables')::int + (scope ? 'schemas')::int + coalesce((scope->>'full')::boolean, false)::int <> 1 THEN
    RAISE EXCEPTION 'scope must name exactly one of tables, schemas or full' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'One of {"tables": ["public.orders"]}, {"schemas": ["public"]} or {"full": true}.';
  END IF;
  PERFORM steep_repl._check_scope_options(scope);
  IF EXISTS (SELECT 1 FROM pg_catalog.unnest(ARRAY['tables', 'schemas']) k2
             WHERE scope ? k2 AND CASE WHEN pg_catalog.jsonb_typeof(scope->k2) = 'array'
                                       THEN pg_catalog.jsonb_array_length(scope->k2) = 0 ELSE true END) THEN
    RAISE EXCEPTION 'tables and schemas must name at least one' USING ERRCODE = 'invalid_parameter_value',
      HINT = '{"tables": ["public.orders"]} or {"schemas": ["public"]}; {"full": true} for every replicated table.';
  END IF;
  v_cascade := coalesce((scope->>'cascade')::boolean, false);
  v_full := coalesce((scope->>'full')::boolean, false);
  v_mode := steep_repl._sync_mode(scope->>'schema_sync', false);  -- 22023 unless strict | auto | manual (or absent)

  -- The node row lock serializes start_reinit, start_init and cancel_init for the node.
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = start_reinit.node FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', node
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Call start_reinit on the node to reinitialize (the node registered with is_local => true).';
  END IF;
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = start_reinit.node;
  IF v_node.init_state NOT IN ('synchronized', 'diverged', 'failed')
     OR (v_node.init_state = 'failed' AND NOT (FOUND AND p.options ? 'reinit')) THEN
    RAISE EXCEPTION 'node "%" is % and cannot be reinitialized', node, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = CASE WHEN v_node.init_state = 'failed'
                        THEN 'Its init failed: retry it with steep_repl.start_init, or clean it up with steep_repl.cancel_init.'
                        ELSE 'A node is reinitialized once SYNCHRONIZED, DIVERGED, or FAILED after a reinit; watch a running init with SELECT * FROM steep_repl.init_progress.' END;
  END IF;
  IF p.node IS NULL THEN
    RAISE EXCEPTION 'node "%" has no record of its init', node
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Initialize it with steep_repl.start_init or complete_init first.';
  END IF;
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.cancel', 'reinit.start') AND j.node = start_reinit.node
             AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'an init job for node "%" is still queued or running', node
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.jobs) or cancel it.';
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = p.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  -- A full reinit that failed or was cancelled may have dropped the subscription: it creates it again.
  IF v_sub IS NULL AND NOT (v_full AND p.options ? 'reinit' AND v_node.init_state IN ('diverged', 'failed')) THEN
    RAISE EXCEPTION 'the subscription % of node "%" does not exist', p.subscription, node
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Without it nothing replicates: initialize the node again (steep_repl.cancel_init, then start_init).';
  END IF;
  v_subrels := ARRAY(SELECT sr.srrelid FROM pg_catalog.pg_subscription_rel sr WHERE sr.srsubid = v_sub
                     UNION SELECT t.relid FROM steep_repl.init_tables t
                     WHERE t.node = start_reinit.node AND p.options ? 'reinit' AND v_node.init_state IN ('diverged', 'failed')
                       AND pg_catalog.to_regclass(pg_catalog.format('%I.%I', t.schema_name, t.table_name)) = t.relid);

  -- The tables in scope.
  IF scope ? 'tables' THEN
    FOR x IN SELECT pg_catalog.jsonb_array_elements_text(scope->'tables') LOOP
      SELECT c.oid INTO v_rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND (n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname = x
                                        OR (n.nspname = 'public' AND c.relname = x))
      ORDER BY (n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname = x) DESC LIMIT 1;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" does not exist on node "%"', x, node
          USING ERRCODE = 'undefined_table', HINT = 'Names as stored, without quotes: ["public.orders", "My Schema.Odd Table"]; a bare name means schema public.';
      END IF;
      v_rels := v_rels || v_rel;
    END LOOP;
    SELECT pg_catalog.string_agg(r::regclass::text, ', ' ORDER BY r::regclass::text) INTO v_bad
    FROM pg_catalog.unnest(v_rels) r WHERE NOT r = ANY (v_subrels);
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'tables not replicated by subscription % of node "%": %', p.subscription, node, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Only the tables the node''s subscription copies can be reinitialized (pg_subscription_rel); leave these out.';
    END IF;
  ELSIF scope ? 'schemas' THEN
    FOR x IN SELECT pg_catalog.jsonb_array_elements_text(scope->'schemas') LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = x) THEN
        RAISE EXCEPTION 'schema "%" does not exist on node "%"', x, node
          USING ERRCODE = 'invalid_schema_name', HINT = 'Names as stored, without quotes: ["public", "My Schema"].';
      END IF;
      v_refs := ARRAY(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = x AND c.oid = ANY (v_subrels));
      IF pg_catalog.cardinality(v_refs) = 0 THEN
        RAISE EXCEPTION 'schema "%" has no table replicated by subscription % of node "%"', x, p.subscription, node
          USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Name a schema whose tables the node replicates (pg_subscription_rel).';
      END IF;
      v_rels := v_rels || v_refs;
    END LOOP;
  ELSE
    v_rels := v_subrels;
    IF pg_catalog.cardinality(v_rels) = 0 THEN
      RAISE EXCEPTION 'subscription % of node "%" replicates no table', p.subscription, node
        USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Nothing to reinitialize.';
    END IF;
  END IF;
  v_rels := ARRAY(SELECT DISTINCT r FROM pg_catalog.unnest(v_rels) r);

  -- A table referenced by a table outside the scope cannot be emptied alone: refuse, or with
  -- cascade add the referencing tables (transitively). Never TRUNCATE ... CASCADE.
  LOOP
    v_refs := ARRAY(SELECT DISTINCT con.conrelid FROM pg_catalog.pg_constraint con
                    WHERE con.contype = 'f' AND con.confrelid = ANY (v_rels) AND NOT con.conrelid = ANY (v_rels));
    EXIT WHEN pg_catalog.cardinality(v_refs) = 0;
    IF NOT v_cascade THEN
      SELECT pg_catalog.string_agg(pg_catalog.format('%s (references %s)', con.conrelid::regclass, con.confrelid::regclass), ', '
                                   ORDER BY con.conrelid::regclass::text, con.confrelid::regclass::text) INTO v_bad
      FROM pg_catalog.pg_constraint con
      WHERE con.contype = 'f' AND con.confrelid = ANY (v_rels) AND NOT con.conrelid = ANY (v_rels);
      RAISE EXCEPTION 'tables in the scope are referenced by foreign keys of tables outside it: %', v_bad
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = 'Emptying them would break those foreign keys: add the referencing tables to the scope, or pass "cascade": true to add them.';
    END IF;
    SELECT pg_catalog.string_agg(r::regclass::text, ', ' ORDER BY r::regclass::text) INTO v_bad
    FROM pg_catalog.unnest(v_refs) r WHERE NOT r = ANY (v_subrels);
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'cascade would add tables not replicated by subscription % of node "%": %', p.subscription, node, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'They reference the scope''s tables but cannot be copied again: drop or fix their foreign keys first.';
    END IF;
    v_rels := v_rels || v_refs;
  END LOOP;

  v_parallel := steep_repl._int_option(scope, 'parallel', p.parallel_workers, 1, 16, 'parallel is the number of tables copied at once (default: the init''s).');
  v_lag := steep_repl._int_option(scope, 'lag_threshold', p.lag_threshold_bytes, 0, 1099511627776,
    'lag_threshold is the apply lag in bytes under which the node is SYNCHRONIZED again (default: the init''s, at most 1 TiB).');
  v_stall := steep_repl._num_option(scope, 'stall_timeout', extract(epoch FROM p.stall_timeout), 1, 604800,
    'stall_timeout is the number of seconds without copy progress before init.stalled is raised (default: the init''s, at most a week).');
  v_srctimeout := steep_repl._num_option(scope, 'source_timeout', extract(epoch FROM p.source_timeout), 1, 604800,
    'source_timeout is the number of seconds the source may be unreachable before the reinit fails (default: the init''s, at most a week).');

  -- Schema: with schema_sync, the node's replicated tables are compared with the source's and
  -- made to match (auto) in this transaction, before anything else; a node the drift check
  -- found DIVERGED must match first (its configured mode, strict by default), or the error
  -- lists the differences to fix.
  IF v_mode IS NOT NULL OR (v_node.init_state = 'diverged' AND EXISTS (
       SELECT 1 FROM steep_repl.drift_checks d WHERE d.node = start_reinit.node AND d.status = 'drift')) THEN
    BEGIN
      v_sync := steep_repl._schema_sync(p.source_node, coalesce(v_mode, steep_repl._sync_mode(NULL)), pg_catalog.jsonb_build_object(
        'tables', (SELECT pg_catalog.jsonb_agg(n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname)
                   FROM pg_catalog.unnest(v_subrels || v_rels) r JOIN pg_catalog.pg_class c ON c.oid = r
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace),
        'confirm', coalesce(scope->'confirm', 'false')));
    EXCEPTION WHEN invalid_table_definition THEN
      GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
      RAISE EXCEPTION 'node "%" cannot be reinitialized until its tables match source node "%": %', node, p.source_node, v_msg
        USING ERRCODE = 'invalid_table_definition', DETAIL = v_detail,
              HINT = CASE WHEN v_mode = 'auto' THEN 'Make these changes by hand first (steep_repl.schema_diff lists every difference), then call start_reinit again.'
                          ELSE 'Fix these differences first: by hand, or with "schema_sync": "auto" in the scope to apply them here in the same call.' END;
    END;
  END IF;

  -- Everything checked: record the reinit and hand it to the sidecar.
  v_tables := ARRAY(SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.unnest(v_rels) r
                    JOIN pg_catalog.pg_class c ON c.oid = r JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1);
  SELECT s.apply_error_count + s.sync_error_count INTO v_errors FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = v_sub;
  DELETE FROM steep_repl.init_tables t WHERE t.node = start_reinit.node;
  DELETE FROM steep_repl.init_samples s WHERE s.node = start_reinit.node;
  -- The target's own size stands in for the source's (the table held a copy of it).
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows, is_large)
  SELECT start_reinit.node, n.nspname, c.relname, c.oid, pg_catalog.pg_table_size(c.oid), greatest(c.reltuples, 0)::bigint, false
  FROM pg_catalog.unnest(v_rels) r JOIN pg_catalog.pg_class c ON c.oid = r JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
  UPDATE steep_repl.init_progress ip SET
    options = (ip.options - 'reinit') || pg_catalog.jsonb_build_object('reinit', pg_catalog.jsonb_build_object(
      'scope', scope, 'tables', pg_catalog.to_jsonb(v_tables), 'truncated', false, 'full', v_full,
      'error_base', coalesce(v_errors, 0), 'schema_sync', v_sync)),
    subscription_oid = NULL, parallel_workers = v_parallel, lag_threshold_bytes = v_lag,
    stall_timeout = pg_catalog.make_interval(secs => v_stall), source_timeout = pg_catalog.make_interval(secs => v_srctimeout),
    tables_total = pg_catalog.cardinality(v_tables), tables_done = 0, current_tables = '{}', large_tables = '{}',
    bytes_total = (SELECT coalesce(pg_catalog.sum(t.source_bytes), 0) FROM steep_repl.init_tables t WHERE t.node = start_reinit.node),
    rows_total = (SELECT coalesce(pg_catalog.sum(t.source_rows), 0) FROM steep_repl.init_tables t WHERE t.node = start_reinit.node),
    bytes_done = 0, rows_done = 0, percent = 0, rows_per_sec = NULL, bytes_per_sec = NULL, eta_seconds = NULL, lag_bytes = NULL,
    stalled_since = NULL, source_unreachable_since = NULL, last_progress_at = pg_catalog.now(), started_at = pg_catalog.now(),
    copy_done_at = NULL, synchronized_at = NULL, updated_at = pg_catalog.now(),
    message = pg_catalog.format('reinit of %s table(s): %s', pg_catalog.cardinality(v_tables), pg_catalog.array_to_string(v_tables, ', '))
  WHERE ip.node = start_reinit.node;
  PERFORM steep_repl.transition(node, 'reinitializing',
    pg_catalog.format('start_reinit of %s', pg_catalog.array_to_string(v_tables, ', ')));
  v_job := steep_repl.enqueue_job('reinit.start', pg_catalog.jsonb_build_object('target', node), node, 3);
  UPDATE steep_repl.init_progress ip SET job_id = v_job WHERE ip.node = start_reinit.node;
  RETURN v_job;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.reinit_copying(node text, parallel_workers integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sub oid;
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = reinit_copying.node AND n.init_state = 'reinitializing' FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'node "%" has no reinit under way', node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s JOIN steep_repl.init_progress p ON p.subscription = s.subname
  WHERE p.node = reinit_copying.node AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'the subscription of node "%" does not exist', node USING ERRCODE = 'undefined_object';
  END IF;
  -- From now on tick() samples the table-sync workers (before, pg_subscription_rel still
  -- showed the tables as they were before the reinit). Errors count from here: a full reinit's
  -- subscription is a new one, and an apply error of before (a column the target lacked until
  -- schema_sync added it) is not this copy's.
  UPDATE steep_repl.init_progress p SET subscription_oid = v_sub, parallel_workers = reinit_copying.parallel_workers,
    options = pg_catalog.jsonb_set(p.options, '{reinit,error_base}', pg_catalog.to_jsonb(coalesce(
      (SELECT s.apply_error_count + s.sync_error_count FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = v_sub), 0))),
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now(),
    message = pg_catalog.format('copying %s table(s) again', p.tables_total)
  WHERE p.node = reinit_copying.node;
END
$$;
COMMENT ON FUNCTION steep_repl.start_reinit(text, jsonb) IS
  'Copies chosen tables ({"tables": [...]}), schemas ({"schemas": [...]}) or every replicated table ({"full": true}: a new subscription, as an automatic init with the node''s last options) of the local node again while the other tables keep replicating; "cascade": true adds tables referencing them; "schema_sync": "auto" first makes the replicated tables match the source''s (a DIVERGED node with schema drift must match). Validates first (22023, 42704, 42P01, 3F000, 2BP01, 42P16, 55000), creates nothing on error. Returns the reinit.start job id; watch steep_repl.init_progress.';

-- Snapshots carry the schema as a pg_dump archive and apply restores it with pg_restore: the
-- catalog-built DDL of a snapshot's tables is gone (schema_ddl keeps its own).
DROP FUNCTION steep_repl._snapshot_table_ddl(oid);
DROP FUNCTION steep_repl._snapshot_identity(oid, name, "char");

-- A snapshot carries the sequences owned by the partitioned parents of its partitions too.
CREATE OR REPLACE FUNCTION steep_repl._snapshot_sequences(opts jsonb)
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

-- ---- _remote_slot_lag is unused since the lag is read through steep_repl.init_source_reads.
DROP FUNCTION steep_repl._remote_slot_lag(text, text);

-- ---- row_hash (sql/70_row_hash.sql): the row hash of overlap analysis, merge and verification.
CREATE FUNCTION steep_repl.row_hash(r record) RETURNS bigint
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'steep_repl_row_hash';
COMMENT ON FUNCTION steep_repl.row_hash(record) IS
  'A 64-bit hash of every column''s binary send form in column order, NULL distinct from every value, the same whatever the session''s TimeZone, DateStyle, extra_float_digits, bytea_output or client_encoding: SELECT id, steep_repl.row_hash(t) FROM t.';
REVOKE ALL ON FUNCTION steep_repl.row_hash(record) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl.row_hash(record) TO steep_repl_admin, steep_repl_sidecar;

-- A sync/apply error counted while the init's source is unreachable (its crash or restart dropped a
-- worker's connection) is the source's outage: source_timeout decides, not the first error.
ALTER TABLE steep_repl.init_progress ADD COLUMN errors_forgiven bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN steep_repl.init_progress.errors_forgiven IS
  'The subscription''s sync + apply error count (pg_stat_subscription_stats) up to which errors were its source''s outage (a worker lost or could not open its connection while the source was unreachable): they fail the init only through source_timeout.';

COMMENT ON FUNCTION steep_repl._tick_init(steep_repl.init_progress, timestamptz) IS 'Internal: one progress sample and state step of one init.';

-- start_init records whether the init's publication is its own (none on the source yet, or made by the
-- failed attempt it retries), so a cancel of an init.start stopped before it subscribed drops it too.
COMMENT ON FUNCTION steep_repl.start_init(text, text, text, jsonb) IS
  'Starts initializing the local node target from source (copy_data = true subscription). Validates first (22023, 42704, 55000, 08001, 42P16, 42P01), creates nothing on error. Returns the init.start job id; watch steep_repl.init_progress.';

-- A manual init's exported snapshot whose holder died (its init.export job failed) is recorded lost
-- (init.snapshot_lost, snapshot_name cleared); prepare_init_export again for that unused slot replaces it.
CREATE OR REPLACE FUNCTION steep_repl._tick_expire_slots(now timestamptz) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  -- An exported snapshot lives as long as the sidecar session that holds it: once its init.export
  -- job ended without releasing it (the sidecar killed: the lease was reaped), it is gone. Say so
  -- (a failed job), so nobody waits on a snapshot that cannot be imported any more.
  FOR r IN SELECT i.slot_name, i.target_node, i.snapshot_name, j.id AS job, j.state, j.error
           FROM steep_repl.init_slots i JOIN steep_repl.jobs j ON j.id = i.export_job
           WHERE i.snapshot_name IS NOT NULL AND j.state IN ('succeeded', 'failed', 'cancelled')
           FOR UPDATE OF i SKIP LOCKED LOOP
    UPDATE steep_repl.init_slots i SET snapshot_name = NULL WHERE i.slot_name = r.slot_name;
    IF r.state = 'failed' THEN
      INSERT INTO steep_repl.events (node, event, detail)
      VALUES (r.target_node, 'init.snapshot_lost', pg_catalog.jsonb_build_object('slot', r.slot_name,
              'snapshot', r.snapshot_name, 'job', r.job, 'reason', coalesce(r.error, 'the export job failed'),
              'next', pg_catalog.format('a pg_dump that had already imported snapshot %s is unaffected: go on with complete_init; '
                                        'otherwise call prepare_init_export(%L, %L) again, which replaces slot %s',
                                        r.snapshot_name, r.target_node, r.slot_name, r.slot_name)));
    END IF;
  END LOOP;
  FOR r IN SELECT i.slot_name, i.target_node, i.expires_at FROM steep_repl.init_slots i
           WHERE i.expires_at < now AND i.used_at IS NULL AND i.dropped_at IS NULL
           FOR UPDATE SKIP LOCKED LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = r.slot_name AND s.active) THEN
      CONTINUE; -- in use right now: try again at the next tick
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = r.slot_name) THEN
      PERFORM pg_catalog.pg_drop_replication_slot(r.slot_name);
    END IF;
    UPDATE steep_repl.init_slots i SET dropped_at = now, drop_reason = pg_catalog.format('expired at %s unused', r.expires_at)
    WHERE i.slot_name = r.slot_name;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (r.target_node, 'init.slot_expired', pg_catalog.jsonb_build_object('slot', r.slot_name, 'expired_at', r.expires_at));
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_expire_slots(timestamptz) IS 'Internal: tick()''s drop of unused prepared slots past expiry, and of exported snapshots whose init.export job ended (init.snapshot_lost when it failed).';

CREATE OR REPLACE FUNCTION steep_repl.prepare_init_export(node text, slot_name text DEFAULT NULL,
  expires interval DEFAULT '7 days', hold interval DEFAULT '12 hours')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_slot text;
BEGIN
  PERFORM steep_repl._require('hold', hold);
  PERFORM steep_repl._require('node', node);
  -- Asking again for a slot whose exported snapshot was lost (init.snapshot_lost: its export job
  -- failed) and that nobody used is starting over: the old slot goes, a new one is made.
  v_slot := coalesce(slot_name, (steep_repl._init_names(node, steep_repl._local_node())).slot_name);
  IF EXISTS (SELECT 1 FROM steep_repl.init_slots i JOIN steep_repl.jobs j ON j.id = i.export_job
             WHERE i.slot_name = v_slot AND i.target_node = prepare_init_export.node AND i.used_at IS NULL
               AND i.dropped_at IS NULL AND j.state = 'failed') THEN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = v_slot AND s.active) THEN
      RAISE EXCEPTION 'replication slot "%" is in use', v_slot
        USING ERRCODE = 'object_in_use', HINT = 'Its exported snapshot was lost, but something streams from it: stop that first.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = v_slot) THEN
      PERFORM pg_catalog.pg_drop_replication_slot(v_slot);
    END IF;
    DELETE FROM steep_repl.init_slots i WHERE i.slot_name = v_slot;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (node, 'init.slot_replaced', pg_catalog.jsonb_build_object('slot', v_slot,
            'reason', 'its exported snapshot was lost; prepare_init_export asked for it again'));
  END IF;
  SELECT * INTO c FROM steep_repl._prepare_checks(node, slot_name, expires);
  IF hold <= interval '0' OR hold > expires OR hold > steep_repl._setting_interval('steep_repl.max_snapshot_hold') THEN
    RAISE EXCEPTION 'hold must be positive, at most expires and at most %', steep_repl._setting_interval('steep_repl.max_snapshot_hold')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The held snapshot keeps VACUUM from removing dead rows cluster-wide; a superuser may raise steep_repl.max_snapshot_hold.';
  END IF;
  -- Committed with this call, so the publication exists before the sidecar creates the slot.
  EXECUTE c.publication_sql;
  RETURN steep_repl.enqueue_job('init.export', pg_catalog.jsonb_build_object('node', node, 'slot', c.slot,
    'publication', c.publication, 'expires_seconds', extract(epoch FROM expires),
    'hold_seconds', extract(epoch FROM hold)), node, 1);
END
$$;
COMMENT ON FUNCTION steep_repl.prepare_init_export(text, text, interval, interval) IS
  'On the source, for seeding node from a logical dump: queues the sidecar job that creates the slot and holds its exported snapshot (init_slots.snapshot_name) for pg_dump --snapshot until release_init_snapshot or hold ends. Returns the job id.';

-- init_plan carries source_timeout (seconds): the sidecar retries a source that does not answer
-- during PREPARING for that long before the init fails (issue 15).
CREATE OR REPLACE FUNCTION steep_repl.init_plan(node text) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  v_tables jsonb;
BEGIN
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = init_plan.node;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('schema', t.schema_name, 'table', t.table_name)
                                       ORDER BY t.schema_name, t.table_name), '[]')
    INTO v_tables FROM steep_repl.init_tables t WHERE t.node = p.node;
  -- Names and tables only: the sidecar builds and quotes the DDL it runs (package api).
  RETURN pg_catalog.jsonb_build_object(
    'target', p.node, 'source', p.source_node, 'phase', p.phase,
    'source_conninfo', (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = p.source_node),
    'publication', p.publication, 'publication_created', p.publication_created,
    'subscription', p.subscription, 'slot_name', p.slot_name, 'subscription_oid', p.subscription_oid::bigint,
    'parallel', p.parallel_workers,
    'tables', v_tables,
    -- How long the sidecar retries a source that does not answer before the init fails.
    'source_timeout', extract(epoch FROM p.source_timeout),
    -- A reinit under way (start_reinit): whether its tables were emptied yet.
    'reinit', CASE WHEN p.phase = 'reinitializing' THEN p.options->'reinit' END);
END
$$;
COMMENT ON FUNCTION steep_repl.init_plan(text) IS
  'For the sidecar (superuser): what the init of node must create: source conninfo, publication, subscription, slot, and the tables to publish as [{schema, table}] (for a reinit: its tables, and reinit {truncated}), and source_timeout in seconds (how long it retries an unreachable source).';

-- ---- Comparing nodes (sql/71_compare.sql, sql/72_verify.sql): verify(), analyze_overlap() and the
-- "verify" option of start_init; _conninfo gains _conninfo_with for sessions with other server options.
CREATE FUNCTION steep_repl._conninfo_with(node text, server_options text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
  v_pin text[] := ARRAY['options=' || server_options,
                        'keepalives=1', 'keepalives_idle=10', 'keepalives_interval=5', 'keepalives_count=3'];
BEGIN
  IF server_options !~ '(^| )-csearch_path=pg_catalog( |$)' THEN
    RAISE EXCEPTION 'a peer session must pin search_path = pg_catalog' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT n.conninfo INTO v FROM steep_repl.nodes n WHERE n.name = node;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF v !~* 'connect_timeout' THEN
    v_pin := v_pin || 'connect_timeout=5'::text;
  END IF;
  -- Each pin is key=value; a URI takes them percent-encoded, a key/value string quoted.
  IF v ~ '^postgres(ql)?://' THEN
    RETURN v || CASE WHEN pg_catalog.strpos(v, '?') > 0 THEN '&' ELSE '?' END || pg_catalog.array_to_string(ARRAY(
      SELECT pg_catalog.split_part(x, '=', 1) || '=' || pg_catalog.replace(pg_catalog.replace(
               pg_catalog.substr(x, pg_catalog.strpos(x, '=') + 1), '=', '%3D'), ' ', '%20')
      FROM pg_catalog.unnest(v_pin) x), '&');
  END IF;
  RETURN v || ' ' || pg_catalog.array_to_string(ARRAY(
    SELECT pg_catalog.split_part(x, '=', 1) || '=''' || pg_catalog.substr(x, pg_catalog.strpos(x, '=') + 1) || ''''
    FROM pg_catalog.unnest(v_pin) x), ' ');
END
$$;
COMMENT ON FUNCTION steep_repl._conninfo_with(text, text) IS
  'Internal: a node''s conninfo for dblink with the given server options (-c settings, search_path = pg_catalog required), keepalives and (when absent) connect_timeout=5 forced.';

CREATE OR REPLACE FUNCTION steep_repl._conninfo(node text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._conninfo_with(node, '-csearch_path=pg_catalog -cstatement_timeout=60000');
$$;
-- Comparing two nodes by primary key and row_hash: only keys and 8-byte hashes cross the
-- network. analyze_overlap() counts how two populated nodes' rows overlap; verify() proves a
-- replicating node equal to its source, reading again a row seen differing while a write load
-- replicates until it settles.

-- A table compared between nodes, with its primary key columns and their types.
CREATE TYPE steep_repl.compare_table AS (
  relid regclass, schema_name text, table_name text, key_cols text[], key_types text[]);
COMMENT ON TYPE steep_repl.compare_table IS 'Internal: a table in the scope of a comparison, with its primary key.';

-- The tables in scope (all user tables, or the named ones), each with a primary key and
-- readable in full by as_role (who asked); anything else is refused, naming every table at fault.
CREATE FUNCTION steep_repl._compare_scope(tables text[], as_role regrole) RETURNS SETOF steep_repl.compare_table
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_caller regrole := as_role;
  v_scope steep_repl.compare_table[];
  v_bad text;
BEGIN
  IF tables IS NOT NULL THEN
    SELECT pg_catalog.string_agg(x, ', ' ORDER BY x) INTO v_bad FROM pg_catalog.unnest(tables) x
    WHERE NOT EXISTS (SELECT 1 FROM steep_repl._local_tables() l
                      WHERE x = l.schema_name || '.' || l.table_name OR (l.schema_name = 'public' AND x = l.table_name));
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'no such table on this node: %', v_bad USING ERRCODE = 'undefined_table',
        HINT = 'Names as stored, without quotes: "public.orders", "My Schema.Odd Table"; a bare name means schema public.';
    END IF;
  END IF;
  v_scope := ARRAY(
    SELECT ROW(l.relid::oid::regclass, l.schema_name, l.table_name,
               ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i
                     CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = l.relid::oid AND i.indisprimary ORDER BY k.ord),
               ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_index i
                     CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = l.relid::oid AND i.indisprimary ORDER BY k.ord))::steep_repl.compare_table
    FROM steep_repl._local_tables() l
    WHERE tables IS NULL OR l.schema_name || '.' || l.table_name = ANY (tables)
       OR (l.schema_name = 'public' AND l.table_name = ANY (tables))
    ORDER BY l.schema_name, l.table_name);

  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ') INTO v_bad
  FROM pg_catalog.unnest(v_scope) s WHERE pg_catalog.cardinality(s.key_cols) = 0;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables without a primary key cannot be compared row by row: %', v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add a primary key to each, or leave them out with the tables argument.';
  END IF;
  -- The hashes are read as the extension's owner: the caller must be able to read every row
  -- of every table itself, or the keys returned would tell it what it may not see.
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ') INTO v_bad
  FROM pg_catalog.unnest(v_scope) s JOIN pg_catalog.pg_class c ON c.oid = s.relid
  WHERE NOT pg_catalog.has_table_privilege(v_caller, s.relid, 'SELECT')
     OR (c.relrowsecurity AND c.relowner <> v_caller
         AND NOT (SELECT r.rolbypassrls OR r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = v_caller));
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'permission denied to compare %', v_bad USING ERRCODE = 'insufficient_privilege',
      HINT = pg_catalog.format('Role %s needs SELECT on every row of each (row-level security included).', v_caller);
  END IF;
  RETURN QUERY SELECT * FROM pg_catalog.unnest(v_scope);
END
$$;
COMMENT ON FUNCTION steep_repl._compare_scope(text[], regrole) IS
  'Internal: the tables of a comparison (all, or the named ones), refusing unknown ones (42P01), ones without a primary key (55000) and ones as_role cannot read in full (42501).';

-- The query that reads key (as jsonb text) and row_hash of a table's rows, run the same on both
-- nodes; with keys (a jsonb array of key objects), of those rows only. Everything qualified:
-- on the peer it runs with search_path = pg_catalog.
CREATE FUNCTION steep_repl._compare_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SELECT pg_catalog.jsonb_build_object(%s)::pg_catalog.text, steep_repl.row_hash(r.*) FROM %I.%I r',
           (SELECT pg_catalog.string_agg(pg_catalog.format('%L, r.%I', c, c), ', ' ORDER BY o)
            FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           t.schema_name, t.table_name)
      || CASE WHEN keys IS NULL THEN '' ELSE pg_catalog.format(
           ' WHERE (%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset(%L::pg_catalog.jsonb) AS k(%s))',
           (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           keys::text,
           (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
            FROM ROWS FROM (pg_catalog.unnest(t.key_cols), pg_catalog.unnest(t.key_types)) WITH ORDINALITY x(c, ty, o))) END;
$$;
COMMENT ON FUNCTION steep_repl._compare_sql(steep_repl.compare_table, jsonb) IS
  'Internal: SELECT key, row_hash of a table''s rows (or of the given keys), for both nodes of a comparison.';

-- A peer's conninfo for reading hashes: the pins of _conninfo with a statement timeout of the
-- caller's choosing (hashing a large table takes longer than 60 s) and the settings the keys
-- are printed under.
CREATE FUNCTION steep_repl._compare_conninfo(peer text, timeout_s integer) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._conninfo_with(peer, pg_catalog.format(
    '-csearch_path=pg_catalog -cstatement_timeout=%s -cTimeZone=UTC -cDateStyle=ISO -cIntervalStyle=postgres -cextra_float_digits=1 -cbytea_output=hex',
    timeout_s::bigint * 1000));
$$;
COMMENT ON FUNCTION steep_repl._compare_conninfo(text, integer) IS
  'Internal: a peer''s conninfo for a comparison: _conninfo''s pins, the given statement timeout, and fixed TimeZone, DateStyle, IntervalStyle, extra_float_digits and bytea_output.';

-- A comparison needs row_hash on the peer too.
CREATE FUNCTION steep_repl._compare_check_peer(peer text, conn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v boolean;
BEGIN
  IF peer = steep_repl._local_node() THEN
    RAISE EXCEPTION 'node % is this node: compare it with another one', peer USING ERRCODE = 'invalid_parameter_value';
  END IF;
  EXECUTE pg_catalog.format('SELECT ok FROM %I.dblink($1, $2) AS t(ok boolean)', steep_repl._dblink_schema()) INTO v
    USING conn, 'SELECT pg_catalog.to_regprocedure(''steep_repl.row_hash(record)'') IS NOT NULL';
  IF NOT v THEN
    RAISE EXCEPTION 'node % has no steep_repl.row_hash (its steep_repl is older than 1.1)', peer
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('ALTER EXTENSION steep_repl UPDATE on node %s.', peer);
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._compare_check_peer(text, text) IS 'Internal: 22023 for this node itself, 55000 unless the peer has row_hash.';

-- key text -> row_hash of a table's rows on the peer (only those of keys when given), and the
-- peer's WAL position read in the same statement: every commit the read saw is before it.
CREATE FUNCTION steep_repl._compare_peer_read(conn text, t steep_repl.compare_table, keys jsonb,
  OUT hashes jsonb, OUT lsn pg_lsn)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_object_agg(k, h) FILTER (WHERE k IS NOT NULL), ''{}''),
            ''0/0''::pg_catalog.pg_lsn + pg_catalog.max(h) FILTER (WHERE k IS NULL)
     FROM %I.dblink($1, $2) AS t(k text, h bigint)', steep_repl._dblink_schema())
    INTO hashes, lsn
    USING conn, 'SELECT NULL::pg_catalog.text, (pg_catalog.pg_current_wal_lsn() OPERATOR(pg_catalog.-) ''0/0''::pg_catalog.pg_lsn)::pg_catalog.int8 UNION ALL '
                || steep_repl._compare_sql(t, keys);
END
$$;
COMMENT ON FUNCTION steep_repl._compare_peer_read(text, steep_repl.compare_table, jsonb) IS
  'Internal: key -> row_hash of a table''s rows on the peer (of keys only when given), with the peer''s WAL position after the read''s snapshot.';

CREATE FUNCTION steep_repl._compare_local_read(t steep_repl.compare_table, keys jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
BEGIN
  EXECUTE 'SELECT coalesce(pg_catalog.jsonb_object_agg(k, h), ''{}'') FROM (' || steep_repl._compare_sql(t, keys) || ') x(k, h)' INTO v;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._compare_local_read(steep_repl.compare_table, jsonb) IS 'Internal: key -> row_hash of a table''s rows here (of keys only when given).';

-- Every row of a table here and on the peer in one pass: the peer's rows stream through dblink
-- into a hash join with the local ones (k, lh, ph; a hash is NULL where its side lacks the row).
-- $1 is the peer's conninfo, $2 the same query for the peer.
CREATE FUNCTION steep_repl._compare_join_sql(t steep_repl.compare_table) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
    'SELECT coalesce(l.k, p.k) AS k, l.h AS lh, p.h AS ph FROM (%s) l(k, h) FULL JOIN %I.dblink($1, $2) AS p(k text, h bigint) ON l.k = p.k',
    steep_repl._compare_sql(t), steep_repl._dblink_schema());
$$;
COMMENT ON FUNCTION steep_repl._compare_join_sql(steep_repl.compare_table) IS
  'Internal: the full join of a table''s keys and row hashes here and on the peer (through dblink: $1 conninfo, $2 the peer''s query).';

-- The rows of a table whose hash differs between here and the peer.
CREATE FUNCTION steep_repl._compare_pass(conn text, t steep_repl.compare_table,
  OUT key text, OUT local_hash bigint, OUT peer_hash bigint) RETURNS SETOF record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE 'SELECT j.k, j.lh, j.ph FROM (' || steep_repl._compare_join_sql(t) || ') j WHERE j.lh IS DISTINCT FROM j.ph'
    USING conn, steep_repl._compare_sql(t);
END
$$;
COMMENT ON FUNCTION steep_repl._compare_pass(text, steep_repl.compare_table) IS
  'Internal: the rows of a table whose row_hash differs between here and the peer (NULL: the side lacks the row).';

-- verify(): this node equals the peer it replicates from, row by row; analyze_overlap(): how two
-- populated nodes' rows overlap (sql/71_compare.sql reads the hashes).

-- Whether this node has applied everything the peer committed up to lsn: its subscription's
-- origin has reached it, or (the peer being idle since) the peer's slot says the subscriber
-- confirmed it (an idle subscriber confirms all it received once it has applied it). Polled
-- until timeout; true at once when this node does not subscribe from the peer.
CREATE FUNCTION steep_repl._verify_caught_up(peer text, conn text, lsn pg_lsn, timeout interval) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sub record;
  v_deadline timestamptz := pg_catalog.clock_timestamp() + timeout;
  v_flush pg_lsn;
BEGIN
  SELECT s.oid, s.subslotname INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
    AND s.subname = (steep_repl._init_names(steep_repl._local_node(), peer)).subscription;
  IF NOT FOUND THEN
    RETURN true;
  END IF;
  LOOP
    IF pg_catalog.pg_replication_origin_progress('pg_' || v_sub.oid, true) >= lsn THEN
      RETURN true;
    END IF;
    EXECUTE pg_catalog.format('SELECT f FROM %I.dblink($1, $2) AS t(f pg_lsn)', steep_repl._dblink_schema()) INTO v_flush
      USING conn, pg_catalog.format('SELECT s.confirmed_flush_lsn FROM pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) %L',
                                    v_sub.subslotname);
    IF v_flush >= lsn THEN
      RETURN true;
    END IF;
    IF pg_catalog.clock_timestamp() > v_deadline THEN
      RETURN false;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._verify_caught_up(text, text, pg_lsn, interval) IS
  'Internal: whether this node applied the peer''s WAL up to lsn within timeout (true when it does not subscribe from the peer).';

-- Settles the rows of one table seen differing in a first pass. Each round reads the peer (S1,
-- with its WAL position), waits until this node has applied past it, reads here (T), reads the
-- peer again (S2). T equal to S1 or S2: replication was only behind or ahead. S1 = S2 <> T: the
-- peer's row did not change while this node, past S1's position, held another: a real
-- difference. Otherwise the peer's row changed meanwhile: another round, from S2.
CREATE FUNCTION steep_repl._verify_settle(peer text, conn text, t steep_repl.compare_table, candidates text[],
  rounds integer, catch_up interval, OUT key text, OUT kind text) RETURNS SETOF record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_keys text[] := candidates;
  v_s1 jsonb;
  v_s2 jsonb;
  v_t jsonb;
  v_lsn pg_lsn;
  v_lsn2 pg_lsn;
  v_round integer := 0;
  v_arg jsonb;
BEGIN
  WHILE pg_catalog.cardinality(v_keys) > 0 LOOP
    v_arg := (SELECT pg_catalog.jsonb_agg(k::jsonb) FROM pg_catalog.unnest(v_keys) k);
    IF v_s2 IS NULL THEN
      SELECT r.hashes, r.lsn INTO v_s1, v_lsn FROM steep_repl._compare_peer_read(conn, t, v_arg) r;
    ELSE
      v_s1 := v_s2;
      v_lsn := v_lsn2;
    END IF;
    IF v_round >= rounds THEN
      RETURN QUERY SELECT k, 'unsettled'::text FROM pg_catalog.unnest(v_keys) k;
      RETURN;
    END IF;
    v_round := v_round + 1;
    IF NOT steep_repl._verify_caught_up(peer, conn, v_lsn, catch_up) THEN
      RAISE EXCEPTION 'this node did not apply node %''s changes up to % within %', peer, v_lsn, catch_up
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Replication is behind or stopped: see pg_stat_subscription; or give more time with {"catch_up_timeout": seconds}.';
    END IF;
    v_t := steep_repl._compare_local_read(t, v_arg);
    SELECT r.hashes, r.lsn INTO v_s2, v_lsn2 FROM steep_repl._compare_peer_read(conn, t, v_arg) r;
    RETURN QUERY
      SELECT k, CASE WHEN v_s2->k IS NULL THEN 'extra' WHEN v_t->k IS NULL THEN 'missing' ELSE 'differs' END
      FROM pg_catalog.unnest(v_keys) k
      WHERE v_s1->k IS NOT DISTINCT FROM v_s2->k
        AND v_t->k IS DISTINCT FROM v_s1->k;
    v_keys := ARRAY(SELECT k FROM pg_catalog.unnest(v_keys) k
                    WHERE v_s1->k IS DISTINCT FROM v_s2->k
                      AND v_t->k IS DISTINCT FROM v_s1->k AND v_t->k IS DISTINCT FROM v_s2->k);
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._verify_settle(text, text, steep_repl.compare_table, text[], integer, interval) IS
  'Internal: which of a table''s rows seen differing really differ, re-read until the peer''s row held still while this node caught up past it.';

-- verify() for as_role: the tables are read as the extension's owner, as_role must be able to read them.
CREATE FUNCTION steep_repl._verify(peer text, tables text[], options jsonb, as_role regrole)
RETURNS TABLE (schema_name text, table_name text, key jsonb, kind text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_rounds integer;
  v_catch_up integer;
  v_timeout integer;
  v_conn text;
  v_t steep_repl.compare_table;
  v_started timestamptz := pg_catalog.clock_timestamp();
  v_cand text[];
  v_found bigint := 0;
  v_unsettled bigint := 0;
  v_tables integer := 0;
  v_bad text;
  r record;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  options := coalesce(options, '{}');
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT pg_catalog.string_agg(k, ', ') INTO v_bad FROM pg_catalog.jsonb_object_keys(options) k
  WHERE k <> ALL (ARRAY['rounds', 'catch_up_timeout', 'statement_timeout']);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'unknown verify option: %', v_bad USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Options: rounds, catch_up_timeout, statement_timeout.';
  END IF;
  v_rounds := steep_repl._int_option(options, 'rounds', 10, 1, 100,
    'rounds is how many times a row seen differing is read again while the peer keeps changing it (1 to 100, default 10).');
  v_catch_up := steep_repl._int_option(options, 'catch_up_timeout', 60, 1, 3600,
    'catch_up_timeout is the number of seconds to wait for this node to apply the peer''s changes before a re-read (1 to 3600, default 60).');
  v_timeout := steep_repl._int_option(options, 'statement_timeout', 3600, 1, 86400,
    'statement_timeout is the number of seconds one read of a table on the peer may take (1 to 86400, default 3600).');
  IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'verify needs a new snapshot for each re-read' USING ERRCODE = 'invalid_transaction_state',
      HINT = 'Run it outside a REPEATABLE READ or SERIALIZABLE transaction.';
  END IF;
  v_conn := steep_repl._compare_conninfo(peer, v_timeout);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);

  FOR v_t IN SELECT * FROM steep_repl._compare_scope(tables, as_role) LOOP
    v_tables := v_tables + 1;
    v_cand := ARRAY(SELECT p.key FROM steep_repl._compare_pass(v_conn, v_t) p);
    CONTINUE WHEN pg_catalog.cardinality(v_cand) = 0;
    FOR r IN SELECT * FROM steep_repl._verify_settle(peer, v_conn, v_t, v_cand, v_rounds,
                                                     pg_catalog.make_interval(secs => v_catch_up)) LOOP
      IF r.kind = 'unsettled' THEN
        v_unsettled := v_unsettled + 1;
      ELSE
        v_found := v_found + 1;
      END IF;
      schema_name := v_t.schema_name;
      table_name := v_t.table_name;
      key := r.key::jsonb;
      kind := r.kind;
      RETURN NEXT;
    END LOOP;
  END LOOP;
  IF v_unsettled > 0 THEN
    RAISE WARNING '% row(s) kept changing on node % through % re-reads and were not settled', v_unsettled, peer, v_rounds
      USING HINT = 'They are listed with kind ''unsettled''; verify them again, or with more {"rounds": n}.';
  END IF;
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (steep_repl._local_node(), 'verify.done', pg_catalog.jsonb_build_object('peer', peer, 'tables', v_tables,
          'differences', v_found, 'unsettled', v_unsettled, 'requested_by', as_role::text,
          'seconds', pg_catalog.round(extract(epoch FROM pg_catalog.clock_timestamp() - v_started)::numeric, 3)));
END
$$;
COMMENT ON FUNCTION steep_repl._verify(text, text[], jsonb, regrole) IS
  'Internal: verify() on behalf of as_role.';

CREATE FUNCTION steep_repl.verify(peer text, tables text[] DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS TABLE (schema_name text, table_name text, key jsonb, kind text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT * FROM steep_repl._verify(peer, tables, options, steep_repl._caller());
$$;
COMMENT ON FUNCTION steep_repl.verify(text, text[], jsonb) IS
  'Whether this node holds the same rows as peer (the node it replicates from), by primary key and row_hash: one row per real difference (missing here, extra here, differs), none when equal. Rows seen differing under a write load are read again until settled.';

-- The rows of the last analyze_overlap of each peer and table that are not identical.
CREATE TABLE steep_repl.overlap_rows (
  peer        text NOT NULL,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  key         jsonb NOT NULL,
  category    text NOT NULL CHECK (category IN ('conflicting', 'local_only', 'peer_only')),
  local_hash  bigint,
  peer_hash   bigint,
  analyzed_at timestamptz NOT NULL,
  PRIMARY KEY (peer, schema_name, table_name, key)
);
COMMENT ON TABLE steep_repl.overlap_rows IS
  'The keys of the last steep_repl.analyze_overlap() of each peer and table whose rows are not identical on both nodes.';

CREATE FUNCTION steep_repl.analyze_overlap(peer text, tables text[] DEFAULT NULL)
RETURNS TABLE (schema_name text, table_name text, identical bigint, conflicting bigint, local_only bigint, peer_only bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_conn text;
  v_t steep_repl.compare_table;
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_kept bigint;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  v_conn := steep_repl._compare_conninfo(peer, 3600);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);
  FOR v_t IN SELECT * FROM steep_repl._compare_scope(tables, steep_repl._caller()) LOOP
    DELETE FROM steep_repl.overlap_rows o
    WHERE o.peer = analyze_overlap.peer AND o.schema_name = v_t.schema_name AND o.table_name = v_t.table_name;
    -- One pass: the counts and the keys of what is not identical come from the same join.
    EXECUTE 'WITH j AS (' || steep_repl._compare_join_sql(v_t) || '),
      kept AS (INSERT INTO steep_repl.overlap_rows (peer, schema_name, table_name, key, category, local_hash, peer_hash, analyzed_at)
               SELECT $3, $4, $5, j.k::pg_catalog.jsonb,
                      CASE WHEN j.lh IS NULL THEN ''peer_only'' WHEN j.ph IS NULL THEN ''local_only'' ELSE ''conflicting'' END,
                      j.lh, j.ph, $6
               FROM j WHERE j.lh IS DISTINCT FROM j.ph RETURNING 1)
      SELECT count(*) FILTER (WHERE j.lh = j.ph), count(*) FILTER (WHERE j.lh <> j.ph),
             count(*) FILTER (WHERE j.ph IS NULL), count(*) FILTER (WHERE j.lh IS NULL), (SELECT count(*) FROM kept)
      FROM j'
      INTO identical, conflicting, local_only, peer_only, v_kept
      USING v_conn, steep_repl._compare_sql(v_t), peer, v_t.schema_name, v_t.table_name, v_now;
    schema_name := v_t.schema_name;
    table_name := v_t.table_name;
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl.analyze_overlap(text, text[]) IS
  'How the rows of this node and peer overlap, per table: identical, conflicting (same key, other row), local_only, peer_only; the keys of all but identical rows are in steep_repl.overlap_rows. Only keys and row hashes cross the network.';

-- The verification an init asked for ("verify": true), run by the sidecar's init.verify job once
-- the node is SYNCHRONIZED: its tables against its source, as the role that started it; the
-- outcome is the event init.verified (the first 100 differences in its detail).
CREATE FUNCTION steep_repl.init_verify(node text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  v_state text;
  v_detail jsonb;
BEGIN
  SELECT ip.* INTO p FROM steep_repl.init_progress ip WHERE ip.node = init_verify.node;
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_verify.node;
  IF NOT FOUND OR p.node IS NULL OR v_state <> 'synchronized' OR p.options->>'verify_as' IS NULL THEN
    RETURN pg_catalog.jsonb_build_object('skipped', pg_catalog.format('node %s has no synchronized init to verify (%s)', node, coalesce(v_state, 'unknown')));
  END IF;
  WITH d AS (
    SELECT * FROM steep_repl._verify(p.source_node,
      ARRAY(SELECT t.schema_name || '.' || t.table_name FROM steep_repl.init_tables t WHERE t.node = p.node),
      '{}', (p.options->>'verify_as')::regrole))
  SELECT pg_catalog.jsonb_build_object('source', p.source_node,
           'differences', count(*) FILTER (WHERE d.kind <> 'unsettled'), 'unsettled', count(*) FILTER (WHERE d.kind = 'unsettled'),
           'rows', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)) FROM (SELECT * FROM d LIMIT 100) x), '[]'))
    INTO v_detail FROM d;
  INSERT INTO steep_repl.events (node, event, detail) VALUES (node, 'init.verified', v_detail);
  RETURN v_detail;
END
$$;
COMMENT ON FUNCTION steep_repl.init_verify(text) IS
  'Sidecar: the verification a SYNCHRONIZED init asked for with "verify": true, recorded as the event init.verified.';
GRANT EXECUTE ON FUNCTION steep_repl.init_verify(text) TO steep_repl_sidecar;

GRANT EXECUTE ON FUNCTION steep_repl.verify(text, text[], jsonb), steep_repl.analyze_overlap(text, text[]) TO steep_repl_admin;
GRANT SELECT ON steep_repl.overlap_rows TO steep_repl_admin;

CREATE OR REPLACE FUNCTION steep_repl._init_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k text;
  v_parallel int;
  v_known text[] := ARRAY['parallel', 'schema_sync', 'confirm', 'tables', 'schemas', 'force', 'lag_threshold',
                          'stall_timeout', 'source_timeout', 'large_table_threshold', 'verify'];
BEGIN
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
    IF NOT k = ANY (v_known) THEN
      RAISE EXCEPTION 'unknown init option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: ' || pg_catalog.array_to_string(v_known, ', ') || '.';
    END IF;
  END LOOP;
  v_parallel := steep_repl._int_option(options, 'parallel', 4, 1, 16, 'parallel is the number of tables copied at once (default 4).');
  IF options ? 'confirm' AND pg_catalog.jsonb_typeof(options->'confirm') <> 'boolean' THEN
    RAISE EXCEPTION 'confirm must be true or false' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'confirm => true lets schema_sync manual go on despite schema differences.';
  END IF;
  PERFORM steep_repl._check_scope_options(options);
  IF options ? 'force' AND pg_catalog.jsonb_typeof(options->'force') <> 'boolean' THEN
    RAISE EXCEPTION 'force must be true or false' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF options ? 'verify' AND pg_catalog.jsonb_typeof(options->'verify') <> 'boolean' THEN
    RAISE EXCEPTION 'verify must be true or false' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'verify => true compares every row with the source (steep_repl.verify) once the node is SYNCHRONIZED.';
  END IF;
  RETURN pg_catalog.jsonb_build_object(
    -- The verification at the end reads the tables as the role that asked for the init.
    'verify', coalesce((options->>'verify')::boolean, false),
    'verify_as', CASE WHEN (options->>'verify')::boolean THEN steep_repl._caller()::text END,
    'parallel', v_parallel,
    'schema_sync', steep_repl._sync_mode(options->>'schema_sync'),  -- 22023 unless strict | auto | manual
    'confirm', coalesce((options->>'confirm')::boolean, false),
    'tables', coalesce(options->'tables', 'null'::jsonb),
    'schemas', coalesce(options->'schemas', 'null'::jsonb),
    'force', coalesce((options->>'force')::boolean, false),
    -- A negative threshold could never be met: the init would stay CATCHING_UP forever.
    'lag_threshold', steep_repl._int_option(options, 'lag_threshold', 1048576, 0, 1099511627776,
      'lag_threshold is the apply lag in bytes under which the node is SYNCHRONIZED (default 1048576, at most 1 TiB).'),
    'stall_timeout', steep_repl._num_option(options, 'stall_timeout', 60, 1, 604800,
      'stall_timeout is the number of seconds without copy progress before init.stalled is raised (default 60, at most a week).'),
    'source_timeout', steep_repl._num_option(options, 'source_timeout', 60, 1, 604800,
      'source_timeout is the number of seconds the source may be unreachable before the init fails (default 60, at most a week).'),
    'large_table_threshold', steep_repl._int_option(options, 'large_table_threshold', 10737418240, 0, 9223372036854775807,
      'large_table_threshold is the size in bytes above which a table is listed as large (default 10 GiB).'));
END
$$;
REVOKE ALL ON FUNCTION steep_repl._conninfo_with(text, text), steep_repl._compare_scope(text[],  regrole), steep_repl._compare_sql(steep_repl.compare_table,  jsonb), steep_repl._compare_conninfo(text,  integer), steep_repl._compare_check_peer(text,  text), steep_repl._compare_peer_read(text,  steep_repl.compare_table,  jsonb), steep_repl._compare_local_read(steep_repl.compare_table,  jsonb), steep_repl._compare_join_sql(steep_repl.compare_table), steep_repl._compare_pass(text,  steep_repl.compare_table), steep_repl._verify_caught_up(text,  text,  pg_lsn,  interval), steep_repl._verify_settle(text,  text,  steep_repl.compare_table,  text[],  integer,  interval), steep_repl._verify(text,  text[],  jsonb,  regrole), steep_repl.verify(text,  text[],  jsonb), steep_repl.analyze_overlap(text,  text[]), steep_repl.init_verify(text) FROM PUBLIC;
REVOKE ALL ON steep_repl.overlap_rows FROM PUBLIC;

-- ---- Snapshot apply restores the schema as the role that asked for it (pg_restore --role), the
-- owners and grants of the snapshot with keep_owner (superuser only).
ALTER TABLE steep_repl.snapshot_applies ADD COLUMN requested_by regrole;
COMMENT ON COLUMN steep_repl.snapshot_applies.requested_by IS
  'The role that called apply_snapshot (or start_init two_phase): pg_restore restores the schema as it (--role). NULL for an apply queued before 1.1: restored as the sidecar''s role.';
CREATE OR REPLACE FUNCTION steep_repl._snapshot_apply_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tol bigint;
BEGIN
  PERFORM steep_repl._snapshot_check_options(options,
    ARRAY['parallel', 'subscribe', 'error_tolerance', 'truncate', 'lag_threshold', 'max_rate', 'keep_owner'], 'apply');
  v_tol := steep_repl._snapshot_int_option(options, 'error_tolerance', 0, 0, 9223372036854775807,
             'error_tolerance is how many malformed rows per table may be skipped (0: fail on the first).');
  IF v_tol > 0 AND pg_catalog.current_setting('server_version_num')::int < 170000 THEN
    RAISE EXCEPTION 'error_tolerance needs PostgreSQL 17 or later (COPY ON_ERROR); this server is %',
        pg_catalog.current_setting('server_version')
      USING ERRCODE = 'feature_not_supported', HINT = 'Apply without error_tolerance, or on a newer server.';
  END IF;
  RETURN pg_catalog.jsonb_build_object(
    'parallel', steep_repl._snapshot_int_option(options, 'parallel', 4, 1, 16, 'parallel is the number of tables loaded at once.'),
    'subscribe', steep_repl._snapshot_bool_option(options, 'subscribe'),
    'error_tolerance', v_tol,
    'truncate', steep_repl._snapshot_bool_option(options, 'truncate'),
    'lag_threshold', steep_repl._snapshot_int_option(options, 'lag_threshold', 1048576, 0, 9223372036854775807, 'bytes'),
    'max_rate', steep_repl._max_rate_option(options),
    'keep_owner', steep_repl._snapshot_bool_option(options, 'keep_owner'));
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._snapshot_queue_apply(path text, opts jsonb, kind text, args jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_node text;
  v_state text;
  v_apply bigint;
  v_job bigint;
BEGIN
  -- keep_owner restores the snapshot's owners and grants: pg_restore then creates objects owned
  -- by any role, which only a superuser may ask for (the restore runs as the caller, --role).
  IF (opts->>'keep_owner')::boolean
     AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = steep_repl._caller()) THEN
    RAISE EXCEPTION 'permission denied to apply a snapshot with keep_owner'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'keep_owner restores the original owner and grants of every object, which only a superuser may do.',
            HINT = 'Apply without keep_owner (the restored objects are then owned by the role that asks for the apply), or ask a superuser to apply it.';
  END IF;
  SELECT n.name, n.init_state INTO v_node, v_state FROM steep_repl.nodes n WHERE n.is_local FOR UPDATE;
  -- An apply whose job ended without recording it (a sidecar killed on its last attempt) is not active.
  IF EXISTS (SELECT 1 FROM steep_repl.snapshot_applies a JOIN steep_repl.jobs j ON j.id = a.job_id
             WHERE a.state IN ('queued', 'applying') AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'a snapshot apply is already queued or running on this node'
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.list_snapshots()) or cancel its job.';
  END IF;
  IF (opts->>'subscribe')::boolean THEN
    v_node := steep_repl._local_node();
    IF v_state NOT IN ('uninitialized', 'failed') THEN
      RAISE EXCEPTION 'node "%" already has an init in state %', v_node, pg_catalog.upper(v_state)
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = pg_catalog.format('A subscribing apply initializes the node: cancel the current init first (SELECT steep_repl.cancel_init(%L)).', v_node);
    END IF;
    DELETE FROM steep_repl.init_progress p WHERE p.node = v_node;
    PERFORM steep_repl.transition(v_node, 'preparing', pg_catalog.format('apply_snapshot %s', path));
  END IF;
  -- The caller, recorded here by the API itself (operators cannot write the table): the sidecar
  -- restores the schema as this role, never one the caller could not act as.
  INSERT INTO steep_repl.snapshot_applies (path, options, requested_by) VALUES (path, opts, steep_repl._caller())
  RETURNING id INTO v_apply;
  v_job := steep_repl.enqueue_job(kind, args || pg_catalog.jsonb_build_object('apply_id', v_apply), v_node, 3);
  UPDATE steep_repl.snapshot_applies a SET job_id = v_job WHERE a.id = v_apply;
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl.apply_snapshot(text, jsonb) IS
  'Queues loading the snapshot in directory path (on this node''s host) into this node and returns the job id (the snapshot id is in the manifest, which only the sidecar reads). Options: parallel (1-16), subscribe, error_tolerance (rows per table, PostgreSQL 17+), truncate, lag_threshold, max_rate (bytes/s per worker), keep_owner (superuser: restore the original owners and grants). The schema is restored as the calling role. Watch steep_repl.snapshot_progress.';

-- _tick_source_read: an unreachable source is read again after as long as it had been unreachable
-- at the last read (5 s to 30 s), not after now - unreachable_since, which always exceeded the time
-- since the read and so read it only every 30 s: a source back after a short outage was seen late.
CREATE OR REPLACE FUNCTION steep_repl._tick_source_read(p steep_repl.init_progress, now timestamptz,
  OUT fresh boolean, OUT reachable boolean, OUT lag_bytes bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c steep_repl.init_source_reads;
  v_received pg_lsn;
  v_read record;
  v_gap interval := steep_repl._source_read_interval();
  v_started timestamptz;
BEGIN
  SELECT s.received_lsn INTO v_received FROM pg_catalog.pg_stat_subscription s
  WHERE s.subid = p.subscription_oid AND s.relid IS NULL AND s.leader_pid IS NULL;
  SELECT * INTO c FROM steep_repl.init_source_reads r WHERE r.node = p.node;
  -- A source that does not answer is read less and less often (each try may cost the whole
  -- bound): after as long as it had been unreachable at the last read, 30 s at most (measured
  -- to now, the gap would always exceed the time since the read: one read every 30 s).
  IF c.error IS NOT NULL AND p.source_unreachable_since IS NOT NULL THEN
    v_gap := least(interval '30 seconds', greatest(v_gap, c.read_at - p.source_unreachable_since));
  END IF;
  IF FOUND AND c.read_at <= now AND now - c.read_at < v_gap THEN
    fresh := false;
    reachable := p.source_unreachable_since IS NULL;
    -- greatest() skips NULLs: no lag read (no slot, no answer) stays NULL.
    lag_bytes := CASE WHEN c.source_lsn IS NOT NULL AND c.confirmed_flush_lsn IS NOT NULL THEN
                   greatest(0, pg_catalog.pg_wal_lsn_diff(c.source_lsn, c.confirmed_flush_lsn)
                               - greatest(0, coalesce(pg_catalog.pg_wal_lsn_diff(v_received, c.received_lsn), 0)))::bigint END;
    RETURN;
  END IF;

  v_started := pg_catalog.clock_timestamp();
  SELECT * INTO v_read FROM steep_repl._source_read_remote(p.source_node, p.slot_name);
  -- read_at is when the read ended, on the tick's clock: the next one is due a gap after it.
  INSERT INTO steep_repl.init_source_reads AS r (node, read_at, source_lsn, confirmed_flush_lsn, received_lsn, error)
  VALUES (p.node, now + (pg_catalog.clock_timestamp() - v_started), v_read.source_lsn, v_read.confirmed_flush_lsn,
          v_received, v_read.error)
  ON CONFLICT ON CONSTRAINT init_source_reads_pkey DO UPDATE SET read_at = excluded.read_at,
    source_lsn = excluded.source_lsn, confirmed_flush_lsn = excluded.confirmed_flush_lsn,
    received_lsn = excluded.received_lsn, error = excluded.error;
  fresh := true;
  IF v_read.error IS NULL THEN
    IF p.source_unreachable_since IS NOT NULL THEN
      UPDATE steep_repl.init_progress ip SET source_unreachable_since = NULL WHERE ip.node = p.node;
    END IF;
    reachable := true;
    lag_bytes := pg_catalog.pg_wal_lsn_diff(v_read.source_lsn, v_read.confirmed_flush_lsn)::bigint;
    RETURN;
  END IF;
  reachable := false;
  IF p.source_unreachable_since IS NULL THEN
    UPDATE steep_repl.init_progress ip SET source_unreachable_since = now,
      message = pg_catalog.format('source node %s unreachable: %s', p.source_node, v_read.error)
    WHERE ip.node = p.node;
  ELSIF now - p.source_unreachable_since > p.source_timeout THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('source node %s unreachable for more than %s: %s',
                                                            p.source_node, p.source_timeout, v_read.error));
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_source_read(steep_repl.init_progress, timestamptz) IS
  'Internal: is the source of an init reachable, and its slot''s lag in bytes: read from the source _source_read_interval() after the previous read ended (fresh; up to 30 s apart while it does not answer), estimated locally in between; an unreachable source fails the init after source_timeout.';

-- ---- Sync/apply errors while the source answers fail an init only when they keep recurring (a blip is forgiven).
ALTER TABLE steep_repl.init_progress ADD COLUMN errors_seen_at timestamptz, ADD COLUMN errors_seen bigint, ADD COLUMN errors_grown_at timestamptz;
COMMENT ON COLUMN steep_repl.init_progress.errors_seen_at IS
  'When the subscription last started counting sync/apply errors while its source answered (NULL: none pending): errors that stop within _init_error_grace() were a blip and are forgiven; errors still growing after it fail the init.';
COMMENT ON COLUMN steep_repl.init_progress.errors_seen IS 'The sync + apply error count when it last grew while pending.';
COMMENT ON COLUMN steep_repl.init_progress.errors_grown_at IS 'When the pending error count last grew.';
CREATE FUNCTION steep_repl._init_error_grace(OUT quiet interval, OUT grace interval)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Shown with its unit (5s, 500ms): the text casts to an interval.
  quiet := 2 * pg_catalog.current_setting('wal_retrieve_retry_interval')::interval + interval '2 seconds';
  grace := 2 * quiet;
END
$$;
COMMENT ON FUNCTION steep_repl._init_error_grace() IS
  'Internal: quiet (2 x wal_retrieve_retry_interval + 2 s: no new error for that long forgives them) and grace (twice quiet: errors recurring for that long fail the init).';
REVOKE ALL ON FUNCTION steep_repl._init_error_grace() FROM PUBLIC;

-- ---- Fast init (start_init method fast, sql/53b_fast_init.sql): the sidecar copies the tables in
-- parallel block ranges inside the slot's exported snapshot, with the secondary indexes and
-- constraints dropped (recorded in init_fast_objects) and re-created after the load; then it
-- subscribes from the slot. init_tables counts the chunks.
ALTER TABLE steep_repl.init_tables ADD COLUMN chunks_total integer NOT NULL DEFAULT 0;
ALTER TABLE steep_repl.init_tables ADD COLUMN chunks_done integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN steep_repl.init_tables.chunks_total IS 'A fast init: the block ranges the table is copied in (0 for the other methods).';
COMMENT ON COLUMN steep_repl.init_tables.chunks_done IS 'A fast init: the block ranges copied and committed.';
CREATE TABLE steep_repl.init_fast_objects (
  id          bigserial PRIMARY KEY,
  node        text NOT NULL REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  relid       oid NOT NULL,
  kind        text NOT NULL CONSTRAINT kind_known CHECK (kind IN ('index', 'constraint', 'foreign_key')),
  name        text NOT NULL,
  ddl         text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE steep_repl.init_fast_objects IS
  'Indexes and constraints a fast init dropped from the target''s tables before loading them, with the DDL (pg_get_indexdef / pg_get_constraintdef of this node''s own catalog) that re-creates them as the table''s owner: after the load, on cancel_init, and before a new start_init.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_fast_objects', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_fast_objects_id_seq', '');

-- The fast init's own option: tables larger than split_threshold bytes are copied in block
-- ranges of about that size, so one large table uses every worker.
CREATE FUNCTION steep_repl._fast_options(method text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF method <> 'fast' OR pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RETURN '{}';
  END IF;
  RETURN pg_catalog.jsonb_build_object('split_threshold', steep_repl._int_option(options, 'split_threshold', 67108864, 8192,
    1099511627776, 'split_threshold is the size in bytes above which a table is copied in block ranges of that size (default 64 MiB, at least 8192).'));
END
$$;
COMMENT ON FUNCTION steep_repl._fast_options(text, jsonb) IS
  'Internal: the options only method fast has (split_threshold, 22023 out of 8192..1 TiB), validated; {} for the other methods.';

-- PREPARING -> COPYING (a retried job finds it COPYING already). The tables are emptied (as each
-- owner), their progress reset: a new attempt has a new snapshot, so it starts over.
CREATE FUNCTION steep_repl.init_fast_copying(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  r record;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_fast_copying.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying') THEN
    RAISE EXCEPTION 'the fast init of node "%" is %, not preparing or copying', node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ') AS tables
           FROM steep_repl.init_tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid
           WHERE t.node = init_fast_copying.node AND (t.rows_copied > 0 OR t.chunks_done > 0)
           GROUP BY c.relowner ORDER BY c.relowner LOOP
    PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
  END LOOP;
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    chunks_total = 0, chunks_done = 0, started_at = NULL, finished_at = NULL
  WHERE t.node = init_fast_copying.node;
  UPDATE steep_repl.init_progress p SET tables_done = 0, rows_done = 0, bytes_done = 0, percent = 0, current_tables = '{}',
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_copying.node;
  IF v_state = 'preparing' THEN
    PERFORM steep_repl.transition(node, 'copying', 'fast init: copying in parallel from the slot''s snapshot');
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_copying(text) IS
  'Sidecar step of init.fast: empties what an earlier attempt copied (as each table''s owner), resets the per-table progress, PREPARING -> COPYING.';

-- Record, then drop, the secondary indexes and the unique, exclusion and foreign-key constraints
-- of the init's tables (and foreign keys of other tables that reference them): the primary key,
-- the replica identity index, CHECK and NOT NULL stay. Partitions' inherited ones are left.
CREATE FUNCTION steep_repl.init_fast_drop_objects(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  PERFORM 1 FROM steep_repl.nodes nd WHERE nd.name = init_fast_drop_objects.node FOR UPDATE;
  FOR r IN
    WITH scope AS (SELECT t.relid FROM steep_repl.init_tables t WHERE t.node = init_fast_drop_objects.node)
    SELECT c.conrelid AS relid, CASE c.contype WHEN 'f' THEN 'foreign_key' ELSE 'constraint' END AS kind, c.conname::text AS name,
           pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_catalog.pg_get_constraintdef(c.oid)) AS ddl,
           pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop_stmt,
           CASE c.contype WHEN 'f' THEN 0 ELSE 1 END AS ord
    FROM pg_catalog.pg_constraint c
    WHERE c.conparentid = 0 AND (
          (c.contype = 'f' AND (c.conrelid IN (SELECT relid FROM scope) OR c.confrelid IN (SELECT relid FROM scope)))
       OR (c.contype IN ('u', 'x') AND c.conrelid IN (SELECT relid FROM scope)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = c.conindid AND i.indisreplident)))
    UNION ALL
    SELECT i.indrelid, 'index', ic.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid),
           pg_catalog.format('DROP INDEX %s', i.indexrelid::regclass), 2
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid IN (SELECT relid FROM scope) AND NOT i.indisprimary AND NOT i.indisreplident
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)
    ORDER BY ord, name
  LOOP
    INSERT INTO steep_repl.init_fast_objects (node, relid, kind, name, ddl)
    VALUES (init_fast_drop_objects.node, r.relid, r.kind, r.name, r.ddl);
    PERFORM steep_repl._exec_as_owner(r.relid::regclass, r.drop_stmt);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_drop_objects(text) IS
  'Sidecar step of init.fast: records in init_fast_objects, then drops as the owner, the secondary indexes and unique/exclusion/foreign-key constraints of the init''s tables (and foreign keys referencing them). Returns how many.';

-- Re-create one recorded object as its table's owner, and forget it. The row lock makes two
-- sessions restoring at once (the job and a cancel) create it once.
CREATE FUNCTION steep_repl.init_fast_restore_object(id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o steep_repl.init_fast_objects;
BEGIN
  SELECT * INTO o FROM steep_repl.init_fast_objects f WHERE f.id = init_fast_restore_object.id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = o.relid) THEN
    PERFORM steep_repl._exec_as_owner(o.relid::regclass, o.ddl);
  END IF;
  DELETE FROM steep_repl.init_fast_objects f WHERE f.id = o.id;
  RETURN true;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_restore_object(bigint) IS
  'Sidecar step of init.fast: re-creates one index or constraint recorded in init_fast_objects as its table''s owner and deletes the record; false when another session did already.';

CREATE FUNCTION steep_repl._fast_restore_all(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  n integer := 0;
BEGIN
  FOR v_id IN SELECT f.id FROM steep_repl.init_fast_objects f WHERE f.node = _fast_restore_all.node
              ORDER BY f.kind = 'foreign_key', f.id LOOP
    IF steep_repl.init_fast_restore_object(v_id) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._fast_restore_all(text) IS
  'Internal: re-creates every index and constraint a fast init of node dropped (foreign keys last); returns how many.';

-- One chunk (a block range of a table, or the whole table) is in, in the transaction that
-- copied it: the table's and the init's progress.
CREATE FUNCTION steep_repl.init_fast_chunk_done(node text, schema_name text, table_name text, rows_copied bigint,
                                                bytes_copied bigint, chunks_total integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_done int;
  v_rows bigint;
  v_bytes bigint;
  v_total bigint;
BEGIN
  UPDATE steep_repl.init_tables t SET
    rows_copied = t.rows_copied + init_fast_chunk_done.rows_copied,
    bytes_copied = t.bytes_copied + init_fast_chunk_done.bytes_copied,
    chunks_total = init_fast_chunk_done.chunks_total, chunks_done = t.chunks_done + 1,
    sync_state = CASE WHEN t.chunks_done + 1 >= init_fast_chunk_done.chunks_total THEN 'synced' ELSE 'copying' END,
    fraction = CASE WHEN t.chunks_done + 1 >= init_fast_chunk_done.chunks_total THEN 1
                    ELSE least(0.99, (t.chunks_done + 1)::numeric / init_fast_chunk_done.chunks_total) END,
    started_at = coalesce(t.started_at, pg_catalog.now()),
    finished_at = CASE WHEN t.chunks_done + 1 >= init_fast_chunk_done.chunks_total THEN pg_catalog.now() END
  WHERE t.node = init_fast_chunk_done.node AND t.schema_name = init_fast_chunk_done.schema_name
    AND t.table_name = init_fast_chunk_done.table_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not in the init of node "%"', schema_name, table_name, node USING ERRCODE = 'undefined_table';
  END IF;
  SELECT pg_catalog.count(*) FILTER (WHERE t.sync_state = 'synced'), coalesce(pg_catalog.sum(t.rows_copied), 0),
         coalesce(pg_catalog.sum(pg_catalog.round(t.source_bytes * t.fraction)), 0)::bigint, coalesce(pg_catalog.sum(t.source_bytes), 0)
    INTO v_done, v_rows, v_bytes, v_total
  FROM steep_repl.init_tables t WHERE t.node = init_fast_chunk_done.node;
  UPDATE steep_repl.init_progress p SET tables_done = v_done, rows_done = v_rows, bytes_done = v_bytes,
    -- 99 at most while copying: the indexes are still to be built and the subscription made.
    percent = greatest(p.percent, least(99, pg_catalog.round(100.0 * v_bytes / NULLIF(v_total, 0), 2))),
    current_tables = (SELECT coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name)
                                      ORDER BY t.schema_name, t.table_name), '{}')
                      FROM steep_repl.init_tables t WHERE t.node = init_fast_chunk_done.node AND t.sync_state = 'copying'),
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_chunk_done.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_chunk_done(text, text, text, bigint, bigint, integer) IS
  'Sidecar step of init.fast: one chunk of schema.table is copied (rows, COPY bytes, of chunks_total): per-table and init progress.';

CREATE FUNCTION steep_repl.init_fast_message(node text, message text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.init_progress p SET message = NULLIF(init_fast_message.message, ''), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_message.node;
$$;
COMMENT ON FUNCTION steep_repl.init_fast_message(text, text) IS 'Sidecar step of init.fast: what it is doing (init_progress.message).';
REVOKE ALL ON TABLE steep_repl.init_fast_objects FROM PUBLIC;
REVOKE ALL ON SEQUENCE steep_repl.init_fast_objects_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_options(text, jsonb), steep_repl.init_fast_copying(text),
  steep_repl.init_fast_drop_objects(text), steep_repl.init_fast_restore_object(bigint), steep_repl._fast_restore_all(text),
  steep_repl.init_fast_chunk_done(text, text, text, bigint, bigint, integer), steep_repl.init_fast_message(text, text) FROM PUBLIC;
GRANT SELECT ON steep_repl.init_fast_objects TO steep_repl_admin;

CREATE OR REPLACE FUNCTION steep_repl._init_subscribed(node text, publication_created boolean, parallel_workers integer)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sub oid;
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = _init_subscribed.node FOR UPDATE;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s JOIN steep_repl.init_progress p ON p.subscription = s.subname
  WHERE p.node = _init_subscribed.node AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'the subscription of the init of node "%" does not exist', node USING ERRCODE = 'undefined_object';
  END IF;
  UPDATE steep_repl.init_progress p SET
    publication_created = p.publication_created OR _init_subscribed.publication_created,
    parallel_workers = _init_subscribed.parallel_workers,
    subscription_oid = v_sub, last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = _init_subscribed.node;
  -- Rows arriving in a target table from now on are this init's (the tables were empty).
  UPDATE steep_repl.init_tables t SET n_tup_ins_base = coalesce(pg_catalog.pg_stat_get_tuples_inserted(t.relid), 0)
  WHERE t.node = _init_subscribed.node;
  -- A fast init is COPYING already (it copied before subscribing); tick() sees every table ready.
  IF (SELECT n.init_state FROM steep_repl.nodes n WHERE n.name = _init_subscribed.node) <> 'copying' THEN
    PERFORM steep_repl.transition(node, 'copying', 'subscription created; copying tables');
  END IF;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._tick_inits(now timestamptz) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  n integer := 0;
  v_job steep_repl.jobs;
BEGIN
  FOR p IN SELECT ip.* FROM steep_repl.init_progress ip JOIN steep_repl.nodes nd ON nd.name = ip.node
           WHERE ip.phase IN ('preparing', 'copying', 'catching_up', 'reinitializing') AND nd.init_state = ip.phase
           -- Lock order everywhere: the nodes row, then init_progress (cancel and the sidecar do the same).
           ORDER BY ip.node FOR UPDATE OF nd, ip SKIP LOCKED LOOP
    n := n + 1;
    -- A cancel under way removes the subscription on purpose: leave the init to it.
    IF EXISTS (SELECT 1 FROM steep_repl.jobs j
               WHERE j.kind = 'init.cancel' AND j.node = p.node AND j.state IN ('queued', 'running')) THEN
      CONTINUE;
    END IF;
    IF p.phase = 'preparing' OR (p.phase IN ('reinitializing', 'copying') AND p.subscription_oid IS NULL) THEN
      -- The sidecar's job owns PREPARING (a reinit until its tables are re-added, a fast init
      -- until it subscribes); if it ended without moving on, the init failed.
      SELECT * INTO v_job FROM steep_repl.jobs j WHERE j.id = p.job_id;
      IF v_job.state IN ('failed', 'cancelled') THEN
        PERFORM steep_repl._init_fail(p.node, pg_catalog.format('init job %s %s: %s', v_job.id, v_job.state,
                                                                coalesce(v_job.error, 'no error recorded')));
      END IF;
      CONTINUE;
    END IF;
    PERFORM steep_repl._tick_init(p, now);
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl.start_init(text, text, text, jsonb) IS
  'Starts initializing the local node target from source: method snapshot (copy_data = true subscription), fast (parallel block-range COPY inside the slot''s exported snapshot, indexes after the load, then a subscription from the slot) or two_phase. Validates first (22023, 42704, 55000, 08001, 42P16, 42P01), creates nothing on error. Returns the init.start (init.fast) job id; watch steep_repl.init_progress.';
COMMENT ON FUNCTION steep_repl._init_subscribed(text, boolean, integer) IS 'Sidecar step: the subscription exists; PREPARING -> COPYING (a fast init, COPYING already, stays).';

COMMENT ON FUNCTION steep_repl.init_cancelled(text, jsonb) IS 'Sidecar step: replication objects are gone; truncate the init''s tables, re-create the indexes and constraints a fast init dropped, clear progress, UNINITIALIZED.';


-- ---- A fast init also drops (and re-creates) the primary key of a table larger than split_threshold.
COMMENT ON FUNCTION steep_repl.init_fast_drop_objects(text) IS
  'Sidecar step of init.fast: records in init_fast_objects, then drops as the owner, the secondary indexes and unique/exclusion/foreign-key constraints of the init''s tables (and foreign keys referencing them), and the primary key of tables larger than split_threshold. Returns how many.';

-- ---- A failed fast init empties what it copied before re-creating the dropped indexes and constraints (init_fast_reset).
CREATE FUNCTION steep_repl.init_fast_reset(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = init_fast_reset.node FOR UPDATE;
  FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ') AS tables
           FROM steep_repl.init_tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid
           WHERE t.node = init_fast_reset.node AND (t.rows_copied > 0 OR t.chunks_done > 0)
           GROUP BY c.relowner ORDER BY c.relowner LOOP
    PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
  END LOOP;
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    chunks_total = 0, chunks_done = 0, started_at = NULL, finished_at = NULL
  WHERE t.node = init_fast_reset.node;
  UPDATE steep_repl.init_progress p SET tables_done = 0, rows_done = 0, bytes_done = 0, percent = 0, current_tables = '{}',
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_reset.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_reset(text) IS
  'Sidecar step of init.fast: empties what an attempt copied (as each table''s owner) and resets the per-table progress (a new attempt, or a failed one before its indexes and constraints are re-created).';
REVOKE ALL ON FUNCTION steep_repl.init_fast_reset(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl.init_fast_copying(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_fast_copying.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying') THEN
    RAISE EXCEPTION 'the fast init of node "%" is %, not preparing or copying', node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  PERFORM steep_repl.init_fast_reset(node);
  IF v_state = 'preparing' THEN
    PERFORM steep_repl.transition(node, 'copying', 'fast init: copying in parallel from the slot''s snapshot');
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_copying(text) IS
  'Sidecar step of init.fast: empties what an earlier attempt copied (init_fast_reset), PREPARING -> COPYING.';

-- ---- An outage that explains sync/apply errors ends a blip watch (it held SYNCHRONIZED back).
CREATE OR REPLACE FUNCTION steep_repl._tick_init(p steep_repl.init_progress, now timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_errors bigint;
  v_raw_errors bigint;
  v_probe text;
  v_done int;
  v_rows bigint;
  v_bytes bigint;
  v_percent numeric;
  v_then record;
  v_rps numeric;
  v_bps numeric;
  v_eta numeric;
  v_progressed boolean;
  v_read record;
  v_grace record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.oid = p.subscription_oid) THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('subscription %s disappeared', p.subscription));
    RETURN;
  END IF;

  -- A sync or apply error fails the init, unless it is the source's outage: a worker whose
  -- connection the source dropped (a crash, a restart) or could not open counts an error too, and
  -- an unreachable source has source_timeout to come back. Such errors are forgiven while the
  -- source does not answer, and until a read of it sees it back (source_unreachable_since).
  -- (A reinit counts only the errors since it started: the subscription may have had some before.)
  SELECT s.apply_error_count + s.sync_error_count INTO v_raw_errors
  FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = p.subscription_oid;
  -- Counts below the forgiven one were reset (a crash of this node clears the statistics):
  -- nothing of them is forgiven any more.
  v_errors := coalesce(v_raw_errors, 0) - greatest(coalesce((p.options->'reinit'->>'error_base')::bigint, 0),
                                                   CASE WHEN coalesce(v_raw_errors, 0) < p.errors_forgiven THEN 0 ELSE p.errors_forgiven END);
  IF v_errors > 0 THEN
    v_probe := steep_repl._probe(p.source_node);
    IF v_probe IS NOT NULL OR p.source_unreachable_since IS NOT NULL THEN
      -- The outage explains them: no blip watch goes on (it would hold SYNCHRONIZED back).
      UPDATE steep_repl.init_progress ip SET errors_forgiven = v_raw_errors,
        errors_seen_at = NULL, errors_seen = NULL, errors_grown_at = NULL,
        source_unreachable_since = coalesce(ip.source_unreachable_since, CASE WHEN v_probe IS NOT NULL THEN now END),
        message = CASE WHEN ip.source_unreachable_since IS NULL
                       THEN pg_catalog.format('source node %s unreachable: %s', p.source_node, v_probe) ELSE ip.message END,
        updated_at = now
      WHERE ip.node = p.node
      RETURNING * INTO p;
      IF v_probe IS NOT NULL THEN
        IF now - p.source_unreachable_since > p.source_timeout THEN
          PERFORM steep_repl._init_fail(p.node, pg_catalog.format('source node %s unreachable for more than %s: %s',
                                                                  p.source_node, p.source_timeout, v_probe));
        END IF;
        RETURN;
      END IF;
    ELSE
      -- The source answers. A worker that lost its connection in a blip of the network counts one
      -- error and goes on; a real error (a constraint, a missing column) comes back each time the
      -- worker is restarted. Errors that stop growing for the quiet period are forgiven; errors
      -- still growing past the grace fail the init.
      SELECT * INTO v_grace FROM steep_repl._init_error_grace();
      IF p.errors_seen_at IS NULL THEN
        UPDATE steep_repl.init_progress ip SET errors_seen_at = now, errors_seen = v_raw_errors, errors_grown_at = now,
          message = pg_catalog.format('subscription %s reported %s sync/apply error(s); watching whether they recur',
                                      p.subscription, v_errors), updated_at = now
        WHERE ip.node = p.node RETURNING * INTO p;
      ELSIF v_raw_errors > p.errors_seen THEN
        UPDATE steep_repl.init_progress ip SET errors_seen = v_raw_errors, errors_grown_at = now
        WHERE ip.node = p.node RETURNING * INTO p;
      END IF;
      IF now - p.errors_seen_at > v_grace.grace AND now - p.errors_grown_at <= v_grace.quiet THEN
        PERFORM steep_repl._init_fail(p.node, pg_catalog.format(
          'subscription %s reported %s sync/apply error(s), still recurring after %s; the error text is in the server log of node %s',
          p.subscription, v_errors, v_grace.grace, p.node));
        RETURN;
      ELSIF now - p.errors_grown_at > v_grace.quiet THEN
        UPDATE steep_repl.init_progress ip SET errors_forgiven = v_raw_errors, errors_seen_at = NULL, errors_seen = NULL,
          errors_grown_at = NULL, message = NULL, updated_at = now
        WHERE ip.node = p.node RETURNING * INTO p;
        INSERT INTO steep_repl.events (node, event, detail)
        VALUES (p.node, 'init.errors_forgiven', pg_catalog.jsonb_build_object('errors', v_errors,
                'reason', pg_catalog.format('no new sync/apply error for %s while the source answered', v_grace.quiet)));
      END IF;
    END IF;
  END IF;

  UPDATE steep_repl.init_tables t SET
    sync_state = CASE sr.srsubstate WHEN 'r' THEN 'ready' WHEN 's' THEN 'synced'
                                    WHEN 'd' THEN 'copying' WHEN 'f' THEN 'copying' ELSE 'pending' END,
    rows_copied = greatest(t.rows_copied, coalesce(pc.tuples_processed, 0),
                      coalesce(pg_catalog.pg_stat_get_tuples_inserted(t.relid), 0) - t.n_tup_ins_base),
    bytes_copied = greatest(t.bytes_copied, coalesce(pc.bytes_processed, 0)),
    started_at = coalesce(t.started_at, CASE WHEN sr.srsubstate <> 'i' THEN now END),
    finished_at = coalesce(t.finished_at, CASE WHEN sr.srsubstate IN ('s', 'r') THEN now END)
  FROM pg_catalog.pg_subscription_rel sr
  LEFT JOIN pg_catalog.pg_stat_progress_copy pc ON pc.relid = sr.srrelid AND pc.datname = pg_catalog.current_database()
  WHERE t.node = p.node AND sr.srsubid = p.subscription_oid AND sr.srrelid = t.relid;
  -- Fraction of each table copied: by rows against the source's estimate, else by COPY bytes
  -- against its size; below 1 until the table is synchronized.
  UPDATE steep_repl.init_tables t SET fraction = CASE
      WHEN t.sync_state IN ('synced', 'ready') THEN 1
      WHEN t.sync_state = 'pending' THEN t.fraction
      ELSE greatest(t.fraction, least(0.99, coalesce(
             t.rows_copied::numeric / NULLIF(t.source_rows, 0),
             t.bytes_copied::numeric / NULLIF(t.source_bytes, 0), 0))) END
  WHERE t.node = p.node;

  SELECT pg_catalog.count(*) FILTER (WHERE t.sync_state IN ('synced', 'ready')),
         coalesce(pg_catalog.sum(t.rows_copied), 0),
         coalesce(pg_catalog.sum(pg_catalog.round(t.source_bytes * t.fraction)), 0)::bigint
    INTO v_done, v_rows, v_bytes
  FROM steep_repl.init_tables t WHERE t.node = p.node;
  v_percent := CASE WHEN v_done = p.tables_total THEN 100
                    WHEN p.bytes_total > 0 THEN least(99.99, 100.0 * v_bytes / p.bytes_total)
                    ELSE 100.0 * v_done / NULLIF(p.tables_total, 0) END;
  v_progressed := v_rows > p.rows_done OR v_bytes > p.bytes_done OR v_done > p.tables_done;

  -- Rates over the rolling window (steep_repl._rate_eta: the same definition as snapshot_progress).
  INSERT INTO steep_repl.init_samples (node, at, rows_done, bytes_done) VALUES (p.node, now, v_rows, v_bytes)
  ON CONFLICT DO NOTHING;
  DELETE FROM steep_repl.init_samples s WHERE s.node = p.node AND s.at < now - interval '2 minutes';
  SELECT s.at, s.rows_done, s.bytes_done INTO v_then FROM steep_repl.init_samples s
  WHERE s.node = p.node AND s.at >= now - steep_repl._rate_window() AND s.at < now ORDER BY s.at LIMIT 1;
  v_rps := (steep_repl._rate_eta(v_rows, NULL, now, v_then.rows_done, v_then.at)).per_sec;
  SELECT r.per_sec, r.eta_seconds INTO v_bps, v_eta
  FROM steep_repl._rate_eta(v_bytes, p.bytes_total, now, v_then.bytes_done, v_then.at) r;

  UPDATE steep_repl.init_progress ip SET
    tables_done = v_done, rows_done = greatest(ip.rows_done, v_rows), bytes_done = greatest(ip.bytes_done, v_bytes),
    percent = greatest(ip.percent, pg_catalog.round(v_percent, 2)),
    current_tables = (SELECT coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name)
                                      ORDER BY t.schema_name, t.table_name), '{}')
                      FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'copying'),
    rows_per_sec = pg_catalog.round(v_rps, 1), bytes_per_sec = pg_catalog.round(v_bps),
    eta_seconds = CASE WHEN v_done = p.tables_total THEN 0 ELSE pg_catalog.round(v_eta) END,
    last_progress_at = CASE WHEN v_progressed THEN now ELSE ip.last_progress_at END,
    stalled_since = CASE WHEN v_progressed THEN NULL ELSE ip.stalled_since END,
    updated_at = now
  WHERE ip.node = p.node
  RETURNING * INTO p;

  -- No progress for stall_timeout: an init.stalled event (once per stall), and a look at the source.
  IF p.phase IN ('copying', 'reinitializing') AND p.stalled_since IS NULL AND now - p.last_progress_at > p.stall_timeout THEN
    UPDATE steep_repl.init_progress ip SET stalled_since = now WHERE ip.node = p.node;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (p.node, 'init.stalled', pg_catalog.jsonb_build_object('since', p.last_progress_at, 'percent', p.percent,
            'current_tables', p.current_tables));
    p.stalled_since := now;
  END IF;
  -- The source is read (one dblink session: reachable? its WAL position and the slot's) at most
  -- every _source_read_interval(); between two reads the lag follows the subscription locally.
  -- A source seen unreachable is read too, even mid-copy: the read sees it back (or fails the
  -- init after source_timeout).
  IF p.stalled_since IS NOT NULL OR p.phase = 'catching_up' OR p.source_unreachable_since IS NOT NULL THEN
    SELECT * INTO v_read FROM steep_repl._tick_source_read(p, now);
    IF NOT v_read.reachable THEN
      RETURN;
    END IF;
  END IF;

  IF p.phase IN ('copying', 'reinitializing') AND v_done = p.tables_total THEN
    UPDATE steep_repl.init_progress ip SET copy_done_at = now, percent = 100, current_tables = '{}'
    WHERE ip.node = p.node;
    PERFORM steep_repl.transition(p.node, 'catching_up', pg_catalog.format('all %s tables copied', p.tables_total));
  ELSIF p.phase = 'catching_up' THEN
    UPDATE steep_repl.init_progress ip SET lag_bytes = v_read.lag_bytes
    WHERE ip.node = p.node AND ip.lag_bytes IS DISTINCT FROM v_read.lag_bytes;
    -- SYNCHRONIZED on a lag just read from the source, never on the estimate between reads.
    -- Not while sync/apply errors are watched: SYNCHRONIZED ends the watch.
    IF v_read.fresh AND v_read.lag_bytes IS NOT NULL AND v_read.lag_bytes <= p.lag_threshold_bytes
       AND p.errors_seen_at IS NULL AND NOT EXISTS (SELECT 1 FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state <> 'ready') THEN
      UPDATE steep_repl.init_progress ip SET synchronized_at = now, eta_seconds = 0
      WHERE ip.node = p.node;
      PERFORM steep_repl.transition(p.node, 'synchronized',
        pg_catalog.format('apply lag %s bytes <= %s', v_read.lag_bytes, p.lag_threshold_bytes));
      IF (p.options->>'verify')::boolean THEN
        PERFORM steep_repl.enqueue_job('init.verify', pg_catalog.jsonb_build_object('target', p.node), p.node);
      END IF;
    END IF;
  END IF;
END
$$;

-- verify and analyze_overlap hold one named dblink session to the peer for the whole call.
CREATE OR REPLACE FUNCTION steep_repl._compare_link(link text, conn text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._compare_unlink(link);
  EXECUTE pg_catalog.format('SELECT %I.dblink_connect($1, $2)', steep_repl._dblink_schema()) USING link, conn;
  RETURN link;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_unlink(link text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format('SELECT %1$I.dblink_disconnect($1) WHERE $1 OPERATOR(pg_catalog.=) ANY (%1$I.dblink_get_connections())',
                            steep_repl._dblink_schema()) USING link;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._verify(peer text, tables text[], options jsonb, as_role regrole)
RETURNS TABLE (schema_name text, table_name text, key jsonb, kind text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_rounds integer;
  v_catch_up integer;
  v_timeout integer;
  v_conn text;
  v_t steep_repl.compare_table;
  v_started timestamptz := pg_catalog.clock_timestamp();
  v_cand text[];
  v_found bigint := 0;
  v_unsettled bigint := 0;
  v_tables integer := 0;
  v_bad text;
  r record;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  options := coalesce(options, '{}');
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT pg_catalog.string_agg(k, ', ') INTO v_bad FROM pg_catalog.jsonb_object_keys(options) k
  WHERE k <> ALL (ARRAY['rounds', 'catch_up_timeout', 'statement_timeout']);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'unknown verify option: %', v_bad USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Options: rounds, catch_up_timeout, statement_timeout.';
  END IF;
  v_rounds := steep_repl._int_option(options, 'rounds', 10, 1, 100,
    'rounds is how many times a row seen differing is read again while the peer keeps changing it (1 to 100, default 10).');
  v_catch_up := steep_repl._int_option(options, 'catch_up_timeout', 60, 1, 3600,
    'catch_up_timeout is the number of seconds to wait for this node to apply the peer''s changes before a re-read (1 to 3600, default 60).');
  v_timeout := steep_repl._int_option(options, 'statement_timeout', 3600, 1, 86400,
    'statement_timeout is the number of seconds one read of a table on the peer may take (1 to 86400, default 3600).');
  IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'verify needs a new snapshot for each re-read' USING ERRCODE = 'invalid_transaction_state',
      HINT = 'Run it outside a REPEATABLE READ or SERIALIZABLE transaction.';
  END IF;
  v_conn := steep_repl._compare_conninfo(peer, v_timeout);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);
  v_conn := steep_repl._compare_link('steep_repl_verify', v_conn);
  BEGIN
    FOR v_t IN SELECT * FROM steep_repl._compare_scope(tables, as_role) LOOP
      v_tables := v_tables + 1;
      v_cand := ARRAY(SELECT p.key FROM steep_repl._compare_pass(v_conn, v_t) p);
      CONTINUE WHEN pg_catalog.cardinality(v_cand) = 0;
      FOR r IN SELECT * FROM steep_repl._verify_settle(peer, v_conn, v_t, v_cand, v_rounds,
                                                       pg_catalog.make_interval(secs => v_catch_up)) LOOP
        IF r.kind = 'unsettled' THEN
          v_unsettled := v_unsettled + 1;
        ELSE
          v_found := v_found + 1;
        END IF;
        schema_name := v_t.schema_name;
        table_name := v_t.table_name;
        key := r.key::jsonb;
        kind := r.kind;
        RETURN NEXT;
      END LOOP;
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    PERFORM steep_repl._compare_unlink(v_conn);
    RAISE;
  END;
  PERFORM steep_repl._compare_unlink(v_conn);
  IF v_unsettled > 0 THEN
    RAISE WARNING '% row(s) kept changing on node % through % re-reads and were not settled', v_unsettled, peer, v_rounds
      USING HINT = 'They are listed with kind ''unsettled''; verify them again, or with more {"rounds": n}.';
  END IF;
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (steep_repl._local_node(), 'verify.done', pg_catalog.jsonb_build_object('peer', peer, 'tables', v_tables,
          'differences', v_found, 'unsettled', v_unsettled, 'requested_by', as_role::text,
          'seconds', pg_catalog.round(extract(epoch FROM pg_catalog.clock_timestamp() - v_started)::numeric, 3)));
END
$$;
COMMENT ON FUNCTION steep_repl._compare_link(text, text) IS 'Internal: opens the named dblink session link to a peer (conninfo conn) and returns its name.';
COMMENT ON FUNCTION steep_repl._compare_unlink(text) IS 'Internal: closes the named dblink session link, if open.';
REVOKE ALL ON FUNCTION steep_repl._compare_link(text, text), steep_repl._compare_unlink(text) FROM PUBLIC;

-- fast init (#14, engineer C): the indexing step with its own percent (init_fast_indexing, weights in
-- init_fast_objects.weight) and its maintenance settings (options maintenance_work_mem, max_parallel_maintenance_workers).

ALTER TABLE steep_repl.init_fast_objects ADD COLUMN weight bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN steep_repl.init_fast_objects.weight IS
  'The bytes of the table the object is on (its source size, or its size here for a table out of the init): its weight in the indexing step''s percent.';

CREATE OR REPLACE FUNCTION steep_repl._fast_size_option(options jsonb, key text, dflt text, lo_kb bigint, hi_kb bigint, hint text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m text[];
  kb numeric;
BEGIN
  IF options ? key AND pg_catalog.jsonb_typeof(options->key) <> 'null' THEN
    IF pg_catalog.jsonb_typeof(options->key) = 'string' THEN
      m := pg_catalog.regexp_match(options->>key, '^\s*([0-9]{1,15})\s*(kB|MB|GB|TB)\s*$');
    END IF;
  ELSE
    m := pg_catalog.regexp_match(dflt, '^([0-9]+)(kB|MB|GB|TB)$');
  END IF;
  IF m IS NOT NULL THEN
    kb := m[1]::numeric * CASE m[2] WHEN 'kB' THEN 1 WHEN 'MB' THEN 1024 WHEN 'GB' THEN 1048576 ELSE 1073741824 END;
  END IF;
  IF kb IS NULL OR kb < lo_kb OR kb > hi_kb THEN
    RAISE EXCEPTION '% must be a size between %kB and %kB with a unit (kB, MB, GB, TB), got %', key, lo_kb, hi_kb, options->key
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  RETURN kb::bigint || 'kB';
END
$$;
COMMENT ON FUNCTION steep_repl._fast_size_option(jsonb, text, text, bigint, bigint, text) IS
  'Internal: a memory size option (''256MB'': a number and kB, MB, GB or TB) within [lo_kb, hi_kb], returned in kB (''262144kB''), or 22023.';

COMMENT ON FUNCTION steep_repl._fast_options(text, jsonb) IS
  'Internal: the options only method fast has (split_threshold 8192..1 TiB, maintenance_work_mem 1MB..2TB, max_parallel_maintenance_workers 0..64, else 22023), validated with their defaults; {} for the other methods.';

CREATE TABLE steep_repl.init_fast_indexing (
  node                             text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  objects_total                    integer NOT NULL,
  objects_done                     integer NOT NULL DEFAULT 0,
  bytes_total                      bigint NOT NULL,
  bytes_done                       bigint NOT NULL DEFAULT 0,
  percent                          numeric(5,2) NOT NULL DEFAULT 0 CONSTRAINT percent_range CHECK (percent BETWEEN 0 AND 100),
  maintenance_work_mem             text,
  max_parallel_maintenance_workers integer,
  started_at                       timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at                       timestamptz NOT NULL DEFAULT pg_catalog.now(),
  finished_at                      timestamptz
);
GRANT SELECT ON steep_repl.init_fast_indexing TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_indexing IS
  'The indexing step of node''s last fast init: objects (indexes and constraints) re-created of objects_total, their tables'' bytes as weight of percent, and the maintenance_work_mem / max_parallel_maintenance_workers the rebuilding sessions ran with (read in those sessions).';


CREATE OR REPLACE FUNCTION steep_repl._fast_indexing_message(i steep_repl.init_fast_indexing) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('indexing: %s/%s indexes and constraints built, %s%%', i.objects_done, i.objects_total, i.percent);
$$;
COMMENT ON FUNCTION steep_repl._fast_indexing_message(steep_repl.init_fast_indexing) IS
  'Internal: the init_progress message of a fast init''s indexing step ("indexing: 3/12 indexes and constraints built, 45.20%").';

CREATE OR REPLACE FUNCTION steep_repl.init_fast_indexing_start(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  i steep_repl.init_fast_indexing;
BEGIN
  INSERT INTO steep_repl.init_fast_indexing AS x (node, objects_total, bytes_total, percent, finished_at)
  SELECT init_fast_indexing_start.node, pg_catalog.count(*), coalesce(pg_catalog.sum(f.weight), 0),
         CASE WHEN pg_catalog.count(*) = 0 THEN 100 ELSE 0 END, CASE WHEN pg_catalog.count(*) = 0 THEN pg_catalog.now() END
  FROM steep_repl.init_fast_objects f WHERE f.node = init_fast_indexing_start.node
  ON CONFLICT ON CONSTRAINT init_fast_indexing_pkey DO UPDATE SET objects_total = excluded.objects_total, objects_done = 0,
    bytes_total = excluded.bytes_total, bytes_done = 0, percent = excluded.percent, maintenance_work_mem = NULL,
    max_parallel_maintenance_workers = NULL, started_at = pg_catalog.now(), updated_at = pg_catalog.now(), finished_at = excluded.finished_at
  RETURNING * INTO i;
  UPDATE steep_repl.init_progress p SET message = steep_repl._fast_indexing_message(i), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_indexing_start.node;
  RETURN i.objects_total;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_indexing_start(text) IS
  'Sidecar step of init.fast: the indexing step begins (init_fast_indexing reset to what init_fast_objects holds, the init''s message says so); returns how many objects.';

CREATE OR REPLACE FUNCTION steep_repl._fast_indexed(o steep_repl.init_fast_objects) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  i steep_repl.init_fast_indexing;
BEGIN
  UPDATE steep_repl.init_fast_indexing x SET objects_done = x.objects_done + 1, bytes_done = x.bytes_done + o.weight,
    percent = CASE WHEN x.objects_done + 1 >= x.objects_total THEN 100
                   WHEN x.bytes_total > 0 THEN least(99.99, pg_catalog.round(100.0 * (x.bytes_done + o.weight) / x.bytes_total, 2))
                   ELSE pg_catalog.round(100.0 * (x.objects_done + 1) / x.objects_total, 2) END,
    maintenance_work_mem = pg_catalog.current_setting('maintenance_work_mem'),
    max_parallel_maintenance_workers = pg_catalog.current_setting('max_parallel_maintenance_workers')::integer,
    updated_at = pg_catalog.now(),
    finished_at = CASE WHEN x.objects_done + 1 >= x.objects_total THEN pg_catalog.now() END
  WHERE x.node = o.node AND x.finished_at IS NULL
  RETURNING * INTO i;
  IF FOUND THEN
    UPDATE steep_repl.init_progress p SET message = steep_repl._fast_indexing_message(i), last_progress_at = pg_catalog.now(),
      updated_at = pg_catalog.now()
    WHERE p.node = o.node;
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._fast_indexed(steep_repl.init_fast_objects) IS
  'Internal: object o was re-created: the indexing step''s count, weighted percent and message, with the session''s maintenance settings.';

COMMENT ON FUNCTION steep_repl.init_fast_drop_objects(text) IS
  'Sidecar step of init.fast: records in init_fast_objects, then drops as the owner, the secondary indexes and unique/exclusion/foreign-key constraints of the init''s tables (and foreign keys referencing them), and the primary key of tables larger than split_threshold. Returns how many.';

CREATE OR REPLACE FUNCTION steep_repl.init_fast_restore_object(id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o steep_repl.init_fast_objects;
BEGIN
  SELECT * INTO o FROM steep_repl.init_fast_objects f WHERE f.id = init_fast_restore_object.id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = o.relid) THEN
    PERFORM steep_repl._exec_as_owner(o.relid::regclass, o.ddl);
  END IF;
  DELETE FROM steep_repl.init_fast_objects f WHERE f.id = o.id;
  PERFORM steep_repl._fast_indexed(o);
  RETURN true;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_restore_object(bigint) IS
  'Sidecar step of init.fast: re-creates one index or constraint recorded in init_fast_objects as its table''s owner and deletes the record; false when another session did already.';

REVOKE ALL ON FUNCTION steep_repl._fast_size_option(jsonb, text, text, bigint, bigint, text) FROM PUBLIC;

REVOKE ALL ON FUNCTION steep_repl._fast_indexing_message(steep_repl.init_fast_indexing) FROM PUBLIC;

REVOKE ALL ON FUNCTION steep_repl.init_fast_indexing_start(text) FROM PUBLIC;

REVOKE ALL ON FUNCTION steep_repl._fast_indexed(steep_repl.init_fast_objects) FROM PUBLIC;

-- fast init (#14, engineer C): a partitioned table all of whose partitions are copied has its partitioned indexes and constraints dropped and rebuilt whole.
-- ---- Bidirectional merge, the orchestration (issue #13): start_init method merge (sql/52_start_init.sql),
-- init_cancelled / cancel_init aware of init.merge (sql/53_init_steps.sql), sql/75_merge_init.sql (engineer B)

COMMENT ON FUNCTION steep_repl.start_init(text, text, text, jsonb) IS
  'Starts initializing the local node target from source: method snapshot (copy_data = true subscription), fast (parallel block-range COPY inside the slot''s exported snapshot, indexes after the load, then a subscription from the slot), two_phase, or merge (both nodes hold data: union with conflict resolution, then subscriptions both ways; job init.merge). Validates first (22023, 42704, 55000, 08001, 42P16, 42P01), creates nothing on error. Returns the init.start (init.fast) job id; watch steep_repl.init_progress.';


COMMENT ON FUNCTION steep_repl.init_cancelled(text, jsonb) IS 'Sidecar step: replication objects are gone; truncate the init''s tables, re-create the indexes and constraints a fast init dropped, clear progress, UNINITIALIZED.';


CREATE OR REPLACE FUNCTION steep_repl.cancel_init(node text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_job bigint;
  r record;
BEGIN
  PERFORM steep_repl._require('node', node);
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = cancel_init.node FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  SELECT j.id INTO v_job FROM steep_repl.jobs j
  WHERE j.kind = 'init.cancel' AND j.node = cancel_init.node AND j.state IN ('queued', 'running');
  IF FOUND THEN
    RAISE NOTICE 'cancel of the init of node "%" is already under way (job %)', node, v_job;
    RETURN v_job;
  END IF;
  IF v_state = 'uninitialized' AND NOT EXISTS (SELECT 1 FROM steep_repl.init_progress p WHERE p.node = cancel_init.node) THEN
    RAISE NOTICE 'node "%" has no init to cancel', node;
    RETURN NULL;
  END IF;
  IF v_state IN ('synchronized', 'diverged') THEN
    RAISE EXCEPTION 'node "%" is % and has no init to cancel', node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'cancel_init stops an init in PREPARING, COPYING or CATCHING_UP, a reinit in REINITIALIZING, or cleans up a FAILED one.';
  END IF;
  IF v_state = 'catching_up' AND EXISTS (SELECT 1 FROM steep_repl.init_progress p WHERE p.node = cancel_init.node AND p.options ? 'reinit') THEN
    RAISE EXCEPTION 'the reinit of node "%" has copied every table and is catching up', node
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Nothing is left to cancel: the node becomes SYNCHRONIZED once the apply lag is under the threshold.';
  END IF;
  -- The jobs that fill the node: an automatic init's start, a reinit, a two-phase init or an apply.
  FOR r IN SELECT j.id FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.fast', 'init.merge', 'reinit.start', 'snapshot.init', 'snapshot.apply') AND j.node = cancel_init.node
           AND j.state IN ('queued', 'running') LOOP
    PERFORM steep_repl.cancel_job(r.id);
  END LOOP;
  v_job := steep_repl.enqueue_job('init.cancel', pg_catalog.jsonb_build_object('target', node), node, 5);
  INSERT INTO steep_repl.events (node, event, from_state, detail)
  VALUES (node, 'init.cancel_requested', v_state, pg_catalog.jsonb_build_object('job', v_job));
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl.cancel_init(text) IS
  'Cancels the init of node: the sidecar drops the subscription, its slots on the source and a publication created for it, truncates the tables it filled; the node goes back to UNINITIALIZED. A reinit in REINITIALIZING is cancelled instead by taking its tables out of the publication and emptying them, the node DIVERGED with them named. Idempotent; returns the init.cancel job id (NULL with a notice when there is nothing to cancel).';


-- start_init(target, source, 'merge'): both nodes hold data. The sidecar's init.merge job unions
-- them (steep_repl._merge_plan / _merge_rows / _merge_apply, sql/73_merge.sql) in one transaction
-- per node, then under a short write freeze (steep_repl._merge_lock) re-plans what changed,
-- creates a slot on each node for the other and subscribes both ways (origin = none). These are
-- start_init's half and the job's steps; the source's half (init_merge_link) is called by the
-- target's sidecar over its session to the source.

-- The options of start_init that a merge shares with the other methods; the rest are
-- _merge_options'.
CREATE FUNCTION steep_repl._merge_init_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ARRAY['lag_threshold', 'stall_timeout', 'source_timeout'];
$$;
COMMENT ON FUNCTION steep_repl._merge_init_keys() IS
  'Internal: the start_init options a merge takes besides _merge_options'' own (lag_threshold, stall_timeout, source_timeout).';

-- The state of the source's local node and whether it knows the target: its tick needs the
-- target's conninfo to read the lag of the reverse link.
CREATE FUNCTION steep_repl._merge_peer_state(peer text, target text, OUT init_state text, OUT knows_target boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format('SELECT s, k FROM %I.dblink($1, $2) AS t(s text, k boolean)', steep_repl._dblink_schema())
    INTO init_state, knows_target USING steep_repl._conninfo(peer), pg_catalog.format(
      'SELECT (SELECT n.init_state FROM steep_repl.nodes n WHERE n.is_local), EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name OPERATOR(pg_catalog.=) %L)',
      target);
END
$$;
COMMENT ON FUNCTION steep_repl._merge_peer_state(text, text) IS
  'Internal: the init state of peer''s local node and whether peer has target registered, read through dblink.';

-- start_init's method merge (called by start_init, SECURITY DEFINER): checks everything, creates
-- nothing on error, records the init and queues init.merge.
CREATE FUNCTION steep_repl._start_merge_init(target text, source text, options jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_mopts jsonb;
  v_iopts jsonb;
  v_node steep_repl.nodes;
  v_names record;
  v_peer record;
  v_err text;
  v_bad text;
  v_src steep_repl.table_info[];
  v_dst steep_repl.table_info[];
  v_scope jsonb;
  v_job bigint;
BEGIN
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- 22023 on an unknown key, a bad strategy, dry_run not a boolean, ...
  v_mopts := steep_repl._merge_options(options - steep_repl._merge_init_keys());
  v_iopts := steep_repl._init_options((SELECT coalesce(pg_catalog.jsonb_object_agg(e.key, e.value), '{}')
                                       FROM pg_catalog.jsonb_each(options) e WHERE e.key = ANY (steep_repl._merge_init_keys()))
                                      || pg_catalog.jsonb_build_object('verify', v_mopts->'verify'));
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Merge a node with another node.';
  END IF;
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Call start_init on the target node itself (the node registered with is_local => true).';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  IF v_node.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" already has an init in state %', target, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'A merge joins two nodes that are not replicating yet; a SYNCHRONIZED node needs no merge (steep_repl.verify compares it).';
  END IF;
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.fast', 'init.merge', 'init.cancel') AND j.node = target
             AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'an init job for node "%" is still queued or running', target
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.jobs) or cancel it.';
  END IF;
  v_err := steep_repl._probe(source);
  IF v_err IS NOT NULL THEN
    RAISE EXCEPTION 'source node "%" is not reachable: %', source, v_err
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check the source is up and that its registered conninfo works from this server.';
  END IF;
  -- The source ends with a link of its own (its subscription from this node): it must be free too.
  SELECT * INTO v_peer FROM steep_repl._merge_peer_state(source, target);
  IF v_peer.init_state IS NULL OR v_peer.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'source node "%" is %', source, coalesce(pg_catalog.upper(v_peer.init_state), 'not registered as its own local node')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Both nodes of a merge must be UNINITIALIZED or FAILED: the merge subscribes each to the other.';
  END IF;
  IF NOT v_peer.knows_target THEN
    RAISE EXCEPTION 'source node "%" has no node "%" registered', source, target
      USING ERRCODE = 'undefined_object',
            HINT = pg_catalog.format('On %s: SELECT steep_repl.register_node(%L, <conninfo of %s>) (its subscription from this node uses it).', source, target, target);
  END IF;

  -- The scope: the tables option, else every user table; on both nodes.
  v_scope := pg_catalog.jsonb_build_object('tables', v_mopts->'tables');
  v_src := ARRAY(SELECT t FROM steep_repl._remote_tables(source) t WHERE steep_repl._in_scope(v_scope, t.schema_name, t.table_name));
  v_dst := ARRAY(SELECT t FROM steep_repl._local_tables() t WHERE steep_repl._in_scope(v_scope, t.schema_name, t.table_name));
  SELECT pg_catalog.string_agg(x.n, ', ') INTO v_bad FROM (
    SELECT s.schema_name || '.' || s.table_name n FROM pg_catalog.unnest(v_src) s
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_dst) d WHERE d.schema_name = s.schema_name AND d.table_name = s.table_name)
    UNION ALL
    SELECT d.schema_name || '.' || d.table_name || ' (only here)' FROM pg_catalog.unnest(v_dst) d
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_src) s WHERE d.schema_name = s.schema_name AND d.table_name = s.table_name)) x;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables in scope not on both nodes: %', v_bad
      USING ERRCODE = 'undefined_table', HINT = 'Create them on the other node (steep_repl.schema_ddl) or leave them out with "tables".';
  END IF;
  IF pg_catalog.cardinality(v_dst) = 0 THEN
    RAISE EXCEPTION 'nothing to merge: no user tables in scope' USING ERRCODE = 'invalid_parameter_value', HINT = 'Check the tables option.';
  END IF;

  SELECT * INTO v_names FROM steep_repl._init_names(target, source);
  DELETE FROM steep_repl.init_progress p WHERE p.node = target;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription, slot_name,
    parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, tables_total, bytes_total, rows_total, message)
  SELECT target, source, 'merge',
    -- The plan reads both nodes' tables as the role that asked (merge_as), as verify_as for "verify".
    v_iopts || pg_catalog.jsonb_build_object('merge', v_mopts, 'merge_as', steep_repl._caller()::text),
    -- The merge's publications are its own (named for this pair): it drops them on cancel.
    v_names.publication, true, v_names.subscription, v_names.slot_name,
    1, (v_iopts->>'lag_threshold')::bigint,
    pg_catalog.make_interval(secs => (v_iopts->>'stall_timeout')::float8),
    pg_catalog.make_interval(secs => (v_iopts->>'source_timeout')::float8),
    pg_catalog.count(*), coalesce(pg_catalog.sum(d.bytes), 0), 0,
    CASE WHEN (v_mopts->>'dry_run')::boolean THEN 'merge dry run: planning' ELSE 'merge: planning' END
  FROM pg_catalog.unnest(v_dst) d;
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows)
  SELECT target, d.schema_name, d.table_name, d.relid::oid, s.bytes, 0
  FROM pg_catalog.unnest(v_dst) d JOIN pg_catalog.unnest(v_src) s USING (schema_name, table_name);
  UPDATE steep_repl.nodes n SET init_source_node = source WHERE n.name = target;
  PERFORM steep_repl.transition(target, 'preparing', pg_catalog.format('start_init merge with %s%s', source,
    CASE WHEN (v_mopts->>'dry_run')::boolean THEN ' (dry run)' ELSE '' END));
  v_job := steep_repl.enqueue_job('init.merge', pg_catalog.jsonb_build_object('target', target, 'source', source), target, 3);
  UPDATE steep_repl.init_progress p SET job_id = v_job WHERE p.node = target;
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl._start_merge_init(text, text, jsonb) IS
  'Internal (start_init method merge): validates (22023, 42704, 42P01, 55000, 08001), records the init (method merge, options {merge: _merge_options, merge_as: the caller}) and queues init.merge.';

-- For the sidecar: what init.merge needs besides init_plan.
CREATE FUNCTION steep_repl.init_merge_plan(node text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object('options', p.options->'merge', 'as_role', p.options->>'merge_as',
    'lag_threshold', p.options->'lag_threshold', 'stall_timeout', p.options->'stall_timeout',
    'source_timeout', p.options->'source_timeout',
    -- The reverse link: publication here, subscription on the source, slot here.
    'reverse_publication', r.publication, 'reverse_subscription', r.subscription, 'reverse_slot', r.slot_name)
  FROM steep_repl.init_progress p, steep_repl._init_names(p.source_node, p.node) r
  WHERE p.node = init_merge_plan.node AND p.method = 'merge';
$$;
COMMENT ON FUNCTION steep_repl.init_merge_plan(text) IS
  'Sidecar step of init.merge: the merge options, the role that asked, and the names of the reverse link (publication and slot here, subscription on the source); NULL unless node''s init is a merge.';

-- PREPARING -> COPYING with the rows to move per table (tables: [{schema_name, table_name, rows}]).
CREATE FUNCTION steep_repl.init_merge_copying(node text, tables jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_merge_copying.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying') THEN
    RAISE EXCEPTION 'the merge of node "%" is %, not preparing or copying', node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE steep_repl.init_tables t SET source_rows = coalesce(x.rows, 0), rows_copied = 0,
    fraction = CASE WHEN coalesce(x.rows, 0) = 0 THEN 1 ELSE 0 END,
    sync_state = CASE WHEN coalesce(x.rows, 0) = 0 THEN 'synced' ELSE 'pending' END, started_at = NULL, finished_at = NULL
  FROM steep_repl.init_tables t2
  LEFT JOIN pg_catalog.jsonb_to_recordset(tables) AS x(schema_name text, table_name text, rows bigint)
    ON x.schema_name = t2.schema_name AND x.table_name = t2.table_name
  WHERE t.node = init_merge_copying.node AND t2.node = t.node AND t2.schema_name = t.schema_name AND t2.table_name = t.table_name;
  UPDATE steep_repl.init_progress p SET rows_total = (SELECT coalesce(pg_catalog.sum(t.source_rows), 0) FROM steep_repl.init_tables t WHERE t.node = p.node),
    rows_done = 0, bytes_done = 0, percent = 0,
    tables_done = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'synced'),
    message = 'merge: moving rows', last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_merge_copying.node;
  IF v_state = 'preparing' THEN
    PERFORM steep_repl.transition(node, 'copying', 'merge: moving rows both ways');
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_copying(text, jsonb) IS
  'Sidecar step of init.merge: records the rows to move per table ([{schema_name, table_name, rows}]), PREPARING -> COPYING.';

-- Rows moved so far of one table (done: all of them), and the line the console and init status show.
CREATE FUNCTION steep_repl.init_merge_moved(node text, schema_name text, table_name text, moved bigint, done boolean, message text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE steep_repl.init_tables t SET rows_copied = init_merge_moved.moved,
    fraction = CASE WHEN done THEN 1 ELSE least(0.99, init_merge_moved.moved::numeric / NULLIF(t.source_rows, 0)) END,
    sync_state = CASE WHEN done THEN 'synced' ELSE 'copying' END,
    started_at = coalesce(t.started_at, pg_catalog.now()), finished_at = CASE WHEN done THEN pg_catalog.now() END
  WHERE t.node = init_merge_moved.node AND t.schema_name = init_merge_moved.schema_name AND t.table_name = init_merge_moved.table_name;
  UPDATE steep_repl.init_progress p SET
    rows_done = (SELECT coalesce(pg_catalog.sum(t.rows_copied), 0) FROM steep_repl.init_tables t WHERE t.node = p.node),
    tables_done = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'synced'),
    current_tables = CASE WHEN done THEN '{}' ELSE ARRAY[pg_catalog.format('%I.%I', init_merge_moved.schema_name, init_merge_moved.table_name)] END,
    percent = greatest(p.percent, least(99.99, pg_catalog.round(100.0 * (SELECT coalesce(pg_catalog.sum(t.rows_copied), 0) FROM steep_repl.init_tables t WHERE t.node = p.node)
                                            / NULLIF(p.rows_total, 0), 2))),
    message = coalesce(init_merge_moved.message, p.message), last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_merge_moved.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_moved(text, text, text, bigint, boolean, text) IS
  'Sidecar step of init.merge: rows moved so far of one table (done: all), and the progress message.';

CREATE FUNCTION steep_repl.init_merge_message(node text, message text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.init_progress p SET message = init_merge_message.message, updated_at = pg_catalog.now()
  WHERE p.node = init_merge_message.node;
$$;
COMMENT ON FUNCTION steep_repl.init_merge_message(text, text) IS 'Sidecar step of init.merge: the progress message (freeze, subscribing).';

-- A dry run is over: the plan is in merges / merge_audit_log, nothing moved; PREPARING -> UNINITIALIZED.
CREATE FUNCTION steep_repl.init_merge_planned(node text, merge_id bigint, counts jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_merge_planned.node FOR UPDATE;
  DELETE FROM steep_repl.init_progress p WHERE p.node = init_merge_planned.node;
  IF v_state <> 'uninitialized' THEN
    PERFORM steep_repl.transition(node, 'uninitialized', pg_catalog.format('merge dry run %s planned; nothing moved', merge_id));
  END IF;
  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (node, 'init.merge_planned', v_state, 'uninitialized', pg_catalog.jsonb_build_object('merge_id', merge_id, 'tables', counts));
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_planned(text, bigint, jsonb) IS
  'Sidecar step of init.merge: a dry run recorded its plan (merge_id, counts per table and direction in the event init.merge_planned); the node goes back to UNINITIALIZED.';

-- The write freeze: LOCK every table in scope IN EXCLUSIVE MODE (reads go on, writes wait) for
-- the rest of the caller's transaction; the caller sets lock_timeout.
CREATE FUNCTION steep_repl._merge_lock(tables jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_list text;
  n integer;
BEGIN
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', x.schema, x."table"), ', ' ORDER BY x.schema, x."table"), pg_catalog.count(*)
    INTO v_list, n FROM pg_catalog.jsonb_to_recordset(tables) AS x(schema text, "table" text);
  IF v_list IS NULL THEN
    RAISE EXCEPTION 'no tables to lock' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  EXECUTE 'LOCK TABLE ' || v_list || ' IN EXCLUSIVE MODE';
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_lock(jsonb) IS
  'Sidecar step of init.merge (its write freeze): LOCK TABLE [{schema, table}] IN EXCLUSIVE MODE until the caller''s transaction ends; returns how many.';

-- Called on the SOURCE of a merge by the target's sidecar once the source's subscription from
-- the target exists: the source's own init, method merge, with the target as its init source,
-- so its tick takes it COPYING -> CATCHING_UP -> SYNCHRONIZED like any init's.
CREATE FUNCTION steep_repl.init_merge_link(peer text, subscription text, slot_name text, publication text,
                                           tables jsonb, options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_node steep_repl.nodes;
  v_sub oid;
BEGIN
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.is_local FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'this database has no local node' USING ERRCODE = 'undefined_object';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = peer) THEN
    PERFORM steep_repl._unknown_node(peer);
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = init_merge_link.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription USING ERRCODE = 'undefined_object';
  END IF;
  IF v_node.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" is %: the merge cannot link it', v_node.name, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  DELETE FROM steep_repl.init_progress p WHERE p.node = v_node.name;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription, slot_name,
    subscription_oid, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, tables_total, message)
  VALUES (v_node.name, peer, 'merge', options, publication, true, subscription, slot_name, v_sub, 1,
    coalesce((options->>'lag_threshold')::bigint, 1048576),
    pg_catalog.make_interval(secs => coalesce((options->>'stall_timeout')::float8, 60)),
    pg_catalog.make_interval(secs => coalesce((options->>'source_timeout')::float8, 60)),
    pg_catalog.jsonb_array_length(tables), pg_catalog.format('merged with %s; subscribed from it', peer));
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, sync_state, fraction)
  SELECT v_node.name, x.schema, x."table", pg_catalog.to_regclass(pg_catalog.format('%I.%I', x.schema, x."table"))::oid, 'synced', 1
  FROM pg_catalog.jsonb_to_recordset(tables) AS x(schema text, "table" text);
  UPDATE steep_repl.nodes n SET init_source_node = peer WHERE n.name = v_node.name;
  PERFORM steep_repl.transition(v_node.name, 'preparing', pg_catalog.format('merge with %s: subscribed from it', peer));
  PERFORM steep_repl.transition(v_node.name, 'copying', pg_catalog.format('merge with %s: rows merged on both nodes', peer));
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_link(text, text, text, text, jsonb, jsonb) IS
  'Sidecar step of init.merge, on the merge''s source: records its subscription from the target (peer) as its own init, method merge, so tick() takes it to SYNCHRONIZED and the console shows the link.';

-- The merge's writes on a node carry the replication origin of that node's subscription from
-- the other (created disabled before pass 1, its progress untouched until advanced to the
-- slot's LSN): the other node's subscription (origin = none) does not send them back, and on 18 a
-- later update of such a row by that subscription is no update_origin_differs conflict (the
-- row's origin is the subscription's own). steep_repl_merge (_merge_origin_begin) would be one.
CREATE FUNCTION steep_repl._merge_origin_as(subscription text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_origin text;
BEGIN
  SELECT 'pg_' || s.oid INTO v_origin FROM pg_catalog.pg_subscription s
  WHERE s.subname = _merge_origin_as.subscription
    AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_origin IS NULL THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription USING ERRCODE = 'undefined_object';
  END IF;
  IF pg_catalog.pg_replication_origin_session_is_setup() THEN
    PERFORM pg_catalog.pg_replication_origin_session_reset();
  END IF;
  PERFORM pg_catalog.pg_replication_origin_session_setup(v_origin);
  RETURN v_origin;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_origin_as(text) IS
  'Sidecar step of init.merge: this session''s writes carry the replication origin of subscription (pg_<oid>) until _merge_origin_end; returns the origin''s name.';

-- Audit rows of the freeze's re-check: a row moved again since pass 1 keeps one audit row (the
-- primary key is per merge and key), now saying what the freeze did; the loser's image of pass 1
-- is kept when the freeze has none.
CREATE FUNCTION steep_repl._merge_audit_again(merge_id bigint, rows jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_n bigint;
BEGIN
  INSERT INTO steep_repl.merge_audit_log AS a (merge_id, schema_name, table_name, key, category, resolution, tie, local_hash, peer_hash,
                                               local_row, peer_row, local_committed_at, peer_committed_at)
  SELECT _merge_audit_again.merge_id, x.schema_name, x.table_name, x.key, x.category, x.resolution, coalesce(x.tie, false),
         x.local_hash, x.peer_hash, x.local_row, x.peer_row, x.local_committed_at, x.peer_committed_at
  FROM pg_catalog.jsonb_to_recordset(rows) AS x(schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
         local_hash bigint, peer_hash bigint, local_row jsonb, peer_row jsonb, local_committed_at timestamptz, peer_committed_at timestamptz)
  ON CONFLICT (merge_id, schema_name, table_name, key) DO UPDATE SET category = EXCLUDED.category, resolution = EXCLUDED.resolution,
    tie = EXCLUDED.tie, local_hash = EXCLUDED.local_hash, peer_hash = EXCLUDED.peer_hash,
    local_row = coalesce(EXCLUDED.local_row, a.local_row), peer_row = coalesce(EXCLUDED.peer_row, a.peer_row),
    local_committed_at = EXCLUDED.local_committed_at, peer_committed_at = EXCLUDED.peer_committed_at,
    logged_at = pg_catalog.clock_timestamp();
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_audit_again(bigint, jsonb) IS
  'Sidecar step of init.merge: audit rows of the write freeze''s re-check, replacing those of pass 1 for a row moved again; returns how many.';

-- Of the rows of rel with the given primary keys, the keys (as _merge_plan prints them) of those
-- whose version was committed after since by a transaction of another origin than origin (the
-- merge's own writes carry it): the rows a user changed on this node since the merge began. The
-- freeze's re-check gives a row changed on one side only to that side, whatever the strategy
-- (the other side holds a copy pass 1 made, or the row as it was). NULL without
-- track_commit_timestamp (the strategy then decides).
CREATE FUNCTION steep_repl._merge_changed_since(rel regclass, keys jsonb, since timestamptz, origin text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v text[];
BEGIN
  IF NOT pg_catalog.current_setting('track_commit_timestamp')::boolean THEN
    RETURN NULL;
  END IF;
  EXECUTE pg_catalog.format(
    'SELECT coalesce(pg_catalog.array_agg(pg_catalog.jsonb_build_object(%s)::pg_catalog.text), ''{}'')
     FROM %s r CROSS JOIN LATERAL pg_catalog.pg_xact_commit_timestamp_origin(r.xmin) c
     WHERE (%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset($1) AS k(%s))
       AND c."timestamp" OPERATOR(pg_catalog.>) $2
       AND c.roident IS DISTINCT FROM (SELECT o.roident FROM pg_catalog.pg_replication_origin o WHERE o.roname OPERATOR(pg_catalog.=) $3)',
    (SELECT pg_catalog.string_agg(pg_catalog.format('%L, r.%I', c, c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    rel,
    (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
     FROM ROWS FROM (pg_catalog.unnest(v_t.key_cols), pg_catalog.unnest(v_t.key_types)) WITH ORDINALITY x(c, ty, o)))
    INTO v USING keys, since, origin;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_changed_since(regclass, jsonb, timestamptz, text) IS
  'Sidecar step of init.merge (the freeze''s re-check): keys of the given rows of rel last committed after since by another origin than origin (a user''s change since the merge began); NULL without track_commit_timestamp.';

REVOKE ALL ON FUNCTION
  steep_repl._merge_init_keys(),
  steep_repl._merge_peer_state(text, text),
  steep_repl._start_merge_init(text, text, jsonb),
  steep_repl.init_merge_plan(text),
  steep_repl.init_merge_copying(text, jsonb),
  steep_repl.init_merge_moved(text, text, text, bigint, boolean, text),
  steep_repl.init_merge_message(text, text),
  steep_repl.init_merge_planned(text, bigint, jsonb),
  steep_repl._merge_lock(jsonb),
  steep_repl.init_merge_link(text, text, text, text, jsonb, jsonb),
  steep_repl._merge_origin_as(text),
  steep_repl._merge_audit_again(bigint, jsonb),
  steep_repl._merge_changed_since(regclass, jsonb, timestamptz, text)
FROM PUBLIC;

-- fast init (#14, engineer C): option copy_format (auto: binary COPY where both sides can read it).
CREATE OR REPLACE FUNCTION steep_repl._fast_options(method text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF method <> 'fast' OR pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RETURN '{}';
  END IF;
  IF options ? 'copy_format' AND (pg_catalog.jsonb_typeof(options->'copy_format') <> 'string'
                                   OR NOT options->>'copy_format' IN ('auto', 'binary', 'text')) THEN
    RAISE EXCEPTION 'copy_format must be "auto", "binary" or "text", got %', options->'copy_format'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'auto (the default) copies in COPY''s binary format when both servers are of the same major and a table''s column types match, text otherwise; binary forces it.';
  END IF;
  RETURN pg_catalog.jsonb_build_object('copy_format', coalesce(options->>'copy_format', 'auto'), 'split_threshold', steep_repl._int_option(options, 'split_threshold', 67108864, 8192,
    1099511627776, 'split_threshold is the size in bytes above which a table is copied in block ranges of that size (default 64 MiB, at least 8192).'),
    'maintenance_work_mem', steep_repl._fast_size_option(options, 'maintenance_work_mem', '256MB', 1024, 2147483647,
      'maintenance_work_mem is the memory of each session that rebuilds indexes after the load, as for SET (default ''256MB'', 1MB to 2TB).'),
    'max_parallel_maintenance_workers', steep_repl._int_option(options, 'max_parallel_maintenance_workers',
      steep_repl._int_option(options, 'parallel', 4, 1, 16, 'parallel is the number of tables copied at once (default 4).') / 2, 0, 64,
      'max_parallel_maintenance_workers is the helpers of each index build after the load (default half of parallel, 0 to 64).'));
END
$$;
COMMENT ON FUNCTION steep_repl._fast_options(text, jsonb) IS
  'Internal: the options only method fast has (split_threshold 8192..1 TiB, maintenance_work_mem 1MB..2TB, max_parallel_maintenance_workers 0..64, copy_format auto | binary | text, else 22023), validated with their defaults; {} for the other methods.';

-- fast init (#14, engineer C): start_init passes every option _fast_options knows (split_threshold, copy_format,
-- maintenance_work_mem, max_parallel_maintenance_workers) to method fast, not only split_threshold. One line of sql/52_start_init.sql.
COMMENT ON FUNCTION steep_repl.start_init(text, text, text, jsonb) IS
  'Starts initializing the local node target from source: method snapshot (copy_data = true subscription), fast (parallel block-range COPY inside the slot''s exported snapshot, indexes after the load, then a subscription from the slot), two_phase, or merge (both nodes hold data: union with conflict resolution, then subscriptions both ways; job init.merge). Validates first (22023, 42704, 55000, 08001, 42P16, 42P01), creates nothing on error. Returns the init.start (init.fast) job id; watch steep_repl.init_progress.';
-- ---- The merge's SQL layer (issue #13): sql/73_merge.sql and sql/74_merge_apply.sql (engineer A)
-- Bidirectional merge (issue #13), the SQL half: what a merge of this node (the target) with a peer
-- (the source) would move, by primary key and row_hash (sql/71_compare.sql), checked before anything
-- is read. The sidecar's init.merge job moves the rows (sql/74_merge_apply.sql); merge_plan() is the
-- DBA's dry run. A merge is a union: it never deletes a row.

-- One row per merge or dry run, written by the init.merge job (_merge_begin, _merge_finish).
CREATE TABLE steep_repl.merges (
  merge_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  peer         text NOT NULL,
  requested_by text NOT NULL,
  options      jsonb NOT NULL,
  dry_run      boolean NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  finished_at  timestamptz,
  freeze_ms    numeric,
  result       jsonb
);
COMMENT ON TABLE steep_repl.merges IS
  'One row per merge (or dry run) of this node with a peer: who asked, the options, when, how long the write freeze lasted, the outcome.';

-- Every row a merge moved or left alone for the DBA: to_local (the peer's version written here),
-- to_peer (this node's written on the peer), manual (a conflict left as it is).
CREATE TABLE steep_repl.merge_audit_log (
  merge_id           bigint NOT NULL REFERENCES steep_repl.merges,
  schema_name        text,
  table_name         text,
  key                jsonb,
  category           text CHECK (category IN ('conflicting', 'local_only', 'peer_only')),
  resolution         text CHECK (resolution IN ('to_local', 'to_peer', 'manual')),
  tie                boolean NOT NULL DEFAULT false,
  local_hash         bigint,
  peer_hash          bigint,
  local_row          jsonb,
  peer_row           jsonb,
  local_committed_at timestamptz,
  peer_committed_at  timestamptz,
  logged_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  PRIMARY KEY (merge_id, schema_name, table_name, key)
);
COMMENT ON TABLE steep_repl.merge_audit_log IS
  'The rows of each merge that were not identical on both nodes: category, resolution (to_local, to_peer, manual; tie when last-modified could not tell), both row hashes, both row images where a row changed, both commit timestamps.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.merges', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.merge_audit_log', '');

-- A table named as the options name them ("schema.table", or a bare name for schema public) as
-- stored here: "schema.table", or NULL when there is no such table.
CREATE FUNCTION steep_repl._merge_table_name(name text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT l.schema_name || '.' || l.table_name FROM steep_repl._local_tables() l
  WHERE name = l.schema_name || '.' || l.table_name OR (l.schema_name = 'public' AND name = l.table_name)
  ORDER BY l.schema_name = 'public' AND name = l.table_name
  LIMIT 1;
$$;
COMMENT ON FUNCTION steep_repl._merge_table_name(text) IS 'Internal: "schema.table" of a table named in merge options, NULL when none.';

CREATE FUNCTION steep_repl._merge_strategy(name text, v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.jsonb_typeof(v) IS DISTINCT FROM 'string'
     OR v #>> '{}' <> ALL (ARRAY['prefer-source', 'prefer-target', 'last-modified', 'manual']) THEN
    RAISE EXCEPTION '% must be a merge strategy, got %', name, coalesce(v::text, 'nothing')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Strategies: prefer-source (the source''s row wins), prefer-target (this node''s wins), last-modified (the later commit wins; needs track_commit_timestamp = on), manual (conflicts are reported and left alone).';
  END IF;
  RETURN v #>> '{}';
END
$$;
COMMENT ON FUNCTION steep_repl._merge_strategy(text, jsonb) IS 'Internal: a merge strategy option, or 22023.';

CREATE FUNCTION steep_repl._merge_bool(options jsonb, key text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT options ? key OR pg_catalog.jsonb_typeof(options->key) = 'null' THEN
    RETURN false;
  END IF;
  IF pg_catalog.jsonb_typeof(options->key) <> 'boolean' THEN
    RAISE EXCEPTION '% must be true or false, got %', key, options->key USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN (options->key)::boolean;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_bool(jsonb, text) IS 'Internal: a boolean merge option (default false), or 22023.';

-- The options of a merge, checked and completed: anything unknown or out of range is 22023 (an
-- unknown table 42P01) before anything is read. Table names come back as stored, "schema.table".
CREATE FUNCTION steep_repl._merge_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_bad text;
  v_tables text[];
  v_ts jsonb := '{}';
  r record;
  v_name text;
BEGIN
  options := coalesce(options, '{}');
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'merge options must be a JSON object, got %', options USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT pg_catalog.string_agg(k, ', ' ORDER BY k) INTO v_bad FROM pg_catalog.jsonb_object_keys(options) k
  WHERE k <> ALL (ARRAY['strategy', 'table_strategies', 'tables', 'dry_run', 'freeze_timeout', 'long_transaction',
                        'batch_rows', 'statement_timeout', 'verify']);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'unknown merge option: %', v_bad USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Merge options: strategy, table_strategies, tables, dry_run, freeze_timeout, long_transaction, batch_rows, statement_timeout, verify.';
  END IF;

  IF pg_catalog.jsonb_typeof(options->'tables') IS DISTINCT FROM 'null' AND options ? 'tables' THEN
    IF pg_catalog.jsonb_typeof(options->'tables') <> 'array' OR pg_catalog.jsonb_array_length(options->'tables') = 0
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(options->'tables') e WHERE pg_catalog.jsonb_typeof(e) <> 'string') THEN
      RAISE EXCEPTION 'tables must be a non-empty array of table names, got %', options->'tables'
        USING ERRCODE = 'invalid_parameter_value', HINT = 'For example {"tables": ["public.orders", "sales.lines"]}; leave it out for every table.';
    END IF;
    SELECT pg_catalog.string_agg(x, ', ' ORDER BY x) INTO v_bad FROM pg_catalog.jsonb_array_elements_text(options->'tables') x
    WHERE steep_repl._merge_table_name(x) IS NULL;
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'no such table on this node: %', v_bad USING ERRCODE = 'undefined_table',
        HINT = 'Names as stored, without quotes: "public.orders", "My Schema.Odd Table"; a bare name means schema public.';
    END IF;
    v_tables := ARRAY(SELECT DISTINCT steep_repl._merge_table_name(x) FROM pg_catalog.jsonb_array_elements_text(options->'tables') x ORDER BY 1);
  END IF;

  IF options ? 'table_strategies' AND pg_catalog.jsonb_typeof(options->'table_strategies') <> 'null' THEN
    IF pg_catalog.jsonb_typeof(options->'table_strategies') <> 'object' THEN
      RAISE EXCEPTION 'table_strategies must be an object of table name to strategy, got %', options->'table_strategies'
        USING ERRCODE = 'invalid_parameter_value', HINT = 'For example {"table_strategies": {"public.orders": "last-modified"}}.';
    END IF;
    FOR r IN SELECT * FROM pg_catalog.jsonb_each(options->'table_strategies') LOOP
      v_name := steep_repl._merge_table_name(r.key);
      IF v_name IS NULL OR (v_tables IS NOT NULL AND v_name <> ALL (v_tables)) THEN
        v_bad := coalesce(v_bad || ', ', '') || r.key;
      ELSE
        v_ts := v_ts || pg_catalog.jsonb_build_object(v_name,
                  steep_repl._merge_strategy(pg_catalog.format('the strategy of %s', r.key), r.value));
      END IF;
    END LOOP;
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'table_strategies names tables not in the merge: %', v_bad USING ERRCODE = 'invalid_parameter_value',
        HINT = 'Each key must be a table of this node ("schema.table") and, when "tables" is given, one of them.';
    END IF;
  END IF;

  RETURN pg_catalog.jsonb_build_object(
    'strategy', CASE WHEN options ? 'strategy' AND pg_catalog.jsonb_typeof(options->'strategy') <> 'null'
                     THEN steep_repl._merge_strategy('strategy', options->'strategy') ELSE 'manual' END,
    'table_strategies', v_ts,
    'tables', pg_catalog.to_jsonb(v_tables),
    'dry_run', steep_repl._merge_bool(options, 'dry_run'),
    'freeze_timeout', steep_repl._int_option(options, 'freeze_timeout', 30, 1, 600,
      'freeze_timeout is how many seconds the write freeze may wait for its locks and last (1 to 600, default 30).'),
    'long_transaction', steep_repl._int_option(options, 'long_transaction', 60, 1, 86400,
      'long_transaction is the age in seconds past which an open write transaction on a table of the merge stops it (1 to 86400, default 60).'),
    'batch_rows', steep_repl._int_option(options, 'batch_rows', 10000, 1, 1000000,
      'batch_rows is how many rows are moved per statement (1 to 1000000, default 10000).'),
    'statement_timeout', steep_repl._int_option(options, 'statement_timeout', 3600, 1, 86400,
      'statement_timeout is the number of seconds one read of a table on the peer may take (1 to 86400, default 3600).'),
    'verify', steep_repl._merge_bool(options, 'verify'));
END
$$;
COMMENT ON FUNCTION steep_repl._merge_options(jsonb) IS
  'Internal: merge options checked (22023, unknown tables 42P01) and completed with their defaults: strategy manual, table_strategies {}, tables null (all), dry_run false, freeze_timeout 30, long_transaction 60, batch_rows 10000, statement_timeout 3600, verify false.';

-- Runs sql on the peer and returns its single text column's values (NULLs left out).
CREATE FUNCTION steep_repl._merge_peer_texts(conn text, sql text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text[];
BEGIN
  EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.array_agg(x) FILTER (WHERE x IS NOT NULL), ''{}'') FROM %I.dblink($1, $2) AS t(x text)',
                            steep_repl._dblink_schema()) INTO v USING conn, sql;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_peer_texts(text, text) IS 'Internal: the text values a query returns on the peer.';

-- The peer answers the merge's calls (_merge_rows, _merge_apply) only from 1.1 on.
CREATE FUNCTION steep_repl._merge_check_peer(peer text, conn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.cardinality(steep_repl._merge_peer_texts(conn,
       'SELECT ''ok'' WHERE pg_catalog.to_regprocedure(''steep_repl._merge_apply(pg_catalog.regclass, pg_catalog.jsonb)'') IS NOT NULL
                        AND pg_catalog.to_regprocedure(''steep_repl._merge_rows(pg_catalog.regclass, pg_catalog.jsonb)'') IS NOT NULL')) = 0 THEN
    RAISE EXCEPTION 'node % cannot take part in a merge: its steep_repl has no merge functions', peer
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('ALTER EXTENSION steep_repl UPDATE on node %s.', peer);
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_check_peer(text, text) IS 'Internal: 55000 unless the peer has the merge functions.';

-- Every table in scope has a primary key on both nodes: one error lists all that do not.
CREATE FUNCTION steep_repl._merge_check_keys(peer text, conn text, tables text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_scope steep_repl.table_info[];
  v_bad text[];
BEGIN
  v_scope := ARRAY(SELECT l FROM steep_repl._local_tables() l
                   WHERE tables IS NULL OR l.schema_name || '.' || l.table_name = ANY (tables));
  v_bad := ARRAY(SELECT pg_catalog.format('%I.%I (here)', s.schema_name, s.table_name) FROM pg_catalog.unnest(v_scope) s
                 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = s.relid::oid AND i.indisprimary)
                 ORDER BY 1);
  v_bad := v_bad || steep_repl._merge_peer_texts(conn, pg_catalog.format(
    'SELECT pg_catalog.format(''%%I.%%I (on node %%s)'', n.nspname, c.relname, %L)
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     JOIN ROWS FROM (pg_catalog.unnest(%L::pg_catalog.text[]), pg_catalog.unnest(%L::pg_catalog.text[])) AS s(nsp, rel)
       ON s.nsp OPERATOR(pg_catalog.=) n.nspname::pg_catalog.text AND s.rel OPERATOR(pg_catalog.=) c.relname::pg_catalog.text
     WHERE c.relkind OPERATOR(pg_catalog.=) ''r''
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid AND i.indisprimary)
     ORDER BY 1',
    peer, ARRAY(SELECT s.schema_name FROM pg_catalog.unnest(v_scope) s), ARRAY(SELECT s.table_name FROM pg_catalog.unnest(v_scope) s)));
  IF pg_catalog.cardinality(v_bad) > 0 THEN
    RAISE EXCEPTION 'tables without a primary key cannot be merged: %', pg_catalog.array_to_string(v_bad, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add a primary key to each, on both nodes, or leave them out with "tables".';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_check_keys(text, text, text[]) IS
  'Internal: 55000 listing every table in scope without a primary key, here or on the peer.';

-- The tables in scope have the same definition on both nodes (and, when the scope is every
-- table, the peer has none this node lacks).
CREATE FUNCTION steep_repl._merge_check_fingerprints(peer text, scope steep_repl.compare_table[], every_table boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_bad text;
BEGIN
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I (%s)', f.schema_name, f.table_name,
           CASE f.status WHEN 'LOCAL_ONLY' THEN 'not on node ' || peer WHEN 'REMOTE_ONLY' THEN 'only on node ' || peer
                ELSE 'definitions differ' END), ', ' ORDER BY f.schema_name, f.table_name) INTO v_bad
  FROM steep_repl.compare_fingerprints(peer) f
  WHERE f.status <> 'MATCH'
    AND ((every_table AND f.status = 'REMOTE_ONLY')
         OR EXISTS (SELECT 1 FROM pg_catalog.unnest(scope) s WHERE s.schema_name = f.schema_name AND s.table_name = f.table_name));
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables differ between this node and node %: %', peer, v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('SELECT * FROM steep_repl.schema_diff(%L) shows how; make them equal (steep_repl.schema_sync) or leave them out with "tables".', peer);
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_check_fingerprints(text, steep_repl.compare_table[], boolean) IS
  'Internal: 55000 listing every table in scope whose fingerprint does not MATCH the peer''s.';

-- last-modified reads each row version's commit timestamp, on both nodes.
CREATE FUNCTION steep_repl._merge_check_commit_ts(peer text, conn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_off text[] := '{}';
BEGIN
  IF NOT pg_catalog.current_setting('track_commit_timestamp')::boolean THEN
    v_off := v_off || pg_catalog.format('this node (%s)', steep_repl._local_node());
  END IF;
  IF pg_catalog.cardinality(steep_repl._merge_peer_texts(conn,
       'SELECT ''on'' WHERE pg_catalog.current_setting(''track_commit_timestamp'')::pg_catalog.bool')) = 0 THEN
    v_off := v_off || pg_catalog.format('node %s', peer);
  END IF;
  IF pg_catalog.cardinality(v_off) > 0 THEN
    RAISE EXCEPTION 'the last-modified strategy needs track_commit_timestamp = on, which is off on %', pg_catalog.array_to_string(v_off, ' and ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'ALTER SYSTEM SET track_commit_timestamp = on and restart the server (rows written before have no commit timestamp and resolve as ties, to the source); or choose another strategy.';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_check_commit_ts(text, text) IS 'Internal: 55000 unless track_commit_timestamp is on here and on the peer.';

-- The sessions holding a write lock (RowExclusiveLock or stronger) on one of the tables in a
-- transaction older than max_age seconds: the freeze would wait on them. Run here and on the peer.
CREATE FUNCTION steep_repl._merge_long_xacts_sql(names text[], tables text[], max_age integer) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
    'SELECT pg_catalog.format(''pid %%s holds %%s on %%I.%%I in a transaction open for %%s s'', l.pid, l.mode, s.nsp, s.rel,
              pg_catalog.round(EXTRACT(epoch FROM (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) a.xact_start))))
     FROM pg_catalog.pg_locks l
     JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
     JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) l.relation
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     JOIN ROWS FROM (pg_catalog.unnest(%L::pg_catalog.text[]), pg_catalog.unnest(%L::pg_catalog.text[])) AS s(nsp, rel)
       ON s.nsp OPERATOR(pg_catalog.=) n.nspname::pg_catalog.text AND s.rel OPERATOR(pg_catalog.=) c.relname::pg_catalog.text
     WHERE l.locktype OPERATOR(pg_catalog.=) ''relation'' AND l.granted
       AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
       AND l.mode OPERATOR(pg_catalog.=) ANY (ARRAY[''RowExclusiveLock'', ''ShareUpdateExclusiveLock'', ''ShareLock'',
                                                    ''ShareRowExclusiveLock'', ''ExclusiveLock'', ''AccessExclusiveLock''])
       AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
       AND a.xact_start OPERATOR(pg_catalog.<) (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => %s))
     ORDER BY l.pid, s.nsp, s.rel', names, tables, max_age);
$$;
COMMENT ON FUNCTION steep_repl._merge_long_xacts_sql(text[], text[], integer) IS
  'Internal: the query listing transactions older than max_age seconds that hold a write lock on one of the tables.';

CREATE FUNCTION steep_repl._merge_check_long_xacts(peer text, conn text, scope steep_repl.compare_table[], max_age integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sql text := steep_repl._merge_long_xacts_sql(ARRAY(SELECT s.schema_name FROM pg_catalog.unnest(scope) s),
                                                 ARRAY(SELECT s.table_name FROM pg_catalog.unnest(scope) s), max_age);
  v_here text[];
  v_peer text[];
BEGIN
  EXECUTE 'SELECT coalesce(pg_catalog.array_agg(x), ''{}'') FROM (' || v_sql || ') t(x)' INTO v_here;
  v_peer := steep_repl._merge_peer_texts(conn, v_sql);
  IF pg_catalog.cardinality(v_here) + pg_catalog.cardinality(v_peer) > 0 THEN
    RAISE EXCEPTION 'write transactions older than % s are open on tables of the merge: %', max_age,
        pg_catalog.concat_ws('; ',
          CASE WHEN pg_catalog.cardinality(v_here) > 0 THEN 'here: ' || pg_catalog.array_to_string(v_here, ', ') END,
          CASE WHEN pg_catalog.cardinality(v_peer) > 0 THEN pg_catalog.format('on node %s: ', peer) || pg_catalog.array_to_string(v_peer, ', ') END)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Let them finish, or end them (SELECT pg_terminate_backend(pid)); or allow older ones with {"long_transaction": seconds}.';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_check_long_xacts(text, text, steep_repl.compare_table[], integer) IS
  'Internal: 55000 naming pid, table, lock and age of every write transaction older than max_age seconds on a table in scope, here or on the peer.';

-- Each table's position in foreign-key order among the tables in scope, parents first (a table
-- referencing itself is fine): {"schema.table": position}. A cycle between tables is refused,
-- naming the tables on it.
CREATE FUNCTION steep_repl._merge_fk_order(scope steep_repl.compare_table[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rel oid[] := ARRAY(SELECT s.relid::oid FROM pg_catalog.unnest(scope) s);
  v_child oid[];
  v_parent oid[];
  v_left oid[];
  v_ready oid[];
  v_level integer := 0;
  v_levels jsonb := '{}';
  v_bad text;
BEGIN
  SELECT coalesce(pg_catalog.array_agg(c.conrelid), '{}'), coalesce(pg_catalog.array_agg(c.confrelid), '{}') INTO v_child, v_parent
  FROM (SELECT DISTINCT c.conrelid, c.confrelid FROM pg_catalog.pg_constraint c
        WHERE c.contype = 'f' AND c.conrelid = ANY (v_rel) AND c.confrelid = ANY (v_rel) AND c.conrelid <> c.confrelid) c;
  v_left := v_rel;
  -- Kahn's algorithm by levels: a table is ready once none of its parents is left.
  LOOP
    v_ready := ARRAY(SELECT x FROM pg_catalog.unnest(v_left) x
                     WHERE NOT EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest(v_child), pg_catalog.unnest(v_parent)) e(c, p) WHERE e.c = x AND e.p = ANY (v_left)));
    EXIT WHEN pg_catalog.cardinality(v_ready) = 0;
    v_levels := v_levels || (SELECT pg_catalog.jsonb_object_agg(x::text, v_level) FROM pg_catalog.unnest(v_ready) x);
    v_left := ARRAY(SELECT x FROM pg_catalog.unnest(v_left) x WHERE x <> ALL (v_ready));
    v_level := v_level + 1;
  END LOOP;
  IF pg_catalog.cardinality(v_left) > 0 THEN
    -- Left: the tables of cycles and their descendants; drop the descendants (no child left).
    LOOP
      v_ready := ARRAY(SELECT x FROM pg_catalog.unnest(v_left) x
                       WHERE NOT EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest(v_child), pg_catalog.unnest(v_parent)) e(c, p) WHERE e.p = x AND e.c = ANY (v_left)));
      EXIT WHEN pg_catalog.cardinality(v_ready) = 0;
      v_left := ARRAY(SELECT x FROM pg_catalog.unnest(v_left) x WHERE x <> ALL (v_ready));
    END LOOP;
    SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ' ORDER BY s.schema_name, s.table_name)
      INTO v_bad FROM pg_catalog.unnest(scope) s WHERE s.relid::oid = ANY (v_left);
    RAISE EXCEPTION 'foreign keys form a cycle between tables of the merge: %', v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Rows are written parents first, which a cycle has not: leave one of these tables out with "tables", or merge them in two calls.';
  END IF;
  RETURN (SELECT coalesce(pg_catalog.jsonb_object_agg(o.name, o.n), '{}')
          FROM (SELECT s.schema_name || '.' || s.table_name AS name,
                       pg_catalog.row_number() OVER (ORDER BY (v_levels->>(s.relid::oid::text))::integer, s.schema_name, s.table_name) AS n
                FROM pg_catalog.unnest(scope) s) o);
END
$$;
COMMENT ON FUNCTION steep_repl._merge_fk_order(steep_repl.compare_table[]) IS
  'Internal: {"schema.table": position} of the tables in foreign-key order, parents first; 55000 naming the tables of a cycle.';

-- key text -> commit timestamp of the row versions of a table with the given keys, read with
-- the same key text as _compare_sql prints, here and (as text, dblink's $2) on the peer.
CREATE FUNCTION steep_repl._merge_commit_ts_sql(t steep_repl.compare_table, keys jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
    'SELECT pg_catalog.jsonb_build_object(%s)::pg_catalog.text, pg_catalog.pg_xact_commit_timestamp(r.xmin) FROM %I.%I r
     WHERE (%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset(%L::pg_catalog.jsonb) AS k(%s))',
    (SELECT pg_catalog.string_agg(pg_catalog.format('%L, r.%I', c, c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
    t.schema_name, t.table_name,
    (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
    keys::text,
    (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
     FROM ROWS FROM (pg_catalog.unnest(t.key_cols), pg_catalog.unnest(t.key_types)) WITH ORDINALITY x(c, ty, o)));
$$;
COMMENT ON FUNCTION steep_repl._merge_commit_ts_sql(steep_repl.compare_table, jsonb) IS
  'Internal: SELECT key, pg_xact_commit_timestamp(xmin) of a table''s rows with the given keys.';

-- The merge's plan on behalf of as_role: the pre-flight, then one pass of keys and row hashes per
-- table, every row not identical on both nodes with its category and resolution. Reads only, with
-- a snapshot of its own per statement (READ COMMITTED): the sidecar calls it again under the
-- write freeze and sees what changed meanwhile.
CREATE FUNCTION steep_repl._merge_plan(peer text, options jsonb, as_role regrole)
RETURNS TABLE (apply_order integer, schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
               local_hash bigint, peer_hash bigint, local_committed_at timestamptz, peer_committed_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_opts jsonb;
  v_names text[];
  v_conn text;
  v_scope steep_repl.compare_table[];
  v_order jsonb;
  v_t steep_repl.compare_table;
  v_strategy text;
  v_k text[];
  v_lh bigint[];
  v_ph bigint[];
  v_keys jsonb;
  v_lts jsonb;
  v_pts jsonb;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  PERFORM steep_repl._require('as_role', as_role);
  v_opts := steep_repl._merge_options(options);
  IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a merge plan reads the current rows of both nodes' USING ERRCODE = 'invalid_transaction_state',
      HINT = 'Run it outside a REPEATABLE READ or SERIALIZABLE transaction.';
  END IF;
  IF v_opts->'tables' <> 'null' THEN
    v_names := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_opts->'tables'));
  END IF;
  v_conn := steep_repl._compare_conninfo(peer, (v_opts->>'statement_timeout')::integer);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);
  PERFORM steep_repl._merge_check_peer(peer, v_conn);
  PERFORM steep_repl._merge_check_keys(peer, v_conn, v_names);
  v_scope := ARRAY(SELECT s FROM steep_repl._compare_scope(v_names, as_role) s);
  PERFORM steep_repl._merge_check_fingerprints(peer, v_scope, v_names IS NULL);
  IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_scope) s
             WHERE coalesce(v_opts->'table_strategies'->>(s.schema_name || '.' || s.table_name), v_opts->>'strategy') = 'last-modified') THEN
    PERFORM steep_repl._merge_check_commit_ts(peer, v_conn);
  END IF;
  PERFORM steep_repl._merge_check_long_xacts(peer, v_conn, v_scope, (v_opts->>'long_transaction')::integer);
  v_order := steep_repl._merge_fk_order(v_scope);

  FOR v_t IN SELECT s.* FROM pg_catalog.unnest(v_scope) s ORDER BY (v_order->>(s.schema_name || '.' || s.table_name))::integer LOOP
    v_strategy := coalesce(v_opts->'table_strategies'->>(v_t.schema_name || '.' || v_t.table_name), v_opts->>'strategy');
    SELECT coalesce(pg_catalog.array_agg(p.key ORDER BY p.key), '{}'), pg_catalog.array_agg(p.local_hash ORDER BY p.key),
           pg_catalog.array_agg(p.peer_hash ORDER BY p.key)
      INTO v_k, v_lh, v_ph FROM steep_repl._compare_pass(v_conn, v_t) p;
    CONTINUE WHEN pg_catalog.cardinality(v_k) = 0;
    v_lts := '{}';
    v_pts := '{}';
    IF v_strategy = 'last-modified' THEN
      v_keys := (SELECT pg_catalog.jsonb_agg(x.k::jsonb) FROM ROWS FROM (pg_catalog.unnest(v_k), pg_catalog.unnest(v_lh), pg_catalog.unnest(v_ph)) x(k, l, p)
                 WHERE x.l IS NOT NULL AND x.p IS NOT NULL);
      IF v_keys IS NOT NULL THEN
        EXECUTE 'SELECT coalesce(pg_catalog.jsonb_object_agg(k, c), ''{}'') FROM (' || steep_repl._merge_commit_ts_sql(v_t, v_keys) || ') x(k, c)'
          INTO v_lts;
        EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(k, c), ''{}'') FROM %I.dblink($1, $2) AS x(k text, c timestamptz)',
                                  steep_repl._dblink_schema())
          INTO v_pts USING v_conn, steep_repl._merge_commit_ts_sql(v_t, v_keys);
      END IF;
    END IF;
    RETURN QUERY
      SELECT (v_order->>(v_t.schema_name || '.' || v_t.table_name))::integer, v_t.schema_name, v_t.table_name, x.k::jsonb,
             CASE WHEN x.l IS NULL THEN 'peer_only' WHEN x.p IS NULL THEN 'local_only' ELSE 'conflicting' END,
             CASE WHEN x.l IS NULL THEN 'to_local' WHEN x.p IS NULL THEN 'to_peer'
                  WHEN v_strategy = 'prefer-source' THEN 'to_local'
                  WHEN v_strategy = 'prefer-target' THEN 'to_peer'
                  WHEN v_strategy = 'manual' THEN 'manual'
                  WHEN (v_lts->>x.k)::timestamptz > (v_pts->>x.k)::timestamptz THEN 'to_peer'
                  ELSE 'to_local' END,
             -- last-modified: an equal or unknown commit time is a tie, resolved to the source.
             x.l IS NOT NULL AND x.p IS NOT NULL AND v_strategy = 'last-modified'
               AND (v_lts->>x.k IS NULL OR v_pts->>x.k IS NULL OR (v_lts->>x.k)::timestamptz = (v_pts->>x.k)::timestamptz),
             x.l, x.p, (v_lts->>x.k)::timestamptz, (v_pts->>x.k)::timestamptz
      FROM ROWS FROM (pg_catalog.unnest(v_k), pg_catalog.unnest(v_lh), pg_catalog.unnest(v_ph)) x(k, l, p);
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_plan(text, jsonb, regrole) IS
  'Internal: the pre-flight and plan of a merge with peer (the source) on behalf of as_role: every row not identical on both nodes, with apply_order (foreign-key order), category, resolution, tie, both hashes and (last-modified) both commit timestamps.';

CREATE FUNCTION steep_repl.merge_plan(peer text, options jsonb DEFAULT '{}')
RETURNS TABLE (apply_order integer, schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
               local_hash bigint, peer_hash bigint, local_committed_at timestamptz, peer_committed_at timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT * FROM steep_repl._merge_plan(peer, options, steep_repl._caller());
$$;
COMMENT ON FUNCTION steep_repl.merge_plan(text, jsonb) IS
  'Dry run of a merge of this node (the target) with peer (the source): what would move in each direction (to_local, to_peer) and what is left to the DBA (manual), row by row, after the merge''s pre-flight. Changes nothing; only keys and row hashes cross the network.';
GRANT EXECUTE ON FUNCTION steep_repl.merge_plan(text, jsonb) TO steep_repl_admin;
GRANT SELECT ON steep_repl.merges, steep_repl.merge_audit_log TO steep_repl_admin;

-- Moving a merge's rows (sql/73_merge.sql plans them), called by the sidecar's init.merge job inside
-- its open transaction on each node: _merge_rows reads rows by key on one node, _merge_apply upserts
-- them on the other as the table's owner with user triggers off, under the replication origin
-- steep_repl_merge (so the subscriptions created next, origin = none, never send them back). Rows
-- travel as each column's text form under pinned settings: the form pg_dump relies on, exact for
-- every type (to_jsonb is not: json loses its spacing and key order, a user type may cast to json).

-- A table of a merge with its primary key; 55000 without one.
CREATE FUNCTION steep_repl._merge_table(rel regclass) RETURNS steep_repl.compare_table
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v steep_repl.compare_table;
BEGIN
  PERFORM steep_repl._require('rel', rel);
  SELECT c.oid::regclass, n.nspname::text, c.relname::text,
             ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i
                   CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord),
             ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_index i
                   CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord)
    INTO v
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
  IF pg_catalog.cardinality(v.key_cols) = 0 THEN
    RAISE EXCEPTION 'table % has no primary key: a merge moves rows by primary key', rel
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add a primary key on both nodes, or leave the table out of the merge.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_table(regclass) IS 'Internal: rel with its primary key columns and types; 55000 without a primary key.';

-- The rows of rel with the given primary keys (a jsonb array of key objects, as _merge_plan
-- returns them): a jsonb array of objects, column name -> its text form (NULL: JSON null),
-- generated columns left out. Read as the extension's owner, which bypasses row-level security
-- (a merge must see every row) and runs no user code: values are printed by their types' output
-- functions (format's %s), never through a cast.
CREATE FUNCTION steep_repl._merge_rows(rel regclass, keys jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 3 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_names text[];
  v_values text;
  v jsonb;
BEGIN
  PERFORM steep_repl._require('keys', keys);
  IF pg_catalog.jsonb_typeof(keys) <> 'array' THEN
    RAISE EXCEPTION 'keys must be a JSON array of primary key objects, got %', pg_catalog.left(keys::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('CASE WHEN pg_catalog.num_nulls(r.%1$I) OPERATOR(pg_catalog.=) 1 THEN NULL ELSE pg_catalog.format(''%%s'', r.%1$I) END',
                                                 a.attname), ', ' ORDER BY a.attnum)
    INTO v_names, v_values
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  EXECUTE pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_object(%L::pg_catalog.text[], ARRAY[%s]::pg_catalog.text[])), ''[]'')
     FROM %s r WHERE (%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset($1) AS k(%s))',
    v_names, v_values, rel,
    (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
     FROM ROWS FROM (pg_catalog.unnest(v_t.key_cols), pg_catalog.unnest(v_t.key_types)) WITH ORDINALITY x(c, ty, o)))
    INTO v USING keys;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_rows(regclass, jsonb) IS
  'Sidecar: the rows of rel with the given primary keys, as a jsonb array of {column: text form} (generated columns left out), printed under pinned settings so that _merge_apply on another node writes the same values.';

-- The query listing, per incoming row (CTE inc: the rows with every column, generated ones
-- computed), the unique indexes other than the primary key it would violate: against the rows
-- of rel it does not replace, and against the other incoming rows. Index expressions and
-- predicates are the index's own, compared with its operator class's equality.
CREATE FUNCTION steep_repl._merge_collisions_sql(t steep_repl.compare_table) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ix record;
  v_parts text[] := '{}';
  v_exprs text;
  v_match_x text;
  v_match_j text;
  v_pred text;
  v_key text := (SELECT pg_catalog.format('pg_catalog.jsonb_build_object(%s)', pg_catalog.string_agg(pg_catalog.format('%L, t.%I', c, c), ', ' ORDER BY o))
                 FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o));
  v_pk_match text := (SELECT pg_catalog.string_agg(pg_catalog.format('n.%1$I = t.%1$I', c), ' AND ' ORDER BY o)
                      FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o));
BEGIN
  FOR ix IN SELECT i.indexrelid, c.relname::text AS name, i.indnkeyatts, i.indnullsnotdistinct, i.indclass,
                   pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) AS pred
            FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = t.relid AND i.indisunique AND NOT i.indisprimary AND i.indislive AND i.indisready
            ORDER BY c.relname LOOP
    SELECT pg_catalog.string_agg(pg_catalog.format('(%s) AS u%s', pg_catalog.pg_get_indexdef(ix.indexrelid, k, true), k), ', ' ORDER BY k),
           pg_catalog.string_agg(CASE WHEN ix.indnullsnotdistinct
                                      THEN pg_catalog.format('(x.u%1$s %2$s i.u%1$s OR (x.u%1$s IS NULL AND i.u%1$s IS NULL))', k, op)
                                      ELSE pg_catalog.format('x.u%1$s %2$s i.u%1$s', k, op) END, ' AND ' ORDER BY k)
      INTO v_exprs, v_match_x
    FROM pg_catalog.generate_series(1, ix.indnkeyatts) k
    CROSS JOIN LATERAL (
      SELECT pg_catalog.format('OPERATOR(%I.%s)', n.nspname, o.oprname) AS op
      FROM pg_catalog.pg_opclass oc
      JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoplefttype = oc.opcintype
                                 AND ao.amoprighttype = oc.opcintype AND ao.amopstrategy = 3
      JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
      JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
      WHERE oc.oid = ix.indclass[k - 1]) e;
    v_match_j := pg_catalog.replace(v_match_x, 'x.u', 'j.u');
    v_pred := coalesce('(' || ix.pred || ')', 'true');
    v_parts := v_parts || pg_catalog.format(
      'SELECT i.key, %1$L::pg_catalog.text AS idx FROM (SELECT %2$s AS key, %3$s FROM inc t WHERE %4$s) i
       WHERE EXISTS (SELECT 1 FROM (SELECT %3$s FROM %5$s t WHERE %4$s AND NOT EXISTS (SELECT 1 FROM inc n WHERE %6$s)) x WHERE %7$s)
          OR EXISTS (SELECT 1 FROM (SELECT %2$s AS key, %3$s FROM inc t WHERE %4$s) j WHERE j.key OPERATOR(pg_catalog.<>) i.key AND %8$s)',
      ix.name, v_key, v_exprs, v_pred, t.relid, v_pk_match, v_match_x, v_match_j);
  END LOOP;
  IF pg_catalog.cardinality(v_parts) = 0 THEN
    RETURN NULL;
  END IF;
  RETURN 'SELECT pg_catalog.count(*), pg_catalog.string_agg(pg_catalog.format(''key %s collides on %s'', g.key, g.idx), ''; '' ORDER BY g.key)
          FROM (SELECT u.key::pg_catalog.text AS key, pg_catalog.string_agg(u.idx, '', '' ORDER BY u.idx) AS idx
                FROM (' || pg_catalog.array_to_string(v_parts, ' UNION ALL ') || ') u GROUP BY u.key) g';
END
$$;
COMMENT ON FUNCTION steep_repl._merge_collisions_sql(steep_repl.compare_table) IS
  'Internal: the query counting and describing incoming rows (CTE inc) that collide with a unique index of the table other than its primary key.';

-- Upserts rows (as _merge_rows returns them) into rel: INSERT ... ON CONFLICT (primary key) DO
-- UPDATE every other column, identity values kept, generated columns computed. It runs as the
-- table's owner (its defaults, CHECKs and index expressions never run with the definer's rights)
-- with session_replication_role = replica, so user triggers do not fire. First every unique
-- constraint other than the primary key is checked: one 23505 lists every collision, and
-- nothing is written. Returns the number of rows written.
CREATE FUNCTION steep_repl._merge_apply(rel regclass, rows jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica'
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_n bigint;
  v_bad text;
  v_cols text;
  v_casts text;
  v_set text;
  v_gen text;
  v_inc text;
  v_check text;
  v_insert text;
BEGIN
  PERFORM steep_repl._require('rows', rows);
  IF pg_catalog.jsonb_typeof(rows) <> 'array'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(rows) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
    RAISE EXCEPTION 'rows must be a JSON array of row objects, got %', pg_catalog.left(rows::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_n := pg_catalog.jsonb_array_length(rows);
  IF v_n = 0 THEN
    RETURN 0;
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ') INTO v_bad FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped AND a.attname::text <> ALL (v_t.key_cols);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'column % of % is GENERATED ALWAYS AS IDENTITY outside the primary key: a merge cannot update it', v_bad, rel
      USING ERRCODE = 'feature_not_supported',
            HINT = 'ALTER TABLE ... ALTER COLUMN ... SET GENERATED BY DEFAULT on both nodes for the merge, or leave the table out.';
  END IF;
  -- Each value through its type's input function, cast to the column's exact type (a type name
  -- without its typmod is not always unconstrained: character means character(1)).
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('(e.value OPERATOR(pg_catalog.->>) %L)::%s AS %I', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attname),
                               ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('%1$I = EXCLUDED.%1$I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname::text <> ALL (v_t.key_cols))
    INTO v_cols, v_casts, v_set
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  SELECT pg_catalog.string_agg(pg_catalog.format(', (%s) AS %I', pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attname), '' ORDER BY a.attnum)
    INTO v_gen
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '';
  -- The rows reach the owner's statements through a setting of this call (reset when it
  -- returns), not as a literal nested in three levels of quoting.
  PERFORM pg_catalog.set_config('steep_repl_merge.rows', rows::text, true);
  v_inc := pg_catalog.format('SELECT %s FROM pg_catalog.jsonb_array_elements(pg_catalog.current_setting(''steep_repl_merge.rows'')::pg_catalog.jsonb) e',
                             v_casts);
  v_check := steep_repl._merge_collisions_sql(v_t);
  v_insert := pg_catalog.format('INSERT INTO %s AS t (%s) %s SELECT * FROM (%s) i ON CONFLICT (%s) DO %s',
    rel, v_cols,
    CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped)
         THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END,
    v_inc, (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(v_t.key_cols) c),
    coalesce('UPDATE SET ' || v_set, 'NOTHING'));
  -- One block run as the owner: the check sees the rows as the owner does, and its error (or the
  -- insert's) reaches the caller with nothing written.
  IF v_check IS NOT NULL THEN
    v_check := 'WITH inc AS MATERIALIZED (SELECT i.*' || coalesce(v_gen, '') || ' FROM (' || v_inc || ') i) ' || v_check;
  END IF;
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DO %L', pg_catalog.format($do$
DECLARE
  v_count bigint;
  v_detail text;
  v_n bigint;
BEGIN
  IF %1$s THEN
    EXECUTE %2$L INTO v_count, v_detail;
    IF v_count > 0 THEN
      RAISE EXCEPTION '%% row(s) to merge into %% collide with unique constraints', v_count, %3$L
        USING ERRCODE = 'unique_violation', DETAIL = v_detail,
              HINT = 'Each listed row would repeat a value another row of the table holds: change or delete one of the two on either node (or leave the table out), then merge again.';
    END IF;
  END IF;
  EXECUTE %4$L;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  IF %5$s AND v_n OPERATOR(pg_catalog.<>) %6$s THEN
    RAISE EXCEPTION 'the merge wrote %% of %% rows into %%', v_n, %6$s, %3$L USING ERRCODE = 'internal_error';
  END IF;
END
$do$, (v_check IS NOT NULL)::text, v_check, rel::text, v_insert, (v_set IS NOT NULL)::text, v_n)));
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_apply(regclass, jsonb) IS
  'Sidecar: upserts rows (as _merge_rows returns them) into rel by primary key, as its owner, with user triggers off; 23505 listing every row that collides with a unique constraint other than the primary key (with all of them), nothing written. Returns the rows written.';

-- Every merge write carries the replication origin steep_repl_merge: a subscription with
-- origin = none does not send it back.
CREATE FUNCTION steep_repl._merge_origin_begin() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.pg_replication_origin_oid('steep_repl_merge') IS NULL THEN
    BEGIN
      PERFORM pg_catalog.pg_replication_origin_create('steep_repl_merge');
    EXCEPTION WHEN unique_violation THEN
      NULL;  -- another session created it meanwhile
    END;
  END IF;
  IF pg_catalog.pg_replication_origin_session_is_setup() THEN
    PERFORM pg_catalog.pg_replication_origin_session_reset();
  END IF;
  PERFORM pg_catalog.pg_replication_origin_session_setup('steep_repl_merge');
END
$$;
COMMENT ON FUNCTION steep_repl._merge_origin_begin() IS
  'Sidecar: this session''s writes carry the replication origin steep_repl_merge (created if absent) until _merge_origin_end.';

CREATE FUNCTION steep_repl._merge_origin_end() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.pg_replication_origin_session_is_setup() THEN
    PERFORM pg_catalog.pg_replication_origin_session_reset();
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_origin_end() IS 'Sidecar: ends _merge_origin_begin (no error when no origin is set up).';

CREATE FUNCTION steep_repl._merge_begin(peer text, options jsonb, as_role regrole) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb;
  v_id bigint;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  PERFORM steep_repl._require('as_role', as_role);
  v_opts := steep_repl._merge_options(options);
  INSERT INTO steep_repl.merges (peer, requested_by, options, dry_run)
  VALUES (peer, as_role::text, v_opts, (v_opts->>'dry_run')::boolean)
  RETURNING merge_id INTO v_id;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_begin(text, jsonb, regrole) IS 'Sidecar: records a merge (or dry run) with peer on behalf of as_role; returns its merge_id.';

CREATE FUNCTION steep_repl._merge_audit(merge_id bigint, rows jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_n bigint;
BEGIN
  PERFORM steep_repl._require('merge_id', merge_id);
  IF pg_catalog.jsonb_typeof(rows) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'rows must be a JSON array of audit rows' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO steep_repl.merge_audit_log (merge_id, schema_name, table_name, key, category, resolution, tie, local_hash, peer_hash,
                                          local_row, peer_row, local_committed_at, peer_committed_at, logged_at)
  SELECT _merge_audit.merge_id, x.schema_name, x.table_name, x.key, x.category, x.resolution, coalesce(x.tie, false),
         x.local_hash, x.peer_hash, x.local_row, x.peer_row, x.local_committed_at, x.peer_committed_at,
         coalesce(x.logged_at, pg_catalog.clock_timestamp())
  FROM pg_catalog.jsonb_to_recordset(rows) AS x(schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
         local_hash bigint, peer_hash bigint, local_row jsonb, peer_row jsonb, local_committed_at timestamptz,
         peer_committed_at timestamptz, logged_at timestamptz);
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_audit(bigint, jsonb) IS 'Sidecar: adds audit rows (objects with merge_audit_log''s column names) to a merge; returns how many.';

CREATE FUNCTION steep_repl._merge_finish(merge_id bigint, freeze_ms numeric, result jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE steep_repl.merges m SET finished_at = pg_catalog.clock_timestamp(), freeze_ms = _merge_finish.freeze_ms, result = _merge_finish.result
  WHERE m.merge_id = _merge_finish.merge_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no merge %', merge_id USING ERRCODE = 'undefined_object';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_finish(bigint, numeric, jsonb) IS 'Sidecar: records the end of a merge: its write freeze in ms and its result.';

GRANT EXECUTE ON FUNCTION steep_repl._merge_rows(regclass, jsonb), steep_repl._merge_apply(regclass, jsonb),
  steep_repl._merge_origin_begin(), steep_repl._merge_origin_end(), steep_repl._merge_begin(text, jsonb, regrole),
  steep_repl._merge_audit(bigint, jsonb), steep_repl._merge_finish(bigint, numeric, jsonb)
TO steep_repl_sidecar;

-- The merge's functions are nobody's but their grantees' (a fresh install revokes them all in sql/90_security.sql).
REVOKE ALL ON FUNCTION steep_repl._merge_table_name(text), steep_repl._merge_strategy(text, jsonb), steep_repl._merge_bool(jsonb, text),
  steep_repl._merge_options(jsonb), steep_repl._merge_peer_texts(text, text), steep_repl._merge_check_peer(text, text),
  steep_repl._merge_check_keys(text, text, text[]), steep_repl._merge_check_fingerprints(text, steep_repl.compare_table[], boolean),
  steep_repl._merge_check_commit_ts(text, text), steep_repl._merge_long_xacts_sql(text[], text[], integer),
  steep_repl._merge_check_long_xacts(text, text, steep_repl.compare_table[], integer), steep_repl._merge_fk_order(steep_repl.compare_table[]),
  steep_repl._merge_commit_ts_sql(steep_repl.compare_table, jsonb), steep_repl._merge_plan(text, jsonb, regrole),
  steep_repl.merge_plan(text, jsonb), steep_repl._merge_table(regclass), steep_repl._merge_rows(regclass, jsonb),
  steep_repl._merge_collisions_sql(steep_repl.compare_table), steep_repl._merge_apply(regclass, jsonb),
  steep_repl._merge_origin_begin(), steep_repl._merge_origin_end(), steep_repl._merge_begin(text, jsonb, regrole),
  steep_repl._merge_audit(bigint, jsonb), steep_repl._merge_finish(bigint, numeric, jsonb)
FROM PUBLIC;
REVOKE ALL ON SEQUENCE steep_repl.merges_merge_id_seq FROM PUBLIC;
-- ---- end of the merge's SQL layer (engineer A)

-- fast init (#14, engineer C): resume (sql/53c_fast_resume.sql): the plan of block ranges and the snapshot holder.
CREATE TABLE steep_repl.init_fast_chunks (
  node        text NOT NULL REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  from_block  bigint NOT NULL,
  to_block    bigint NOT NULL,
  of_chunks   integer NOT NULL,
  bytes       bigint NOT NULL,
  done        boolean NOT NULL DEFAULT false,
  PRIMARY KEY (node, schema_name, table_name, from_block)
);
GRANT SELECT ON steep_repl.init_fast_chunks TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_chunks IS
  'The block ranges [from_block, to_block) (to_block -1: to the end) a fast init copies, planned once per snapshot; done when the range''s transaction committed on this node.';

CREATE TABLE steep_repl.init_fast_holder (
  node       text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  pid        integer NOT NULL,
  slot_name  text NOT NULL,
  snapshot   text NOT NULL,
  lsn        pg_lsn NOT NULL,
  started_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
GRANT SELECT ON steep_repl.init_fast_holder TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_holder IS
  'The process (pid, on the sidecar''s host) holding the replication connection of a fast init''s slot and its exported snapshot; it lets go once its row is gone or the init is no longer copying.';

CREATE FUNCTION steep_repl.init_fast_plan(node text, chunks jsonb) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM steep_repl.init_fast_chunks c WHERE c.node = init_fast_plan.node;
  INSERT INTO steep_repl.init_fast_chunks (node, schema_name, table_name, from_block, to_block, of_chunks, bytes)
  SELECT init_fast_plan.node, x.schema_name, x.table_name, x.from_block, x.to_block, x.of_chunks, x.bytes
  FROM pg_catalog.jsonb_to_recordset(chunks) AS x(schema_name text, table_name text, from_block bigint, to_block bigint,
                                                   of_chunks integer, bytes bigint);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_plan(text, jsonb) IS
  'Sidecar step of init.fast: records the block ranges of this snapshot''s copy (a JSON array of {schema_name, table_name, from_block, to_block, of_chunks, bytes}), replacing an earlier plan; returns how many.';

CREATE FUNCTION steep_repl.init_fast_range_done(node text, schema_name text, table_name text, from_block bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE steep_repl.init_fast_chunks c SET done = true
  WHERE c.node = init_fast_range_done.node AND c.schema_name = init_fast_range_done.schema_name
    AND c.table_name = init_fast_range_done.table_name AND c.from_block = init_fast_range_done.from_block AND NOT c.done;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'block range %.% from % of node "%" is not planned or already copied', schema_name, table_name, from_block, node
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_range_done(text, text, text, bigint) IS
  'Sidecar step of init.fast: the block range is copied (in the transaction that copied it); 55000 if it was not pending, so no range is loaded twice.';

CREATE FUNCTION steep_repl.init_fast_holder_record(node text, pid integer, slot_name text, snapshot text, lsn pg_lsn) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO steep_repl.init_fast_holder AS h (node, pid, slot_name, snapshot, lsn)
  VALUES (init_fast_holder_record.node, init_fast_holder_record.pid, init_fast_holder_record.slot_name,
          init_fast_holder_record.snapshot, init_fast_holder_record.lsn)
  ON CONFLICT ON CONSTRAINT init_fast_holder_pkey DO UPDATE SET pid = excluded.pid, slot_name = excluded.slot_name,
    snapshot = excluded.snapshot, lsn = excluded.lsn, started_at = pg_catalog.now();
$$;
COMMENT ON FUNCTION steep_repl.init_fast_holder_record(text, integer, text, text, pg_lsn) IS
  'steep-repl hold-snapshot: records the holder of node''s fast init snapshot (its pid, the slot, the snapshot name and the slot''s consistent LSN).';

CREATE FUNCTION steep_repl.init_fast_holder_wanted(node text, pid integer) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM steep_repl.init_fast_holder h JOIN steep_repl.nodes n ON n.name = h.node
                 WHERE h.node = init_fast_holder_wanted.node AND h.pid = init_fast_holder_wanted.pid
                   AND n.init_state IN ('preparing', 'copying'));
$$;
COMMENT ON FUNCTION steep_repl.init_fast_holder_wanted(text, integer) IS
  'steep-repl hold-snapshot: whether holder pid should keep node''s snapshot (its row is there and the init is still preparing or copying).';

CREATE FUNCTION steep_repl.init_fast_holder_release(node text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  DELETE FROM steep_repl.init_fast_holder h WHERE h.node = init_fast_holder_release.node;
$$;
COMMENT ON FUNCTION steep_repl.init_fast_holder_release(text) IS
  'Sidecar step of init.fast: the snapshot is no longer needed; its holder sees its row gone and exits.';

COMMENT ON FUNCTION steep_repl.init_fast_reset(text) IS
  'Sidecar step of init.fast: empties what an attempt copied (as each table''s owner), resets the per-table progress and forgets the attempt''s plan and snapshot holder (a new attempt, or a failed one before its indexes and constraints are re-created).';
REVOKE ALL ON FUNCTION steep_repl.init_fast_plan(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl.init_fast_range_done(text, text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl.init_fast_holder_record(text, integer, text, text, pg_lsn) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl.init_fast_holder_wanted(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl.init_fast_holder_release(text) FROM PUBLIC;

-- ---- Streaming overlap analysis (sql/76_overlap_record.sql): overlap_scope, overlap_record (#13).
-- The streaming overlap analysis (internal/overlap, run by steep-repl analyze-overlap): the
-- sidecar streams each table's keys and row hashes from both nodes itself and joins them in Go;
-- these two functions give it the scope (the same rules as analyze_overlap) and record what it
-- found in steep_repl.overlap_rows as analyze_overlap does.

-- The tables of an overlap analysis with peer and the send form of their key columns: the
-- column types' oids, lengths (typlen > 0: fixed, sent raw; otherwise length-prefixed) and send
-- functions, which the stream's query applies to each key column.
CREATE FUNCTION steep_repl.overlap_scope(peer text, tables text[] DEFAULT NULL)
RETURNS TABLE (schema_name text, table_name text, key_cols text[], key_types text[], key_oids oid[], key_lens integer[], key_sends text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM steep_repl._overlap_check_peer(peer);
  RETURN QUERY
    SELECT s.schema_name, s.table_name, s.key_cols, s.key_types,
           ARRAY(SELECT a.atttypid FROM pg_catalog.unnest(s.key_cols) WITH ORDINALITY k(c, o)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = s.relid AND a.attname = k.c ORDER BY k.o),
           -- name has a fixed length on disk but sends its text: length-prefixed like text.
           ARRAY(SELECT CASE WHEN ty.typlen > 0 AND ty.oid <> 'pg_catalog.name'::pg_catalog.regtype THEN ty.typlen::integer ELSE -1 END FROM pg_catalog.unnest(s.key_cols) WITH ORDINALITY k(c, o)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = s.relid AND a.attname = k.c
                 JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid ORDER BY k.o),
           ARRAY(SELECT pg_catalog.format('%I.%I', pn.nspname, p.proname) FROM pg_catalog.unnest(s.key_cols) WITH ORDINALITY k(c, o)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = s.relid AND a.attname = k.c
                 JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
                 JOIN pg_catalog.pg_proc p ON p.oid = ty.typsend
                 JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace ORDER BY k.o)
    FROM steep_repl._compare_scope(tables, steep_repl._caller()) s;
END
$$;
COMMENT ON FUNCTION steep_repl.overlap_scope(text, text[]) IS
  'The tables of a streaming overlap analysis with peer (all, or the named ones; 42P01, 55000, 42501 as analyze_overlap) and their key columns'' types, lengths and send functions.';

-- 22004 for NULL, 42704 for a node that is not registered, 22023 for this node.
CREATE FUNCTION steep_repl._overlap_check_peer(peer text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._require('peer', peer);
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = peer) THEN
    PERFORM steep_repl._unknown_node(peer);
  END IF;
  IF peer = steep_repl._local_node() THEN
    RAISE EXCEPTION 'node % is this node: compare it with another one', peer USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._overlap_check_peer(text) IS 'Internal: 22004, 42704 or 22023 unless peer is another registered node.';

-- Replaces peer's and the table's rows of steep_repl.overlap_rows with the keys given (one per
-- row that is not identical, built by the caller with jsonb_build_object as analyze_overlap
-- builds them) and returns the counts. The caller must be able to read the table in full, as
-- for analyze_overlap: the keys recorded are its rows'.
CREATE FUNCTION steep_repl.overlap_record(peer text, schema text, relname text, identical_rows bigint,
  keys jsonb[], categories text[], local_hashes bigint[], peer_hashes bigint[])
RETURNS TABLE (schema_name text, table_name text, identical bigint, conflicting bigint, local_only bigint, peer_only bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  v_t steep_repl.compare_table;
  v_name text := overlap_record.schema || '.' || overlap_record.relname;
  v_n integer := coalesce(pg_catalog.cardinality(keys), 0);
BEGIN
  PERFORM steep_repl._overlap_check_peer(peer);
  PERFORM steep_repl._require('identical_rows', identical_rows);
  IF identical_rows < 0 OR v_n <> coalesce(pg_catalog.cardinality(categories), 0)
     OR v_n <> coalesce(pg_catalog.cardinality(local_hashes), 0) OR v_n <> coalesce(pg_catalog.cardinality(peer_hashes), 0) THEN
    RAISE EXCEPTION 'keys, categories, local_hashes and peer_hashes must be as long as each other, identical_rows not negative'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO v_t FROM steep_repl._compare_scope(ARRAY[v_name], steep_repl._caller()) s
  WHERE s.schema_name = overlap_record.schema AND s.table_name = overlap_record.relname;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no such table on this node: %', v_name USING ERRCODE = 'undefined_table';
  END IF;
  DELETE FROM steep_repl.overlap_rows o
  WHERE o.peer = overlap_record.peer AND o.schema_name = v_t.schema_name AND o.table_name = v_t.table_name;
  INSERT INTO steep_repl.overlap_rows (peer, schema_name, table_name, key, category, local_hash, peer_hash, analyzed_at)
  SELECT peer, v_t.schema_name, v_t.table_name, k.key, k.category, k.lh, k.ph, pg_catalog.clock_timestamp()
  FROM ROWS FROM (pg_catalog.unnest(keys), pg_catalog.unnest(categories), pg_catalog.unnest(local_hashes), pg_catalog.unnest(peer_hashes)) k(key, category, lh, ph);
  RETURN QUERY
    SELECT v_t.schema_name, v_t.table_name, identical_rows,
           count(*) FILTER (WHERE c = 'conflicting'), count(*) FILTER (WHERE c = 'local_only'), count(*) FILTER (WHERE c = 'peer_only')
    FROM pg_catalog.unnest(categories) c;
END
$$;
COMMENT ON FUNCTION steep_repl.overlap_record(text, text, text, bigint, jsonb[], text[], bigint[], bigint[]) IS
  'Records a streaming overlap analysis of one table with peer: replaces its keys in steep_repl.overlap_rows with the given ones (category conflicting, local_only or peer_only) and returns the counts.';

GRANT EXECUTE ON FUNCTION steep_repl.overlap_scope(text, text[]),
  steep_repl.overlap_record(text, text, text, bigint, jsonb[], text[], bigint[], bigint[]) TO steep_repl_admin;
REVOKE ALL ON FUNCTION steep_repl.overlap_scope(text, text[]), steep_repl._overlap_check_peer(text),
  steep_repl.overlap_record(text, text, text, bigint, jsonb[], text[], bigint[], bigint[]) FROM PUBLIC;

-- #14 step 5: complete_init's subscription streams large transactions in parallel (16+).
-- complete_init subscribes with origin = none, as the sidecar's subscriptions (#14).
CREATE OR REPLACE FUNCTION steep_repl.complete_init(target text, source text, slot_name text, source_lsn pg_lsn DEFAULT NULL,
                                         options jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_slot record;
  v_lsn pg_lsn := source_lsn;
  v_lsn_from text := 'source_lsn';
  v_names record;
  v_sub oid;
  v_identity boolean;
  v_sync jsonb;
  k text;
  v_err_code text;
  v_err_msg text;
  v_err_detail text;
  v_lag_threshold bigint;
  v_source_timeout numeric;
BEGIN
  PERFORM steep_repl._require('target', target);
  PERFORM steep_repl._require('source', source);
  PERFORM steep_repl._require('slot_name', slot_name);
  PERFORM steep_repl._require('options', options);
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
    IF k NOT IN ('schema_sync', 'confirm', 'lag_threshold', 'source_timeout') THEN
      RAISE EXCEPTION 'unknown complete_init option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: schema_sync, confirm, lag_threshold, source_timeout.';
    END IF;
  END LOOP;
  -- Numeric options checked before anything is probed (the same bounds as start_init's).
  v_lag_threshold := steep_repl._int_option(options, 'lag_threshold', 1048576, 0, 1099511627776,
    'lag_threshold is the apply lag in bytes under which the node is SYNCHRONIZED (default 1048576, at most 1 TiB).');
  v_source_timeout := steep_repl._num_option(options, 'source_timeout', 60, 1, 604800,
    'source_timeout is the number of seconds the source may be unreachable before the init fails (default 60, at most a week).');
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = target) THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF v_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" is % and cannot complete a manual init', target, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'complete_init needs an UNINITIALIZED or FAILED node.';
  END IF;
  SELECT * INTO v_names FROM steep_repl._init_names(target, source);
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname = v_names.subscription) THEN
    RAISE EXCEPTION 'subscription "%" already exists', v_names.subscription
      USING ERRCODE = 'duplicate_object', HINT = 'Drop it first, or cancel_init the node.';
  END IF;

  -- The source holds the prepared slot; a seeded copy never does (pg_replslot is not copied).
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) complete_init.slot_name) THEN
    RAISE EXCEPTION 'slot "%" is on this server: complete_init runs on the seeded target, not on the source', slot_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('Run SELECT steep_repl.complete_init(%L, %L, %L) on %s after seeding it.', target, source, slot_name, target);
  END IF;
  PERFORM steep_repl._require_reachable(source, 'source');
  SELECT * INTO v_slot FROM steep_repl._remote_init_slot(source, slot_name);
  IF NOT v_slot.prepared THEN
    RAISE EXCEPTION 'slot "%" was not prepared on node "%"', slot_name, source
      USING ERRCODE = 'undefined_object', HINT = pg_catalog.format('Run SELECT * FROM steep_repl.prepare_init(%L) on %s before taking the backup.', target, source);
  ELSIF v_slot.dropped_at IS NOT NULL OR NOT v_slot.slot_exists THEN
    RAISE EXCEPTION 'slot "%" on node "%" is gone: %', slot_name, source, coalesce(v_slot.drop_reason, 'dropped outside steep_repl')
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Prepare a new slot and seed the target again from a backup taken after it.';
  ELSIF v_slot.expires_at < pg_catalog.now() THEN
    RAISE EXCEPTION 'slot "%" on node "%" expired at %', slot_name, source, v_slot.expires_at
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Prepare a new slot and seed the target again from a backup taken after it.';
  ELSIF v_slot.used_at IS NOT NULL THEN
    RAISE EXCEPTION 'slot "%" was already used by node "%" at %', slot_name, v_slot.used_by, v_slot.used_at
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'A prepared slot serves one target once.';
  ELSIF v_slot.active THEN
    RAISE EXCEPTION 'slot "%" on node "%" is in use by a running replication connection', slot_name, source
      USING ERRCODE = 'object_in_use';
  ELSIF v_slot.target_node <> target THEN
    RAISE EXCEPTION 'slot "%" was prepared for node "%", not "%"', slot_name, v_slot.target_node, target
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  IF v_lsn IS NULL THEN
    v_lsn := steep_repl._recovery_end_lsn();
    v_lsn_from := 'timeline history';
  END IF;
  IF v_lsn < v_slot.consistent_lsn THEN
    RAISE EXCEPTION 'the target''s data is from LSN %, before slot "%"''s consistent point %: transactions committed in between would be lost',
        v_lsn, slot_name, v_slot.consistent_lsn
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Seed the target from a backup taken after prepare_init (its end LSN must be at or after the slot''s LSN).';
  END IF;

  -- The seeded tables must match the source's (strict | auto | manual, as for start_init).
  v_sync := steep_repl._schema_sync(source, options->>'schema_sync', options);
  v_identity := steep_repl._assume_identity(target, source);
  -- The publication and the source's own objects came along with a physical copy; they are not the target's.
  EXECUTE pg_catalog.format('DROP PUBLICATION IF EXISTS %I', v_slot.publication);
  -- The statement holds the conninfo (maybe a password): an error is raised again without it,
  -- so no CONTEXT line carries the statement's text.
  -- streaming = parallel (16+): a large transaction is applied by a parallel worker while it
  -- arrives, not spooled and applied at its commit. origin = none (16+): only the source's own
  -- changes, never what it received from another node, which would be forwarded or loop back
  -- (as every subscription the sidecar makes).
  BEGIN
    EXECUTE pg_catalog.format(
      'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = false, create_slot = false, slot_name = %L, enabled = false%s)',
      v_names.subscription, (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = source), v_slot.publication, slot_name,
      CASE WHEN pg_catalog.current_setting('server_version_num')::int OPERATOR(pg_catalog.>=) 160000
           THEN ', streaming = parallel, origin = none' ELSE '' END);
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_err_code = RETURNED_SQLSTATE, v_err_msg = MESSAGE_TEXT, v_err_detail = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'create subscription % to node "%": %', v_names.subscription, source,
        v_err_msg || coalesce(' (' || NULLIF(v_err_detail, '') || ')', '')
      USING ERRCODE = v_err_code,
            HINT = 'Check that the source''s registered conninfo works from this server.';
  END;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = v_names.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  PERFORM pg_catalog.pg_replication_origin_advance('pg_' || v_sub, v_lsn);
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I ENABLE', v_names.subscription);

  DELETE FROM steep_repl.init_progress p WHERE p.node = target;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription,
    slot_name, subscription_oid, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, percent,
    copy_done_at, message)
  VALUES (target, source, 'manual', options, v_slot.publication, false, v_names.subscription, slot_name, v_sub, 0,
    v_lag_threshold, interval '60 seconds',
    pg_catalog.make_interval(secs => v_source_timeout::float8), 100, pg_catalog.now(),
    pg_catalog.format('seeded from a backup at %s (%s); slot %s consistent at %s', v_lsn, v_lsn_from, slot_name, v_slot.consistent_lsn));
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, sync_state, fraction)
  SELECT target, n.nspname, c.relname, c.oid, 'ready', 1
  FROM pg_catalog.pg_subscription_rel sr JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE sr.srsubid = v_sub;
  UPDATE steep_repl.init_progress p SET tables_total = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = target),
    tables_done = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = target)
  WHERE p.node = target;

  UPDATE steep_repl.nodes n SET init_source_node = source WHERE n.name = target;
  PERFORM steep_repl.transition(target, 'preparing', pg_catalog.format('complete_init from %s, slot %s', source, slot_name));
  PERFORM steep_repl.transition(target, 'copying', pg_catalog.format('data seeded by the DBA up to LSN %s (%s)', v_lsn, v_lsn_from));
  PERFORM steep_repl.transition(target, 'catching_up', pg_catalog.format('subscribed from LSN %s', v_lsn));
  -- Last, so that a refusal above leaves the slot usable: the source records it as used.
  PERFORM steep_repl._remote_exec(source, pg_catalog.format(
    'UPDATE steep_repl.init_slots SET used_at = pg_catalog.now(), used_by = %L WHERE slot_name = %L', target, slot_name));
  RETURN pg_catalog.jsonb_build_object('subscription', v_names.subscription, 'slot', slot_name, 'lsn', v_lsn::text,
    'lsn_from', v_lsn_from, 'consistent_lsn', v_slot.consistent_lsn::text, 'identity_assumed', v_identity,
    'schema_sync', v_sync->>'status');
END
$$;

-- Comparisons read user tables as each table's owner (steep_repl._query_as): printing a key as
-- jsonb runs a cast to json of a type the owner made.
CREATE FUNCTION steep_repl._query_as(role regrole, query text) RETURNS SETOF record
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_query_as';
COMMENT ON FUNCTION steep_repl._query_as(regrole, text) IS
  'Internal: the rows of query run as role in a security-restricted operation (search_path pg_catalog), in the caller''s snapshot: SELECT * FROM steep_repl._query_as(owner, q) AS t(k text, h bigint).';
REVOKE ALL ON FUNCTION steep_repl._query_as(regrole, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION steep_repl._compare_owned_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
    'SELECT x.k, x.h FROM steep_repl._query_as(%s::pg_catalog.oid::pg_catalog.regrole, %L) AS x(k pg_catalog.text, h pg_catalog.int8)',
    (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = t.relid)::oid, steep_repl._compare_sql(t, keys));
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_peer_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SELECT x.k, x.h FROM steep_repl._compare_hashes(%L, %L, %L::pg_catalog.jsonb) x',
                           t.schema_name, t.table_name, keys::text);
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_hashes(schema_name text, table_name text, keys jsonb DEFAULT NULL)
RETURNS TABLE (k text, h bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table;
BEGIN
  PERFORM steep_repl._require('schema_name', schema_name);
  PERFORM steep_repl._require('table_name', table_name);
  SELECT * INTO v_t FROM steep_repl._compare_scope(ARRAY[schema_name || '.' || table_name], steep_repl._caller());
  RETURN QUERY EXECUTE steep_repl._compare_owned_sql(v_t, keys);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_check_peer(peer text, conn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v boolean;
BEGIN
  IF peer = steep_repl._local_node() THEN
    RAISE EXCEPTION 'node % is this node: compare it with another one', peer USING ERRCODE = 'invalid_parameter_value';
  END IF;
  EXECUTE pg_catalog.format('SELECT ok FROM %I.dblink($1, $2) AS t(ok boolean)', steep_repl._dblink_schema()) INTO v
    USING conn, 'SELECT pg_catalog.to_regprocedure(''steep_repl._compare_hashes(text, text, jsonb)'') IS NOT NULL';
  IF NOT v THEN
    RAISE EXCEPTION 'node % cannot compare rows (its steep_repl is older than 1.1)', peer
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('ALTER EXTENSION steep_repl UPDATE on node %s.', peer);
  END IF;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_peer_read(conn text, t steep_repl.compare_table, keys jsonb,
  OUT hashes jsonb, OUT lsn pg_lsn)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_object_agg(k, h) FILTER (WHERE k IS NOT NULL), ''{}''),
            ''0/0''::pg_catalog.pg_lsn + pg_catalog.max(h) FILTER (WHERE k IS NULL)
     FROM %I.dblink($1, $2) AS t(k text, h bigint)', steep_repl._dblink_schema())
    INTO hashes, lsn
    USING conn, 'SELECT NULL::pg_catalog.text, (pg_catalog.pg_current_wal_lsn() OPERATOR(pg_catalog.-) ''0/0''::pg_catalog.pg_lsn)::pg_catalog.int8 UNION ALL '
                || steep_repl._compare_peer_sql(t, keys);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_local_read(t steep_repl.compare_table, keys jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
BEGIN
  EXECUTE 'SELECT coalesce(pg_catalog.jsonb_object_agg(k, h), ''{}'') FROM (' || steep_repl._compare_owned_sql(t, keys) || ') x(k, h)' INTO v;
  RETURN v;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_join_sql(t steep_repl.compare_table) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
    'SELECT coalesce(l.k, p.k) AS k, l.h AS lh, p.h AS ph FROM (%s) l(k, h) FULL JOIN %I.dblink($1, $2) AS p(k text, h bigint) ON l.k = p.k',
    steep_repl._compare_owned_sql(t), steep_repl._dblink_schema());
$$;
CREATE OR REPLACE FUNCTION steep_repl._compare_pass(conn text, t steep_repl.compare_table,
  OUT key text, OUT local_hash bigint, OUT peer_hash bigint) RETURNS SETOF record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE 'SELECT j.k, j.lh, j.ph FROM (' || steep_repl._compare_join_sql(t) || ') j WHERE j.lh IS DISTINCT FROM j.ph'
    USING conn, steep_repl._compare_peer_sql(t);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.analyze_overlap(peer text, tables text[] DEFAULT NULL)
RETURNS TABLE (schema_name text, table_name text, identical bigint, conflicting bigint, local_only bigint, peer_only bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_conn text;
  v_t steep_repl.compare_table;
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_kept bigint;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  v_conn := steep_repl._compare_conninfo(peer, 3600);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);
  v_conn := steep_repl._compare_link('steep_repl_overlap', v_conn);
  BEGIN
    FOR v_t IN SELECT * FROM steep_repl._compare_scope(tables, steep_repl._caller()) LOOP
      DELETE FROM steep_repl.overlap_rows o
      WHERE o.peer = analyze_overlap.peer AND o.schema_name = v_t.schema_name AND o.table_name = v_t.table_name;
      -- One pass: the counts and the keys of what is not identical come from the same join.
      EXECUTE 'WITH j AS (' || steep_repl._compare_join_sql(v_t) || '),
        kept AS (INSERT INTO steep_repl.overlap_rows (peer, schema_name, table_name, key, category, local_hash, peer_hash, analyzed_at)
                 SELECT $3, $4, $5, j.k::pg_catalog.jsonb,
                        CASE WHEN j.lh IS NULL THEN ''peer_only'' WHEN j.ph IS NULL THEN ''local_only'' ELSE ''conflicting'' END,
                        j.lh, j.ph, $6
                 FROM j WHERE j.lh IS DISTINCT FROM j.ph RETURNING 1)
        SELECT count(*) FILTER (WHERE j.lh = j.ph), count(*) FILTER (WHERE j.lh <> j.ph),
               count(*) FILTER (WHERE j.ph IS NULL), count(*) FILTER (WHERE j.lh IS NULL), (SELECT count(*) FROM kept)
        FROM j'
        INTO identical, conflicting, local_only, peer_only, v_kept
        USING v_conn, steep_repl._compare_peer_sql(v_t), peer, v_t.schema_name, v_t.table_name, v_now;
      schema_name := v_t.schema_name;
      table_name := v_t.table_name;
      RETURN NEXT;
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    PERFORM steep_repl._compare_unlink(v_conn);
    RAISE;
  END;
  PERFORM steep_repl._compare_unlink(v_conn);
END
$$;
COMMENT ON FUNCTION steep_repl._compare_scope(text[], regrole) IS
  'Internal: the tables of a comparison (all, or the named ones), refusing unknown ones (42P01), ones without a primary key (55000), ones as_role cannot read in full (42501) and ones whose row-level security is forced on their owner (55000).';
COMMENT ON FUNCTION steep_repl._compare_owned_sql(steep_repl.compare_table, jsonb) IS
  'Internal: _compare_sql(t, keys) run as the table''s owner in a security-restricted operation.';
COMMENT ON FUNCTION steep_repl._compare_peer_sql(steep_repl.compare_table, jsonb) IS
  'Internal: the query a comparison sends its peer: key and row_hash of a table''s rows (of keys only when given) through the peer''s _compare_hashes.';
COMMENT ON FUNCTION steep_repl._compare_hashes(text, text, jsonb) IS
  'Internal (a peer''s comparison): key and row_hash of a table''s rows (of keys only when given), read as its owner, for a role that may read all of them.';
COMMENT ON FUNCTION steep_repl._compare_check_peer(text, text) IS 'Internal: 22023 for this node itself, 55000 unless the peer has _compare_hashes.';
COMMENT ON FUNCTION steep_repl._compare_join_sql(steep_repl.compare_table) IS
  'Internal: the full join of a table''s keys and row hashes here and on the peer (through dblink: $1 conninfo, $2 the peer''s query, _compare_peer_sql).';
REVOKE ALL ON FUNCTION steep_repl._compare_owned_sql(steep_repl.compare_table, jsonb), steep_repl._compare_peer_sql(steep_repl.compare_table, jsonb),
  steep_repl._compare_hashes(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl._compare_hashes(text, text, jsonb) TO steep_repl_admin, steep_repl_sidecar;
GRANT EXECUTE ON FUNCTION steep_repl.row_hash(record) TO PUBLIC;

-- ---- Fast init (#14): a dropped index or constraint comes back exactly as it was (tablespace,
-- a constraint index's storage parameters, comments, CLUSTER ON, statistics targets), and a
-- partitioned table's with its partitions' own indexes and constraints, names and comments
-- (sql/53b_fast_objects.sql); init_fast_objects.stage orders that restore.
ALTER TABLE steep_repl.init_fast_objects ADD COLUMN stage integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN steep_repl.init_fast_objects.stage IS
  'Restore order within its kind (foreign keys after all the others): 0 for an object of a table, 100 - level for one of a partitioned table, so a partition''s index exists before the partitioned index that attaches it.';
COMMENT ON TABLE steep_repl.init_fast_objects IS
  'Indexes and constraints a fast init dropped from the target''s tables before loading them, with the DDL (read from this node''s own catalog: pg_get_indexdef / pg_get_constraintdef, with the tablespace, storage parameters, comments, CLUSTER ON, statistics targets and attached partitions'' indexes) that re-creates them as they were, as the table''s owner: after the load, on cancel_init, and before a new start_init.';

-- What CREATE INDEX and ADD CONSTRAINT would not bring back of an index, as statements run after
-- them: its comment, CLUSTER ON, and the statistics targets of its (expression) columns.
CREATE FUNCTION steep_repl._fast_index_extras(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NULLIF(pg_catalog.concat_ws('; ',
    (SELECT pg_catalog.format('COMMENT ON INDEX %s IS %L', idx::pg_catalog.regclass, d.description) FROM pg_catalog.pg_description d
     WHERE d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objoid OPERATOR(pg_catalog.=) idx
       AND d.objsubid OPERATOR(pg_catalog.=) 0),
    (SELECT pg_catalog.format('ALTER TABLE %s CLUSTER ON %I', i.indrelid::pg_catalog.regclass, c.relname)
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
     WHERE i.indexrelid OPERATOR(pg_catalog.=) idx AND i.indisclustered),
    (SELECT pg_catalog.string_agg(pg_catalog.format('ALTER INDEX %s ALTER COLUMN %s SET STATISTICS %s', idx::pg_catalog.regclass, a.attnum,
                                                    a.attstattarget), '; ' ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) idx AND a.attstattarget OPERATOR(pg_catalog.>=) 0)), '');
$$;
COMMENT ON FUNCTION steep_repl._fast_index_extras(oid) IS
  'Internal: the statements that give a re-created index its comment, CLUSTER ON and per-column statistics targets (NULL when it has none).';

-- pg_get_indexdef has no tablespace and pg_get_constraintdef neither; the index goes back where
-- it was, and into the database's default when it was there (whatever default_tablespace says).
CREATE FUNCTION steep_repl._fast_tablespace_stmt(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SET LOCAL default_tablespace = %L', coalesce(t.spcname::text, ''))
  FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_tablespace t ON t.oid OPERATOR(pg_catalog.=) c.reltablespace
  WHERE c.oid OPERATOR(pg_catalog.=) idx;
$$;
COMMENT ON FUNCTION steep_repl._fast_tablespace_stmt(oid) IS
  'Internal: SET LOCAL default_tablespace to the tablespace of index idx ('''' for the database''s default), run before re-creating it (_exec_as undoes it after).';

-- A partitioned index is re-created ON ONLY its table, then its partitions' indexes (re-created
-- first, with their own names, tablespaces and comments) are attached to it, as pg_restore does.
CREATE FUNCTION steep_repl._fast_attach_stmts(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.string_agg(pg_catalog.format('ALTER INDEX %s ATTACH PARTITION %s', idx::pg_catalog.regclass, h.inhrelid::pg_catalog.regclass),
                               '; ' ORDER BY h.inhrelid)
  FROM pg_catalog.pg_inherits h WHERE h.inhparent OPERATOR(pg_catalog.=) idx;
$$;
COMMENT ON FUNCTION steep_repl._fast_attach_stmts(oid) IS
  'Internal: ALTER INDEX idx ATTACH PARTITION for each index of a partition attached to partitioned index idx (NULL for none).';

-- The index idx and, when it is partitioned, those of its partitions, each with its depth.
CREATE FUNCTION steep_repl._fast_index_tree(idx oid) RETURNS TABLE (relid oid, level integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT x.relid::oid, x.level FROM pg_catalog.pg_partition_tree(idx) x
  UNION ALL
  SELECT idx, 0 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(idx));
$$;
COMMENT ON FUNCTION steep_repl._fast_index_tree(oid) IS
  'Internal: index idx (level 0) and every index of a partition attached to it, directly or below, with its level.';

-- An index a fast init may drop: it and its partitions' are valid, none is a replica identity,
-- and the table's owner, who re-creates it, may create in its tablespace (else it stays).
CREATE FUNCTION steep_repl._fast_droppable_index(idx oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NOT EXISTS (
    SELECT 1 FROM steep_repl._fast_index_tree(idx) x
    JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) x.relid
    JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
    JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) i.indrelid
    WHERE i.indisreplident OR NOT i.indisvalid OR NOT i.indisready
       OR (ic.reltablespace OPERATOR(pg_catalog.<>) 0
           AND NOT pg_catalog.has_tablespace_privilege(t.relowner, ic.reltablespace, 'CREATE')));
$$;
COMMENT ON FUNCTION steep_repl._fast_droppable_index(oid) IS
  'Internal: whether a fast init may drop index idx: it and its partitions'' indexes are valid and ready, none is a replica identity, and each table''s owner may create in the index''s tablespace.';

-- pg_get_constraintdef leaves out the WITH (...) of a primary key's or unique constraint's
-- index: it goes in before DEFERRABLE / INITIALLY DEFERRED, which the definition ends with.
CREATE FUNCTION steep_repl._fast_constraint_def(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN c.contype OPERATOR(pg_catalog.=) ANY ('{p,u}') AND ic.reloptions IS NOT NULL
                   AND pg_catalog.right(d.def, pg_catalog.length(s.suffix)) OPERATOR(pg_catalog.=) s.suffix
              THEN pg_catalog.left(d.def, pg_catalog.length(d.def) OPERATOR(pg_catalog.-) pg_catalog.length(s.suffix))
                   OPERATOR(pg_catalog.||) ' WITH (' OPERATOR(pg_catalog.||)
                   (SELECT pg_catalog.string_agg(pg_catalog.format('%I=%L', pg_catalog.split_part(o, '=', 1),
                                                                  pg_catalog.substr(o, pg_catalog.strpos(o, '=') OPERATOR(pg_catalog.+) 1)), ', ')
                    FROM pg_catalog.unnest(ic.reloptions) o) OPERATOR(pg_catalog.||) ')' OPERATOR(pg_catalog.||) s.suffix
              ELSE d.def END
  FROM pg_catalog.pg_constraint c
  LEFT JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) c.conindid,
  LATERAL (SELECT pg_catalog.pg_get_constraintdef(c.oid) AS def) d,
  LATERAL (SELECT CASE WHEN c.condeferrable THEN ' DEFERRABLE' ELSE '' END
                  OPERATOR(pg_catalog.||) CASE WHEN c.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END AS suffix) s
  WHERE c.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_constraint_def(oid) IS
  'Internal: pg_get_constraintdef of constraint con, with the WITH (...) storage parameters of a primary key''s or unique constraint''s index, which it leaves out.';

-- The statements that re-create an index: in its tablespace, its definition (ON ONLY for a
-- partitioned one, whose partitions' are then attached), then its comment, CLUSTER ON and
-- statistics targets. Each name is quoted from this node's catalog (regclass, %I, %L).
CREATE FUNCTION steep_repl._fast_index_ddl(idx oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.concat_ws('; ', steep_repl._fast_tablespace_stmt(idx), pg_catalog.pg_get_indexdef(idx),
                              steep_repl._fast_attach_stmts(idx), steep_repl._fast_index_extras(idx));
$$;
COMMENT ON FUNCTION steep_repl._fast_index_ddl(oid) IS
  'Internal: the statements that re-create index idx as it is: tablespace, definition, attached partitions'' indexes, comment, CLUSTER ON, statistics targets.';

-- A constraint's own comment, and those of its index with CLUSTER ON and statistics targets.
CREATE FUNCTION steep_repl._fast_constraint_extras(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NULLIF(pg_catalog.concat_ws('; ',
    (SELECT pg_catalog.format('COMMENT ON CONSTRAINT %I ON %s IS %L', c.conname, c.conrelid::pg_catalog.regclass, d.description)
     FROM pg_catalog.pg_description d
     WHERE d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objoid OPERATOR(pg_catalog.=) c.oid
       AND d.objsubid OPERATOR(pg_catalog.=) 0),
    CASE WHEN c.contype OPERATOR(pg_catalog.<>) 'f' THEN steep_repl._fast_index_extras(c.conindid) END), '')
  FROM pg_catalog.pg_constraint c WHERE c.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_constraint_extras(oid) IS
  'Internal: the statements that give a re-created constraint its comment and its index''s comment, CLUSTER ON and statistics targets (NULL when none).';

-- A partitioned table's unique, primary key or exclusion constraint is added to it as it was
-- first made, recursing: a partition's own constraint (made on the partition, then attached:
-- connoinherit) is re-created first and attached by the recursion again; the recursion makes the
-- others, which then get back their names (should PostgreSQL choose others), comments and
-- statistics targets. Only one level of partitions (see _fast_droppable_constraint).
CREATE FUNCTION steep_repl._fast_partition_constraints(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT NULLIF(pg_catalog.concat_ws('; ',
    'DO ' OPERATOR(pg_catalog.||) pg_catalog.quote_literal(pg_catalog.format(
      'DECLARE r record; BEGIN FOR r IN SELECT c.conindid::regclass AS idx, w.name FROM (VALUES %s) w(rel, name) '
      'JOIN pg_constraint c ON c.conrelid = w.rel::regclass AND c.conparentid = '
      '(SELECT p.oid FROM pg_constraint p WHERE p.conrelid = %L::regclass AND p.conname = %L) WHERE c.conname <> w.name '
      'LOOP EXECUTE format(''ALTER INDEX %%s RENAME TO %%I'', r.idx, r.name); END LOOP; END',
      pg_catalog.string_agg(pg_catalog.format('(%L, %L)', ch.conrelid::pg_catalog.regclass::text, ch.conname), ', ' ORDER BY ch.conname),
      top.conrelid::pg_catalog.regclass::text, top.conname)),
    pg_catalog.string_agg(steep_repl._fast_constraint_extras(ch.oid), '; ' ORDER BY ch.conname)), '')
  FROM pg_catalog.pg_constraint top JOIN pg_catalog.pg_constraint ch ON ch.conparentid OPERATOR(pg_catalog.=) top.oid
  WHERE top.oid OPERATOR(pg_catalog.=) con AND NOT ch.connoinherit
  GROUP BY top.conrelid, top.conname;
$$;
COMMENT ON FUNCTION steep_repl._fast_partition_constraints(oid) IS
  'Internal: after a partitioned constraint is re-created recursing, the statements that give the partitions'' constraints it made their recorded names (a DO block renaming their indexes where PostgreSQL chose others), comments and statistics targets.';

-- A partitioned constraint a fast init may drop: its partitions are tables (no deeper level),
-- and those the recursion makes have their index where it puts them (the partitioned index's
-- tablespace and storage parameters).
CREATE FUNCTION steep_repl._fast_droppable_constraint(con oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._fast_droppable_index(top.conindid) AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_constraint ch
    JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) ch.conrelid
    JOIN pg_catalog.pg_class ci ON ci.oid OPERATOR(pg_catalog.=) ch.conindid
    WHERE ch.conparentid OPERATOR(pg_catalog.=) top.oid
      AND (t.relkind OPERATOR(pg_catalog.<>) 'r'
           OR (NOT ch.connoinherit AND (ci.reltablespace OPERATOR(pg_catalog.<>) ti.reltablespace
                                        OR ci.reloptions IS DISTINCT FROM ti.reloptions))))
  FROM pg_catalog.pg_constraint top JOIN pg_catalog.pg_class ti ON ti.oid OPERATOR(pg_catalog.=) top.conindid
  WHERE top.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_droppable_constraint(oid) IS
  'Internal: whether a fast init may drop unique, primary key or exclusion constraint con: its index is droppable, and when partitioned its partitions are tables and the partitions'' constraints the recursion re-creates had their index in the partitioned index''s tablespace with its storage parameters.';

-- The statements that re-create a constraint as it is: its index's tablespace, the definition
-- (a foreign key or a partitioned one recursing), then its partitions' (above), its comments,
-- CLUSTER ON and statistics targets.
CREATE FUNCTION steep_repl._fast_constraint_ddl(con oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.concat_ws('; ',
    CASE WHEN c.contype OPERATOR(pg_catalog.<>) 'f' THEN steep_repl._fast_tablespace_stmt(c.conindid) END,
    pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::pg_catalog.regclass, c.conname, steep_repl._fast_constraint_def(c.oid)),
    CASE WHEN c.contype OPERATOR(pg_catalog.<>) 'f' THEN steep_repl._fast_partition_constraints(c.oid) END,
    steep_repl._fast_constraint_extras(c.oid))
  FROM pg_catalog.pg_constraint c WHERE c.oid OPERATOR(pg_catalog.=) con;
$$;
COMMENT ON FUNCTION steep_repl._fast_constraint_ddl(oid) IS
  'Internal: the statements that re-create constraint con as it is: its index''s tablespace and storage parameters, the definition, its partitions'' constraints'' names and comments, its comment and its index''s, CLUSTER ON, statistics targets.';

-- The objects of the init's tables that the load goes without (see init_fast_drop_objects), each
-- with the statements that re-create it, and the statement that drops it (NULL for a partition's
-- index or constraint: it goes with the partitioned one it is attached to).
CREATE FUNCTION steep_repl._fast_droppable(node text)
RETURNS TABLE (relid oid, kind text, name text, ddl text, drop_stmt text, stage integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH leaves AS (SELECT t.relid FROM steep_repl.init_tables t WHERE t.node OPERATOR(pg_catalog.=) _fast_droppable.node),
  -- A partitioned table (at any level) every partition of which is copied.
  parted AS (SELECT p.oid AS relid FROM pg_catalog.pg_class p
             WHERE p.relkind OPERATOR(pg_catalog.=) 'p'
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(p.oid) x WHERE x.isleaf)
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(p.oid) x
                               WHERE x.isleaf AND x.relid NOT IN (SELECT l.relid FROM leaves l))),
  scope AS (SELECT l.relid FROM leaves l UNION ALL SELECT p.relid FROM parted p),
  threshold AS (SELECT coalesce((p.options->>'split_threshold')::bigint, 67108864) AS bytes
                FROM steep_repl.init_progress p WHERE p.node OPERATOR(pg_catalog.=) _fast_droppable.node),
  -- Tables whose primary key goes too: larger than split_threshold (a partitioned one: its partitions together).
  large AS (SELECT s.relid FROM scope s, threshold th
            WHERE (SELECT pg_catalog.sum(t.source_bytes) FROM steep_repl.init_tables t
                   WHERE t.node OPERATOR(pg_catalog.=) _fast_droppable.node
                     AND (t.relid OPERATOR(pg_catalog.=) s.relid
                          OR t.relid IN (SELECT x.relid FROM pg_catalog.pg_partition_tree(s.relid) x))) OPERATOR(pg_catalog.>) th.bytes),
  cons AS (SELECT c.oid, c.contype, c.conindid FROM pg_catalog.pg_constraint c
           WHERE c.conparentid OPERATOR(pg_catalog.=) 0 AND (
                 (c.contype OPERATOR(pg_catalog.=) 'f' AND (c.conrelid IN (SELECT s.relid FROM scope s) OR c.confrelid IN (SELECT s.relid FROM scope s)))
              OR (c.contype OPERATOR(pg_catalog.=) ANY ('{u,x}') AND c.conrelid IN (SELECT s.relid FROM scope s) AND steep_repl._fast_droppable_constraint(c.oid))
              OR (c.contype OPERATOR(pg_catalog.=) 'p' AND c.conrelid IN (SELECT l.relid FROM large l) AND steep_repl._fast_droppable_constraint(c.oid)))),
  idx AS (SELECT i.indexrelid FROM pg_catalog.pg_index i
          WHERE i.indrelid IN (SELECT s.relid FROM scope s)
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid OPERATOR(pg_catalog.=) i.indexrelid
                              AND c.conrelid OPERATOR(pg_catalog.=) i.indrelid)
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid OPERATOR(pg_catalog.=) i.indexrelid)
            AND steep_repl._fast_droppable_index(i.indexrelid))
  SELECT c.conrelid, 'foreign_key', c.conname::text, steep_repl._fast_constraint_ddl(c.oid),
         pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::pg_catalog.regclass, c.conname), 0
  FROM cons f JOIN pg_catalog.pg_constraint c ON c.oid OPERATOR(pg_catalog.=) f.oid WHERE f.contype OPERATOR(pg_catalog.=) 'f'
  UNION ALL
  -- A unique, primary key or exclusion constraint; a partitioned one's partitions' own ones
  -- (made on the partition and attached) are re-created first.
  SELECT c.conrelid, 'constraint', c.conname::text, steep_repl._fast_constraint_ddl(c.oid),
         pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::pg_catalog.regclass, c.conname),
         CASE WHEN r.relkind OPERATOR(pg_catalog.=) 'p' THEN 100 ELSE 0 END
  FROM cons f JOIN pg_catalog.pg_constraint c ON c.oid OPERATOR(pg_catalog.=) f.oid
  JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.conrelid
  WHERE f.contype OPERATOR(pg_catalog.<>) 'f'
  UNION ALL
  SELECT ch.conrelid, 'constraint', ch.conname::text, steep_repl._fast_constraint_ddl(ch.oid), NULL, 0
  FROM cons f JOIN pg_catalog.pg_constraint ch ON ch.conparentid OPERATOR(pg_catalog.=) f.oid
  WHERE f.contype OPERATOR(pg_catalog.<>) 'f' AND ch.connoinherit
  UNION ALL
  SELECT i.indrelid, 'index', ic.relname::text, steep_repl._fast_index_ddl(x.relid),
         CASE WHEN x.level OPERATOR(pg_catalog.=) 0 THEN pg_catalog.format('DROP INDEX %s', x.relid::pg_catalog.regclass) END,
         CASE WHEN ic.relkind OPERATOR(pg_catalog.=) 'I' THEN 100 OPERATOR(pg_catalog.-) x.level ELSE 0 END
  FROM idx, steep_repl._fast_index_tree(idx.indexrelid) x
  JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) x.relid
  JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) x.relid;
$$;
COMMENT ON FUNCTION steep_repl._fast_droppable(text) IS
  'Internal: the indexes and constraints a fast init of node drops (see init_fast_drop_objects), each with its table, kind, name, the statements that re-create it, the one that drops it (NULL for a partition''s, dropped with its partitioned one) and its restore stage.';

-- Record, then drop, the secondary indexes and the unique, exclusion and foreign-key constraints
-- of the init's tables (and foreign keys of other tables that reference them), and the primary
-- key of a table larger than split_threshold on the source (a small one keeps it; a partitioned
-- one counts its partitions together): the replica identity index, CHECK and NOT NULL stay, and
-- so does an invalid index or one in a tablespace its owner may not create in. A partitioned
-- table all of whose partitions are copied has its own dropped with its partitions' attached
-- ones, which are recorded each with its own name and properties and re-created first.
-- Everything is recorded before anything is dropped (the definitions are read from the catalog).
CREATE OR REPLACE FUNCTION steep_repl.init_fast_drop_objects(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  v_drops text[] := '{}';
  v_rels oid[] := '{}';
BEGIN
  PERFORM 1 FROM steep_repl.nodes nd WHERE nd.name = init_fast_drop_objects.node FOR UPDATE;
  FOR r IN SELECT d.* FROM steep_repl._fast_droppable(node) d
           ORDER BY CASE d.kind WHEN 'foreign_key' THEN 0 WHEN 'constraint' THEN 1 ELSE 2 END, d.stage DESC, d.name LOOP
    INSERT INTO steep_repl.init_fast_objects (node, relid, kind, name, ddl, weight, stage)
    VALUES (init_fast_drop_objects.node, r.relid, r.kind, r.name, r.ddl,
            coalesce((SELECT t.source_bytes FROM steep_repl.init_tables t WHERE t.node = init_fast_drop_objects.node AND t.relid = r.relid),
                     (SELECT pg_catalog.sum(t.source_bytes)::bigint FROM steep_repl.init_tables t
                      WHERE t.node = init_fast_drop_objects.node AND t.relid IN (SELECT x.relid FROM pg_catalog.pg_partition_tree(r.relid) x)),
                     pg_catalog.pg_relation_size(r.relid)), r.stage);
    IF r.drop_stmt IS NOT NULL THEN
      v_drops := v_drops || r.drop_stmt;
      v_rels := v_rels || r.relid;
    END IF;
  END LOOP;
  FOR i IN 1 .. pg_catalog.cardinality(v_drops) LOOP
    PERFORM steep_repl._exec_as_owner(v_rels[i]::regclass, v_drops[i]);
  END LOOP;
  RETURN (SELECT pg_catalog.count(*) FROM steep_repl.init_fast_objects f WHERE f.node = init_fast_drop_objects.node);
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_drop_objects(text) IS
  'Sidecar step of init.fast: records in init_fast_objects (with the statements that re-create each as it is: tablespace, storage parameters, comments, CLUSTER ON, statistics targets, partitions'' indexes attached), then drops as the owner, the secondary indexes and unique/exclusion/foreign-key constraints of the init''s tables (and foreign keys referencing them), and the primary key of tables larger than split_threshold. Returns how many are recorded.';

REVOKE ALL ON FUNCTION steep_repl._fast_index_extras(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_tablespace_stmt(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_attach_stmts(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_index_tree(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_droppable_index(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_constraint_def(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_index_ddl(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_constraint_extras(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_partition_constraints(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_droppable_constraint(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_constraint_ddl(oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._fast_droppable(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl._fast_restore_all(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  n integer := 0;
BEGIN
  FOR v_id IN SELECT f.id FROM steep_repl.init_fast_objects f WHERE f.node = _fast_restore_all.node
              ORDER BY f.kind = 'foreign_key', f.stage, f.id LOOP
    IF steep_repl.init_fast_restore_object(v_id) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._fast_restore_all(text) IS
  'Internal: re-creates every index and constraint a fast init of node dropped (by stage: partitions'' before the partitioned ones that attach them; foreign keys last); returns how many.';

-- _merge_rows reads as the table's owner: parsing the keys into the key types runs a domain's CHECK.
COMMENT ON FUNCTION steep_repl._merge_rows(regclass, jsonb) IS
  'Sidecar: the rows of rel with the given primary keys, as a jsonb array of {column: text form} (generated columns left out), printed under pinned settings so that _merge_apply on another node writes the same values.';

-- #13: a delete made during a merge (after its baseline, before its write freeze) is propagated,
-- never resurrected; the unused _merge_origin_begin (origin steep_repl_merge) is dropped.
ALTER TABLE steep_repl.merges ADD COLUMN job_id bigint, ADD COLUMN baseline_local xid8, ADD COLUMN baseline_peer xid8,
  ADD COLUMN pass_xids_local xid8[] NOT NULL DEFAULT '{}', ADD COLUMN pass_xids_peer xid8[] NOT NULL DEFAULT '{}';
ALTER TABLE steep_repl.merge_audit_log DROP CONSTRAINT merge_audit_log_category_check,
  ADD CONSTRAINT merge_audit_log_category_check CHECK (category IN ('conflicting', 'local_only', 'peer_only', 'deleted_during_merge', 'update_delete'));
ALTER TABLE steep_repl.merge_audit_log DROP CONSTRAINT merge_audit_log_resolution_check,
  ADD CONSTRAINT merge_audit_log_resolution_check CHECK (resolution IN ('to_local', 'to_peer', 'manual', 'delete_local', 'delete_peer'));
COMMENT ON TABLE steep_repl.merges IS
  'One row per merge (or dry run) of this node with a peer: who asked, the options, when, how long the write freeze lasted, the outcome; the job, each node''s baseline xid and the xids of its passes (how the write freeze tells a delete made during the merge).';
COMMENT ON TABLE steep_repl.merge_audit_log IS
  'The rows of each merge that were not identical on both nodes: category (conflicting, local_only, peer_only; deleted_during_merge, update_delete from the write freeze), resolution (to_local, to_peer, manual, delete_local, delete_peer; tie when last-modified could not tell), both row hashes, both row images where a row changed, both commit timestamps.';
DROP FUNCTION steep_repl._merge_origin_begin();
-- Deletes the rows of rel with the given primary keys (a jsonb array of key objects, as
-- _merge_plan returns them): rows the other node deleted while the merge ran (the write freeze
-- decides which, sql/75_merge_init.sql). As the table's owner, with session_replication_role =
-- replica like _merge_apply, so neither user triggers nor foreign-key actions fire: the other
-- node's delete already did what its own triggers and cascades do, and each row it removed
-- there is deleted here by its own key. Returns the number of rows deleted.
CREATE FUNCTION steep_repl._merge_delete(rel regclass, keys jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_match text;
  v_n bigint;
BEGIN
  PERFORM steep_repl._require('keys', keys);
  IF pg_catalog.jsonb_typeof(keys) <> 'array'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(keys) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
    RAISE EXCEPTION 'keys must be a JSON array of primary key objects, got %', pg_catalog.left(keys::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF pg_catalog.jsonb_array_length(keys) = 0 THEN
    RETURN 0;
  END IF;
  -- The keys reach the owner's statement through a setting of this call, as _merge_apply's rows.
  PERFORM pg_catalog.set_config('steep_repl_merge.keys', keys::text, true);
  v_match := pg_catalog.format(
    '(%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset(pg_catalog.current_setting(''steep_repl_merge.keys'')::pg_catalog.jsonb) AS k(%s))',
    (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
     FROM ROWS FROM (pg_catalog.unnest(v_t.key_cols), pg_catalog.unnest(v_t.key_types)) WITH ORDINALITY x(c, ty, o)));
  -- Counted first (the owner's block cannot hand a number back: its settings end with it); under
  -- the write freeze's lock nothing changes in between.
  EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s r WHERE %s', rel, v_match) INTO v_n;
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DELETE FROM %s r WHERE %s', rel, v_match));
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_delete(regclass, jsonb) IS
  'Sidecar: deletes the rows of rel with the given primary keys (rows the other node deleted while the merge ran), as its owner, with user triggers and foreign-key actions off; returns the rows deleted.';

COMMENT ON FUNCTION steep_repl._merge_origin_end() IS 'Sidecar: ends _merge_origin_as (no error when no origin is set up).';
REVOKE ALL ON FUNCTION steep_repl._merge_delete(regclass, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl._merge_delete(regclass, jsonb) TO steep_repl_sidecar;

-- Deletes made while a merge runs (#13). Pass 1 makes both nodes hold the union of what its plan
-- read; a row one node deletes after that is, at the write freeze, on the other node only, like a
-- row written there since. What tells them apart is the version the other node still holds: if
-- its transaction had ended before the plan read the table (below the node's baseline xid), or
-- it is a copy a pass of the merge wrote, the row was on both nodes after pass 1, so the node
-- that lacks it deleted it: the delete is propagated (category deleted_during_merge). Any other
-- version was written by a user while the merge ran: it is copied, and if the row was on both
-- nodes after pass 1 (pass 1 moved it) that is a change against a delete, where the change wins
-- (category update_delete), as a later write does in replication. A row the merge saw as
-- identical, changed on one node and deleted on the other, is copied too but shows as local_only
-- or peer_only: the merge keeps no list of the rows that were identical.

-- This node's baseline, taken just before the plan: every transaction with a smaller xid (a
-- subtransaction's too) has ended. pg_current_snapshot()'s xmax, once the transactions running
-- then have ended (waited for up to wait_seconds); else the oldest of them still running.
CREATE FUNCTION steep_repl._merge_baseline(wait_seconds double precision) RETURNS xid8
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_snap pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
  v_until timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => greatest(wait_seconds, 0));
  v_running xid8[];
BEGIN
  -- A subtransaction's xid is in no snapshot's xip: waiting for its top transaction to end is
  -- what makes "below the baseline" mean "ended" for it too (its xid is above its parent's).
  LOOP
    v_running := ARRAY(SELECT x FROM pg_catalog.pg_snapshot_xip(v_snap) x WHERE pg_catalog.pg_xact_status(x) = 'in progress');
    EXIT WHEN pg_catalog.cardinality(v_running) = 0 OR pg_catalog.clock_timestamp() >= v_until;
    PERFORM pg_catalog.pg_sleep(0.02);
  END LOOP;
  RETURN (SELECT s.x FROM (SELECT pg_catalog.pg_snapshot_xmax(v_snap) UNION ALL SELECT pg_catalog.unnest(v_running)) s(x) ORDER BY s.x LIMIT 1);
END
$$;
COMMENT ON FUNCTION steep_repl._merge_baseline(double precision) IS
  'Sidecar step of init.merge: an xid below which every transaction of this node has ended (waiting up to wait_seconds for those running now), taken before the plan.';

CREATE FUNCTION steep_repl._merge_record_baseline(merge_id bigint, job_id bigint, local_baseline xid8, peer_baseline xid8) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.merges m SET job_id = _merge_record_baseline.job_id, baseline_local = local_baseline, baseline_peer = peer_baseline
  WHERE m.merge_id = _merge_record_baseline.merge_id;
$$;
COMMENT ON FUNCTION steep_repl._merge_record_baseline(bigint, bigint, xid8, xid8) IS
  'Sidecar step of init.merge: records the merge''s job and both nodes'' baseline xids (_merge_baseline).';

-- Called in the target's transaction of a pass, so the xids are recorded exactly when the pass
-- commits here (the source commits with it, or resolvePrepared finishes it).
CREATE FUNCTION steep_repl._merge_record_pass(merge_id bigint, local_xid xid8, peer_xid xid8) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.merges m SET pass_xids_local = m.pass_xids_local || local_xid, pass_xids_peer = m.pass_xids_peer || peer_xid
  WHERE m.merge_id = _merge_record_pass.merge_id;
$$;
COMMENT ON FUNCTION steep_repl._merge_record_pass(bigint, xid8, xid8) IS
  'Sidecar step of init.merge: records the xids of a pass of the merge on both nodes, in the target''s transaction of that pass.';

-- The baseline a merge's write freeze judges deletes by: that of the first merge of its job whose
-- pass 1 committed (a retried attempt's nodes held the union since then), with the xids of every
-- pass of the job. No row, or empty xids, while no pass has committed: nothing to judge yet.
CREATE FUNCTION steep_repl._merge_baseline_of(merge_id bigint,
  OUT baseline_local xid8, OUT baseline_peer xid8, OUT pass_xids_local xid8[], OUT pass_xids_peer xid8[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH job AS (
    SELECT m2.merge_id FROM steep_repl.merges m1 JOIN steep_repl.merges m2
      ON m2.merge_id = m1.merge_id OR (m2.job_id = m1.job_id AND NOT m2.dry_run)
    WHERE m1.merge_id = _merge_baseline_of.merge_id)
  SELECT f.baseline_local, f.baseline_peer,
         ARRAY(SELECT x FROM steep_repl.merges m, pg_catalog.unnest(m.pass_xids_local) x WHERE m.merge_id IN (SELECT j.merge_id FROM job j)),
         ARRAY(SELECT x FROM steep_repl.merges m, pg_catalog.unnest(m.pass_xids_peer) x WHERE m.merge_id IN (SELECT j.merge_id FROM job j))
  FROM (SELECT m.baseline_local, m.baseline_peer FROM steep_repl.merges m
        WHERE m.merge_id IN (SELECT j.merge_id FROM job j) AND pg_catalog.cardinality(m.pass_xids_local) > 0
        ORDER BY m.merge_id LIMIT 1) f;
$$;
COMMENT ON FUNCTION steep_repl._merge_baseline_of(bigint) IS
  'Sidecar step of init.merge: the baselines of the first merge of the job whose pass committed and the xids of all its passes; no row before any pass committed.';

-- Of the rows of rel with the given primary keys, the keys (as _merge_plan prints them) of those
-- whose version existed on both nodes after pass 1: its xmin below this node's baseline, or one of
-- the merge's passes (xids). xmin is a 32-bit xid: its epoch is the one that puts it at most 2^32
-- below the next xid (no live row is older, except a frozen one more than 2^32 xids old, which
-- keeps its raw xmin and may then look recent: it is copied back rather than deleted). xmin 1
-- and 2 (bootstrap, frozen before 9.4) are older than any baseline.
CREATE FUNCTION steep_repl._merge_existed_before(rel regclass, keys jsonb, baseline xid8, xids xid8[]) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_next bigint := pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint;
  v text[];
BEGIN
  PERFORM steep_repl._require('baseline', baseline);
  EXECUTE pg_catalog.format(
    'SELECT coalesce(pg_catalog.array_agg(pg_catalog.jsonb_build_object(%s)::pg_catalog.text), ''{}'')
     FROM %s r CROSS JOIN LATERAL (SELECT r.xmin::pg_catalog.text::bigint AS x32) x
     CROSS JOIN LATERAL (SELECT ($3 - (($3 - x.x32) %% 4294967296 + 4294967296) %% 4294967296)::pg_catalog.text::pg_catalog.xid8 AS x) f
     WHERE (%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset($1) AS k(%s))
       AND (x.x32 < 3 OR f.x < $2 OR f.x = ANY ($4))',
    (SELECT pg_catalog.string_agg(pg_catalog.format('%L, r.%I', c, c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    rel,
    (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(v_t.key_cols) WITH ORDINALITY x(c, o)),
    (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
     FROM ROWS FROM (pg_catalog.unnest(v_t.key_cols), pg_catalog.unnest(v_t.key_types)) WITH ORDINALITY x(c, ty, o)))
    INTO v USING keys, baseline, v_next, coalesce(xids, '{}');
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_existed_before(regclass, jsonb, xid8, xid8[]) IS
  'Sidecar step of init.merge (the write freeze): keys of the given rows of rel whose version predates baseline or was written by one of xids (a pass of the merge): rows the other node deleted while the merge ran.';

-- Of the given keys of a table, those a pass of the merge's job moved (its audit rows): the row
-- was on both nodes after pass 1. Tells update_delete from a row inserted while the merge ran.
CREATE FUNCTION steep_repl._merge_moved_keys(merge_id bigint, schema_name text, table_name text, keys jsonb) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(pg_catalog.array_agg(DISTINCT a.key::text), '{}')
  FROM steep_repl.merge_audit_log a
  WHERE a.merge_id IN (SELECT m2.merge_id FROM steep_repl.merges m1 JOIN steep_repl.merges m2
                         ON m2.merge_id = m1.merge_id OR (m2.job_id = m1.job_id AND NOT m2.dry_run)
                       WHERE m1.merge_id = _merge_moved_keys.merge_id)
    AND a.schema_name = _merge_moved_keys.schema_name AND a.table_name = _merge_moved_keys.table_name
    AND a.resolution IN ('to_local', 'to_peer')
    AND a.key IN (SELECT pg_catalog.jsonb_array_elements(keys));
$$;
COMMENT ON FUNCTION steep_repl._merge_moved_keys(bigint, text, text, jsonb) IS
  'Sidecar step of init.merge (the write freeze): of the given keys of a table, those a pass of the merge''s job moved.';
REVOKE ALL ON FUNCTION steep_repl._merge_baseline(double precision), steep_repl._merge_record_baseline(bigint, bigint, xid8, xid8),
  steep_repl._merge_record_pass(bigint, xid8, xid8), steep_repl._merge_baseline_of(bigint),
  steep_repl._merge_existed_before(regclass, jsonb, xid8, xid8[]), steep_repl._merge_moved_keys(bigint, text, text, jsonb) FROM PUBLIC;
-- end of #13 merge deletes block

-- Every read of a user's table by the merge runs as its owner too (_owned_sql); the peer's commit
-- timestamps through its _merge_commit_times.
CREATE OR REPLACE FUNCTION steep_repl._owned_sql(rel regclass, query text, columns text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SELECT * FROM steep_repl._query_as(%s::pg_catalog.oid::pg_catalog.regrole, %L) AS x(%s)',
    (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = rel)::oid, query, columns);
$$;
COMMENT ON FUNCTION steep_repl._owned_sql(regclass, text, text) IS
  'Internal: SELECT * of query (which reads rel) run as rel''s owner in a security-restricted operation, its result columns as given ("k pg_catalog.text, ...").';
REVOKE ALL ON FUNCTION steep_repl._owned_sql(regclass, text, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION steep_repl._compare_owned_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._owned_sql(t.relid, steep_repl._compare_sql(t, keys), 'k pg_catalog.text, h pg_catalog.int8');
$$;
CREATE OR REPLACE FUNCTION steep_repl._merge_commit_times(schema_name text, table_name text, keys jsonb)
RETURNS TABLE (k text, c timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table;
BEGIN
  PERFORM steep_repl._require('schema_name', schema_name);
  PERFORM steep_repl._require('table_name', table_name);
  PERFORM steep_repl._require('keys', keys);
  SELECT * INTO v_t FROM steep_repl._compare_scope(ARRAY[schema_name || '.' || table_name], steep_repl._caller());
  RETURN QUERY EXECUTE steep_repl._owned_sql(v_t.relid, steep_repl._merge_commit_ts_sql(v_t, keys), 'k pg_catalog.text, c pg_catalog.timestamptz');
END
$$;
COMMENT ON FUNCTION steep_repl._merge_commit_times(text, text, jsonb) IS
  'Internal (a peer''s merge plan): key -> commit timestamp of the rows of a table with the given keys, read as its owner, for a role that may read all of them.';
REVOKE ALL ON FUNCTION steep_repl._merge_commit_times(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl._merge_commit_times(text, text, jsonb) TO steep_repl_admin, steep_repl_sidecar;
-- _merge_lock takes each table's lock as its owner (the trust boundary: no statement on a user table as the definer).
CREATE OR REPLACE FUNCTION steep_repl._merge_lock(tables jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rel regclass;
  n integer := 0;
BEGIN
  FOR v_rel IN SELECT pg_catalog.format('%I.%I', x.schema, x."table")::regclass
               FROM pg_catalog.jsonb_to_recordset(tables) AS x(schema text, "table" text) ORDER BY x.schema, x."table" LOOP
    PERFORM steep_repl._exec_as_owner(v_rel, pg_catalog.format('LOCK TABLE %s IN EXCLUSIVE MODE', v_rel));
    n := n + 1;
  END LOOP;
  IF n = 0 THEN
    RAISE EXCEPTION 'no tables to lock' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_lock(jsonb) IS
  'Sidecar step of init.merge (its write freeze): LOCK TABLE [{schema, table}] IN EXCLUSIVE MODE as each table''s owner until the caller''s transaction ends; returns how many.';

-- One key expression and one keys filter for every keyed read (_compare_key_expr, _compare_keys_filter), instead of five copies.
CREATE FUNCTION steep_repl._compare_key_expr(t steep_repl.compare_table) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('pg_catalog.jsonb_build_object(%s)::pg_catalog.text',
           (SELECT pg_catalog.string_agg(pg_catalog.format('%L, r.%I', c, c), ', ' ORDER BY o)
            FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)));
$$;
COMMENT ON FUNCTION steep_repl._compare_key_expr(steep_repl.compare_table) IS
  'Internal: the expression printing the key of row r of a compared table as jsonb text.';

CREATE FUNCTION steep_repl._compare_keys_filter(t steep_repl.compare_table, keys jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
           ' WHERE (%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset(%L::pg_catalog.jsonb) AS k(%s))',
           (SELECT pg_catalog.string_agg(pg_catalog.format('r.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           keys::text,
           (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
            FROM ROWS FROM (pg_catalog.unnest(t.key_cols), pg_catalog.unnest(t.key_types)) WITH ORDINALITY x(c, ty, o)));
$$;
COMMENT ON FUNCTION steep_repl._compare_keys_filter(steep_repl.compare_table, jsonb) IS
  'Internal: WHERE clause restricting row r of a compared table to the given keys (a jsonb array of key objects).';
REVOKE ALL ON FUNCTION steep_repl._compare_key_expr(steep_repl.compare_table), steep_repl._compare_keys_filter(steep_repl.compare_table, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl._compare_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SELECT %s, steep_repl.row_hash(r.*) FROM %I.%I r', steep_repl._compare_key_expr(t), t.schema_name, t.table_name)
      || CASE WHEN keys IS NULL THEN '' ELSE steep_repl._compare_keys_filter(t, keys) END;
$$;
CREATE OR REPLACE FUNCTION steep_repl._merge_rows(rel regclass, keys jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 3 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_names text[];
  v_values text;
  v jsonb;
BEGIN
  PERFORM steep_repl._require('keys', keys);
  IF pg_catalog.jsonb_typeof(keys) <> 'array' THEN
    RAISE EXCEPTION 'keys must be a JSON array of primary key objects, got %', pg_catalog.left(keys::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('CASE WHEN pg_catalog.num_nulls(r.%1$I) OPERATOR(pg_catalog.=) 1 THEN NULL ELSE pg_catalog.format(''%%s'', r.%1$I) END',
                                                 a.attname), ', ' ORDER BY a.attnum)
    INTO v_names, v_values
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_object(%L::pg_catalog.text[], ARRAY[%s]::pg_catalog.text[])), ''[]'')
     FROM %s r %s',
    v_names, v_values, rel,
    steep_repl._compare_keys_filter(v_t, keys)),
    'v pg_catalog.jsonb')
    INTO v;
  RETURN v;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._merge_changed_since(rel regclass, keys jsonb, since timestamptz, origin text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v text[];
BEGIN
  IF NOT pg_catalog.current_setting('track_commit_timestamp')::boolean THEN
    RETURN NULL;
  END IF;
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.array_agg(%s), ''{}'')
     FROM %s r CROSS JOIN LATERAL pg_catalog.pg_xact_commit_timestamp_origin(r.xmin) c
     %s
       AND c."timestamp" OPERATOR(pg_catalog.>) %L::pg_catalog.timestamptz
       AND c.roident IS DISTINCT FROM (SELECT o.roident FROM pg_catalog.pg_replication_origin o WHERE o.roname OPERATOR(pg_catalog.=) %L)',
    steep_repl._compare_key_expr(v_t),
    rel,
    steep_repl._compare_keys_filter(v_t, keys),
    since::text, origin), 'v pg_catalog.text[]')
    INTO v;
  RETURN v;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._merge_existed_before(rel regclass, keys jsonb, baseline xid8, xids xid8[]) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_next bigint := pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint;
  v text[];
BEGIN
  PERFORM steep_repl._require('baseline', baseline);
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.array_agg(%s), ''{}'')
     FROM %s r CROSS JOIN LATERAL (SELECT r.xmin::pg_catalog.text::bigint AS x32) x
     CROSS JOIN LATERAL (SELECT (%s::bigint - ((%s::bigint - x.x32) %% 4294967296 + 4294967296) %% 4294967296)::pg_catalog.text::pg_catalog.xid8 AS x) f
     %s
       AND (x.x32 < 3 OR f.x < %L::pg_catalog.xid8 OR f.x = ANY (%L::pg_catalog.xid8[]))',
    steep_repl._compare_key_expr(v_t),
    rel, v_next, v_next,
    steep_repl._compare_keys_filter(v_t, keys),
    baseline::text, coalesce(xids, '{}')::text), 'v pg_catalog.text[]')
    INTO v;
  RETURN v;
END
$$;

-- A comparison's scope looks tables up by name in _user_tables() (oid and names only), not _local_tables() (every table's size and columns): each peer read makes one lookup.
CREATE FUNCTION steep_repl._user_tables_from_sql() RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $q$
  SELECT $$
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  WHERE c.relkind OPERATOR(pg_catalog.=) 'r' AND c.relpersistence OPERATOR(pg_catalog.=) 'p'
    AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'steep_repl']::pg_catalog.name[])
    AND n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast|temp)'
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')
  $$;
$q$;
COMMENT ON FUNCTION steep_repl._user_tables_from_sql() IS
  'Internal: FROM pg_class c JOIN pg_namespace n WHERE <c is a user table>, shared by every query over user tables.';
CREATE FUNCTION steep_repl._user_tables() RETURNS TABLE (relid oid, schema_name text, table_name text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE 'SELECT c.oid, n.nspname::pg_catalog.text, c.relname::pg_catalog.text ' || steep_repl._user_tables_from_sql();
END
$$;
COMMENT ON FUNCTION steep_repl._user_tables() IS 'Internal: oid, schema and name of the user tables of this database.';
REVOKE ALL ON FUNCTION steep_repl._user_tables_from_sql(), steep_repl._user_tables() FROM PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl._table_catalog_sql() RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $q$
  SELECT $$
  SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text, c.oid::pg_catalog.int8,
         pg_catalog.pg_table_size(c.oid)::pg_catalog.int8,
         greatest(c.reltuples, 0)::pg_catalog.int8,
         (c.relreplident OPERATOR(pg_catalog.=) ANY (ARRAY['f', 'i']::pg_catalog."char"[])
          OR (c.relreplident OPERATOR(pg_catalog.=) 'd' AND EXISTS (
            SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid AND i.indisprimary))),
         coalesce((SELECT pg_catalog.string_agg(pg_catalog.format('%I %s%s', a.attname,
                      pg_catalog.format_type(a.atttypid, a.atttypmod),
                      CASE WHEN a.attnotnull THEN ' not null' ELSE '' END), ', ' ORDER BY a.attname)
                   FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped), '')
  $$ || steep_repl._user_tables_from_sql();
$q$;
CREATE OR REPLACE FUNCTION steep_repl._compare_scope(tables text[], as_role regrole) RETURNS SETOF steep_repl.compare_table
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_caller regrole := as_role;
  v_scope steep_repl.compare_table[];
  v_bad text;
BEGIN
  IF tables IS NOT NULL THEN
    SELECT pg_catalog.string_agg(x, ', ' ORDER BY x) INTO v_bad FROM pg_catalog.unnest(tables) x
    WHERE NOT EXISTS (SELECT 1 FROM steep_repl._user_tables() l
                      WHERE x = l.schema_name || '.' || l.table_name OR (l.schema_name = 'public' AND x = l.table_name));
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'no such table on this node: %', v_bad USING ERRCODE = 'undefined_table',
        HINT = 'Names as stored, without quotes: "public.orders", "My Schema.Odd Table"; a bare name means schema public.';
    END IF;
  END IF;
  v_scope := ARRAY(
    SELECT ROW(l.relid::oid::regclass, l.schema_name, l.table_name,
               ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i
                     CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = l.relid::oid AND i.indisprimary ORDER BY k.ord),
               ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_index i
                     CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = l.relid::oid AND i.indisprimary ORDER BY k.ord))::steep_repl.compare_table
    FROM steep_repl._user_tables() l
    WHERE tables IS NULL OR l.schema_name || '.' || l.table_name = ANY (tables)
       OR (l.schema_name = 'public' AND l.table_name = ANY (tables))
    ORDER BY l.schema_name, l.table_name);

  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ') INTO v_bad
  FROM pg_catalog.unnest(v_scope) s WHERE pg_catalog.cardinality(s.key_cols) = 0;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables without a primary key cannot be compared row by row: %', v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add a primary key to each, or leave them out with the tables argument.';
  END IF;
  -- The hashes are read as each table's owner, who bypasses row-level security: the caller must
  -- be able to read every row of every table itself, or the keys returned would tell it what it
  -- may not see.
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ') INTO v_bad
  FROM pg_catalog.unnest(v_scope) s JOIN pg_catalog.pg_class c ON c.oid = s.relid
  WHERE NOT pg_catalog.has_table_privilege(v_caller, s.relid, 'SELECT')
     OR (c.relrowsecurity AND c.relowner <> v_caller
         AND NOT (SELECT r.rolbypassrls OR r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = v_caller));
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'permission denied to compare %', v_bad USING ERRCODE = 'insufficient_privilege',
      HINT = pg_catalog.format('Role %s needs SELECT on every row of each (row-level security included).', v_caller);
  END IF;
  -- Unless row-level security is forced on the owner: then the owner's read could miss rows.
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ') INTO v_bad
  FROM pg_catalog.unnest(v_scope) s JOIN pg_catalog.pg_class c ON c.oid = s.relid WHERE c.relforcerowsecurity;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'row-level security is forced on the owner of %: a comparison reads as the owner and could miss rows', v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'ALTER TABLE ... NO FORCE ROW LEVEL SECURITY while comparing, or leave them out with the tables argument.';
  END IF;
  RETURN QUERY SELECT * FROM pg_catalog.unnest(v_scope);
END
$$;

-- One _truncate_as_owners(rels) for the four places that emptied tables as their owners (start_init force, init_cancelled, init_fast_reset, _reinit_empty).
CREATE FUNCTION steep_repl._truncate_as_owners(rels regclass[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid::regclass::text) AS tables,
                  pg_catalog.count(*) AS k
           FROM pg_catalog.pg_class c WHERE c.oid = ANY (rels)
           GROUP BY c.relowner ORDER BY c.relowner LOOP
    PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
    n := n + r.k;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._truncate_as_owners(regclass[]) IS
  'Internal: TRUNCATE the given tables, one statement per owner run as that owner; returns how many.';
REVOKE ALL ON FUNCTION steep_repl._truncate_as_owners(regclass[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl.start_init(target text, source text, method text DEFAULT 'snapshot',
                                      options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb;
  v_node steep_repl.nodes;
  v_names record;
  v_err text;
  v_sync jsonb;
  v_bad text;
  v_tables text[];
  v_job bigint;
  v_workers int;
  v_pub_exists boolean;
  v_pub_created boolean;
  v_fast jsonb;
  -- Both sides' tables in scope, as arrays: never a temp table a caller could create first.
  v_src steep_repl.table_info[];
  v_dst steep_repl.table_info[];
BEGIN
  PERFORM steep_repl._require('target', target);
  PERFORM steep_repl._require('source', source);
  PERFORM steep_repl._require('method', method);
  PERFORM steep_repl._require('options', options);
  IF method = 'two_phase' THEN
    -- Generate on the source into a shared path, apply here, subscribe from the snapshot's LSN
    -- (the apply creates the tables, so it validates on its own: see 60_snapshot_user.sql).
    RETURN steep_repl._start_two_phase_init(target, source, options);
  ELSIF method = 'merge' THEN
    -- Both nodes hold data: union them, then subscribe each to the other (75_merge_init.sql).
    RETURN steep_repl._start_merge_init(target, source, options);
  ELSIF method NOT IN ('snapshot', 'fast') THEN
    RAISE EXCEPTION 'unknown init method "%"', method
      USING ERRCODE = 'invalid_parameter_value',
            HINT = '"snapshot" copies through the subscription (copy_data = true); "fast" copies in parallel block ranges inside the slot''s snapshot, indexes built after the load; "two_phase" generates a snapshot on the source and applies it here (option path); "merge" joins two nodes that both hold data.';
  END IF;
  -- fast has options of its own (_fast_options: split_threshold, copy_format, ...); every other is start_init's.
  v_fast := steep_repl._fast_options(method, options);
  v_opts := steep_repl._init_options(options - ARRAY(SELECT pg_catalog.jsonb_object_keys(v_fast))) || v_fast;
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Initialize a node from another node.';
  END IF;

  -- The node row lock serializes concurrent start_init/cancel_init calls for the target.
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', target
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Call start_init on the target node itself (the node registered with is_local => true).';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  IF v_node.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" already has an init in state %', target, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('Watch it with SELECT * FROM steep_repl.init_progress, or stop it with SELECT steep_repl.cancel_init(%L).', target);
  END IF;
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.fast', 'init.cancel') AND j.node = target
             AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'an init job for node "%" is still queued or running', target
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.jobs) or cancel it.';
  END IF;
  SELECT * INTO v_names FROM steep_repl._init_names(target, source);

  -- Reach the source and describe both sides.
  v_err := steep_repl._probe(source);
  IF v_err IS NOT NULL THEN
    RAISE EXCEPTION 'source node "%" is not reachable: %', source, v_err
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check the source is up and that its registered conninfo works from this server.';
  END IF;
  v_src := ARRAY(SELECT t FROM steep_repl._remote_tables(source) t WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name));
  v_dst := ARRAY(SELECT t FROM steep_repl._local_tables() t WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name));

  -- Named tables must exist on the source.
  IF pg_catalog.jsonb_typeof(v_opts->'tables') = 'array' THEN
    SELECT pg_catalog.string_agg(x, ', ') INTO v_bad FROM pg_catalog.jsonb_array_elements_text(v_opts->'tables') x
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_src) s
                      WHERE x IN (s.schema_name || '.' || s.table_name, CASE WHEN s.schema_name = 'public' THEN s.table_name END));
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'tables not found on source node "%": %', source, v_bad
        USING ERRCODE = 'undefined_table', HINT = 'Name tables as "schema.table" (or "table" for public).';
    END IF;
  END IF;
  IF pg_catalog.cardinality(v_src) = 0 THEN
    RAISE EXCEPTION 'nothing to initialize: source node "%" has no user tables in scope', source
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Check the tables and schemas options.';
  END IF;

  -- Schema sync (strict | auto | manual, steep_repl._schema_sync): the target's tables must match
  -- the source's, or be made to; auto may have created or altered tables, so describe them again.
  v_sync := steep_repl._schema_sync(source, v_opts->>'schema_sync', v_opts);
  IF v_sync->>'status' = 'synced' THEN
    v_dst := ARRAY(SELECT t FROM steep_repl._local_tables() t WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name));
  ELSIF v_sync->>'status' = 'accepted' THEN
    -- manual, confirmed: tables the target lacks cannot be copied, so they are left out.
    v_src := ARRAY(SELECT s FROM pg_catalog.unnest(v_src) s WHERE EXISTS (SELECT 1 FROM pg_catalog.unnest(v_dst) t
      WHERE t.schema_name OPERATOR(pg_catalog.=) s.schema_name AND t.table_name OPERATOR(pg_catalog.=) s.table_name));
    IF pg_catalog.cardinality(v_src) = 0 THEN
      RAISE EXCEPTION 'nothing to initialize: none of the source''s tables in scope is on node "%"', target
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Create the tables on the target first (steep_repl.schema_ddl).';
    END IF;
  END IF;

  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ') INTO v_bad
  FROM pg_catalog.unnest(v_src) s WHERE NOT s.has_identity;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables without a primary key or replica identity on source node "%": %', source, v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Published tables need one, or UPDATE/DELETE on the source would fail: add a primary key, ALTER TABLE ... REPLICA IDENTITY FULL, or leave them out with the tables option.';
  END IF;

  -- The target must be empty, unless force (which truncates, and says so).
  SELECT pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name) ORDER BY t.schema_name, t.table_name)
    INTO v_tables FROM pg_catalog.unnest(v_dst) t;
  SELECT pg_catalog.string_agg(x, ', ') INTO v_bad FROM pg_catalog.unnest(v_tables) x
  WHERE steep_repl._has_rows(x);
  IF v_bad IS NOT NULL THEN
    IF NOT (v_opts->>'force')::boolean AND v_node.init_state <> 'failed' THEN
      RAISE EXCEPTION 'target node "%" is not empty: %', target, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'An init copies into empty tables. To replace their contents use options => ''{"force": true}'' (the tables are truncated first).';
    END IF;
    PERFORM steep_repl._truncate_as_owners(ARRAY(SELECT t.relid::oid::regclass FROM pg_catalog.unnest(v_dst) t));
    RAISE NOTICE 'truncated % table(s) on node "%" before the init: %', pg_catalog.cardinality(v_tables), target, v_bad;
  END IF;
  -- Indexes and constraints a failed fast init dropped come back first (the tables are empty now).
  PERFORM steep_repl._fast_restore_all(target);

  -- Whether the publication is this init's to drop on cancel, known before the sidecar makes it:
  -- a job stopped between making it and subscribing never records that it did. It is, when the
  -- source has none yet, or when the failed attempt this one retries made it.
  EXECUTE pg_catalog.format('SELECT x FROM %I.dblink($1, $2) AS t(x boolean)', steep_repl._dblink_schema())
    INTO v_pub_exists USING steep_repl._conninfo(source), pg_catalog.format(
      'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname OPERATOR(pg_catalog.=) %L)', v_names.publication);

  -- Everything checked: record the init and hand it to the sidecar.
  DELETE FROM steep_repl.init_progress p WHERE p.node = target RETURNING p.publication_created INTO v_pub_created;
  v_pub_created := NOT v_pub_exists OR (coalesce(v_pub_created, false) AND v_node.init_state = 'failed');
  SELECT pg_catalog.current_setting('max_logical_replication_workers')::int INTO v_workers;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription, slot_name,
    parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, tables_total, bytes_total, rows_total, large_tables)
  SELECT target, source, method, v_opts, v_names.publication, v_pub_created, v_names.subscription, v_names.slot_name,
    (v_opts->>'parallel')::int, (v_opts->>'lag_threshold')::bigint,
    pg_catalog.make_interval(secs => (v_opts->>'stall_timeout')::float8),
    pg_catalog.make_interval(secs => (v_opts->>'source_timeout')::float8),
    pg_catalog.count(*), coalesce(pg_catalog.sum(s.bytes), 0), coalesce(pg_catalog.sum(s.row_estimate), 0),
    coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name) ORDER BY s.schema_name, s.table_name)
             FILTER (WHERE s.bytes > (v_opts->>'large_table_threshold')::bigint), '{}')
  FROM pg_catalog.unnest(v_src) s;
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows, is_large)
  SELECT target, s.schema_name, s.table_name, t.relid::oid, s.bytes, s.row_estimate,
         s.bytes > (v_opts->>'large_table_threshold')::bigint
  FROM pg_catalog.unnest(v_src) s JOIN pg_catalog.unnest(v_dst) t USING (schema_name, table_name);

  UPDATE steep_repl.nodes n SET init_source_node = source WHERE n.name = target;
  PERFORM steep_repl.transition(target, 'preparing', pg_catalog.format('start_init from %s', source));
  v_job := steep_repl.enqueue_job(CASE method WHEN 'fast' THEN 'init.fast' ELSE 'init.start' END,
                                  pg_catalog.jsonb_build_object('target', target, 'source', source), target, 3);
  UPDATE steep_repl.init_progress p SET job_id = v_job WHERE p.node = target;
  RETURN v_job;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl.init_cancelled(node text, detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_list text[];
  v_tables text;
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_cancelled.node FOR UPDATE;
  -- The tables this init filled: those it subscribed to, and those a cancelled two-phase init or
  -- apply of this init had already loaded (before CATCHING_UP there is no init_tables row).
  v_list := ARRAY(SELECT DISTINCT x.t FROM (
    SELECT pg_catalog.format('%I.%I', t.schema_name, t.table_name) t
    FROM steep_repl.init_tables t WHERE t.node = init_cancelled.node
      -- A merge's tables held the node's own data before it: never emptied.
      AND NOT EXISTS (SELECT 1 FROM steep_repl.init_progress p WHERE p.node = t.node AND p.method = 'merge')
    UNION ALL
    SELECT pg_catalog.format('%I.%I', t.schema_name, t.table_name)
    FROM steep_repl.snapshot_apply_tables t
    JOIN steep_repl.snapshot_applies a ON a.id = t.apply_id
    JOIN steep_repl.jobs j ON j.id = a.job_id
    JOIN steep_repl.nodes n ON n.name = j.node
    WHERE j.node = init_cancelled.node AND j.kind IN ('snapshot.init', 'snapshot.apply')
      AND j.cancel_requested_at IS NOT NULL AND j.created_at >= n.init_started_at) x
  WHERE pg_catalog.to_regclass(x.t) IS NOT NULL ORDER BY x.t);
  v_tables := NULLIF(pg_catalog.array_to_string(v_list, ', '), '');
  PERFORM steep_repl._truncate_as_owners(ARRAY(SELECT pg_catalog.to_regclass(x.t) FROM pg_catalog.unnest(v_list) x(t)));
  -- What a fast init dropped comes back, built on the emptied tables.
  IF steep_repl._fast_restore_all(node) > 0 THEN
    detail := coalesce(detail, '{}') || pg_catalog.jsonb_build_object('indexes_restored', true);
  END IF;
  DELETE FROM steep_repl.init_progress p WHERE p.node = init_cancelled.node;
  IF v_state <> 'uninitialized' THEN
    PERFORM steep_repl.transition(node, 'uninitialized', 'init cancelled');
  END IF;
  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (node, 'init.cancelled', v_state, 'uninitialized',
          coalesce(detail, '{}') || pg_catalog.jsonb_build_object('truncated', coalesce(v_tables, '')));
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._reinit_empty(node text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._truncate_as_owners(ARRAY(SELECT pg_catalog.to_regclass(x.t) FROM pg_catalog.unnest(steep_repl._reinit_tables(node)) x(t)));
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    started_at = NULL, finished_at = NULL, n_tup_ins_base = coalesce(pg_catalog.pg_stat_get_tuples_inserted(t.relid), 0)
  WHERE t.node = _reinit_empty.node;
  RETURN pg_catalog.array_to_string(steep_repl._reinit_tables(node), ', ');
END
$$;

-- ---- Fast init (#14): a sidecar killed during the indexing step resumes it: the copy's LSN is kept in
-- init_fast_loaded (init_fast_loaded releases the holder and starts the indexing step), init_fast_reset forgets it.
-- The copy is in: the slot's consistent LSN the subscription starts from is kept past the
-- snapshot's holder (released now), so a job retried during the indexing step neither copies
-- again nor rebuilds what it re-created (each object is forgotten in the transaction that
-- re-creates it, init_fast_restore_object): it re-creates the rest and subscribes from here.
CREATE TABLE steep_repl.init_fast_loaded (
  node      text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  lsn       pg_lsn NOT NULL,
  loaded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
GRANT SELECT ON steep_repl.init_fast_loaded TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_loaded IS
  'A fast init whose copy committed every chunk, with the slot''s consistent LSN its subscription starts from: a retried job resumes at the indexing step. Forgotten with the attempt (init_fast_reset).';

CREATE FUNCTION steep_repl.init_fast_loaded(node text, lsn pg_lsn) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM steep_repl.init_fast_chunks c WHERE c.node = init_fast_loaded.node AND NOT c.done) THEN
    RAISE EXCEPTION 'the copy of node "%" has block ranges not copied', node
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO steep_repl.init_fast_loaded AS l (node, lsn) VALUES (init_fast_loaded.node, init_fast_loaded.lsn)
  ON CONFLICT ON CONSTRAINT init_fast_loaded_pkey DO UPDATE SET lsn = excluded.lsn, loaded_at = pg_catalog.now();
  DELETE FROM steep_repl.init_fast_holder h WHERE h.node = init_fast_loaded.node;
  RETURN steep_repl.init_fast_indexing_start(node);
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_loaded(text, pg_lsn) IS
  'Sidecar step of init.fast: every block range is copied; records the slot''s LSN (init_fast_loaded), releases the snapshot''s holder and starts the indexing step, in one transaction; returns how many objects it re-creates. 55000 while a range is not copied.';
REVOKE ALL ON FUNCTION steep_repl.init_fast_loaded(text, pg_lsn) FROM PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl.init_fast_reset(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = init_fast_reset.node FOR UPDATE;
  PERFORM steep_repl._truncate_as_owners(ARRAY(SELECT t.relid::regclass FROM steep_repl.init_tables t
                                                WHERE t.node = init_fast_reset.node AND (t.rows_copied > 0 OR t.chunks_done > 0)));
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    chunks_total = 0, chunks_done = 0, started_at = NULL, finished_at = NULL
  WHERE t.node = init_fast_reset.node;
  UPDATE steep_repl.init_progress p SET tables_done = 0, rows_done = 0, bytes_done = 0, percent = 0, current_tables = '{}',
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_reset.node;
  -- The plan and the snapshot's holder belong to the attempt (sql/53c_fast_resume.sql).
  DELETE FROM steep_repl.init_fast_chunks c WHERE c.node = init_fast_reset.node;
  DELETE FROM steep_repl.init_fast_holder h WHERE h.node = init_fast_reset.node;
  DELETE FROM steep_repl.init_fast_loaded l WHERE l.node = init_fast_reset.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_reset(text) IS
  'Sidecar step of init.fast: empties what an attempt copied (as each table''s owner), resets the per-table progress and forgets the attempt''s plan, snapshot holder and loaded LSN (a new attempt, or a failed one before its indexes and constraints are re-created).';

-- #13 (task I): the write freeze re-checks only the keys changed since the first plan:
-- _merge_plan's per-table categorise/resolve is _merge_plan_table (whole or keyed), shared with
-- the freeze's _merge_plan_keys.
-- One table of a merge's plan: every row not identical on both nodes, with its category and
-- resolution under strategy. keys NULL: every row (one pass of keys and row hashes); keys (a
-- jsonb array of key objects): those rows only, read as the owner on each node (the write
-- freeze's re-check of what changed since the first plan). conn is a conninfo or a dblink name.
CREATE OR REPLACE FUNCTION steep_repl._merge_plan_table(conn text, t steep_repl.compare_table, pos integer, strategy text, keys jsonb)
RETURNS TABLE (apply_order integer, schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
               local_hash bigint, peer_hash bigint, local_committed_at timestamptz, peer_committed_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_k text[];
  v_lh bigint[];
  v_ph bigint[];
  v_keys jsonb;
  v_lts jsonb := '{}';
  v_pts jsonb := '{}';
BEGIN
  IF keys IS NULL THEN
    SELECT coalesce(pg_catalog.array_agg(p.key ORDER BY p.key), '{}'), pg_catalog.array_agg(p.local_hash ORDER BY p.key),
           pg_catalog.array_agg(p.peer_hash ORDER BY p.key)
      INTO v_k, v_lh, v_ph FROM steep_repl._compare_pass(conn, t) p;
  ELSE
    SELECT coalesce(pg_catalog.array_agg(x.k ORDER BY x.k), '{}'), pg_catalog.array_agg(x.l ORDER BY x.k), pg_catalog.array_agg(x.p ORDER BY x.k)
      INTO v_k, v_lh, v_ph
    FROM (SELECT coalesce(l.key, p.key) AS k, l.value::bigint AS l, p.value::bigint AS p
          FROM pg_catalog.jsonb_each_text(steep_repl._compare_local_read(t, keys)) l
          FULL JOIN pg_catalog.jsonb_each_text((steep_repl._compare_peer_read(conn, t, keys)).hashes) p ON l.key = p.key
          WHERE l.value IS DISTINCT FROM p.value) x;
  END IF;
  IF pg_catalog.cardinality(v_k) = 0 THEN
    RETURN;
  END IF;
  IF strategy = 'last-modified' THEN
    v_keys := (SELECT pg_catalog.jsonb_agg(x.k::jsonb) FROM ROWS FROM (pg_catalog.unnest(v_k), pg_catalog.unnest(v_lh), pg_catalog.unnest(v_ph)) x(k, l, p)
               WHERE x.l IS NOT NULL AND x.p IS NOT NULL);
    IF v_keys IS NOT NULL THEN
      EXECUTE 'SELECT coalesce(pg_catalog.jsonb_object_agg(k, c), ''{}'') FROM ('
              || steep_repl._owned_sql(t.relid, steep_repl._merge_commit_ts_sql(t, v_keys), 'k pg_catalog.text, c pg_catalog.timestamptz')
              || ') x(k, c)'
        INTO v_lts;
      EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(k, c), ''{}'') FROM %I.dblink($1, $2) AS x(k text, c timestamptz)',
                                steep_repl._dblink_schema())
        INTO v_pts USING conn, pg_catalog.format('SELECT x.k, x.c FROM steep_repl._merge_commit_times(%L, %L, %L::pg_catalog.jsonb) x',
                                                 t.schema_name, t.table_name, v_keys::text);
    END IF;
  END IF;
  RETURN QUERY
    SELECT pos, t.schema_name, t.table_name, x.k::jsonb,
           CASE WHEN x.l IS NULL THEN 'peer_only' WHEN x.p IS NULL THEN 'local_only' ELSE 'conflicting' END,
           CASE WHEN x.l IS NULL THEN 'to_local' WHEN x.p IS NULL THEN 'to_peer'
                WHEN strategy = 'prefer-source' THEN 'to_local'
                WHEN strategy = 'prefer-target' THEN 'to_peer'
                WHEN strategy = 'manual' THEN 'manual'
                WHEN (v_lts->>x.k)::timestamptz > (v_pts->>x.k)::timestamptz THEN 'to_peer'
                ELSE 'to_local' END,
           -- last-modified: an equal or unknown commit time is a tie, resolved to the source.
           x.l IS NOT NULL AND x.p IS NOT NULL AND strategy = 'last-modified'
             AND (v_lts->>x.k IS NULL OR v_pts->>x.k IS NULL OR (v_lts->>x.k)::timestamptz = (v_pts->>x.k)::timestamptz),
           x.l, x.p, (v_lts->>x.k)::timestamptz, (v_pts->>x.k)::timestamptz
    FROM ROWS FROM (pg_catalog.unnest(v_k), pg_catalog.unnest(v_lh), pg_catalog.unnest(v_ph)) x(k, l, p);
END
$$;
COMMENT ON FUNCTION steep_repl._merge_plan_table(text, steep_repl.compare_table, integer, text, jsonb) IS
  'Internal: the rows of one table of a merge plan (all of them, or of the given keys only) not identical on both nodes, with category, resolution, tie, both hashes and (last-modified) both commit timestamps.';

-- The merge's plan on behalf of as_role: the pre-flight, then one pass of keys and row hashes per
-- table, every row not identical on both nodes with its category and resolution. Reads only, with
-- a snapshot of its own per statement (READ COMMITTED).
COMMENT ON FUNCTION steep_repl._merge_plan(text, jsonb, regrole) IS
  'Internal: the pre-flight and plan of a merge with peer (the source) on behalf of as_role: every row not identical on both nodes, with apply_order (foreign-key order), category, resolution, tie, both hashes and (last-modified) both commit timestamps.';

-- The write freeze's re-check: the plan again, of what changed since the first plan only. keys is
-- {"schema.table": [key objects] | null}: a table not named did not change and is not read; an
-- array re-reads those keys (their values are text, parsed into the key's types as the owner);
-- null re-reads the table whole, as does a key with a column the keys cannot name exactly (json,
-- jsonb, an array, a composite). The first plan made the pre-flight; only the definitions of the
-- tables in scope are checked again (a DDL between the plans). One session to the peer for the
-- re-check.
CREATE OR REPLACE FUNCTION steep_repl._merge_plan_keys(peer text, options jsonb, as_role regrole, keys jsonb)
RETURNS TABLE (apply_order integer, schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
               local_hash bigint, peer_hash bigint, local_committed_at timestamptz, peer_committed_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_opts jsonb;
  v_names text[];
  v_scope steep_repl.compare_table[];
  v_order jsonb;
  v_t steep_repl.compare_table;
  v_keys jsonb;
  v_bad text;
  v_link text;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  PERFORM steep_repl._require('as_role', as_role);
  PERFORM steep_repl._require('keys', keys);
  v_opts := steep_repl._merge_options(options);
  IF pg_catalog.jsonb_typeof(keys) <> 'object'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(keys) e WHERE pg_catalog.jsonb_typeof(e.value) NOT IN ('array', 'null')) THEN
    RAISE EXCEPTION 'keys must be an object of table name to an array of key objects or null, got %', pg_catalog.left(keys::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a merge plan reads the current rows of both nodes' USING ERRCODE = 'invalid_transaction_state',
      HINT = 'Run it outside a REPEATABLE READ or SERIALIZABLE transaction.';
  END IF;
  IF v_opts->'tables' <> 'null' THEN
    v_names := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_opts->'tables'));
  END IF;
  v_scope := ARRAY(SELECT s FROM steep_repl._compare_scope(v_names, as_role) s);
  SELECT pg_catalog.string_agg(k, ', ' ORDER BY k) INTO v_bad FROM pg_catalog.jsonb_object_keys(keys) k
  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_scope) s WHERE s.schema_name || '.' || s.table_name = k);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'keys names tables not in the merge: %', v_bad USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_order := steep_repl._merge_fk_order(v_scope);
  -- Every table's definition, changed rows or not: a DDL writes no change the capture sees.
  PERFORM steep_repl._merge_check_fingerprints(peer, v_scope, false);
  v_scope := ARRAY(SELECT s FROM pg_catalog.unnest(v_scope) s WHERE keys ? (s.schema_name || '.' || s.table_name));
  IF pg_catalog.cardinality(v_scope) = 0 THEN
    RETURN;
  END IF;
  v_link := steep_repl._compare_link('steep_repl_merge_recheck', steep_repl._compare_conninfo(peer, (v_opts->>'statement_timeout')::integer));
  FOR v_t IN SELECT s.* FROM pg_catalog.unnest(v_scope) s ORDER BY (v_order->>(s.schema_name || '.' || s.table_name))::integer LOOP
    v_keys := keys->(v_t.schema_name || '.' || v_t.table_name);
    IF pg_catalog.jsonb_typeof(v_keys) = 'null' OR EXISTS (
         SELECT 1 FROM pg_catalog.unnest(v_t.key_types) ty JOIN pg_catalog.pg_type y ON y.oid = ty::pg_catalog.regtype
         LEFT JOIN pg_catalog.pg_type b ON b.oid = y.typbasetype
         WHERE coalesce(b.typtype, y.typtype) NOT IN ('b', 'e') OR coalesce(b.typcategory, y.typcategory) = 'A'
            OR coalesce(b.oid, y.oid) IN ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype)) THEN
      v_keys := NULL;
    ELSIF pg_catalog.jsonb_array_length(v_keys) = 0 THEN
      CONTINUE;
    END IF;
    RETURN QUERY SELECT * FROM steep_repl._merge_plan_table(v_link, v_t, (v_order->>(v_t.schema_name || '.' || v_t.table_name))::integer,
      coalesce(v_opts->'table_strategies'->>(v_t.schema_name || '.' || v_t.table_name), v_opts->>'strategy'), v_keys);
  END LOOP;
  PERFORM steep_repl._compare_unlink(v_link);
END
$$;
COMMENT ON FUNCTION steep_repl._merge_plan_keys(text, jsonb, regrole, jsonb) IS
  'Internal (the write freeze): the plan of a merge with peer on behalf of as_role, of the given tables only, each of the given keys only (or whole, null): category, resolution, tie, both hashes and commit timestamps, as _merge_plan.';

REVOKE ALL ON FUNCTION steep_repl._merge_plan_table(text, steep_repl.compare_table, integer, text, jsonb),
  steep_repl._merge_plan_keys(text, jsonb, regrole, jsonb) FROM PUBLIC;

-- The fast init's snapshot holder keeps the snapshot however long a copy that progresses runs, and lets go after idle without progress (was: one hour after it started).
DROP FUNCTION steep_repl.init_fast_holder_wanted(text, integer);
CREATE FUNCTION steep_repl.init_fast_holder_wanted(node text, pid integer, idle interval) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM steep_repl.init_fast_holder h JOIN steep_repl.nodes n ON n.name = h.node
                 LEFT JOIN steep_repl.init_progress p ON p.node = h.node
                 WHERE h.node = init_fast_holder_wanted.node AND h.pid = init_fast_holder_wanted.pid
                   AND n.init_state IN ('preparing', 'copying')
                   AND greatest(h.started_at, p.last_progress_at) > pg_catalog.now() - idle);
$$;
COMMENT ON FUNCTION steep_repl.init_fast_holder_wanted(text, integer, interval) IS
  'steep-repl hold-snapshot: whether holder pid should keep node''s snapshot (its row is there, the init is still preparing or copying, and it made progress, or the holder started, less than idle ago).';
REVOKE ALL ON FUNCTION steep_repl.init_fast_holder_wanted(text, integer, interval) FROM PUBLIC;

-- The merge's pre-flight refuses a table with a deferrable constraint trigger enabled ALWAYS or REPLICA (it would fail in pass 1: no deferred trigger in a security-restricted operation).
CREATE FUNCTION steep_repl._merge_check_triggers(peer text, conn text, scope steep_repl.compare_table[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_bad text[];
  v_sql text := 'SELECT pg_catalog.format(''%%I.%%I trigger %%I%%s'', n.nspname, c.relname, g.tgname, %L)
     FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) g.tgrelid
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     JOIN ROWS FROM (pg_catalog.unnest(%L::pg_catalog.text[]), pg_catalog.unnest(%L::pg_catalog.text[])) AS s(nsp, rel)
       ON s.nsp OPERATOR(pg_catalog.=) n.nspname::pg_catalog.text AND s.rel OPERATOR(pg_catalog.=) c.relname::pg_catalog.text
     WHERE NOT g.tgisinternal AND g.tgdeferrable AND g.tgenabled OPERATOR(pg_catalog.=) ANY (ARRAY[''A'', ''R'']::pg_catalog."char"[])
     ORDER BY 1';
  v_nsp text[] := ARRAY(SELECT s.schema_name FROM pg_catalog.unnest(scope) s);
  v_rel text[] := ARRAY(SELECT s.table_name FROM pg_catalog.unnest(scope) s);
BEGIN
  EXECUTE 'SELECT ARRAY(' || pg_catalog.format(v_sql, ' (here)', v_nsp, v_rel) || ')' INTO v_bad;
  v_bad := v_bad || steep_repl._merge_peer_texts(conn, pg_catalog.format(v_sql, pg_catalog.format(' (on node %s)', peer), v_nsp, v_rel));
  IF pg_catalog.cardinality(v_bad) > 0 THEN
    RAISE EXCEPTION 'tables with a deferrable constraint trigger that fires for the merge''s writes cannot be merged: %', pg_catalog.array_to_string(v_bad, ', ')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'The merge writes as the table''s owner in a security-restricted operation, where PostgreSQL cannot queue a deferred trigger: ALTER TABLE ... ENABLE TRIGGER (origin only) on both nodes for the merge, or leave the tables out with "tables".';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_check_triggers(text, text, steep_repl.compare_table[]) IS
  'Internal: 55000 listing every deferrable user constraint trigger enabled ALWAYS or REPLICA on a table in scope, here or on the peer.';
REVOKE ALL ON FUNCTION steep_repl._merge_check_triggers(text, text, steep_repl.compare_table[]) FROM PUBLIC;

-- #13: pass 1 of a merge writes a row only where the node still holds the version the plan read
-- (a user's write since is kept): _merge_apply and _merge_delete take the expected versions and
-- say which keys they left; the peer pre-flight checks for the new _merge_apply.
DROP FUNCTION steep_repl._merge_apply(regclass, jsonb);
DROP FUNCTION steep_repl._merge_delete(regclass, jsonb);
-- The expected versions of a batch's rows on the node written (the plan's row_hash of each
-- key there, NULL: absent), as the sidecar passes them: {key as _compare_key_expr prints it:
-- hash or null}; their keys as a jsonb array of key objects. 22023 otherwise.
CREATE FUNCTION steep_repl._merge_expect_keys(expect jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
BEGIN
  PERFORM steep_repl._require('expect', expect);
  IF pg_catalog.jsonb_typeof(expect) <> 'object'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(expect) e WHERE pg_catalog.jsonb_typeof(e.value) NOT IN ('number', 'null')) THEN
    RAISE EXCEPTION 'expect must be a JSON object of key text -> row hash or null, got %', pg_catalog.left(expect::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    SELECT coalesce(pg_catalog.jsonb_agg(k::jsonb), '[]') INTO v FROM pg_catalog.jsonb_object_keys(expect) k;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'expect''s keys must be key objects as JSON text' USING ERRCODE = 'invalid_parameter_value';
  END;
  IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
    RAISE EXCEPTION 'expect''s keys must be key objects as JSON text' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_expect_keys(jsonb) IS
  'Internal: the keys of a merge batch''s expected versions ({key text: row hash or null}) as a jsonb array of key objects; 22023 if malformed.';

-- The condition that the key columns of row alias are among the keys (a jsonb array of key
-- objects) held by setting, each parsed into its column's type: for the owner's statements of
-- _merge_apply and _merge_delete, which may name nothing of steep_repl (the owner need not
-- use the schema).
CREATE FUNCTION steep_repl._merge_keys_in(t steep_repl.compare_table, alias text, setting text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
           '(%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset(pg_catalog.current_setting(%L)::pg_catalog.jsonb) AS k(%s))',
           (SELECT pg_catalog.string_agg(pg_catalog.format('%s.%I', alias, c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           setting,
           (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
            FROM ROWS FROM (pg_catalog.unnest(t.key_cols), pg_catalog.unnest(t.key_types)) WITH ORDINALITY x(c, ty, o)));
$$;
COMMENT ON FUNCTION steep_repl._merge_keys_in(steep_repl.compare_table, text, text) IS
  'Internal: the condition that row alias''s key is among the key objects of a setting (a jsonb array), parsed into the key''s types.';

-- The keys of expect ({key text: row hash or null}) whose row on rel is that version now (cur:
-- {key text: row hash} of rel's rows of those keys, read as the owner), as a jsonb array of key
-- objects; present: only those expected present.
CREATE FUNCTION steep_repl._merge_unchanged(expect jsonb, cur jsonb, present boolean) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(pg_catalog.jsonb_agg(e.key::pg_catalog.jsonb ORDER BY e.key), '[]')
  FROM pg_catalog.jsonb_each(expect) e
  WHERE (cur OPERATOR(pg_catalog.->>) e.key)::pg_catalog.int8 IS NOT DISTINCT FROM (e.value OPERATOR(pg_catalog.#>>) '{}')::pg_catalog.int8
    AND (NOT present OR pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=) 'number');
$$;
COMMENT ON FUNCTION steep_repl._merge_unchanged(jsonb, jsonb, boolean) IS
  'Internal: the keys of a merge batch whose rows are still the expected version (present: of those expected present), as key objects.';

-- Upserts rows (as _merge_rows returns them) into rel: INSERT ... ON CONFLICT (primary key) DO
-- UPDATE every other column, identity values kept, generated columns computed. It runs as the
-- table's owner (its defaults, CHECKs and index expressions never run with the definer's rights)
-- with session_replication_role = replica, so user triggers do not fire. A row is written only
-- where rel still holds the version the plan read (expect: {key text: row hash, NULL absent};
-- #13): the plan takes no lock, and a user's update, delete or insert of that key since is a
-- later write, which the write freeze re-checks and keeps. The existing rows of those keys are
-- locked first, so none changes between the check and the write; a key absent then is
-- inserted, and a user's concurrent insert of it is left as is (the ON CONFLICT guard). First
-- every unique constraint other than the primary key is checked: one 23505 lists every
-- collision, and nothing is written. Returns {"written": n, "skipped": [keys not written]}.
CREATE FUNCTION steep_repl._merge_apply(rel regclass, rows jsonb, expect jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica'
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_keys jsonb;
  v_n bigint;
  v_bad text;
  v_cols text;
  v_casts text;
  v_set text;
  v_gen text;
  v_all text;
  v_inc text;
  v_check text;
  v_insert text;
  v_cur jsonb;
  v_written jsonb;
BEGIN
  PERFORM steep_repl._require('rows', rows);
  IF pg_catalog.jsonb_typeof(rows) <> 'array'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(rows) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
    RAISE EXCEPTION 'rows must be a JSON array of row objects, got %', pg_catalog.left(rows::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_keys := steep_repl._merge_expect_keys(expect);
  v_n := pg_catalog.jsonb_array_length(rows);
  IF v_n = 0 AND pg_catalog.jsonb_array_length(v_keys) = 0 THEN
    RETURN '{"written": 0, "skipped": []}';
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ') INTO v_bad FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped AND a.attname::text <> ALL (v_t.key_cols);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'column % of % is GENERATED ALWAYS AS IDENTITY outside the primary key: a merge cannot update it', v_bad, rel
      USING ERRCODE = 'feature_not_supported',
            HINT = 'ALTER TABLE ... ALTER COLUMN ... SET GENERATED BY DEFAULT on both nodes for the merge, or leave the table out.';
  END IF;
  -- Each value through its type's input function, cast to the column's exact type (a type name
  -- without its typmod is not always unconstrained: character means character(1)).
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('(e.value OPERATOR(pg_catalog.->>) %L)::%s AS %I', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attname),
                               ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('%1$I = EXCLUDED.%1$I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname::text <> ALL (v_t.key_cols))
    INTO v_cols, v_casts, v_set
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  SELECT pg_catalog.string_agg(pg_catalog.format(', (%s) AS %I', pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attname), '' ORDER BY a.attnum)
    INTO v_gen
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '';
  -- The rows and versions reach the owner's statements through settings of this call (reset
  -- when it returns), not as literals nested in three levels of quoting.
  PERFORM pg_catalog.set_config('steep_repl_merge.rows', rows::text, true);
  PERFORM pg_catalog.set_config('steep_repl_merge.expect', expect::text, true);
  -- The rows of those keys locked, then read: none changes before this transaction ends, so the
  -- ones still as the plan read them are written (kept), the others left; a key still absent is
  -- inserted, but not over a user's concurrent insert of it (the guard: present keys only).
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('SELECT 1 FROM %s r%s FOR UPDATE', rel, steep_repl._compare_keys_filter(v_t, v_keys)));
  EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(y.k, y.h), ''{}'') FROM (%s) y', steep_repl._compare_owned_sql(v_t, v_keys))
    INTO v_cur;
  PERFORM pg_catalog.set_config('steep_repl_merge.kept', steep_repl._merge_unchanged(expect, v_cur, false)::text, true);
  PERFORM pg_catalog.set_config('steep_repl_merge.present', steep_repl._merge_unchanged(expect, v_cur, true)::text, true);
  v_all := pg_catalog.format('SELECT %s FROM pg_catalog.jsonb_array_elements(pg_catalog.current_setting(''steep_repl_merge.rows'')::pg_catalog.jsonb) e',
                             v_casts);
  v_inc := pg_catalog.format('SELECT r.* FROM (%s) r WHERE %s', v_all, steep_repl._merge_keys_in(v_t, 'r', 'steep_repl_merge.kept'));
  v_check := steep_repl._merge_collisions_sql(v_t);
  v_insert := pg_catalog.format('INSERT INTO %s AS t (%s) %s SELECT * FROM (%s) i ON CONFLICT (%s) DO %s',
    rel, v_cols,
    CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped)
         THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END,
    v_inc, (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(v_t.key_cols) c),
    coalesce('UPDATE SET ' || v_set || ' WHERE ' || steep_repl._merge_keys_in(v_t, 'EXCLUDED', 'steep_repl_merge.present'), 'NOTHING'));
  -- One block run as the owner: the check sees the rows as the owner does, and
  -- its error (or the insert's) reaches the caller with nothing written.
  IF v_check IS NOT NULL THEN
    v_check := 'WITH inc AS MATERIALIZED (SELECT i.*' || coalesce(v_gen, '') || ' FROM (' || v_inc || ') i) ' || v_check;
  END IF;
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DO %L', pg_catalog.format($do$
DECLARE
  v_count bigint;
  v_detail text;
BEGIN
  EXECUTE %2$L INTO v_count;
  IF v_count > 0 THEN
    RAISE EXCEPTION '%% row(s) to merge into %% have no expected version', v_count, %3$L USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF %4$s THEN
    EXECUTE %5$L INTO v_count, v_detail;
    IF v_count > 0 THEN
      RAISE EXCEPTION '%% row(s) to merge into %% collide with unique constraints', v_count, %3$L
        USING ERRCODE = 'unique_violation', DETAIL = v_detail,
              HINT = 'Each listed row would repeat a value another row of the table holds: change or delete one of the two on either node (or leave the table out), then merge again.';
    END IF;
  END IF;
  EXECUTE %6$L;
END
$do$,
    NULL, pg_catalog.format('SELECT pg_catalog.count(*) FROM (%s) r WHERE NOT pg_catalog.current_setting(''steep_repl_merge.expect'')::pg_catalog.jsonb OPERATOR(pg_catalog.?) %s',
                      v_all, steep_repl._compare_key_expr(v_t)),
    rel::text, (v_check IS NOT NULL)::text, v_check, v_insert)));
  -- What was written is what this transaction wrote (the owner's block cannot hand a result
  -- back: its settings end with it); the rows of the other keys are locked until it ends.
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_agg(%s), ''[]'') FROM %s r%s AND r.xmin OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.xid',
    steep_repl._compare_key_expr(v_t), rel, steep_repl._compare_keys_filter(v_t, v_keys)), 'v pg_catalog.jsonb')
    INTO v_written;
  RETURN pg_catalog.jsonb_build_object('written', pg_catalog.jsonb_array_length(v_written),
    'skipped', (SELECT coalesce(pg_catalog.jsonb_agg(k ORDER BY k), '[]') FROM pg_catalog.jsonb_object_keys(expect) k
                WHERE NOT v_written OPERATOR(pg_catalog.?) k));
END
$$;
COMMENT ON FUNCTION steep_repl._merge_apply(regclass, jsonb, jsonb) IS
  'Sidecar: upserts rows (as _merge_rows returns them) into rel by primary key, as its owner, with user triggers off, each only where rel still holds the version expect names ({key text: row hash or null}); 23505 listing every row that collides with a unique constraint other than the primary key (with all of them), nothing written. Returns {"written": n, "skipped": [keys left as a user changed them]}.';

-- Deletes the rows of rel whose keys expect names ({key text: row hash}, as _merge_apply's):
-- rows the other node deleted while the merge ran (the write freeze decides which,
-- sql/75_merge_init.sql), each only if it is still the version the plan read (a user's update
-- since is a later write, kept). As the table's owner, with session_replication_role = replica
-- like _merge_apply, so neither user triggers nor foreign-key actions fire: the other node's
-- delete already did what its own triggers and cascades do, and each row it removed there is
-- deleted here by its own key. Returns {"deleted": n, "skipped": [keys whose rows changed]}.
CREATE FUNCTION steep_repl._merge_delete(rel regclass, expect jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica'
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_keys jsonb := steep_repl._merge_expect_keys(expect);
  v_cur jsonb;
  v_del jsonb;
BEGIN
  IF pg_catalog.jsonb_array_length(v_keys) = 0 THEN
    RETURN '{"deleted": 0, "skipped": []}';
  END IF;
  -- Locked, then read (the owner's block cannot hand a result back: its settings end with it):
  -- nothing changes in between, so the rows still as the plan read them are deleted, by key.
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('SELECT 1 FROM %s r%s FOR UPDATE', rel, steep_repl._compare_keys_filter(v_t, v_keys)));
  EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(y.k, y.h), ''{}'') FROM (%s) y', steep_repl._compare_owned_sql(v_t, v_keys))
    INTO v_cur;
  v_del := steep_repl._merge_unchanged(expect, v_cur, true);
  IF pg_catalog.jsonb_array_length(v_del) > 0 THEN
    -- The keys reach the owner's statement through a setting of this call, as _merge_apply's rows.
    PERFORM pg_catalog.set_config('steep_repl_merge.keys', v_del::text, true);
    PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DELETE FROM %s r WHERE %s', rel,
      steep_repl._merge_keys_in(v_t, 'r', 'steep_repl_merge.keys')));
  END IF;
  -- Left: the rows there that are not the expected version (a user wrote them since).
  RETURN pg_catalog.jsonb_build_object('deleted', pg_catalog.jsonb_array_length(v_del),
    'skipped', (SELECT coalesce(pg_catalog.jsonb_agg(c.key ORDER BY c.key), '[]') FROM pg_catalog.jsonb_object_keys(v_cur) c(key)
                WHERE NOT v_del OPERATOR(pg_catalog.@>) pg_catalog.jsonb_build_array(c.key::pg_catalog.jsonb)));
END
$$;
COMMENT ON FUNCTION steep_repl._merge_delete(regclass, jsonb) IS
  'Sidecar: deletes the rows of rel whose keys expect names ({key text: row hash}: rows the other node deleted while the merge ran), each only if it is still that version, as its owner, with user triggers and foreign-key actions off; returns {"deleted": n, "skipped": [keys of rows changed since]}.';
REVOKE ALL ON FUNCTION steep_repl._merge_expect_keys(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._merge_keys_in(steep_repl.compare_table, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._merge_unchanged(jsonb, jsonb, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._merge_apply(regclass, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION steep_repl._merge_delete(regclass, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl._merge_apply(regclass, jsonb, jsonb), steep_repl._merge_delete(regclass, jsonb) TO steep_repl_sidecar;
CREATE OR REPLACE FUNCTION steep_repl._merge_check_peer(peer text, conn text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.cardinality(steep_repl._merge_peer_texts(conn,
       'SELECT ''ok'' WHERE pg_catalog.to_regprocedure(''steep_repl._merge_apply(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.jsonb)'') IS NOT NULL
                        AND pg_catalog.to_regprocedure(''steep_repl._merge_rows(pg_catalog.regclass, pg_catalog.jsonb)'') IS NOT NULL')) = 0 THEN
    RAISE EXCEPTION 'node % cannot take part in a merge: its steep_repl has no merge functions', peer
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('ALTER EXTENSION steep_repl UPDATE on node %s.', peer);
  END IF;
END
$$;

-- _merge_plan and _merge_plan_keys start with one _merge_plan_start (peer, as_role, options, READ COMMITTED, tables) instead of two copies.
CREATE FUNCTION steep_repl._merge_plan_start(peer text, options jsonb, as_role regrole, OUT opts jsonb, OUT names text[])
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._require('peer', peer);
  PERFORM steep_repl._require('as_role', as_role);
  opts := steep_repl._merge_options(options);
  IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a merge plan reads the current rows of both nodes' USING ERRCODE = 'invalid_transaction_state',
      HINT = 'Run it outside a REPEATABLE READ or SERIALIZABLE transaction.';
  END IF;
  IF opts->'tables' <> 'null' THEN
    names := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(opts->'tables'));
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_plan_start(text, jsonb, regrole) IS
  'Internal: the checks every merge plan starts with (peer, as_role, options, READ COMMITTED); the options with their defaults and the tables they name.';
REVOKE ALL ON FUNCTION steep_repl._merge_plan_start(text, jsonb, regrole) FROM PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl._merge_plan(peer text, options jsonb, as_role regrole)
RETURNS TABLE (apply_order integer, schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
               local_hash bigint, peer_hash bigint, local_committed_at timestamptz, peer_committed_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_opts jsonb;
  v_names text[];
  v_conn text;
  v_scope steep_repl.compare_table[];
  v_order jsonb;
  v_t steep_repl.compare_table;
BEGIN
  SELECT x.opts, x.names INTO v_opts, v_names FROM steep_repl._merge_plan_start(peer, options, as_role) x;
  v_conn := steep_repl._compare_conninfo(peer, (v_opts->>'statement_timeout')::integer);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);
  PERFORM steep_repl._merge_check_peer(peer, v_conn);
  PERFORM steep_repl._merge_check_keys(peer, v_conn, v_names);
  v_scope := ARRAY(SELECT s FROM steep_repl._compare_scope(v_names, as_role) s);
  PERFORM steep_repl._merge_check_fingerprints(peer, v_scope, v_names IS NULL);
  PERFORM steep_repl._merge_check_triggers(peer, v_conn, v_scope);
  IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_scope) s
             WHERE coalesce(v_opts->'table_strategies'->>(s.schema_name || '.' || s.table_name), v_opts->>'strategy') = 'last-modified') THEN
    PERFORM steep_repl._merge_check_commit_ts(peer, v_conn);
  END IF;
  PERFORM steep_repl._merge_check_long_xacts(peer, v_conn, v_scope, (v_opts->>'long_transaction')::integer);
  v_order := steep_repl._merge_fk_order(v_scope);

  FOR v_t IN SELECT s.* FROM pg_catalog.unnest(v_scope) s ORDER BY (v_order->>(s.schema_name || '.' || s.table_name))::integer LOOP
    RETURN QUERY SELECT * FROM steep_repl._merge_plan_table(v_conn, v_t, (v_order->>(v_t.schema_name || '.' || v_t.table_name))::integer,
      coalesce(v_opts->'table_strategies'->>(v_t.schema_name || '.' || v_t.table_name), v_opts->>'strategy'), NULL);
  END LOOP;
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._merge_plan_keys(peer text, options jsonb, as_role regrole, keys jsonb)
RETURNS TABLE (apply_order integer, schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
               local_hash bigint, peer_hash bigint, local_committed_at timestamptz, peer_committed_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_opts jsonb;
  v_names text[];
  v_scope steep_repl.compare_table[];
  v_order jsonb;
  v_t steep_repl.compare_table;
  v_keys jsonb;
  v_bad text;
  v_link text;
BEGIN
  SELECT x.opts, x.names INTO v_opts, v_names FROM steep_repl._merge_plan_start(peer, options, as_role) x;
  PERFORM steep_repl._require('keys', keys);
  IF pg_catalog.jsonb_typeof(keys) <> 'object'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(keys) e WHERE pg_catalog.jsonb_typeof(e.value) NOT IN ('array', 'null')) THEN
    RAISE EXCEPTION 'keys must be an object of table name to an array of key objects or null, got %', pg_catalog.left(keys::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_scope := ARRAY(SELECT s FROM steep_repl._compare_scope(v_names, as_role) s);
  SELECT pg_catalog.string_agg(k, ', ' ORDER BY k) INTO v_bad FROM pg_catalog.jsonb_object_keys(keys) k
  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_scope) s WHERE s.schema_name || '.' || s.table_name = k);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'keys names tables not in the merge: %', v_bad USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_order := steep_repl._merge_fk_order(v_scope);
  -- Every table's definition, changed rows or not: a DDL writes no change the capture sees.
  PERFORM steep_repl._merge_check_fingerprints(peer, v_scope, false);
  v_scope := ARRAY(SELECT s FROM pg_catalog.unnest(v_scope) s WHERE keys ? (s.schema_name || '.' || s.table_name));
  IF pg_catalog.cardinality(v_scope) = 0 THEN
    RETURN;
  END IF;
  v_link := steep_repl._compare_link('steep_repl_merge_recheck', steep_repl._compare_conninfo(peer, (v_opts->>'statement_timeout')::integer));
  FOR v_t IN SELECT s.* FROM pg_catalog.unnest(v_scope) s ORDER BY (v_order->>(s.schema_name || '.' || s.table_name))::integer LOOP
    v_keys := keys->(v_t.schema_name || '.' || v_t.table_name);
    IF pg_catalog.jsonb_typeof(v_keys) = 'null' OR EXISTS (
         SELECT 1 FROM pg_catalog.unnest(v_t.key_types) ty JOIN pg_catalog.pg_type y ON y.oid = ty::pg_catalog.regtype
         LEFT JOIN pg_catalog.pg_type b ON b.oid = y.typbasetype
         WHERE coalesce(b.typtype, y.typtype) NOT IN ('b', 'e') OR coalesce(b.typcategory, y.typcategory) = 'A'
            OR coalesce(b.oid, y.oid) IN ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype)) THEN
      v_keys := NULL;
    ELSIF pg_catalog.jsonb_array_length(v_keys) = 0 THEN
      CONTINUE;
    END IF;
    RETURN QUERY SELECT * FROM steep_repl._merge_plan_table(v_link, v_t, (v_order->>(v_t.schema_name || '.' || v_t.table_name))::integer,
      coalesce(v_opts->'table_strategies'->>(v_t.schema_name || '.' || v_t.table_name), v_opts->>'strategy'), v_keys);
  END LOOP;
  PERFORM steep_repl._compare_unlink(v_link);
END
$$;

-- ---- key_hash_chunks (sql/76_overlap_record.sql): the streaming analysis's scan, in C.
CREATE FUNCTION steep_repl.key_hash_chunks(rel regclass) RETURNS SETOF bytea
  LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'steep_repl_key_hash_chunks';
COMMENT ON FUNCTION steep_repl.key_hash_chunks(regclass) IS
  'Every row of rel (a table with a primary key) as its key columns'' send forms and its 8-byte row_hash, packed in chunks of about 64 kB in physical order: what steep-repl analyze-overlap streams from each node. 42501 without SELECT on rel or under row-level security, 55000 without a primary key, 42809 for what is not a table.';
REVOKE ALL ON FUNCTION steep_repl.key_hash_chunks(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl.key_hash_chunks(regclass) TO steep_repl_admin;

-- ---- _written_here (sql/74_merge_apply.sql): what _merge_apply counts as written, savepoints included.
CREATE FUNCTION steep_repl._written_here(x xid) RETURNS boolean
  LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'steep_repl_written_here';
COMMENT ON FUNCTION steep_repl._written_here(xid) IS
  'Internal: whether x is this transaction''s xid or an open subtransaction''s: a row with that xmin was written here.';
REVOKE ALL ON FUNCTION steep_repl._written_here(xid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION steep_repl._written_here(xid) TO PUBLIC;

CREATE OR REPLACE FUNCTION steep_repl._merge_apply(rel regclass, rows jsonb, expect jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica'
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_keys jsonb;
  v_n bigint;
  v_bad text;
  v_cols text;
  v_casts text;
  v_set text;
  v_gen text;
  v_all text;
  v_inc text;
  v_check text;
  v_insert text;
  v_cur jsonb;
  v_written jsonb;
BEGIN
  PERFORM steep_repl._require('rows', rows);
  IF pg_catalog.jsonb_typeof(rows) <> 'array'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(rows) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
    RAISE EXCEPTION 'rows must be a JSON array of row objects, got %', pg_catalog.left(rows::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_keys := steep_repl._merge_expect_keys(expect);
  v_n := pg_catalog.jsonb_array_length(rows);
  IF v_n = 0 AND pg_catalog.jsonb_array_length(v_keys) = 0 THEN
    RETURN '{"written": 0, "skipped": []}';
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ') INTO v_bad FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped AND a.attname::text <> ALL (v_t.key_cols);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'column % of % is GENERATED ALWAYS AS IDENTITY outside the primary key: a merge cannot update it', v_bad, rel
      USING ERRCODE = 'feature_not_supported',
            HINT = 'ALTER TABLE ... ALTER COLUMN ... SET GENERATED BY DEFAULT on both nodes for the merge, or leave the table out.';
  END IF;
  -- Each value through its type's input function, cast to the column's exact type (a type name
  -- without its typmod is not always unconstrained: character means character(1)).
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('(e.value OPERATOR(pg_catalog.->>) %L)::%s AS %I', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attname),
                               ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('%1$I = EXCLUDED.%1$I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname::text <> ALL (v_t.key_cols))
    INTO v_cols, v_casts, v_set
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  SELECT pg_catalog.string_agg(pg_catalog.format(', (%s) AS %I', pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attname), '' ORDER BY a.attnum)
    INTO v_gen
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '';
  -- The rows and versions reach the owner's statements through settings of this call (reset
  -- when it returns), not as literals nested in three levels of quoting.
  PERFORM pg_catalog.set_config('steep_repl_merge.rows', rows::text, true);
  PERFORM pg_catalog.set_config('steep_repl_merge.expect', expect::text, true);
  -- The rows of those keys locked, then read: none changes before this transaction ends, so the
  -- ones still as the plan read them are written (kept), the others left; a key still absent is
  -- inserted, but not over a user's concurrent insert of it (the guard: present keys only).
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('SELECT 1 FROM %s r%s FOR UPDATE', rel, steep_repl._compare_keys_filter(v_t, v_keys)));
  EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(y.k, y.h), ''{}'') FROM (%s) y', steep_repl._compare_owned_sql(v_t, v_keys))
    INTO v_cur;
  PERFORM pg_catalog.set_config('steep_repl_merge.kept', steep_repl._merge_unchanged(expect, v_cur, false)::text, true);
  PERFORM pg_catalog.set_config('steep_repl_merge.present', steep_repl._merge_unchanged(expect, v_cur, true)::text, true);
  v_all := pg_catalog.format('SELECT %s FROM pg_catalog.jsonb_array_elements(pg_catalog.current_setting(''steep_repl_merge.rows'')::pg_catalog.jsonb) e',
                             v_casts);
  v_inc := pg_catalog.format('SELECT r.* FROM (%s) r WHERE %s', v_all, steep_repl._merge_keys_in(v_t, 'r', 'steep_repl_merge.kept'));
  v_check := steep_repl._merge_collisions_sql(v_t);
  v_insert := pg_catalog.format('INSERT INTO %s AS t (%s) %s SELECT * FROM (%s) i ON CONFLICT (%s) DO %s',
    rel, v_cols,
    CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped)
         THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END,
    v_inc, (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(v_t.key_cols) c),
    coalesce('UPDATE SET ' || v_set || ' WHERE ' || steep_repl._merge_keys_in(v_t, 'EXCLUDED', 'steep_repl_merge.present'), 'NOTHING'));
  -- One block run as the owner: the check sees the rows as the owner does, and
  -- its error (or the insert's) reaches the caller with nothing written.
  IF v_check IS NOT NULL THEN
    v_check := 'WITH inc AS MATERIALIZED (SELECT i.*' || coalesce(v_gen, '') || ' FROM (' || v_inc || ') i) ' || v_check;
  END IF;
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DO %L', pg_catalog.format($do$
DECLARE
  v_count bigint;
  v_detail text;
BEGIN
  EXECUTE %2$L INTO v_count;
  IF v_count > 0 THEN
    RAISE EXCEPTION '%% row(s) to merge into %% have no expected version', v_count, %3$L USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF %4$s THEN
    EXECUTE %5$L INTO v_count, v_detail;
    IF v_count > 0 THEN
      RAISE EXCEPTION '%% row(s) to merge into %% collide with unique constraints', v_count, %3$L
        USING ERRCODE = 'unique_violation', DETAIL = v_detail,
              HINT = 'Each listed row would repeat a value another row of the table holds: change or delete one of the two on either node (or leave the table out), then merge again.';
    END IF;
  END IF;
  EXECUTE %6$L;
END
$do$,
    NULL, pg_catalog.format('SELECT pg_catalog.count(*) FROM (%s) r WHERE NOT (SELECT pg_catalog.current_setting(''steep_repl_merge.expect'')::pg_catalog.jsonb) OPERATOR(pg_catalog.?) %s',
                      v_all, steep_repl._compare_key_expr(v_t)),
    rel::text, (v_check IS NOT NULL)::text, v_check, v_insert)));
  -- What was written is what this transaction wrote (the owner's block cannot hand a result
  -- back: its settings end with it); the rows of the other keys are locked until it ends.
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_agg(%s), ''[]'') FROM %s r%s AND steep_repl._written_here(r.xmin)',
    steep_repl._compare_key_expr(v_t), rel, steep_repl._compare_keys_filter(v_t, v_keys)), 'v pg_catalog.jsonb')
    INTO v_written;
  RETURN pg_catalog.jsonb_build_object('written', pg_catalog.jsonb_array_length(v_written),
    'skipped', (SELECT coalesce(pg_catalog.jsonb_agg(k ORDER BY k), '[]') FROM pg_catalog.jsonb_object_keys(expect) k
                WHERE k NOT IN (SELECT pg_catalog.jsonb_array_elements_text(v_written))));
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._merge_delete(rel regclass, expect jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica'
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_keys jsonb := steep_repl._merge_expect_keys(expect);
  v_cur jsonb;
  v_del jsonb;
BEGIN
  IF pg_catalog.jsonb_array_length(v_keys) = 0 THEN
    RETURN '{"deleted": 0, "skipped": []}';
  END IF;
  -- Locked, then read (the owner's block cannot hand a result back: its settings end with it):
  -- nothing changes in between, so the rows still as the plan read them are deleted, by key.
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('SELECT 1 FROM %s r%s FOR UPDATE', rel, steep_repl._compare_keys_filter(v_t, v_keys)));
  EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(y.k, y.h), ''{}'') FROM (%s) y', steep_repl._compare_owned_sql(v_t, v_keys))
    INTO v_cur;
  v_del := steep_repl._merge_unchanged(expect, v_cur, true);
  IF pg_catalog.jsonb_array_length(v_del) > 0 THEN
    -- The keys reach the owner's statement through a setting of this call, as _merge_apply's rows.
    PERFORM pg_catalog.set_config('steep_repl_merge.keys', v_del::text, true);
    PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DELETE FROM %s r WHERE %s', rel,
      steep_repl._merge_keys_in(v_t, 'r', 'steep_repl_merge.keys')));
  END IF;
  -- Left: the rows there that are not the expected version (a user wrote them since).
  RETURN pg_catalog.jsonb_build_object('deleted', pg_catalog.jsonb_array_length(v_del),
    'skipped', (SELECT coalesce(pg_catalog.jsonb_agg(c.key ORDER BY c.key), '[]') FROM pg_catalog.jsonb_object_keys(v_cur) c(key)
                WHERE c.key::pg_catalog.jsonb NOT IN (SELECT pg_catalog.jsonb_array_elements(v_del))));
END
$$;
