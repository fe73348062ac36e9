-- The merge's plan (issue #13): per table, the rows not identical on both nodes with their
-- category and resolution (_merge_plan_table), for the whole scope after the pre-flight
-- (_merge_plan, merge_plan) or for the keys changed since, under the write freeze
-- (_merge_plan_keys). The checks and options they use are in sql/73_merge.sql.

-- One table of a merge's plan: every row not identical on both nodes, with its category and
-- resolution under strategy. keys NULL: every row (one pass of keys and row hashes); keys (a
-- jsonb array of key objects): those rows only, read as the owner on each node (the write
-- freeze's re-check of what changed since the first plan). conn is a conninfo or a dblink name.
CREATE FUNCTION steep_repl._merge_plan_table(conn text, t steep_repl.compare_table, pos integer, strategy text, keys jsonb)
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

-- What every plan of a merge starts with: peer and as_role given, the options checked (with
-- their defaults), READ COMMITTED (a plan reads the current rows), and the tables named in them.
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

-- The merge's plan on behalf of as_role: the pre-flight, then one pass of keys and row hashes per
-- table, every row not identical on both nodes with its category and resolution. Reads only, with
-- a snapshot of its own per statement (READ COMMITTED).
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
COMMENT ON FUNCTION steep_repl._merge_plan(text, jsonb, regrole) IS
  'Internal: the pre-flight and plan of a merge with peer (the source) on behalf of as_role: every row not identical on both nodes, with apply_order (foreign-key order), category, resolution, tie, both hashes and (last-modified) both commit timestamps.';

-- The write freeze's re-check: the plan again, of what changed since the first plan only. keys is
-- {"schema.table": [key objects] | null}: a table not named did not change and is not read; an
-- array re-reads those keys (their values are text, parsed into the key's types as the owner);
-- null re-reads the table whole, as does a key with a column the keys cannot name exactly (json,
-- jsonb, an array, a composite). The first plan made the pre-flight; only the definitions of the
-- tables in scope are checked again (a DDL between the plans). One session to the peer for the
-- re-check.
CREATE FUNCTION steep_repl._merge_plan_keys(peer text, options jsonb, as_role regrole, keys jsonb)
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
COMMENT ON FUNCTION steep_repl._merge_plan_keys(text, jsonb, regrole, jsonb) IS
  'Internal (the write freeze): the plan of a merge with peer on behalf of as_role, of the given tables only, each of the given keys only (or whole, null): category, resolution, tie, both hashes and commit timestamps, as _merge_plan.';

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
