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
COMMENT ON FUNCTION steep_repl._compare_scope(text[], regrole) IS
  'Internal: the tables of a comparison (all, or the named ones), refusing unknown ones (42P01), ones without a primary key (55000), ones as_role cannot read in full (42501) and ones whose row-level security is forced on their owner (55000).';

-- A table's key printed as jsonb text (the same on both nodes under the comparison's settings),
-- and the filter to the rows of the given keys (a jsonb array of key objects, each value parsed
-- into its column's type): shared by every keyed read of a comparison or a merge.
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

-- The query that reads key (as jsonb text) and row_hash of a table's rows, run the same on both
-- nodes; with keys (a jsonb array of key objects), of those rows only. Everything qualified:
-- on the peer it runs with search_path = pg_catalog.
CREATE FUNCTION steep_repl._compare_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SELECT %s, steep_repl.row_hash(r.*) FROM %I.%I r', steep_repl._compare_key_expr(t), t.schema_name, t.table_name)
      || CASE WHEN keys IS NULL THEN '' ELSE steep_repl._compare_keys_filter(t, keys) END;
$$;
COMMENT ON FUNCTION steep_repl._compare_sql(steep_repl.compare_table, jsonb) IS
  'Internal: SELECT key, row_hash of a table''s rows (or of the given keys), for both nodes of a comparison.';

-- A read of a user's table run as the table's owner (steep_repl._query_as), with the result's
-- column list: printing a key runs the cast to json of a column whose type the owner made, and
-- parsing keys into the key's type runs its domain's CHECK; neither may run as the definer.
CREATE FUNCTION steep_repl._owned_sql(rel regclass, query text, columns text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SELECT * FROM steep_repl._query_as(%s::pg_catalog.oid::pg_catalog.regrole, %L) AS x(%s)',
    (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = rel)::oid, query, columns);
$$;
COMMENT ON FUNCTION steep_repl._owned_sql(regclass, text, text) IS
  'Internal: SELECT * of query (which reads rel) run as rel''s owner in a security-restricted operation, its result columns as given ("k pg_catalog.text, ...").';

CREATE FUNCTION steep_repl._compare_owned_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._owned_sql(t.relid, steep_repl._compare_sql(t, keys), 'k pg_catalog.text, h pg_catalog.int8');
$$;
COMMENT ON FUNCTION steep_repl._compare_owned_sql(steep_repl.compare_table, jsonb) IS
  'Internal: _compare_sql(t, keys) run as the table''s owner in a security-restricted operation.';

-- The peer's half of a comparison: its _compare_hashes, which reads as the table's owner there.
CREATE FUNCTION steep_repl._compare_peer_sql(t steep_repl.compare_table, keys jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('SELECT x.k, x.h FROM steep_repl._compare_hashes(%L, %L, %L::pg_catalog.jsonb) x',
                           t.schema_name, t.table_name, keys::text);
$$;
COMMENT ON FUNCTION steep_repl._compare_peer_sql(steep_repl.compare_table, jsonb) IS
  'Internal: the query a comparison sends its peer: key and row_hash of a table''s rows (of keys only when given) through the peer''s _compare_hashes.';

-- Key and row_hash of one table's rows, for a peer's comparison through dblink: the session's
-- role must be able to read every row of it (as _compare_scope checks), and the rows are read
-- as the table's owner, under the settings keys are printed with on both nodes.
CREATE FUNCTION steep_repl._compare_hashes(schema_name text, table_name text, keys jsonb DEFAULT NULL)
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
COMMENT ON FUNCTION steep_repl._compare_hashes(text, text, jsonb) IS
  'Internal (a peer''s comparison): key and row_hash of a table''s rows (of keys only when given), read as its owner, for a role that may read all of them.';
GRANT EXECUTE ON FUNCTION steep_repl._compare_hashes(text, text, jsonb) TO steep_repl_admin, steep_repl_sidecar;

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

-- One session to the peer for a whole comparison, by name: dblink() takes a connection name
-- where it takes a conninfo, so every read of a verify (its first pass, each settle round and
-- catch-up poll) goes over it instead of opening a session per read. A name left open by an
-- earlier call of this session is closed first.
CREATE FUNCTION steep_repl._compare_link(link text, conn text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._compare_unlink(link);
  EXECUTE pg_catalog.format('SELECT %I.dblink_connect($1, $2)', steep_repl._dblink_schema()) USING link, conn;
  RETURN link;
END
$$;
COMMENT ON FUNCTION steep_repl._compare_link(text, text) IS 'Internal: opens the named dblink session link to a peer (conninfo conn) and returns its name.';

CREATE FUNCTION steep_repl._compare_unlink(link text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format('SELECT %1$I.dblink_disconnect($1) WHERE $1 OPERATOR(pg_catalog.=) ANY (%1$I.dblink_get_connections())',
                            steep_repl._dblink_schema()) USING link;
END
$$;
COMMENT ON FUNCTION steep_repl._compare_unlink(text) IS 'Internal: closes the named dblink session link, if open.';

-- A comparison needs the peer's _compare_hashes too.
CREATE FUNCTION steep_repl._compare_check_peer(peer text, conn text) RETURNS void
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
COMMENT ON FUNCTION steep_repl._compare_check_peer(text, text) IS 'Internal: 22023 for this node itself, 55000 unless the peer has _compare_hashes.';

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
                || steep_repl._compare_peer_sql(t, keys);
END
$$;
COMMENT ON FUNCTION steep_repl._compare_peer_read(text, steep_repl.compare_table, jsonb) IS
  'Internal: key -> row_hash of a table''s rows on the peer (of keys only when given), with the peer''s WAL position after the read''s snapshot.';

CREATE FUNCTION steep_repl._compare_local_read(t steep_repl.compare_table, keys jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
BEGIN
  EXECUTE 'SELECT coalesce(pg_catalog.jsonb_object_agg(k, h), ''{}'') FROM (' || steep_repl._compare_owned_sql(t, keys) || ') x(k, h)' INTO v;
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
    steep_repl._compare_owned_sql(t), steep_repl._dblink_schema());
$$;
COMMENT ON FUNCTION steep_repl._compare_join_sql(steep_repl.compare_table) IS
  'Internal: the full join of a table''s keys and row hashes here and on the peer (through dblink: $1 conninfo, $2 the peer''s query, _compare_peer_sql).';

-- The rows of a table whose hash differs between here and the peer.
CREATE FUNCTION steep_repl._compare_pass(conn text, t steep_repl.compare_table,
  OUT key text, OUT local_hash bigint, OUT peer_hash bigint) RETURNS SETOF record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE 'SELECT j.k, j.lh, j.ph FROM (' || steep_repl._compare_join_sql(t) || ') j WHERE j.lh IS DISTINCT FROM j.ph'
    USING conn, steep_repl._compare_peer_sql(t);
END
$$;
COMMENT ON FUNCTION steep_repl._compare_pass(text, steep_repl.compare_table) IS
  'Internal: the rows of a table whose row_hash differs between here and the peer (NULL: the side lacks the row).';
