-- The snapshot API: each call validates, records, and queues a job for the sidecar on this
-- node's host (which does the file I/O); the CLI calls the same functions.

-- max_rate: 0 (no cap) or at least 1000 bytes/s per worker; a trickle would hold its snapshot,
-- slot and worker for days.
CREATE FUNCTION steep_repl._max_rate_option(options jsonb) RETURNS bigint
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
COMMENT ON FUNCTION steep_repl._max_rate_option(jsonb) IS 'Internal: the max_rate option of snapshots (0, or 1000 bytes/s to 1 TiB/s), or 22023.';

CREATE FUNCTION steep_repl._snapshot_generate_options(options jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION steep_repl._snapshot_generate_options(jsonb) IS 'Internal: validates generate_snapshot options and fills in the defaults.';

CREATE FUNCTION steep_repl.generate_snapshot(path text, options jsonb DEFAULT '{}') RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_path text;
  v_opts jsonb;
  v_node text;
  v_id text;
  v_job bigint;
  v_bad text;
BEGIN
  PERFORM steep_repl._require('path', path);
  PERFORM steep_repl._require('options', options);
  v_path := steep_repl._snapshot_path(path);
  v_opts := steep_repl._snapshot_generate_options(options);
  v_node := steep_repl._local_node();
  IF EXISTS (SELECT 1 FROM steep_repl.snapshots s JOIN steep_repl.jobs j ON j.id = s.job_id
             WHERE s.path = v_path AND s.state IN ('queued', 'generating') AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'a snapshot is already being generated into %', v_path
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.list_snapshots()) or pick another directory.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl._snapshot_scope(v_opts)) THEN
    RAISE EXCEPTION 'nothing to snapshot: no user tables in scope' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Check the tables and schemas options.';
  END IF;
  IF (v_opts->>'subscribable')::boolean THEN
    SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ') INTO v_bad
    FROM steep_repl._local_tables() t
    WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name) AND NOT t.has_identity;
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'tables without a primary key or replica identity: %', v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'A subscribable snapshot publishes its tables, and UPDATE/DELETE of a published table without one fails: add a primary key or REPLICA IDENTITY FULL, leave them out with the tables option, or generate with {"subscribable": false}.';
    END IF;
  END IF;
  v_id := 'snap_' || pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS') || '_'
          || pg_catalog.substr(pg_catalog.md5(pg_catalog.random()::text || pg_catalog.clock_timestamp()::text), 1, 6);
  INSERT INTO steep_repl.snapshots (id, path, options, compression, parallel, source_node, publication, slot_name, slot_expiry)
  VALUES (v_id, v_path, v_opts, v_opts->>'compression', (v_opts->>'parallel')::int, v_node,
          'sr_pub_' || v_id, 'sr_' || v_id, pg_catalog.make_interval(secs => (v_opts->>'slot_expiry')::float8));
  v_job := steep_repl.enqueue_job('snapshot.generate', pg_catalog.jsonb_build_object('snapshot_id', v_id), v_node, 3);
  UPDATE steep_repl.snapshots s SET job_id = v_job WHERE s.id = v_id;
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (v_node, 'snapshot.requested', pg_catalog.jsonb_build_object('snapshot_id', v_id, 'path', v_path, 'job', v_job));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION steep_repl.generate_snapshot(text, jsonb) IS
  'Queues the generation of a snapshot of this node into directory path (on this node''s host) and returns its id. Options: compression (zstd|lz4|gzip|none), parallel (1-16), tables, schemas, slot_expiry (seconds), subscribable, max_rate (bytes/s per worker). Watch steep_repl.snapshot_progress.';

