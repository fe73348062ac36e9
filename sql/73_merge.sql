-- Bidirectional merge (issue #13), the SQL half: what a merge of this node (the target) with a peer
-- (the source) would move, by primary key and row_hash (sql/71_compare.sql), checked before anything
-- is read (the plan itself: sql/73b_merge_plan.sql). The sidecar's init.merge job moves the rows
-- (sql/74_merge_apply.sql); merge_plan() is the DBA's dry run. A merge is a union of the rows the
-- nodes hold when it begins; a row deleted on one node while the merge runs (after its baseline,
-- before its write freeze) is deleted on both (sql/75_merge_init.sql, _merge_existed_before).

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
  result       jsonb,
  -- What tells a delete made during the merge from a row one node never had: the init.merge job
  -- (its retried attempts share the first baseline), each node's baseline xid (every transaction
  -- below it had ended before the plan read a row) and the xids of the merge's own passes.
  job_id          bigint,
  baseline_local  xid8,
  baseline_peer   xid8,
  pass_xids_local xid8[] NOT NULL DEFAULT '{}',
  pass_xids_peer  xid8[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE steep_repl.merges IS
  'One row per merge (or dry run) of this node with a peer: who asked, the options, when, how long the write freeze lasted, the outcome; the job, each node''s baseline xid and the xids of its passes (how the write freeze tells a delete made during the merge).';

-- Every row a merge moved or left alone for the DBA: to_local (the peer's version written here),
-- to_peer (this node's written on the peer), manual (a conflict left as it is), delete_local /
-- delete_peer (category deleted_during_merge: deleted on the other node while the merge ran, so
-- deleted here / on the peer too). Category update_delete: changed on one node while the merge
-- ran and deleted on the other; the change wins and is copied (to_local / to_peer).
CREATE TABLE steep_repl.merge_audit_log (
  merge_id           bigint NOT NULL REFERENCES steep_repl.merges,
  schema_name        text,
  table_name         text,
  key                jsonb,
  category           text CHECK (category IN ('conflicting', 'local_only', 'peer_only', 'deleted_during_merge', 'update_delete')),
  resolution         text CHECK (resolution IN ('to_local', 'to_peer', 'manual', 'delete_local', 'delete_peer')),
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
  'The rows of each merge that were not identical on both nodes: category (conflicting, local_only, peer_only; deleted_during_merge, update_delete from the write freeze), resolution (to_local, to_peer, manual, delete_local, delete_peer; tie when last-modified could not tell), both row hashes, both row images where a row changed, both commit timestamps.';
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
       'SELECT ''ok'' WHERE pg_catalog.to_regprocedure(''steep_repl._merge_apply(pg_catalog.regclass, pg_catalog.jsonb, pg_catalog.jsonb)'') IS NOT NULL
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

-- A merge writes a user's table as its owner in a security-restricted operation with user
-- triggers off (session_replication_role = replica); a deferrable constraint trigger enabled
-- ALWAYS or REPLICA still fires there, and PostgreSQL refuses to queue a deferred trigger event
-- inside such an operation. Refused up front, naming each, rather than failing in pass 1.
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

-- The peer's half of _merge_plan's commit timestamps, through dblink: like _compare_hashes, for a
-- role that may read every row of the table, read as its owner, keys printed as on both nodes.
CREATE FUNCTION steep_repl._merge_commit_times(schema_name text, table_name text, keys jsonb)
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
GRANT EXECUTE ON FUNCTION steep_repl._merge_commit_times(text, text, jsonb) TO steep_repl_admin, steep_repl_sidecar;
