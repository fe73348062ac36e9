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
                      WHEN v_to IN ('preparing', 'uninitialized') THEN NULL
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
  PERFORM steep_repl.transition(node, 'copying', 'subscription created; copying tables');
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._init_fail(node text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = _init_fail.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying', 'catching_up') THEN
    RETURN;
  END IF;
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = _init_fail.node;
  IF FOUND AND EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname = p.subscription) THEN
    EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', p.subscription);
  END IF;
  UPDATE steep_repl.init_progress ip SET message = reason, updated_at = pg_catalog.now(),
    current_tables = '{}', rows_per_sec = NULL, bytes_per_sec = NULL, eta_seconds = NULL
  WHERE ip.node = _init_fail.node;
  PERFORM steep_repl.transition(node, 'failed', reason);
END
$$;
CREATE OR REPLACE FUNCTION steep_repl._tick_init(p steep_repl.init_progress, now timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_errors bigint;
  v_probe text;
  v_done int;
  v_rows bigint;
  v_bytes bigint;
  v_percent numeric;
  v_then record;
  v_rps numeric;
  v_bps numeric;
  v_progressed boolean;
  v_lag bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.oid = p.subscription_oid) THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('subscription %s disappeared', p.subscription));
    RETURN;
  END IF;

  -- A sync or apply error fails the init; say whether the source is the cause.
  SELECT s.apply_error_count + s.sync_error_count INTO v_errors
  FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = p.subscription_oid;
  IF coalesce(v_errors, 0) > 0 THEN
    v_probe := steep_repl._probe(p.source_node);
    PERFORM steep_repl._init_fail(p.node, CASE
      WHEN v_probe IS NOT NULL THEN pg_catalog.format('source node %s is unreachable: %s', p.source_node, v_probe)
      ELSE pg_catalog.format('subscription %s reported %s sync/apply error(s); the error text is in the server log of node %s',
                             p.subscription, v_errors, p.node) END);
    RETURN;
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

  -- Rates over the rolling 10 s window.
  INSERT INTO steep_repl.init_samples (node, at, rows_done, bytes_done) VALUES (p.node, now, v_rows, v_bytes)
  ON CONFLICT DO NOTHING;
  DELETE FROM steep_repl.init_samples s WHERE s.node = p.node AND s.at < now - interval '2 minutes';
  SELECT s.at, s.rows_done, s.bytes_done INTO v_then FROM steep_repl.init_samples s
  WHERE s.node = p.node AND s.at >= now - interval '10 seconds' AND s.at < now ORDER BY s.at LIMIT 1;
  IF v_then.at IS NOT NULL THEN
    v_rps := (v_rows - v_then.rows_done) / extract(epoch FROM now - v_then.at);
    v_bps := (v_bytes - v_then.bytes_done) / extract(epoch FROM now - v_then.at);
  END IF;

  UPDATE steep_repl.init_progress ip SET
    tables_done = v_done, rows_done = greatest(ip.rows_done, v_rows), bytes_done = greatest(ip.bytes_done, v_bytes),
    percent = greatest(ip.percent, pg_catalog.round(v_percent, 2)),
    current_tables = (SELECT coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name)
                                      ORDER BY t.schema_name, t.table_name), '{}')
                      FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'copying'),
    rows_per_sec = pg_catalog.round(v_rps, 1), bytes_per_sec = pg_catalog.round(v_bps),
    eta_seconds = CASE WHEN v_done = p.tables_total THEN 0
                       WHEN v_bps > 0 THEN pg_catalog.round((p.bytes_total - v_bytes) / v_bps) END,
    last_progress_at = CASE WHEN v_progressed THEN now ELSE ip.last_progress_at END,
    stalled_since = CASE WHEN v_progressed THEN NULL ELSE ip.stalled_since END,
    updated_at = now
  WHERE ip.node = p.node
  RETURNING * INTO p;

  -- No progress for stall_timeout: an init.stalled event (once per stall), and a look at the source.
  IF p.phase = 'copying' AND p.stalled_since IS NULL AND now - p.last_progress_at > p.stall_timeout THEN
    UPDATE steep_repl.init_progress ip SET stalled_since = now WHERE ip.node = p.node;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (p.node, 'init.stalled', pg_catalog.jsonb_build_object('since', p.last_progress_at, 'percent', p.percent,
            'current_tables', p.current_tables));
    p.stalled_since := now;
  END IF;
  IF p.stalled_since IS NOT NULL OR p.phase = 'catching_up' THEN
    IF NOT steep_repl._tick_source_reachable(p, now) THEN
      RETURN;
    END IF;
  END IF;

  IF p.phase = 'copying' AND v_done = p.tables_total THEN
    UPDATE steep_repl.init_progress ip SET copy_done_at = now, percent = 100, current_tables = '{}'
    WHERE ip.node = p.node;
    PERFORM steep_repl.transition(p.node, 'catching_up', pg_catalog.format('all %s tables copied', p.tables_total));
  ELSIF p.phase = 'catching_up' THEN
    v_lag := steep_repl._remote_slot_lag(p.source_node, p.slot_name);
    UPDATE steep_repl.init_progress ip SET lag_bytes = v_lag WHERE ip.node = p.node;
    IF v_lag IS NOT NULL AND v_lag <= p.lag_threshold_bytes
       AND NOT EXISTS (SELECT 1 FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state <> 'ready') THEN
      UPDATE steep_repl.init_progress ip SET synchronized_at = now, eta_seconds = 0
      WHERE ip.node = p.node;
      PERFORM steep_repl.transition(p.node, 'synchronized', pg_catalog.format('apply lag %s bytes <= %s', v_lag, p.lag_threshold_bytes));
    END IF;
  END IF;
