-- Two-phase snapshots: what was generated on this node, what was applied to it, and the live
-- progress of both. The sidecar does the file I/O; these tables are what it resumes from.
--
--   snapshots.state:        queued -> generating -> complete | failed | cancelled
--                           any -> deleting -> deleted (delete_snapshot)
--   snapshot_applies.state: queued -> applying -> complete | failed | cancelled

CREATE TABLE steep_repl.snapshots (
  id                text PRIMARY KEY CONSTRAINT snapshot_id_format CHECK (id ~ '^snap_[a-z0-9_]{1,40}$'),
  path              text NOT NULL CONSTRAINT path_absolute CHECK (path LIKE '/%'),
  state             text NOT NULL DEFAULT 'queued'
                    CONSTRAINT snapshot_state_valid CHECK (state IN
                      ('queued', 'generating', 'complete', 'failed', 'cancelled', 'deleting', 'deleted')),
  options           jsonb NOT NULL,
  compression       text NOT NULL CONSTRAINT compression_valid CHECK (compression IN ('none', 'gzip', 'lz4', 'zstd')),
  parallel          integer NOT NULL CONSTRAINT parallel_range CHECK (parallel BETWEEN 1 AND 16),
  source_node       text NOT NULL,
  publication       text NOT NULL,
  slot_name         text NOT NULL,
  job_id            bigint,
  lsn               pg_lsn,
  exported_snapshot text,
  slot_expiry       interval NOT NULL,
  slot_expires_at   timestamptz,
  slot_dropped_at   timestamptz,
  tables_total      integer,
  rows_total        bigint,
  bytes_raw         bigint,
  bytes_compressed  bigint,
  restarts          integer NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
  completed_at      timestamptz,
  error             text,
  CONSTRAINT complete_has_lsn CHECK (state <> 'complete' OR (lsn IS NOT NULL AND completed_at IS NOT NULL)),
  CONSTRAINT failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
);
COMMENT ON TABLE steep_repl.snapshots IS
  'Snapshots generated on this node (generate_snapshot): directory, consistent LSN, slot kept until slot_expires_at, totals.';
COMMENT ON COLUMN steep_repl.snapshots.lsn IS 'The consistent point of the snapshot''s slot: the data is exactly the database as of this LSN.';
COMMENT ON COLUMN steep_repl.snapshots.exported_snapshot IS
  'Name of the exported snapshot while the generating sidecar holds it (a resumed job imports it if it is still valid).';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshots', '');

CREATE TABLE steep_repl.snapshot_tables (
  snapshot_id      text NOT NULL REFERENCES steep_repl.snapshots (id) ON DELETE CASCADE,
  schema_name      text NOT NULL,
  table_name       text NOT NULL,
  file             text NOT NULL,
  est_bytes        bigint NOT NULL DEFAULT 0,
  state            text NOT NULL DEFAULT 'pending' CONSTRAINT table_state_valid CHECK (state IN ('pending', 'done')),
  rows             bigint,
  raw_bytes        bigint,
  compressed_bytes bigint,
  sha256           text,
  finished_at      timestamptz,
  PRIMARY KEY (snapshot_id, schema_name, table_name),
  CONSTRAINT done_has_checksum CHECK (state <> 'done' OR (sha256 IS NOT NULL AND rows IS NOT NULL))
);
COMMENT ON TABLE steep_repl.snapshot_tables IS
  'Per-table files of a generated snapshot; a table is done once its file is written, synced and renamed.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_tables', '');

CREATE TABLE steep_repl.snapshot_applies (
  id              bigserial PRIMARY KEY,
  job_id          bigint,
  path            text NOT NULL CONSTRAINT path_absolute CHECK (path LIKE '/%'),
  snapshot_id     text,
  source_node     text,
  lsn             pg_lsn,
  options         jsonb NOT NULL,
  state           text NOT NULL DEFAULT 'queued'
                  CONSTRAINT apply_state_valid CHECK (state IN ('queued', 'applying', 'complete', 'failed', 'cancelled')),
  subscription    text,
  tuples_skipped  bigint NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
  completed_at    timestamptz,
  error           text,
  requested_by    regrole,
  CONSTRAINT failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
);
COMMENT ON TABLE steep_repl.snapshot_applies IS
  'Snapshots applied to this node (apply_snapshot); snapshot_id, source_node and lsn come from the manifest once the sidecar validated it.';
