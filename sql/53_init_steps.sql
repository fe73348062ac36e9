-- The steps the sidecar reports while it runs init.start / init.cancel (superuser only:
-- the plan holds the source's conninfo).

CREATE FUNCTION steep_repl.init_plan(node text) RETURNS jsonb
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

CREATE FUNCTION steep_repl._init_subscribed(node text, publication_created boolean, parallel_workers integer)
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
COMMENT ON FUNCTION steep_repl._init_subscribed(text, boolean, integer) IS 'Sidecar step: the subscription exists; PREPARING -> COPYING (a fast init, COPYING already, stays).';

-- Any failure of an init: stop the subscription's retry loop, keep what is there for diagnosis
-- (cancel_init or a new start_init cleans up), and record the reason.
CREATE FUNCTION steep_repl._init_fail(node text, reason text) RETURNS void
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
COMMENT ON FUNCTION steep_repl._init_fail(text, text) IS 'Internal: moves an active init to FAILED with a reason and disables its subscription.';

CREATE FUNCTION steep_repl.init_failed(node text, reason text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._init_fail(node, reason);
$$;
COMMENT ON FUNCTION steep_repl.init_failed(text, text) IS 'Sidecar step: the init.start job failed; the node goes to FAILED with the reason.';

-- The sidecar dropped the subscription, slots and publication: empty the tables this init
-- filled, forget its progress, back to UNINITIALIZED.
CREATE FUNCTION steep_repl.init_cancelled(node text, detail jsonb DEFAULT '{}') RETURNS void
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
COMMENT ON FUNCTION steep_repl.init_cancelled(text, jsonb) IS 'Sidecar step: replication objects are gone; truncate the init''s tables, re-create the indexes and constraints a fast init dropped, clear progress, UNINITIALIZED.';

CREATE FUNCTION steep_repl.cancel_init(node text) RETURNS bigint
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
