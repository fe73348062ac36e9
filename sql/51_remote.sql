-- Reaching another node from SQL, the way its subscription will: its registered conninfo,
-- through dblink (whatever schema dblink was installed in).

CREATE FUNCTION steep_repl._dblink_schema() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  SELECT n.nspname INTO v FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname = 'dblink';
  IF v IS NULL THEN
    RAISE EXCEPTION 'the dblink extension is not installed'
      USING ERRCODE = 'undefined_object', HINT = 'CREATE EXTENSION dblink (steep_repl requires it).';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._dblink_schema() IS 'Internal: schema holding dblink.';

-- A node's conninfo for a dblink session: pinned and bounded. libpq keeps the last value of a
-- keyword, so the settings appended here win over the registered ones: search_path = pg_catalog
-- (no object of the peer's users is picked by name), a statement timeout, TCP keepalives, and a
-- connect timeout unless the DBA set one (a dead peer costs seconds, not minutes).
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

-- The pins of every peer session but a comparison's: search_path and a 60 s statement timeout.
CREATE FUNCTION steep_repl._conninfo(node text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._conninfo_with(node, '-csearch_path=pg_catalog -cstatement_timeout=60000');
$$;
COMMENT ON FUNCTION steep_repl._conninfo(text) IS
  'Internal: a node''s conninfo for dblink, with search_path = pg_catalog, statement_timeout 60 s, keepalives and (when absent) connect_timeout=5 forced.';

-- Which relations are user tables (every comparison, init and snapshot means these), as the
-- FROM and WHERE of a query over c (pg_class) and n (pg_namespace), run here or on a peer.
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

-- The user tables of "this" database with what an init needs to know about each; run locally
-- and, through dblink, on the source, so both sides are described by the same query. Every
-- operator, type and function is qualified with pg_catalog: a peer session's search_path cannot
-- make it pick an object a user of the peer defined.
CREATE FUNCTION steep_repl._table_catalog_sql() RETURNS text
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
COMMENT ON FUNCTION steep_repl._table_catalog_sql() IS
  'Internal: the query describing user tables (schema, name, oid, bytes, row estimate, has replica identity, columns).';

CREATE TYPE steep_repl.table_info AS (
  schema_name text, table_name text, relid bigint, bytes bigint, row_estimate bigint,
  has_identity boolean, columns text);
COMMENT ON TYPE steep_repl.table_info IS 'Internal: one row of steep_repl._table_catalog_sql().';

CREATE FUNCTION steep_repl._local_tables() RETURNS SETOF steep_repl.table_info
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE steep_repl._table_catalog_sql();
END
$$;
COMMENT ON FUNCTION steep_repl._local_tables() IS 'Internal: user tables of this database.';

-- The user tables' names only: no sizes or columns, for lookups of one or a few tables by name
-- (each peer read of a comparison makes one).
CREATE FUNCTION steep_repl._user_tables() RETURNS TABLE (relid oid, schema_name text, table_name text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE 'SELECT c.oid, n.nspname::pg_catalog.text, c.relname::pg_catalog.text ' || steep_repl._user_tables_from_sql();
END
$$;
COMMENT ON FUNCTION steep_repl._user_tables() IS 'Internal: oid, schema and name of the user tables of this database.';

CREATE FUNCTION steep_repl._remote_tables(node text) RETURNS SETOF steep_repl.table_info
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE pg_catalog.format(
    'SELECT * FROM %I.dblink($1, $2) AS t(schema_name text, table_name text, relid bigint, bytes bigint,
       row_estimate bigint, has_identity boolean, columns text)', steep_repl._dblink_schema())
    USING steep_repl._conninfo(node), steep_repl._table_catalog_sql();
END
$$;
COMMENT ON FUNCTION steep_repl._remote_tables(text) IS 'Internal: user tables of a registered node, read through dblink.';

-- NULL when the node answers, else the connection error.
CREATE FUNCTION steep_repl._probe(node text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v int;
  v_detail text;
BEGIN
  EXECUTE pg_catalog.format('SELECT x FROM %I.dblink($1, ''SELECT 1'') AS t(x int)', steep_repl._dblink_schema())
    INTO v USING steep_repl._conninfo(node);
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  -- dblink puts libpq's own words (refused, timeout, auth) in the detail.
  GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
  RETURN pg_catalog.rtrim(SQLERRM || coalesce(': ' || NULLIF(v_detail, ''), ''), E'\n');
END
$$;
COMMENT ON FUNCTION steep_repl._probe(text) IS 'Internal: NULL if the node answers SELECT 1, else the error text.';

-- 08001 with libpq's reason when a node does not answer.
CREATE FUNCTION steep_repl._require_reachable(node text, role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_err text := steep_repl._probe(node);
BEGIN
  IF v_err IS NOT NULL THEN
    RAISE EXCEPTION '% node "%" is not reachable: %', role, node, v_err
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check the node is up and that its registered conninfo works from this server.';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._require_reachable(text, text) IS 'Internal: 08001 unless the node answers (role names it in the message, e.g. source).';
