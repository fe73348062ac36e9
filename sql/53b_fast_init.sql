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
  recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  weight      bigint NOT NULL DEFAULT 0,
  stage       integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE steep_repl.init_fast_objects IS
  'Indexes and constraints a fast init dropped from the target''s tables before loading them, with the DDL (read from this node''s own catalog: pg_get_indexdef / pg_get_constraintdef, with the tablespace, storage parameters, comments, CLUSTER ON, statistics targets and attached partitions'' indexes) that re-creates them as they were, as the table''s owner: after the load, on cancel_init, and before a new start_init.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_fast_objects', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_fast_objects_id_seq', '');
COMMENT ON COLUMN steep_repl.init_fast_objects.weight IS
  'The bytes of the table the object is on (its source size, or its size here for a table out of the init): its weight in the indexing step''s percent.';
COMMENT ON COLUMN steep_repl.init_fast_objects.stage IS
  'Restore order within its kind (foreign keys after all the others): 0 for an object of a table, 100 - level for one of a partitioned table, so a partition''s index exists before the partitioned index that attaches it.';

-- A size option as SET takes it for a memory setting ('256MB'; kB, MB, GB or TB), within
-- [lo_kb, hi_kb] kilobytes: returned in kB, or 22023.
CREATE FUNCTION steep_repl._fast_size_option(options jsonb, key text, dflt text, lo_kb bigint, hi_kb bigint, hint text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m text[];
  kb numeric;
BEGIN
  IF options ? key AND pg_catalog.jsonb_typeof(options->key) <> 'null' THEN
    IF pg_catalog.jsonb_typeof(options->key) = 'string' THEN
      m := pg_catalog.regexp_match(options->>key, '^\s*([0-9]{1,15})\s*(kB|MB|GB|TB)\s*$');
    END IF;
  ELSE
    m := pg_catalog.regexp_match(dflt, '^([0-9]+)(kB|MB|GB|TB)$');
  END IF;
  IF m IS NOT NULL THEN
    kb := m[1]::numeric * CASE m[2] WHEN 'kB' THEN 1 WHEN 'MB' THEN 1024 WHEN 'GB' THEN 1048576 ELSE 1073741824 END;
  END IF;
  IF kb IS NULL OR kb < lo_kb OR kb > hi_kb THEN
    RAISE EXCEPTION '% must be a size between %kB and %kB with a unit (kB, MB, GB, TB), got %', key, lo_kb, hi_kb, options->key
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  RETURN kb::bigint || 'kB';
END
$$;
COMMENT ON FUNCTION steep_repl._fast_size_option(jsonb, text, text, bigint, bigint, text) IS
  'Internal: a memory size option (''256MB'': a number and kB, MB, GB or TB) within [lo_kb, hi_kb], returned in kB (''262144kB''), or 22023.';

-- The fast init's own options: tables larger than split_threshold bytes are copied in block
-- ranges of about that size, so one large table uses every worker; the sessions that rebuild
-- indexes and constraints run with maintenance_work_mem and max_parallel_maintenance_workers
-- (default half of parallel: parallel sessions build at once, each with that many helpers);
-- copy_format chooses COPY's format (auto: binary where both sides can read it).
CREATE FUNCTION steep_repl._fast_options(method text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF method <> 'fast' OR pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RETURN '{}';
  END IF;
  IF options ? 'copy_format' AND (pg_catalog.jsonb_typeof(options->'copy_format') <> 'string'
                                   OR NOT options->>'copy_format' IN ('auto', 'binary', 'text')) THEN
    RAISE EXCEPTION 'copy_format must be "auto", "binary" or "text", got %', options->'copy_format'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'auto (the default) copies in COPY''s binary format when both servers are of the same major and a table''s column types match, text otherwise; binary forces it.';
  END IF;
  RETURN pg_catalog.jsonb_build_object('copy_format', coalesce(options->>'copy_format', 'auto'), 'split_threshold', steep_repl._int_option(options, 'split_threshold', 67108864, 8192,
    1099511627776, 'split_threshold is the size in bytes above which a table is copied in block ranges of that size (default 64 MiB, at least 8192).'),
    'maintenance_work_mem', steep_repl._fast_size_option(options, 'maintenance_work_mem', '256MB', 1024, 2147483647,
      'maintenance_work_mem is the memory of each session that rebuilds indexes after the load, as for SET (default ''256MB'', 1MB to 2TB).'),
    'max_parallel_maintenance_workers', steep_repl._int_option(options, 'max_parallel_maintenance_workers',
      steep_repl._int_option(options, 'parallel', 4, 1, 16, 'parallel is the number of tables copied at once (default 4).') / 2, 0, 64,
      'max_parallel_maintenance_workers is the helpers of each index build after the load (default half of parallel, 0 to 64).'));
END
$$;
COMMENT ON FUNCTION steep_repl._fast_options(text, jsonb) IS
  'Internal: the options only method fast has (split_threshold 8192..1 TiB, maintenance_work_mem 1MB..2TB, max_parallel_maintenance_workers 0..64, copy_format auto | binary | text, else 22023), validated with their defaults; {} for the other methods.';

-- Empty what an attempt copied (as each table's owner) and reset the per-table progress: a new
-- attempt has a new snapshot, so it starts over, and a failed one leaves nothing half-copied (its
-- foreign keys could not be re-created on it).
CREATE FUNCTION steep_repl.init_fast_reset(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = init_fast_reset.node FOR UPDATE;
  PERFORM steep_repl._truncate_as_owners(ARRAY(SELECT t.relid::regclass FROM steep_repl.init_tables t
                                                WHERE t.node = init_fast_reset.node AND (t.rows_copied > 0 OR t.chunks_done > 0)));
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    chunks_total = 0, chunks_done = 0, started_at = NULL, finished_at = NULL
  WHERE t.node = init_fast_reset.node;
  UPDATE steep_repl.init_progress p SET tables_done = 0, rows_done = 0, bytes_done = 0, percent = 0, current_tables = '{}',
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_reset.node;
  -- The plan and the snapshot's holder belong to the attempt (sql/53c_fast_resume.sql).
  DELETE FROM steep_repl.init_fast_chunks c WHERE c.node = init_fast_reset.node;
  DELETE FROM steep_repl.init_fast_holder h WHERE h.node = init_fast_reset.node;
  DELETE FROM steep_repl.init_fast_loaded l WHERE l.node = init_fast_reset.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_reset(text) IS
  'Sidecar step of init.fast: empties what an attempt copied (as each table''s owner), resets the per-table progress and forgets the attempt''s plan, snapshot holder and loaded LSN (a new attempt, or a failed one before its indexes and constraints are re-created).';

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

-- The indexing step of a fast init: how many of the dropped objects are re-created, weighted
-- by the bytes of their tables (an index of a large table takes longer), and the settings the
-- rebuilding sessions had. One row per node, the last step's.
CREATE TABLE steep_repl.init_fast_indexing (
  node                             text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  objects_total                    integer NOT NULL,
  objects_done                     integer NOT NULL DEFAULT 0,
  bytes_total                      bigint NOT NULL,
  bytes_done                       bigint NOT NULL DEFAULT 0,
  percent                          numeric(5,2) NOT NULL DEFAULT 0 CONSTRAINT percent_range CHECK (percent BETWEEN 0 AND 100),
  maintenance_work_mem             text,
  max_parallel_maintenance_workers integer,
  started_at                       timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at                       timestamptz NOT NULL DEFAULT pg_catalog.now(),
  finished_at                      timestamptz
);
GRANT SELECT ON steep_repl.init_fast_indexing TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_indexing IS
  'The indexing step of node''s last fast init: objects (indexes and constraints) re-created of objects_total, their tables'' bytes as weight of percent, and the maintenance_work_mem / max_parallel_maintenance_workers the rebuilding sessions ran with (read in those sessions).';

CREATE FUNCTION steep_repl._fast_indexing_message(i steep_repl.init_fast_indexing) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('indexing: %s/%s indexes and constraints built, %s%%', i.objects_done, i.objects_total, i.percent);
$$;
COMMENT ON FUNCTION steep_repl._fast_indexing_message(steep_repl.init_fast_indexing) IS
  'Internal: the init_progress message of a fast init''s indexing step ("indexing: 3/12 indexes and constraints built, 45.20%").';

-- The copy is done: the indexing step starts with what is recorded to re-create.
CREATE FUNCTION steep_repl.init_fast_indexing_start(node text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  i steep_repl.init_fast_indexing;
BEGIN
  INSERT INTO steep_repl.init_fast_indexing AS x (node, objects_total, bytes_total, percent, finished_at)
  SELECT init_fast_indexing_start.node, pg_catalog.count(*), coalesce(pg_catalog.sum(f.weight), 0),
         CASE WHEN pg_catalog.count(*) = 0 THEN 100 ELSE 0 END, CASE WHEN pg_catalog.count(*) = 0 THEN pg_catalog.now() END
  FROM steep_repl.init_fast_objects f WHERE f.node = init_fast_indexing_start.node
  ON CONFLICT ON CONSTRAINT init_fast_indexing_pkey DO UPDATE SET objects_total = excluded.objects_total, objects_done = 0,
    bytes_total = excluded.bytes_total, bytes_done = 0, percent = excluded.percent, maintenance_work_mem = NULL,
    max_parallel_maintenance_workers = NULL, started_at = pg_catalog.now(), updated_at = pg_catalog.now(), finished_at = excluded.finished_at
  RETURNING * INTO i;
  UPDATE steep_repl.init_progress p SET message = steep_repl._fast_indexing_message(i), updated_at = pg_catalog.now()
  WHERE p.node = init_fast_indexing_start.node;
  RETURN i.objects_total;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_indexing_start(text) IS
  'Sidecar step of init.fast: the indexing step begins (init_fast_indexing reset to what init_fast_objects holds, the init''s message says so); returns how many objects.';

-- One recorded object is re-created (in its transaction): the indexing step moves on, and
-- notes the settings of the session that built it.
CREATE FUNCTION steep_repl._fast_indexed(o steep_repl.init_fast_objects) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  i steep_repl.init_fast_indexing;
BEGIN
  UPDATE steep_repl.init_fast_indexing x SET objects_done = x.objects_done + 1, bytes_done = x.bytes_done + o.weight,
    percent = CASE WHEN x.objects_done + 1 >= x.objects_total THEN 100
                   WHEN x.bytes_total > 0 THEN least(99.99, pg_catalog.round(100.0 * (x.bytes_done + o.weight) / x.bytes_total, 2))
                   ELSE pg_catalog.round(100.0 * (x.objects_done + 1) / x.objects_total, 2) END,
    maintenance_work_mem = pg_catalog.current_setting('maintenance_work_mem'),
    max_parallel_maintenance_workers = pg_catalog.current_setting('max_parallel_maintenance_workers')::integer,
    updated_at = pg_catalog.now(),
    finished_at = CASE WHEN x.objects_done + 1 >= x.objects_total THEN pg_catalog.now() END
  WHERE x.node = o.node AND x.finished_at IS NULL
  RETURNING * INTO i;
  IF FOUND THEN
    UPDATE steep_repl.init_progress p SET message = steep_repl._fast_indexing_message(i), last_progress_at = pg_catalog.now(),
      updated_at = pg_catalog.now()
    WHERE p.node = o.node;
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._fast_indexed(steep_repl.init_fast_objects) IS
  'Internal: object o was re-created: the indexing step''s count, weighted percent and message, with the session''s maintenance settings.';

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
  PERFORM steep_repl._fast_indexed(o);
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
              ORDER BY f.kind = 'foreign_key', f.stage, f.id LOOP
    IF steep_repl.init_fast_restore_object(v_id) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._fast_restore_all(text) IS
  'Internal: re-creates every index and constraint a fast init of node dropped (by stage: partitions'' before the partitioned ones that attach them; foreign keys last); returns how many.';

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
