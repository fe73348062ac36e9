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
