-- complete_init(): on a target seeded from a backup, subscribe from the backup's end LSN.

-- What the source knows of a prepared slot, read through dblink.
CREATE FUNCTION steep_repl._remote_init_slot(source text, slot text,
  OUT prepared boolean, OUT slot_exists boolean, OUT active boolean, OUT consistent_lsn pg_lsn,
  OUT expires_at timestamptz, OUT used_at timestamptz, OUT used_by text, OUT dropped_at timestamptz,
  OUT drop_reason text, OUT publication text, OUT target_node text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format(
    'SELECT * FROM %I.dblink($1, $2) AS t(prepared boolean, slot_exists boolean, active boolean, consistent_lsn pg_lsn,
       expires_at timestamptz, used_at timestamptz, used_by text, dropped_at timestamptz, drop_reason text,
       publication text, target_node text)', steep_repl._dblink_schema())
  INTO prepared, slot_exists, active, consistent_lsn, expires_at, used_at, used_by, dropped_at, drop_reason, publication, target_node
  USING steep_repl._conninfo(source), pg_catalog.format(
    'SELECT i.slot_name IS NOT NULL, s.slot_name IS NOT NULL, coalesce(s.active, false), i.consistent_lsn,
            i.expires_at, i.used_at, i.used_by, i.dropped_at, i.drop_reason, i.publication, i.target_node
     FROM (SELECT 1) one
     LEFT JOIN steep_repl.init_slots i ON i.slot_name = %1$L
     LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = %1$L', slot);
END
$$;
COMMENT ON FUNCTION steep_repl._remote_init_slot(text, text) IS 'Internal: a prepared slot as the source records it.';

-- A restored physical copy believes it is the source: make it the target, and forget the
-- source's queue, progress and prepared slots that came with the copy.
CREATE FUNCTION steep_repl._assume_identity(target text, source text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text;
BEGIN
  SELECT n.name INTO v_local FROM steep_repl.nodes n WHERE n.is_local;
  IF v_local IS NOT DISTINCT FROM target THEN
    RETURN false;
  END IF;
  IF v_local IS NOT NULL AND v_local <> source THEN
    RAISE EXCEPTION 'this database is node "%", not "%"', v_local, target
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Run complete_init on the node that was seeded.';
  END IF;
  UPDATE steep_repl.nodes n SET is_local = false WHERE n.is_local;
  UPDATE steep_repl.nodes n SET is_local = true WHERE n.name = target;
  DELETE FROM steep_repl.jobs;
  DELETE FROM steep_repl.init_progress;
  DELETE FROM steep_repl.init_slots;
  DELETE FROM steep_repl.drift_checks;
  DELETE FROM steep_repl.schema_accepted_differences;
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (target, 'node.identity_assumed', pg_catalog.jsonb_build_object('was', v_local,
          'reason', 'restored from a copy of ' || coalesce(v_local, source)));
  RETURN true;
END
$$;
COMMENT ON FUNCTION steep_repl._assume_identity(text, text) IS 'Internal: turns a restored copy of source into node target.';

CREATE FUNCTION steep_repl.complete_init(target text, source text, slot_name text, source_lsn pg_lsn DEFAULT NULL,
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
  v_lag_threshold bigint;
  v_source_timeout numeric;
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
  -- Numeric options checked before anything is probed (the same bounds as start_init's).
  v_lag_threshold := steep_repl._int_option(options, 'lag_threshold', 1048576, 0, 1099511627776,
    'lag_threshold is the apply lag in bytes under which the node is SYNCHRONIZED (default 1048576, at most 1 TiB).');
  v_source_timeout := steep_repl._num_option(options, 'source_timeout', 60, 1, 604800,
    'source_timeout is the number of seconds the source may be unreachable before the init fails (default 60, at most a week).');
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
  -- streaming = parallel (16+): a large transaction is applied by a parallel worker while it
  -- arrives, not spooled and applied at its commit. origin = none (16+): only the source's own
  -- changes, never what it received from another node, which would be forwarded or loop back
  -- (as every subscription the sidecar makes).
  BEGIN
    EXECUTE pg_catalog.format(
      'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = false, create_slot = false, slot_name = %L, enabled = false%s)',
      v_names.subscription, (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = source), v_slot.publication, slot_name,
      CASE WHEN pg_catalog.current_setting('server_version_num')::int OPERATOR(pg_catalog.>=) 160000
           THEN ', streaming = parallel, origin = none' ELSE '' END);
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
    v_lag_threshold, interval '60 seconds',
    pg_catalog.make_interval(secs => v_source_timeout::float8), 100, pg_catalog.now(),
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
COMMENT ON FUNCTION steep_repl.complete_init(text, text, text, pg_lsn, jsonb) IS
  'On a target seeded from a backup of source: checks the prepared slot (exists, not expired, unused) and that the data is at or after its consistent point, subscribes with copy_data = false from that LSN (origin advanced), CATCHING_UP -> SYNCHRONIZED.';

-- tick(): drop prepared slots nobody used before their expiry (a forgotten slot holds WAL
-- until the disk fills), and forget exported snapshots whose holder is gone.
CREATE FUNCTION steep_repl._tick_expire_slots(now timestamptz) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  -- An exported snapshot lives as long as the sidecar session that holds it: once its init.export
  -- job ended without releasing it (the sidecar killed: the lease was reaped), it is gone. Say so
  -- (a failed job), so nobody waits on a snapshot that cannot be imported any more.
  FOR r IN SELECT i.slot_name, i.target_node, i.snapshot_name, j.id AS job, j.state, j.error
           FROM steep_repl.init_slots i JOIN steep_repl.jobs j ON j.id = i.export_job
           WHERE i.snapshot_name IS NOT NULL AND j.state IN ('succeeded', 'failed', 'cancelled')
           FOR UPDATE OF i SKIP LOCKED LOOP
    UPDATE steep_repl.init_slots i SET snapshot_name = NULL WHERE i.slot_name = r.slot_name;
    IF r.state = 'failed' THEN
      INSERT INTO steep_repl.events (node, event, detail)
      VALUES (r.target_node, 'init.snapshot_lost', pg_catalog.jsonb_build_object('slot', r.slot_name,
              'snapshot', r.snapshot_name, 'job', r.job, 'reason', coalesce(r.error, 'the export job failed'),
              'next', pg_catalog.format('a pg_dump that had already imported snapshot %s is unaffected: go on with complete_init; '
                                        'otherwise call prepare_init_export(%L, %L) again, which replaces slot %s',
                                        r.snapshot_name, r.target_node, r.slot_name, r.slot_name)));
    END IF;
  END LOOP;
  FOR r IN SELECT i.slot_name, i.target_node, i.expires_at FROM steep_repl.init_slots i
           WHERE i.expires_at < now AND i.used_at IS NULL AND i.dropped_at IS NULL
           FOR UPDATE SKIP LOCKED LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = r.slot_name AND s.active) THEN
      CONTINUE; -- in use right now: try again at the next tick
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = r.slot_name) THEN
      PERFORM pg_catalog.pg_drop_replication_slot(r.slot_name);
    END IF;
    UPDATE steep_repl.init_slots i SET dropped_at = now, drop_reason = pg_catalog.format('expired at %s unused', r.expires_at)
    WHERE i.slot_name = r.slot_name;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (r.target_node, 'init.slot_expired', pg_catalog.jsonb_build_object('slot', r.slot_name, 'expired_at', r.expires_at));
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_expire_slots(timestamptz) IS 'Internal: tick()''s drop of unused prepared slots past expiry, and of exported snapshots whose init.export job ended (init.snapshot_lost when it failed).';
