-- Manual init: the DBA seeds the target from their own backup; prepare_init (on the source)
-- fixes the point L the subscription can start from, complete_init (on the seeded target)
-- subscribes from the backup's end E >= L, so every transaction committed after E arrives once
-- and none before it arrives again.

CREATE TABLE steep_repl.init_slots (
  slot_name      text PRIMARY KEY,
  target_node    text NOT NULL,
  publication    text NOT NULL,
  consistent_lsn pg_lsn NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
  expires_at     timestamptz NOT NULL,
  used_at        timestamptz,
  used_by        text,
  dropped_at     timestamptz,
  drop_reason    text,
  snapshot_name  text,
  export_job     bigint,
  CONSTRAINT expires_after_creation CHECK (expires_at > created_at),
  CONSTRAINT dropped_has_reason CHECK ((dropped_at IS NULL) = (drop_reason IS NULL))
);
COMMENT ON TABLE steep_repl.init_slots IS
  'Slots made by prepare_init on this (source) node: the consistent LSN a seeded target may subscribe from, until expires_at. tick() drops unused ones past expiry.';
COMMENT ON COLUMN steep_repl.init_slots.snapshot_name IS
  'prepare_init_export: the snapshot exported when the slot was created (pg_dump --snapshot), usable while the sidecar holds it (until release_init_snapshot).';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_slots', '');

-- What each prepared slot costs the source right now, read live (no write every tick).
CREATE VIEW steep_repl.init_slot_usage AS
SELECT i.slot_name, i.target_node, i.expires_at, i.used_at, i.dropped_at,
       s.slot_name IS NOT NULL AS slot_exists, coalesce(s.active, false) AS active, s.wal_status,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint AS retained_wal_bytes
FROM steep_repl.init_slots i
LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name OPERATOR(pg_catalog.=) i.slot_name;
COMMENT ON VIEW steep_repl.init_slot_usage IS
  'Each prepared slot of steep_repl.init_slots with the WAL it makes this source keep (bytes from its restart_lsn to the current WAL position), whether it exists and is in use, and its wal_status.';

-- The local node's name; 55000 when none is registered.
CREATE FUNCTION steep_repl._local_node() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  SELECT n.name INTO v FROM steep_repl.nodes n WHERE n.is_local;
  IF v IS NULL THEN
    RAISE EXCEPTION 'no local node is registered in this database'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'SELECT steep_repl.register_node(name, conninfo, true) for the node this database is.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._local_node() IS 'Internal: the name of the node this database is.';

