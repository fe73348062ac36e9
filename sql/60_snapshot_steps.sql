-- Snapshot steps the sidecar reports (superuser only), and option checking shared by the API.

CREATE FUNCTION steep_repl._snapshot_check_options(options jsonb, known text[], what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k text;
BEGIN
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION '% options must be a JSON object', what USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
    IF NOT k = ANY (known) THEN
      RAISE EXCEPTION 'unknown % option "%"', what, k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: ' || pg_catalog.array_to_string(known, ', ') || '.';
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_check_options(jsonb, text[], text) IS 'Internal: 22023 for a non-object or an unknown key.';

CREATE FUNCTION steep_repl._snapshot_int_option(options jsonb, key text, dflt bigint, lo bigint, hi bigint, hint text)
RETURNS bigint
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._int_option(options, key, dflt, lo, hi, hint);  -- one checker (sql/04_options.sql)
$$;
COMMENT ON FUNCTION steep_repl._snapshot_int_option(jsonb, text, bigint, bigint, bigint, text) IS 'Internal: an integer option within bounds, or 22023.';

CREATE FUNCTION steep_repl._snapshot_bool_option(options jsonb, key text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF options ? key AND pg_catalog.jsonb_typeof(options->key) <> 'boolean' THEN
    RAISE EXCEPTION '% must be true or false', key USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN coalesce((options->>key)::boolean, false);
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_bool_option(jsonb, text) IS 'Internal: a boolean option (default false), or 22023.';

-- steep_repl.snapshot_root as the library defines it (extension/src/steep_repl.c).
CREATE FUNCTION steep_repl._snapshot_root() RETURNS text
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'steep_repl_get_snapshot_root';
COMMENT ON FUNCTION steep_repl._snapshot_root() IS
  'Internal: the superuser-only setting steep_repl.snapshot_root ('''' when unset), read from the loaded library so that a placeholder a session set before the library was loaded never counts.';

-- A directory path the sidecar may use: absolute, no "." or ".." component, and strictly
-- beneath steep_repl.snapshot_root; without a root only a superuser may name one (the API
-- functions are SECURITY DEFINER: the caller is session_user). Nothing here looks at the file
-- system, so a refusal reads the same whether the path exists or not.
CREATE FUNCTION steep_repl._snapshot_path(path text) RETURNS text
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
COMMENT ON FUNCTION steep_repl._snapshot_path(text) IS
  'Internal: normalizes a snapshot directory (absolute, no . or .. components; 22023) and checks that it is strictly beneath steep_repl.snapshot_root or, with no root set, that the session user is a superuser (42501).';

-- steep_repl._local_node() is defined in sql/55_manual_init.sql.


-- The apply loaded its tables and the sidecar created and enabled the subscription from the
-- snapshot's LSN: record the init the way start_init does (init_progress in catching_up with
-- the subscription), so tick() samples it and moves the node to SYNCHRONIZED.
CREATE FUNCTION steep_repl._snapshot_subscribed(apply_id bigint, subscription text, slot_name text, publication text)
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
COMMENT ON FUNCTION steep_repl._snapshot_subscribed(bigint, text, text, text) IS
  'Sidecar step: the subscription of a snapshot apply is enabled at the manifest LSN; records the init (init_progress, init_tables) and moves the node to CATCHING_UP.';

-- The apply read a valid manifest and starts loading: a subscribing apply moves the node
-- PREPARING -> COPYING.
CREATE FUNCTION steep_repl._snapshot_apply_loading(apply_id bigint, snapshot_id text, source_node text, lsn pg_lsn)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a steep_repl.snapshot_applies;
  v_node text;
  v_state text;
BEGIN
  UPDATE steep_repl.snapshot_applies sa SET state = 'applying', snapshot_id = _snapshot_apply_loading.snapshot_id,
    source_node = _snapshot_apply_loading.source_node, lsn = _snapshot_apply_loading.lsn, error = NULL
  WHERE sa.id = apply_id RETURNING * INTO a;
  IF NOT steep_repl._snapshot_bool_option(a.options, 'subscribe') THEN
    RETURN;
  END IF;
  v_node := steep_repl._local_node();
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = v_node FOR UPDATE;
  IF v_state = 'preparing' THEN
    UPDATE steep_repl.nodes n SET init_source_node = _snapshot_apply_loading.source_node WHERE n.name = v_node;
    PERFORM steep_repl.transition(v_node, 'copying', pg_catalog.format('loading snapshot %s from %s', snapshot_id, source_node));
  ELSIF v_state NOT IN ('copying', 'catching_up', 'synchronized') THEN
    RAISE EXCEPTION 'node "%" is % and cannot take this snapshot''s subscription', v_node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_apply_loading(bigint, text, text, pg_lsn) IS
  'Sidecar step: the manifest is valid and loading starts; a subscribing apply moves the node to COPYING.';

-- An apply failed for good: record it, and fail the node's init when it was subscribing.
CREATE FUNCTION steep_repl._snapshot_apply_failed(apply_id bigint, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a steep_repl.snapshot_applies;
  v_node text;
BEGIN
  UPDATE steep_repl.snapshot_applies sa SET state = 'failed', error = reason, completed_at = pg_catalog.now()
  WHERE sa.id = apply_id RETURNING * INTO a;
  IF FOUND AND steep_repl._snapshot_bool_option(a.options, 'subscribe') THEN
    SELECT n.name INTO v_node FROM steep_repl.nodes n WHERE n.is_local;
    IF v_node IS NOT NULL THEN
      -- Only an active init fails (preparing, copying or catching_up); the subscription, if any, is disabled.
      PERFORM steep_repl._init_fail(v_node, reason);
    END IF;
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_apply_failed(bigint, text) IS 'Sidecar step: an apply failed; a subscribing apply fails the node''s init with the reason.';