CREATE FUNCTION steep_repl._snapshot_apply_options(options jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION steep_repl._snapshot_apply_options(jsonb) IS 'Internal: validates apply_snapshot options and fills in the defaults.';

-- Records an apply (and, when it subscribes, starts the node's init) and queues its job.
CREATE FUNCTION steep_repl._snapshot_queue_apply(path text, opts jsonb, kind text, args jsonb) RETURNS bigint
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
COMMENT ON FUNCTION steep_repl._snapshot_queue_apply(text, jsonb, text, jsonb) IS 'Internal: records an apply and queues its job; returns the job id.';

CREATE FUNCTION steep_repl.apply_snapshot(path text, options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._require('path', path);
  PERFORM steep_repl._require('options', options);
  RETURN steep_repl._snapshot_queue_apply(steep_repl._snapshot_path(path), steep_repl._snapshot_apply_options(options),
                                          'snapshot.apply', '{}');
END
$$;
COMMENT ON FUNCTION steep_repl.apply_snapshot(text, jsonb) IS
  'Queues loading the snapshot in directory path (on this node''s host) into this node and returns the job id (the snapshot id is in the manifest, which only the sidecar reads). Options: parallel (1-16), subscribe, error_tolerance (rows per table, PostgreSQL 17+), truncate, lag_threshold, max_rate (bytes/s per worker), keep_owner (superuser: restore the original owners and grants). The schema is restored as the calling role. Watch steep_repl.snapshot_progress.';

CREATE FUNCTION steep_repl.list_snapshots()
RETURNS TABLE (id text, role text, state text, path text, source_node text, lsn pg_lsn, slot_name text,
               slot_expires_at timestamptz, slot_dropped boolean, compression text, tables integer, rows bigint,
               bytes_raw bigint, bytes_compressed bigint, tuples_skipped bigint, job_id bigint,
               created_at timestamptz, completed_at timestamptz, error text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- A job that ended without recording the outcome (lease expired on its last attempt) shows as its job's state.
  SELECT s.id, 'generated',
         CASE WHEN s.state IN ('queued', 'generating') AND j.state IN ('failed', 'cancelled') THEN j.state ELSE s.state END,
         s.path, s.source_node, s.lsn, s.slot_name, s.slot_expires_at,
         s.slot_dropped_at IS NOT NULL, s.compression, s.tables_total, s.rows_total, s.bytes_raw, s.bytes_compressed,
         NULL::bigint, s.job_id, s.created_at, s.completed_at, coalesce(s.error, j.error)
  FROM steep_repl.snapshots s LEFT JOIN steep_repl.jobs j ON j.id = s.job_id
  UNION ALL
  SELECT a.snapshot_id, 'applied',
         CASE WHEN a.state IN ('queued', 'applying') AND j.state IN ('failed', 'cancelled') THEN j.state ELSE a.state END,
         a.path, a.source_node, a.lsn, NULL, NULL, NULL, NULL,
         (SELECT pg_catalog.count(*)::int FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id),
         (SELECT pg_catalog.sum(t.rows)::bigint FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id),
         (SELECT pg_catalog.sum(t.raw_bytes)::bigint FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id),
         NULL, a.tuples_skipped, a.job_id, a.created_at, a.completed_at, coalesce(a.error, j.error)
  FROM steep_repl.snapshot_applies a LEFT JOIN steep_repl.jobs j ON j.id = a.job_id
  ORDER BY 17 DESC, 1;
$$;
COMMENT ON FUNCTION steep_repl.list_snapshots() IS
  'Snapshots generated on this node (role generated) and applied to it (role applied), newest first.';

CREATE FUNCTION steep_repl.delete_snapshot(id text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s steep_repl.snapshots;
  v_job bigint;
BEGIN
  PERFORM steep_repl._require('id', id);
  SELECT * INTO s FROM steep_repl.snapshots x WHERE x.id = delete_snapshot.id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'snapshot "%" was not generated on this node', id
      USING ERRCODE = 'undefined_object', HINT = 'List them with SELECT * FROM steep_repl.list_snapshots().';
  END IF;
  SELECT j.id INTO v_job FROM steep_repl.jobs j
  WHERE j.kind = 'snapshot.delete' AND j.args->>'snapshot_id' = s.id AND j.state IN ('queued', 'running');
  IF FOUND THEN
    RAISE NOTICE 'snapshot % is already being deleted (job %)', s.id, v_job;
    RETURN v_job;
  END IF;
  IF s.job_id IS NOT NULL AND (SELECT j.state FROM steep_repl.jobs j WHERE j.id = s.job_id) IN ('queued', 'running') THEN
    PERFORM steep_repl.cancel_job(s.job_id);
  END IF;
  UPDATE steep_repl.snapshots x SET state = 'deleting' WHERE x.id = s.id;
  v_job := steep_repl.enqueue_job('snapshot.delete', pg_catalog.jsonb_build_object('snapshot_id', s.id), s.source_node, 5);
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (s.source_node, 'snapshot.delete_requested', pg_catalog.jsonb_build_object('snapshot_id', s.id, 'job', v_job));
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl.delete_snapshot(text) IS
  'Deletes a snapshot generated on this node: the sidecar removes its files, drops its slot (and its publication when no subscriber''s slot uses it). Cancels a generation still running. Returns the snapshot.delete job id.';

-- start_init(target, source, 'two_phase', {"path": ...}) on the target: generate on the source
-- into path (seen by both hosts), apply here, subscribe from the snapshot's LSN.
CREATE FUNCTION steep_repl._start_two_phase_init(target text, source text, options jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_node steep_repl.nodes;
  v_path text;
  v_gen jsonb;
  v_apply jsonb;
BEGIN
  PERFORM steep_repl._require('target', target);
  PERFORM steep_repl._require('source', source);
  PERFORM steep_repl._require('options', options);
  PERFORM steep_repl._snapshot_check_options(options, ARRAY['path', 'compression', 'parallel', 'tables', 'schemas',
    'slot_expiry', 'error_tolerance', 'lag_threshold', 'max_rate'], 'two_phase init');
  IF NOT options ? 'path' THEN
    RAISE EXCEPTION 'a two_phase init needs a "path" option' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'path is a directory both the source''s and the target''s hosts see (e.g. an NFS mount).';
  END IF;
  v_path := steep_repl._snapshot_path(options->>'path');
  v_gen := steep_repl._snapshot_generate_options(options - ARRAY['path', 'error_tolerance', 'lag_threshold']);
  v_apply := steep_repl._snapshot_apply_options((options - ARRAY['path', 'compression', 'tables', 'schemas', 'slot_expiry'])
                                                || '{"subscribe": true}');
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Call start_init on the target node itself.';
  END IF;
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  PERFORM steep_repl._require_reachable(source, 'source');
  RETURN steep_repl._snapshot_queue_apply(v_path || '/' || target || '_from_' || source, v_apply, 'snapshot.init',
    pg_catalog.jsonb_build_object('target', target, 'source', source, 'generate_options', v_gen));
END
$$;
COMMENT ON FUNCTION steep_repl._start_two_phase_init(text, text, jsonb) IS
  'Internal (called by start_init for method two_phase): queues snapshot.init, which generates a snapshot on the source into path/<target>_from_<source>, applies it here and subscribes from its LSN. Returns the job id.';

GRANT EXECUTE ON FUNCTION
  steep_repl.generate_snapshot(text, jsonb),
  steep_repl.apply_snapshot(text, jsonb),
  steep_repl.list_snapshots(),
  steep_repl.delete_snapshot(text)
TO steep_repl_admin;
GRANT SELECT ON steep_repl.snapshots, steep_repl.snapshot_tables, steep_repl.snapshot_applies,
  steep_repl.snapshot_apply_tables, steep_repl.snapshot_progress, steep_repl.snapshot_samples TO steep_repl_admin;