-- Runs one statement on a node in its own committed transaction (dblink), e.g. on this node
-- before a slot is created, which PostgreSQL refuses in a transaction that has written.
CREATE FUNCTION steep_repl._remote_exec(node text, statement text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format('SELECT %I.dblink_exec($1, $2)', steep_repl._dblink_schema())
    USING steep_repl._conninfo(node), statement;
END
$$;
COMMENT ON FUNCTION steep_repl._remote_exec(text, text) IS 'Internal: runs a statement on a node through dblink_exec.';

-- A duration setting of the library (an int in seconds, shown with its unit) as an interval.
-- Missing (the library is not loaded in this session) is an error, never "no limit".
CREATE FUNCTION steep_repl._setting_interval(name text) RETURNS interval
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v float8;
BEGIN
  SELECT s.setting::float8 INTO v FROM pg_catalog.pg_settings s WHERE s.name = _setting_interval.name;
  IF v IS NULL THEN
    RAISE EXCEPTION 'setting % is not defined', name USING ERRCODE = 'undefined_object',
      HINT = 'Load the library: shared_preload_libraries = ''steep_repl'' (a restart is needed).';
  END IF;
  RETURN pg_catalog.justify_hours(pg_catalog.make_interval(secs => v));
END
$$;
COMMENT ON FUNCTION steep_repl._setting_interval(text) IS 'Internal: a seconds setting (steep_repl.max_slot_expiry, ...) as an interval.';

-- Shared checks of prepare_init and prepare_init_export: node is another registered node, the
-- slot name is valid and free; returns the names and the statement that publishes every user table.
CREATE FUNCTION steep_repl._prepare_checks(node text, slot_name text, expires interval,
  OUT local_node text, OUT slot text, OUT publication text, OUT publication_sql text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tables text;
  v_bad text;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('expires', expires);
  local_node := steep_repl._local_node();
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = _prepare_checks.node) THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF node = local_node THEN
    RAISE EXCEPTION 'a slot is prepared on the source for another node: "%" is this node', node
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Call it on the source with the name of the node to seed.';
  END IF;
  IF expires <= interval '0' OR expires > steep_repl._setting_interval('steep_repl.max_slot_expiry') THEN
    RAISE EXCEPTION 'expires must be positive and at most %', steep_repl._setting_interval('steep_repl.max_slot_expiry')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A prepared slot holds WAL on the source until it is used or expires; a superuser may raise steep_repl.max_slot_expiry.';
  END IF;
  IF (SELECT pg_catalog.count(*) FROM steep_repl.init_slots i
      WHERE i.target_node = _prepare_checks.node AND i.used_at IS NULL AND i.dropped_at IS NULL)
     >= pg_catalog.current_setting('steep_repl.max_prepared_slots')::int THEN
    RAISE EXCEPTION 'node "%" already has % prepared slots on this node', node, pg_catalog.current_setting('steep_repl.max_prepared_slots')
      USING ERRCODE = 'configuration_limit_exceeded',
            HINT = 'Use or release one (SELECT * FROM steep_repl.init_slots), or a superuser may raise steep_repl.max_prepared_slots.';
  END IF;
  slot := coalesce(slot_name, (steep_repl._init_names(node, local_node)).slot_name);
  IF slot !~ '^[a-z0-9_]{1,63}$' THEN
    RAISE EXCEPTION 'invalid slot name "%"', slot
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Slot names are 1 to 63 lowercase letters, digits or underscores.';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = _prepare_checks.slot)
     OR EXISTS (SELECT 1 FROM steep_repl.init_slots i WHERE i.slot_name = _prepare_checks.slot AND i.dropped_at IS NULL) THEN
    RAISE EXCEPTION 'replication slot "%" already exists', slot
      USING ERRCODE = 'duplicate_object',
            HINT = 'Pick another slot_name, or drop it (SELECT pg_drop_replication_slot(...)) if it is a leftover.';
  END IF;
  publication := (steep_repl._init_names(node, local_node)).publication;
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ' ORDER BY 1)
    INTO v_tables FROM steep_repl._local_tables() t;
  IF v_tables IS NULL THEN
    RAISE EXCEPTION 'node "%" has no user tables to publish', local_node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- A published table without a replica identity makes the application's own UPDATE and DELETE
  -- fail on this node: never publish one.
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ' ORDER BY 1)
    INTO v_bad FROM steep_repl._local_tables() t WHERE NOT t.has_identity;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables without a primary key or replica identity on node "%": %', local_node, v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Published tables need one, or UPDATE/DELETE on this node would fail: add a primary key or ALTER TABLE ... REPLICA IDENTITY FULL.';
  END IF;
  publication_sql := CASE
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_publication p WHERE p.pubname = _prepare_checks.publication)
    THEN pg_catalog.format('ALTER PUBLICATION %I SET TABLE %s', publication, v_tables)
    ELSE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s', publication, v_tables) END;
END
$$;
COMMENT ON FUNCTION steep_repl._prepare_checks(text, text, interval) IS 'Internal: validation and names shared by prepare_init and prepare_init_export.';

