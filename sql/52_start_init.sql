-- start_init(): validate everything, create nothing until all checks pass, then queue the
-- sidecar's init.start job. Called on the target node.

-- The tables/schemas scope options, shared by start_init and the snapshot functions.
CREATE FUNCTION steep_repl._check_scope_options(options jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- A JSON null means everything, as an absent key does.
  IF pg_catalog.jsonb_typeof(options->'tables') <> 'null' AND (pg_catalog.jsonb_typeof(options->'tables') <> 'array' OR EXISTS (
       SELECT 1 FROM pg_catalog.jsonb_array_elements(options->'tables') x WHERE pg_catalog.jsonb_typeof(x) <> 'string')) THEN
    RAISE EXCEPTION 'tables must be a JSON array of "schema.table" names' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Names as stored, without quotes: ["public.orders", "My Schema.Odd Table"]; a bare name means schema public.';
  END IF;
  IF pg_catalog.jsonb_typeof(options->'schemas') <> 'null' AND (pg_catalog.jsonb_typeof(options->'schemas') <> 'array' OR EXISTS (
       SELECT 1 FROM pg_catalog.jsonb_array_elements(options->'schemas') x WHERE pg_catalog.jsonb_typeof(x) <> 'string')) THEN
    RAISE EXCEPTION 'schemas must be a JSON array of schema names' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Names as stored, without quotes: ["public", "My Schema"].';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._check_scope_options(jsonb) IS 'Internal: 22023 unless the tables/schemas options are absent, JSON null or arrays of names.';

CREATE FUNCTION steep_repl._init_options(options jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION steep_repl._init_options(jsonb) IS 'Internal: validates start_init options and fills in the defaults.';

-- Does a table fall within the init's scope?
CREATE FUNCTION steep_repl._in_scope(opts jsonb, schema_name text, table_name text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT (pg_catalog.jsonb_typeof(opts->'tables') IS DISTINCT FROM 'array'
          OR (opts->'tables') ? (schema_name || '.' || table_name)
          OR (schema_name = 'public' AND (opts->'tables') ? table_name))
     AND (pg_catalog.jsonb_typeof(opts->'schemas') IS DISTINCT FROM 'array' OR (opts->'schemas') ? schema_name);
$$;
COMMENT ON FUNCTION steep_repl._in_scope(jsonb, text, text) IS 'Internal: whether schema.table is within the tables/schemas options.';

CREATE FUNCTION steep_repl.start_init(target text, source text, method text DEFAULT 'snapshot',
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
COMMENT ON FUNCTION steep_repl.start_init(text, text, text, jsonb) IS
  'Starts initializing the local node target from source: method snapshot (copy_data = true subscription), fast (parallel block-range COPY inside the slot''s exported snapshot, indexes after the load, then a subscription from the slot), two_phase, or merge (both nodes hold data: union with conflict resolution, then subscriptions both ways; job init.merge). Validates first (22023, 42704, 55000, 08001, 42P16, 42P01), creates nothing on error. Returns the init.start (init.fast) job id; watch steep_repl.init_progress.';

CREATE FUNCTION steep_repl._has_rows(qualified_table text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v boolean;
BEGIN
  -- qualified_table is already quoted (format('%I.%I')).
  EXECUTE 'SELECT EXISTS (SELECT 1 FROM ' || qualified_table || ')' INTO v;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._has_rows(text) IS 'Internal: whether an already-quoted schema.table holds a row.';