END
$$;
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
  EXECUTE pg_catalog.format(
    'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = false, create_slot = false, slot_name = %L, enabled = false)',
    v_names.subscription, (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = source), v_slot.publication, slot_name);
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = v_names.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  PERFORM pg_catalog.pg_replication_origin_advance('pg_' || v_sub, v_lsn);
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I ENABLE', v_names.subscription);

  DELETE FROM steep_repl.init_progress p WHERE p.node = target;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription,
    slot_name, subscription_oid, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, percent,
    copy_done_at, message)
  VALUES (target, source, 'manual', options, v_slot.publication, false, v_names.subscription, slot_name, v_sub, 0,
    coalesce((options->>'lag_threshold')::bigint, 1048576), interval '60 seconds',
    pg_catalog.make_interval(secs => coalesce((options->>'source_timeout')::float8, 60)), 100, pg_catalog.now(),
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
  -- Both sides' tables in scope, as arrays: never a temp table a caller could create first.
  v_src steep_repl.table_info[];
  v_dst steep_repl.table_info[];
  r record;
BEGIN
  PERFORM steep_repl._require('target', target);
  PERFORM steep_repl._require('source', source);
  PERFORM steep_repl._require('method', method);
  PERFORM steep_repl._require('options', options);
  IF method = 'two_phase' THEN
    -- Generate on the source into a shared path, apply here, subscribe from the snapshot's LSN
    -- (the apply creates the tables, so it validates on its own: see 60_snapshot_user.sql).
    RETURN steep_repl._start_two_phase_init(target, source, options);
  ELSIF method <> 'snapshot' THEN
    RAISE EXCEPTION 'unknown init method "%"', method
      USING ERRCODE = 'invalid_parameter_value',
            HINT = '"snapshot" copies through the subscription (copy_data = true); "two_phase" generates a snapshot on the source and applies it here (option path).';
  END IF;
  v_opts := steep_repl._init_options(options);
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
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.cancel') AND j.node = target
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
    -- As each table's owner, so no TRUNCATE trigger runs with this function's rights; one
    -- statement per owner (tables linked by a foreign key across owners cannot be emptied).
    FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ') AS tables
             FROM pg_catalog.unnest(v_dst) t JOIN pg_catalog.pg_class c ON c.oid = t.relid::oid
             GROUP BY c.relowner ORDER BY c.relowner LOOP
      PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
    END LOOP;
    RAISE NOTICE 'truncated % table(s) on node "%" before the init: %', pg_catalog.cardinality(v_tables), target, v_bad;
  END IF;

  -- Everything checked: record the init and hand it to the sidecar.
  DELETE FROM steep_repl.init_progress p WHERE p.node = target;
  SELECT pg_catalog.current_setting('max_logical_replication_workers')::int INTO v_workers;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, subscription, slot_name,
    parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, tables_total, bytes_total, rows_total, large_tables)
  SELECT target, source, method, v_opts, v_names.publication, v_names.subscription, v_names.slot_name,
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
  v_job := steep_repl.enqueue_job('init.start', pg_catalog.jsonb_build_object('target', target, 'source', source), target, 3);
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
  r record;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_cancelled.node FOR UPDATE;
  -- The tables this init filled: those it subscribed to, and those a cancelled two-phase init or
  -- apply of this init had already loaded (before CATCHING_UP there is no init_tables row).
  v_list := ARRAY(SELECT DISTINCT x.t FROM (
    SELECT pg_catalog.format('%I.%I', t.schema_name, t.table_name) t
    FROM steep_repl.init_tables t WHERE t.node = init_cancelled.node
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
  -- As each table's owner (one statement per owner), so no TRUNCATE trigger runs with our rights.
  FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(x.t, ', ') AS tables
           FROM pg_catalog.unnest(v_list) x(t)
           JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(x.t)
           GROUP BY c.relowner ORDER BY c.relowner LOOP
    PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
  END LOOP;
  DELETE FROM steep_repl.init_progress p WHERE p.node = init_cancelled.node;
  IF v_state <> 'uninitialized' THEN
    PERFORM steep_repl.transition(node, 'uninitialized', 'init cancelled');
  END IF;
  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (node, 'init.cancelled', v_state, 'uninitialized',
          coalesce(detail, '{}') || pg_catalog.jsonb_build_object('truncated', coalesce(v_tables, '')));
END
$$;
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
CREATE OR REPLACE FUNCTION steep_repl._conninfo(node text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
  v_pin text[] := ARRAY['options=-csearch_path=pg_catalog -cstatement_timeout=60000',
                        'keepalives=1', 'keepalives_idle=10', 'keepalives_interval=5', 'keepalives_count=3'];
BEGIN
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
  BEGIN
    EXECUTE pg_catalog.format(
      'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = false, create_slot = false, slot_name = %L, enabled = false)',
      v_names.subscription, (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = source), v_slot.publication, slot_name);
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
    coalesce((options->>'lag_threshold')::bigint, 1048576), interval '60 seconds',
    pg_catalog.make_interval(secs => coalesce((options->>'source_timeout')::float8, 60)), 100, pg_catalog.now(),
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
    'tables', v_tables);
END
$$;
COMMENT ON FUNCTION steep_repl.init_plan(text) IS
  'For the sidecar (superuser): what the init of node must create: source conninfo, publication, subscription, slot, and the tables to publish as [{schema, table}].';

-- check_conninfo (C) also refuses invalid port and hostaddr values: its comment says so.
COMMENT ON FUNCTION steep_repl.check_conninfo(text) IS
  'Raises 42601 when conninfo is not a valid libpq connection string (same parser as CREATE SUBSCRIPTION), and 22023 for values libpq refuses only when it connects: a port that is not an integer 1..65535 (in a multi-host list: any element), more than one port but not one per host, a hostaddr that is not a numeric IP address.';