COMMENT ON COLUMN steep_repl.snapshot_applies.requested_by IS
  'The role that called apply_snapshot (or start_init two_phase): pg_restore restores the schema as it (--role). NULL for an apply queued before 1.1: restored as the sidecar''s role.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_applies', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_applies_id_seq', '');

CREATE TABLE steep_repl.snapshot_apply_tables (
  apply_id       bigint NOT NULL REFERENCES steep_repl.snapshot_applies (id) ON DELETE CASCADE,
  schema_name    text NOT NULL,
  table_name     text NOT NULL,
  rows           bigint NOT NULL,
  tuples_skipped bigint NOT NULL DEFAULT 0,
  raw_bytes      bigint NOT NULL,
  sha256         text NOT NULL,
  created        boolean NOT NULL DEFAULT false,
  loaded_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  PRIMARY KEY (apply_id, schema_name, table_name)
);
COMMENT ON TABLE steep_repl.snapshot_apply_tables IS
  'Tables an apply has loaded and verified: each row is written in the same transaction as the table''s data, so a resumed apply skips exactly these.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_apply_tables', '');
COMMENT ON COLUMN steep_repl.snapshot_apply_tables.created IS 'The apply created the table from the manifest''s DDL (its foreign keys are added once every table is loaded).';

CREATE TABLE steep_repl.snapshot_progress (
  job_id             bigint PRIMARY KEY,
  snapshot_id        text,
  phase              text NOT NULL CONSTRAINT phase_valid CHECK (phase IN ('generation', 'application')),
  step               text NOT NULL,
  percent            numeric(5,2) NOT NULL DEFAULT 0 CONSTRAINT percent_range CHECK (percent BETWEEN 0 AND 100),
  bytes_done         bigint NOT NULL DEFAULT 0,
  bytes_total        bigint NOT NULL DEFAULT 0,
  rows_done          bigint NOT NULL DEFAULT 0,
  rows_total         bigint NOT NULL DEFAULT 0,
  tables_done        integer NOT NULL DEFAULT 0,
  tables_total       integer NOT NULL DEFAULT 0,
  throughput_bytes_s numeric,
  eta_seconds        numeric,
  current_table      text,
  compression_ratio  numeric,
  checksums_verified integer NOT NULL DEFAULT 0,
  checksums_failed   integer NOT NULL DEFAULT 0,
  tuples_skipped     bigint NOT NULL DEFAULT 0,
  message            text,
  started_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at         timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE steep_repl.snapshot_progress IS
  'Live progress of a snapshot job (generation on the source, application on a target), refreshed by the sidecar at least every 500 ms and announced on NOTIFY steep_repl_progress. Throughput is over a rolling 10 s window; percent never decreases within an attempt.';
COMMENT ON COLUMN steep_repl.snapshot_progress.compression_ratio IS 'Raw COPY bytes / file bytes of the tables written or read so far.';

CREATE FUNCTION steep_repl._snapshot_progress_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Small payload: listeners re-read the row.
  PERFORM pg_catalog.pg_notify('steep_repl_progress', pg_catalog.json_build_object(
    'job_id', NEW.job_id, 'snapshot_id', NEW.snapshot_id, 'phase', NEW.phase, 'percent', NEW.percent)::text);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_progress_notify() IS 'Internal: NOTIFY steep_repl_progress on every progress write.';
CREATE TRIGGER snapshot_progress_notify AFTER INSERT OR UPDATE ON steep_repl.snapshot_progress
  FOR EACH ROW EXECUTE FUNCTION steep_repl._snapshot_progress_notify();

CREATE TABLE steep_repl.snapshot_samples (
  job_id     bigint NOT NULL REFERENCES steep_repl.snapshot_progress (job_id) ON DELETE CASCADE,
  at         timestamptz NOT NULL,
  bytes_done bigint NOT NULL,
  PRIMARY KEY (job_id, at)
);
COMMENT ON TABLE steep_repl.snapshot_samples IS
  'Progress samples of the snapshot jobs of the last rate window (steep_repl._rate_window()), of the current attempt and phase: what throughput_bytes_s and eta_seconds of snapshot_progress are computed from.';

-- The sidecar reports counts; the rate and the ETA are computed here, as tick() does for inits.
CREATE FUNCTION steep_repl._snapshot_progress_set(job_id bigint, progress jsonb, restart boolean,
  now timestamptz DEFAULT NULL) RETURNS steep_repl.snapshot_progress
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.clock_timestamp());
  x steep_repl.snapshot_progress := pg_catalog.jsonb_populate_record(NULL::steep_repl.snapshot_progress, progress);
  v_then record;
  v_row steep_repl.snapshot_progress;
