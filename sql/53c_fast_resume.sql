-- Resuming a fast init: its exported snapshot is held by a separate process (steep-repl
-- hold-snapshot, started detached by the init.fast job), so it outlives a killed sidecar; the
-- plan of block ranges is recorded with what each committed, so a retried job re-imports the
-- snapshot and copies only what is missing. Without the holder, the job starts over.

CREATE TABLE steep_repl.init_fast_chunks (
  node        text NOT NULL REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  from_block  bigint NOT NULL,
  to_block    bigint NOT NULL,
  of_chunks   integer NOT NULL,
  bytes       bigint NOT NULL,
  done        boolean NOT NULL DEFAULT false,
  PRIMARY KEY (node, schema_name, table_name, from_block)
);
GRANT SELECT ON steep_repl.init_fast_chunks TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_chunks IS
  'The block ranges [from_block, to_block) (to_block -1: to the end) a fast init copies, planned once per snapshot; done when the range''s transaction committed on this node.';

CREATE TABLE steep_repl.init_fast_holder (
  node       text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  pid        integer NOT NULL,
  slot_name  text NOT NULL,
  snapshot   text NOT NULL,
  lsn        pg_lsn NOT NULL,
  started_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
GRANT SELECT ON steep_repl.init_fast_holder TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_holder IS
  'The process (pid, on the sidecar''s host) holding the replication connection of a fast init''s slot and its exported snapshot; it lets go once its row is gone or the init is no longer copying.';

CREATE FUNCTION steep_repl.init_fast_plan(node text, chunks jsonb) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM steep_repl.init_fast_chunks c WHERE c.node = init_fast_plan.node;
  INSERT INTO steep_repl.init_fast_chunks (node, schema_name, table_name, from_block, to_block, of_chunks, bytes)
  SELECT init_fast_plan.node, x.schema_name, x.table_name, x.from_block, x.to_block, x.of_chunks, x.bytes
  FROM pg_catalog.jsonb_to_recordset(chunks) AS x(schema_name text, table_name text, from_block bigint, to_block bigint,
                                                   of_chunks integer, bytes bigint);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_plan(text, jsonb) IS
  'Sidecar step of init.fast: records the block ranges of this snapshot''s copy (a JSON array of {schema_name, table_name, from_block, to_block, of_chunks, bytes}), replacing an earlier plan; returns how many.';

CREATE FUNCTION steep_repl.init_fast_range_done(node text, schema_name text, table_name text, from_block bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE steep_repl.init_fast_chunks c SET done = true
  WHERE c.node = init_fast_range_done.node AND c.schema_name = init_fast_range_done.schema_name
    AND c.table_name = init_fast_range_done.table_name AND c.from_block = init_fast_range_done.from_block AND NOT c.done;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'block range %.% from % of node "%" is not planned or already copied', schema_name, table_name, from_block, node
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_range_done(text, text, text, bigint) IS
  'Sidecar step of init.fast: the block range is copied (in the transaction that copied it); 55000 if it was not pending, so no range is loaded twice.';

CREATE FUNCTION steep_repl.init_fast_holder_record(node text, pid integer, slot_name text, snapshot text, lsn pg_lsn) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO steep_repl.init_fast_holder AS h (node, pid, slot_name, snapshot, lsn)
  VALUES (init_fast_holder_record.node, init_fast_holder_record.pid, init_fast_holder_record.slot_name,
          init_fast_holder_record.snapshot, init_fast_holder_record.lsn)
  ON CONFLICT ON CONSTRAINT init_fast_holder_pkey DO UPDATE SET pid = excluded.pid, slot_name = excluded.slot_name,
    snapshot = excluded.snapshot, lsn = excluded.lsn, started_at = pg_catalog.now();
$$;
COMMENT ON FUNCTION steep_repl.init_fast_holder_record(text, integer, text, text, pg_lsn) IS
  'steep-repl hold-snapshot: records the holder of node''s fast init snapshot (its pid, the slot, the snapshot name and the slot''s consistent LSN).';

-- The snapshot is held as long as the copy goes on, however long (a terabyte copies for hours and
-- a sidecar killed in its fifth hour must still resume), and let go once the init made no
-- progress for idle: a sidecar that never came back must not pin the source's xmin horizon forever.
CREATE FUNCTION steep_repl.init_fast_holder_wanted(node text, pid integer, idle interval) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM steep_repl.init_fast_holder h JOIN steep_repl.nodes n ON n.name = h.node
                 LEFT JOIN steep_repl.init_progress p ON p.node = h.node
                 WHERE h.node = init_fast_holder_wanted.node AND h.pid = init_fast_holder_wanted.pid
                   AND n.init_state IN ('preparing', 'copying')
                   AND greatest(h.started_at, p.last_progress_at) > pg_catalog.now() - idle);
$$;
COMMENT ON FUNCTION steep_repl.init_fast_holder_wanted(text, integer, interval) IS
  'steep-repl hold-snapshot: whether holder pid should keep node''s snapshot (its row is there, the init is still preparing or copying, and it made progress, or the holder started, less than idle ago).';

CREATE FUNCTION steep_repl.init_fast_holder_release(node text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  DELETE FROM steep_repl.init_fast_holder h WHERE h.node = init_fast_holder_release.node;
$$;
COMMENT ON FUNCTION steep_repl.init_fast_holder_release(text) IS
  'Sidecar step of init.fast: the snapshot is no longer needed; its holder sees its row gone and exits.';

-- The copy is in: the slot's consistent LSN the subscription starts from is kept past the
-- snapshot's holder (released now), so a job retried during the indexing step neither copies
-- again nor rebuilds what it re-created (each object is forgotten in the transaction that
-- re-creates it, init_fast_restore_object): it re-creates the rest and subscribes from here.
CREATE TABLE steep_repl.init_fast_loaded (
  node      text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  lsn       pg_lsn NOT NULL,
  loaded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
GRANT SELECT ON steep_repl.init_fast_loaded TO steep_repl_admin;
COMMENT ON TABLE steep_repl.init_fast_loaded IS
  'A fast init whose copy committed every chunk, with the slot''s consistent LSN its subscription starts from: a retried job resumes at the indexing step. Forgotten with the attempt (init_fast_reset).';

CREATE FUNCTION steep_repl.init_fast_loaded(node text, lsn pg_lsn) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM steep_repl.init_fast_chunks c WHERE c.node = init_fast_loaded.node AND NOT c.done) THEN
    RAISE EXCEPTION 'the copy of node "%" has block ranges not copied', node
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO steep_repl.init_fast_loaded AS l (node, lsn) VALUES (init_fast_loaded.node, init_fast_loaded.lsn)
  ON CONFLICT ON CONSTRAINT init_fast_loaded_pkey DO UPDATE SET lsn = excluded.lsn, loaded_at = pg_catalog.now();
  DELETE FROM steep_repl.init_fast_holder h WHERE h.node = init_fast_loaded.node;
  RETURN steep_repl.init_fast_indexing_start(node);
END
$$;
COMMENT ON FUNCTION steep_repl.init_fast_loaded(text, pg_lsn) IS
  'Sidecar step of init.fast: every block range is copied; records the slot''s LSN (init_fast_loaded), releases the snapshot''s holder and starts the indexing step, in one transaction; returns how many objects it re-creates. 55000 while a range is not copied.';
