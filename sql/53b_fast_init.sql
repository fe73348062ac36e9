-- start_init(target, source, 'fast'): the sidecar's init.fast job copies the tables itself, in
-- parallel chunks inside the snapshot its slot exported, into tables whose secondary indexes and
-- constraints are dropped first and rebuilt after the load; then it subscribes from the slot.
-- These are its steps (sidecar only). What it drops is recorded here, so a failure, a cancel or
-- a killed sidecar can always put it back.

CREATE TABLE steep_repl.init_fast_objects (
  id          bigserial PRIMARY KEY,
  node        text NOT NULL REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  relid       oid NOT NULL,
  kind        text NOT NULL CONSTRAINT kind_known CHECK (kind IN ('index', 'constraint', 'foreign_key')),
  name        text NOT NULL,
  ddl         text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE steep_repl.init_fast_objects IS
  'Indexes and constraints a fast init dropped from the target''s tables before loading them, with the DDL (pg_get_indexdef / pg_get_constraintdef of this node''s own catalog) that re-creates them as the table''s owner: after the load, on cancel_init, and before a new start_init.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_fast_objects', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_fast_objects_id_seq', '');

-- The fast init's own option: tables larger than split_threshold bytes are copied in block
-- ranges of about that size, so one large table uses every worker.
CREATE FUNCTION steep_repl._fast_options(method text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF method <> 'fast' OR pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RETURN '{}';
  END IF;
  RETURN pg_catalog.jsonb_build_object('split_threshold', steep_repl._int_option(options, 'split_threshold', 67108864, 8192,
    1099511627776, 'split_threshold is the size in bytes above which a table is copied in block ranges of that size (default 64 MiB, at least 8192).'));
END
$$;
COMMENT ON FUNCTION steep_repl._fast_options(text, jsonb) IS
  'Internal: the options only method fast has (split_threshold, 22023 out of 8192..1 TiB), validated; {} for the other methods.';

-- Empty what an attempt copied (as each table's owner) and reset the per-table progress: a new
-- attempt has a new snapshot, so it starts over, and a failed one leaves nothing half-copied (its
-- foreign keys could not be re-created on it).
CREATE FUNCTION steep_repl.init_fast_reset(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = init_fast_reset.node FOR UPDATE;
  FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ') AS tables
           FROM steep_repl.init_tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid
           WHERE t.node = init_fast_reset.node AND (t.rows_copied > 0 OR t.chunks_done > 0)
           GROUP BY c.relowner ORDER BY c.relowner LOOP
    PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
  END LOOP;
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    chunks_total = 0, chunks_done = 0, started_at = NULL, finished_at = NULL
  WHERE t.node = init_fast_reset.node;
  UPDATE steep_repl.init_progress p SET tables_done = 0, rows_done = 0, bytes_done = 0, percent = 0, current_tables = '{}',
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_reset.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_reset(text) IS
  'Sidecar step of init.fast: empties what an attempt copied (as each table''s owner) and resets the per-table progress (a new attempt, or a failed one before its indexes and constraints are re-created).';

-- PREPARING -> COPYING (a retried job finds it COPYING already), with the tables emptied.
CREATE FUNCTION steep_repl.init_fast_copying(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_fast_copying.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying') THEN
    RAISE EXCEPTION 'the fast init of node "%" is %, not preparing or copying', node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  PERFORM steep_repl.init_fast_reset(node);
  IF v_state = 'preparing' THEN
    PERFORM steep_repl.transition(node, 'copying', 'fast init: copying in parallel from the slot''s snapshot');
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_copying(text) IS
  'Sidecar step of init.fast: empties what an earlier attempt copied (init_fast_reset), PREPARING -> COPYING.';

-- Record, then drop, the secondary indexes and the unique, exclusion and foreign-key constraints
-- of the init's tables (and foreign keys of other tables that reference them), and the primary
-- key of a table larger than split_threshold on the source (a small one keeps it): the replica
-- identity index, CHECK and NOT NULL stay. Partitions' inherited ones are left.
CREATE FUNCTION steep_repl.init_fast_drop_objects(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  PERFORM 1 FROM steep_repl.nodes nd WHERE nd.name = init_fast_drop_objects.node FOR UPDATE;
  FOR r IN
    WITH scope AS (SELECT t.relid FROM steep_repl.init_tables t WHERE t.node = init_fast_drop_objects.node),
    large AS (SELECT t.relid FROM steep_repl.init_tables t JOIN steep_repl.init_progress p ON p.node = t.node
              WHERE t.node = init_fast_drop_objects.node AND t.source_bytes > coalesce((p.options->>'split_threshold')::bigint, 67108864))
    SELECT c.conrelid AS relid, CASE c.contype WHEN 'f' THEN 'foreign_key' ELSE 'constraint' END AS kind, c.conname::text AS name,
           pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_catalog.pg_get_constraintdef(c.oid)) AS ddl,
           pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop_stmt,
           CASE c.contype WHEN 'f' THEN 0 ELSE 1 END AS ord
    FROM pg_catalog.pg_constraint c
    WHERE c.conparentid = 0 AND (
          (c.contype = 'f' AND (c.conrelid IN (SELECT relid FROM scope) OR c.confrelid IN (SELECT relid FROM scope)))
       OR (c.contype IN ('u', 'x') AND c.conrelid IN (SELECT relid FROM scope)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = c.conindid AND i.indisreplident))
       OR (c.contype = 'p' AND c.conrelid IN (SELECT relid FROM large)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = c.conindid AND i.indisreplident)))
    UNION ALL
    SELECT i.indrelid, 'index', ic.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid),
           pg_catalog.format('DROP INDEX %s', i.indexrelid::regclass), 2
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid IN (SELECT relid FROM scope) AND NOT i.indisprimary AND NOT i.indisreplident
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)
    ORDER BY ord, name
  LOOP
    INSERT INTO steep_repl.init_fast_objects (node, relid, kind, name, ddl)
    VALUES (init_fast_drop_objects.node, r.relid, r.kind, r.name, r.ddl);
    PERFORM steep_repl._exec_as_owner(r.relid::regclass, r.drop_stmt);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_drop_objects(text) IS
  'Sidecar step of init.fast: records in init_fast_objects, then drops as the owner, the secondary indexes and unique/exclusion/foreign-key constraints of the init''s tables (and foreign keys referencing them), and the primary key of tables larger than split_threshold. Returns how many.';

-- Re-create one recorded object as its table's owner, and forget it. The row lock makes two
-- sessions restoring at once (the job and a cancel) create it once.
CREATE FUNCTION steep_repl.init_fast_restore_object(id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o steep_repl.init_fast_objects;
BEGIN
  SELECT * INTO o FROM steep_repl.init_fast_objects f WHERE f.id = init_fast_restore_object.id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = o.relid) THEN
    PERFORM steep_repl._exec_as_owner(o.relid::regclass, o.ddl);
  END IF;
  DELETE FROM steep_repl.init_fast_objects f WHERE f.id = o.id;
  RETURN true;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_restore_object(bigint) IS
  'Sidecar step of init.fast: re-creates one index or constraint recorded in init_fast_objects as its table''s owner and deletes the record; false when another session did already.';

CREATE FUNCTION steep_repl._fast_restore_all(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
  n integer := 0;
BEGIN
  FOR v_id IN SELECT f.id FROM steep_repl.init_fast_objects f WHERE f.node = _fast_restore_all.node
              ORDER BY f.kind = 'foreign_key', f.id LOOP
    IF steep_repl.init_fast_restore_object(v_id) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._fast_restore_all(text) IS
  'Internal: re-creates every index and constraint a fast init of node dropped (foreign keys last); returns how many.';

-- One chunk (a block range of a table, or the whole table) is in, in the transaction that
-- copied it: the table's and the init's progress.
CREATE FUNCTION steep_repl.init_fast_chunk_done(node text, schema_name text, table_name text, rows_copied bigint,
                                                bytes_copied bigint, chunks_total integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_done int;
  v_rows bigint;
  v_bytes bigint;
  v_total bigint;
BEGIN
  UPDATE steep_repl.init_tables t SET
    rows_copied = t.rows_copied + init_fast_chunk_done.rows_copied,
    bytes_copied = t.bytes_copied + init_fast_chunk_done.bytes_copied,
    chunks_total = init_fast_chunk_done.chunks_total, chunks_done = t.chunks_done + 1,
    sync_state = CASE WHEN t.chunks_done + 1 >= init_fast_chunk_done.chunks_total THEN 'synced' ELSE 'copying' END,
    fraction = CASE WHEN t.chunks_done + 1 >= init_fast_chunk_done.chunks_total THEN 1
                    ELSE least(0.99, (t.chunks_done + 1)::numeric / init_fast_chunk_done.chunks_total) END,
    started_at = coalesce(t.started_at, pg_catalog.now()),
    finished_at = CASE WHEN t.chunks_done + 1 >= init_fast_chunk_done.chunks_total THEN pg_catalog.now() END
  WHERE t.node = init_fast_chunk_done.node AND t.schema_name = init_fast_chunk_done.schema_name
    AND t.table_name = init_fast_chunk_done.table_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not in the init of node "%"', schema_name, table_name, node USING ERRCODE = 'undefined_table';
  END IF;
  SELECT pg_catalog.count(*) FILTER (WHERE t.sync_state = 'synced'), coalesce(pg_catalog.sum(t.rows_copied), 0),
         coalesce(pg_catalog.sum(pg_catalog.round(t.source_bytes * t.fraction)), 0)::bigint, coalesce(pg_catalog.sum(t.source_bytes), 0)
    INTO v_done, v_rows, v_bytes, v_total
  FROM steep_repl.init_tables t WHERE t.node = init_fast_chunk_done.node;
  UPDATE steep_repl.init_progress p SET tables_done = v_done, rows_done = v_rows, bytes_done = v_bytes,
    -- 99 at most while copying: the indexes are still to be built and the subscription made.
    percent = greatest(p.percent, least(99, pg_catalog.round(100.0 * v_bytes / NULLIF(v_total, 0), 2))),
    current_tables = (SELECT coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name)
                                      ORDER BY t.schema_name, t.table_name), '{}')
                      FROM steep_repl.init_tables t WHERE t.node = init_fast_chunk_done.node AND t.sync_state = 'copying'),
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_chunk_done.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_chunk_done(text, text, text, bigint, bigint, integer) IS
  'Sidecar step of init.fast: one chunk of schema.table is copied (rows, COPY bytes, of chunks_total): per-table and init progress.';

CREATE FUNCTION steep_repl.init_fast_message(node text, message text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.init_progress p SET message = NULLIF(init_fast_message.message, ''), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_message.node;
$$;
COMMENT ON FUNCTION steep_repl.init_fast_message(text, text) IS 'Sidecar step of init.fast: what it is doing (init_progress.message).';
