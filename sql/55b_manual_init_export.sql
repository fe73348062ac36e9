-- Manual init, logical path: the slot is created over a replication connection that exports its
-- snapshot; the sidecar holds that connection open so the DBA can run
-- pg_dump --snapshot=<name>, then releases it. E = the slot's consistent point.

CREATE FUNCTION steep_repl.prepare_init_export(node text, slot_name text DEFAULT NULL,
  expires interval DEFAULT '7 days', hold interval DEFAULT '12 hours')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_slot text;
BEGIN
  PERFORM steep_repl._require('hold', hold);
  PERFORM steep_repl._require('node', node);
  -- Asking again for a slot whose exported snapshot was lost (init.snapshot_lost: its export job
  -- failed) and that nobody used is starting over: the old slot goes, a new one is made.
  v_slot := coalesce(slot_name, (steep_repl._init_names(node, steep_repl._local_node())).slot_name);
  IF EXISTS (SELECT 1 FROM steep_repl.init_slots i JOIN steep_repl.jobs j ON j.id = i.export_job
             WHERE i.slot_name = v_slot AND i.target_node = prepare_init_export.node AND i.used_at IS NULL
               AND i.dropped_at IS NULL AND j.state = 'failed') THEN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = v_slot AND s.active) THEN
      RAISE EXCEPTION 'replication slot "%" is in use', v_slot
        USING ERRCODE = 'object_in_use', HINT = 'Its exported snapshot was lost, but something streams from it: stop that first.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = v_slot) THEN
      PERFORM pg_catalog.pg_drop_replication_slot(v_slot);
    END IF;
    DELETE FROM steep_repl.init_slots i WHERE i.slot_name = v_slot;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (node, 'init.slot_replaced', pg_catalog.jsonb_build_object('slot', v_slot,
            'reason', 'its exported snapshot was lost; prepare_init_export asked for it again'));
  END IF;
  SELECT * INTO c FROM steep_repl._prepare_checks(node, slot_name, expires);
  IF hold <= interval '0' OR hold > expires OR hold > steep_repl._setting_interval('steep_repl.max_snapshot_hold') THEN
    RAISE EXCEPTION 'hold must be positive, at most expires and at most %', steep_repl._setting_interval('steep_repl.max_snapshot_hold')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The held snapshot keeps VACUUM from removing dead rows cluster-wide; a superuser may raise steep_repl.max_snapshot_hold.';
  END IF;
  -- Committed with this call, so the publication exists before the sidecar creates the slot.
  EXECUTE c.publication_sql;
  RETURN steep_repl.enqueue_job('init.export', pg_catalog.jsonb_build_object('node', node, 'slot', c.slot,
    'publication', c.publication, 'expires_seconds', extract(epoch FROM expires),
    'hold_seconds', extract(epoch FROM hold)), node, 1);
END
$$;
COMMENT ON FUNCTION steep_repl.prepare_init_export(text, text, interval, interval) IS
  'On the source, for seeding node from a logical dump: queues the sidecar job that creates the slot and holds its exported snapshot (init_slots.snapshot_name) for pg_dump --snapshot until release_init_snapshot or hold ends. Returns the job id.';

-- Sidecar step: the slot exists and its snapshot is exported and held.
CREATE FUNCTION steep_repl.init_exported(node text, slot_name text, publication text, lsn pg_lsn,
  snapshot_name text, expires interval, job bigint)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO steep_repl.init_slots (slot_name, target_node, publication, consistent_lsn, expires_at, snapshot_name, export_job)
  VALUES (init_exported.slot_name, node, publication, lsn, pg_catalog.now() + expires, init_exported.snapshot_name, job);
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (node, 'init.prepared', pg_catalog.jsonb_build_object('slot', init_exported.slot_name, 'lsn', lsn::text,
          'snapshot', init_exported.snapshot_name, 'source', steep_repl._local_node()));
END
$$;
COMMENT ON FUNCTION steep_repl.init_exported(text, text, text, pg_lsn, text, interval, bigint) IS
  'Sidecar step of prepare_init_export: records the slot, its consistent LSN and the exported snapshot name.';

-- Sidecar step: the exporting connection is closed; the snapshot cannot be imported any more.
CREATE FUNCTION steep_repl.init_snapshot_released(slot_name text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.init_slots i SET snapshot_name = NULL WHERE i.slot_name = init_snapshot_released.slot_name;
$$;
COMMENT ON FUNCTION steep_repl.init_snapshot_released(text) IS 'Sidecar step: the exported snapshot of a slot is no longer held.';

CREATE FUNCTION steep_repl.release_init_snapshot(slot_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_job bigint;
BEGIN
  PERFORM steep_repl._require('slot_name', slot_name);
  SELECT i.export_job INTO v_job FROM steep_repl.init_slots i WHERE i.slot_name = release_init_snapshot.slot_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'slot "%" was not prepared here', slot_name USING ERRCODE = 'undefined_object';
  END IF;
  IF v_job IS NULL OR NOT EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.id = v_job AND j.state = 'running') THEN
    RAISE NOTICE 'the snapshot of slot "%" is not held', slot_name;
    RETURN false;
  END IF;
  PERFORM steep_repl.cancel_job(v_job);
  RETURN true;
END
$$;
COMMENT ON FUNCTION steep_repl.release_init_snapshot(text) IS
  'Ends the hold of a slot''s exported snapshot (after pg_dump --snapshot finished); the slot stays for complete_init.';