CREATE FUNCTION steep_repl.prepare_init(node text, slot_name text DEFAULT NULL, expires interval DEFAULT '7 days',
  OUT slot text, OUT lsn pg_lsn, OUT publication text, OUT expires_at timestamptz, OUT next_steps text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_local text;
BEGIN
  SELECT * INTO c FROM steep_repl._prepare_checks(node, slot_name, expires);
  v_local := c.local_node;
  slot := c.slot;
  publication := c.publication;
  -- The publication must exist before the slot's consistent point (pgoutput reads it with the
  -- historic catalog snapshot), and a slot cannot be created in a transaction that has written:
  -- so it is created in its own transaction, through dblink to this node.
  PERFORM steep_repl._remote_exec(v_local, c.publication_sql);
  SELECT s.lsn INTO lsn FROM pg_catalog.pg_create_logical_replication_slot(slot, 'pgoutput') s;
  expires_at := pg_catalog.now() + expires;
  INSERT INTO steep_repl.init_slots (slot_name, target_node, publication, consistent_lsn, expires_at)
  VALUES (slot, node, publication, lsn, prepare_init.expires_at);
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (node, 'init.prepared', pg_catalog.jsonb_build_object('slot', slot, 'lsn', lsn::text, 'source', v_local,
          'expires_at', prepare_init.expires_at));
  next_steps := pg_catalog.format($t$Slot %1$s holds WAL on %2$s from LSN %3$s until %4$s (it is dropped then if unused).
Seed %5$s with data of %2$s at an LSN E >= %3$s, then on %5$s: SELECT steep_repl.complete_init('%5$s', '%2$s', '%1$s');
 1. physical backup taken now (pg_basebackup, or pg_backup_start/copy/pg_backup_stop): restore it with
    recovery_target = 'immediate' and recovery_target_action = 'promote'; E is found in the new timeline's history file.
 2. an existing standby of %2$s: stop it, set recovery_target_lsn = '%3$s' and recovery_target_action = 'promote', start it.
 3. a logical dump: pg_dump --snapshot of a snapshot exported at %3$s (see the README), then source_lsn => '%3$s'.$t$,
    slot, v_local, lsn, prepare_init.expires_at, node);
END
$$;
COMMENT ON FUNCTION steep_repl.prepare_init(text, text, interval) IS
  'On the source: creates the publication and a pgoutput slot for seeding node from a backup; returns the slot, its consistent LSN L, the expiry and the steps that follow.';

-- E of a promoted physical copy: the switch point of its current timeline, from pg_wal/<tli>.history.
CREATE FUNCTION steep_repl._recovery_end_lsn() RETURNS pg_lsn
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tli int := (SELECT c.timeline_id FROM pg_catalog.pg_control_checkpoint() c);
  v_history text;
  v_line text;
BEGIN
  IF v_tli = 1 THEN
    RAISE EXCEPTION 'source_lsn is needed: this server was never promoted (timeline 1), so no backup end LSN is recorded'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass source_lsn: the end LSN printed by pg_backup_stop/pg_basebackup, or the slot''s LSN for a logical dump.';
  END IF;
  v_history := pg_catalog.pg_read_file(pg_catalog.format('pg_wal/%s.history', pg_catalog.lpad(pg_catalog.upper(pg_catalog.to_hex(v_tli)), 8, '0')));
  SELECT l INTO v_line FROM pg_catalog.regexp_split_to_table(v_history, E'\n') WITH ORDINALITY AS x(l, i)
  WHERE l ~ '^\d+\s+[0-9A-Fa-f]+/[0-9A-Fa-f]+' ORDER BY i DESC LIMIT 1;
  IF v_line IS NULL THEN
    RAISE EXCEPTION 'no switch point in the history file of timeline %', v_tli USING ERRCODE = 'data_corrupted';
  END IF;
  RETURN pg_catalog.split_part(pg_catalog.regexp_replace(v_line, '\s+', ' ', 'g'), ' ', 2)::pg_lsn;
END
$$;
COMMENT ON FUNCTION steep_repl._recovery_end_lsn() IS
  'Internal: where this promoted copy''s recovery ended (the last switch point of its timeline history), i.e. the LSN its data is consistent at.';