BEGIN
  -- A restarted attempt or a new phase measures its rate afresh.
  IF restart OR NOT EXISTS (SELECT 1 FROM steep_repl.snapshot_progress p
                            WHERE p.job_id = _snapshot_progress_set.job_id AND p.phase = x.phase) THEN
    DELETE FROM steep_repl.snapshot_samples s WHERE s.job_id = _snapshot_progress_set.job_id;
  END IF;
  DELETE FROM steep_repl.snapshot_samples s WHERE s.at < v_now - steep_repl._rate_window();
  SELECT s.at, s.bytes_done INTO v_then FROM steep_repl.snapshot_samples s
  WHERE s.job_id = _snapshot_progress_set.job_id AND s.at >= v_now - steep_repl._rate_window() AND s.at < v_now
  ORDER BY s.at LIMIT 1;
  SELECT r.per_sec, r.eta_seconds INTO x.throughput_bytes_s, x.eta_seconds
  FROM steep_repl._rate_eta(x.bytes_done, x.bytes_total, v_now, v_then.bytes_done, v_then.at) r;

  INSERT INTO steep_repl.snapshot_progress AS p (job_id, snapshot_id, phase, step, percent, bytes_done, bytes_total,
    rows_done, rows_total, tables_done, tables_total, throughput_bytes_s, eta_seconds, current_table, compression_ratio,
    checksums_verified, checksums_failed, tuples_skipped, message, started_at, updated_at)
  VALUES (_snapshot_progress_set.job_id, x.snapshot_id, x.phase, x.step, x.percent, x.bytes_done, x.bytes_total,
    x.rows_done, x.rows_total, x.tables_done, x.tables_total, x.throughput_bytes_s, x.eta_seconds, x.current_table,
    x.compression_ratio, x.checksums_verified, x.checksums_failed, x.tuples_skipped, x.message, v_now, v_now)
  ON CONFLICT ON CONSTRAINT snapshot_progress_pkey DO UPDATE SET
    snapshot_id = coalesce(EXCLUDED.snapshot_id, p.snapshot_id), phase = EXCLUDED.phase, step = EXCLUDED.step,
    -- percent never decreases within a phase, unless the caller restarts it.
    percent = CASE WHEN restart OR p.phase <> EXCLUDED.phase THEN EXCLUDED.percent ELSE greatest(p.percent, EXCLUDED.percent) END,
    bytes_done = EXCLUDED.bytes_done, bytes_total = EXCLUDED.bytes_total, rows_done = EXCLUDED.rows_done,
    rows_total = EXCLUDED.rows_total, tables_done = EXCLUDED.tables_done, tables_total = EXCLUDED.tables_total,
    throughput_bytes_s = EXCLUDED.throughput_bytes_s, eta_seconds = EXCLUDED.eta_seconds,
    current_table = EXCLUDED.current_table, compression_ratio = EXCLUDED.compression_ratio,
    checksums_verified = EXCLUDED.checksums_verified, checksums_failed = EXCLUDED.checksums_failed,
    tuples_skipped = EXCLUDED.tuples_skipped, message = EXCLUDED.message,
    started_at = CASE WHEN restart OR p.phase <> EXCLUDED.phase THEN v_now ELSE p.started_at END,
    updated_at = v_now
  RETURNING * INTO v_row;
  INSERT INTO steep_repl.snapshot_samples (job_id, at, bytes_done) VALUES (_snapshot_progress_set.job_id, v_now, x.bytes_done)
  ON CONFLICT DO NOTHING;
  RETURN v_row;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_progress_set(bigint, jsonb, boolean, timestamptz) IS
  'Sidecar step: writes a snapshot job''s progress row from the counts in progress (a snapshot_progress row as jsonb; its throughput and ETA are ignored) and computes throughput_bytes_s and eta_seconds with steep_repl._rate_eta over snapshot_samples. Percent never decreases within a phase unless restart. now defaults to clock_timestamp().';
