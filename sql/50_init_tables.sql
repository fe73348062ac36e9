-- Automatic init (copy_data = true): what an init is doing, per node and per table.
-- Written by start_init() and the sidecar's init.start job, refreshed by tick().

CREATE TABLE steep_repl.init_progress (
  node                 text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  source_node          text NOT NULL,
  job_id               bigint,
  method               text NOT NULL,
  options              jsonb NOT NULL,
  publication          text NOT NULL,
  publication_created  boolean NOT NULL DEFAULT false,
  subscription         text NOT NULL,
  slot_name            text NOT NULL,
  subscription_oid     oid,
  phase                text NOT NULL DEFAULT 'preparing'
                       CONSTRAINT phase_known REFERENCES steep_repl.init_states (state),
  tables_total         integer NOT NULL DEFAULT 0,
  tables_done          integer NOT NULL DEFAULT 0,
  current_tables       text[] NOT NULL DEFAULT '{}',
  large_tables         text[] NOT NULL DEFAULT '{}',
  bytes_total          bigint NOT NULL DEFAULT 0,
  bytes_done           bigint NOT NULL DEFAULT 0,
  rows_total           bigint NOT NULL DEFAULT 0,
  rows_done            bigint NOT NULL DEFAULT 0,
  percent              numeric(5,2) NOT NULL DEFAULT 0 CONSTRAINT percent_range CHECK (percent BETWEEN 0 AND 100),
  rows_per_sec         numeric,
  bytes_per_sec        numeric,
  eta_seconds          numeric,
  parallel_workers     integer NOT NULL,
  lag_bytes            bigint,
  lag_threshold_bytes  bigint NOT NULL,
  stall_timeout        interval NOT NULL,
  source_timeout       interval NOT NULL,
  stalled_since        timestamptz,
  source_unreachable_since timestamptz,
  last_progress_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
  started_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
  copy_done_at         timestamptz,
  synchronized_at      timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
  message              text,
  errors_forgiven      bigint NOT NULL DEFAULT 0,
  errors_seen_at       timestamptz,
  errors_seen          bigint,
  errors_grown_at      timestamptz,
  CONSTRAINT done_within_total CHECK (tables_done <= tables_total)
);
COMMENT ON TABLE steep_repl.init_progress IS
  'One row per node being (or last) initialized: phase, percent by bytes, rows/s and bytes/s over a rolling 10 s window, ETA, lag. Refreshed by tick().';
COMMENT ON COLUMN steep_repl.init_progress.percent IS
  'Copy progress weighted by source table size (pg_table_size); 100 when every table is copied. Never decreases.';
COMMENT ON COLUMN steep_repl.init_progress.lag_bytes IS
  'On the source: pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) of the init''s slot, i.e. WAL the source wrote that the target has not confirmed as applied. Measured while CATCHING_UP.';
COMMENT ON COLUMN steep_repl.init_progress.phase IS
  'The node''s init state while this init runs; written only by steep_repl.transition().';
COMMENT ON COLUMN steep_repl.init_progress.errors_forgiven IS
  'The subscription''s sync + apply error count (pg_stat_subscription_stats) up to which errors were its source''s outage (a worker lost or could not open its connection while the source was unreachable): they fail the init only through source_timeout.';
COMMENT ON COLUMN steep_repl.init_progress.errors_seen_at IS
  'When the subscription last started counting sync/apply errors while its source answered (NULL: none pending): errors that stop within _init_error_grace() were a blip and are forgiven; errors still growing after it fail the init.';
COMMENT ON COLUMN steep_repl.init_progress.errors_seen IS 'The sync + apply error count when it last grew while pending.';
COMMENT ON COLUMN steep_repl.init_progress.errors_grown_at IS 'When the pending error count last grew.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_progress', '');

CREATE TABLE steep_repl.init_tables (
  node           text NOT NULL REFERENCES steep_repl.init_progress (node) ON DELETE CASCADE,
  schema_name    text NOT NULL,
  table_name     text NOT NULL,
  relid          oid NOT NULL,
  source_bytes   bigint NOT NULL DEFAULT 0,
  source_rows    bigint NOT NULL DEFAULT 0,
  is_large       boolean NOT NULL DEFAULT false,
  sync_state     text NOT NULL DEFAULT 'pending'
                 CONSTRAINT sync_state_valid CHECK (sync_state IN ('pending', 'copying', 'synced', 'ready')),
  rows_copied    bigint NOT NULL DEFAULT 0,
  bytes_copied   bigint NOT NULL DEFAULT 0,
  fraction       numeric NOT NULL DEFAULT 0 CONSTRAINT fraction_range CHECK (fraction BETWEEN 0 AND 1),
  n_tup_ins_base bigint NOT NULL DEFAULT 0,
  started_at     timestamptz,
  finished_at    timestamptz,
  chunks_total   integer NOT NULL DEFAULT 0,
  chunks_done    integer NOT NULL DEFAULT 0,
  PRIMARY KEY (node, schema_name, table_name)
);
COMMENT ON TABLE steep_repl.init_tables IS
  'Per-table progress of an init: sync state (from pg_subscription_rel), rows and COPY bytes (pg_stat_progress_copy, pg_stat_user_tables), source size.';
COMMENT ON COLUMN steep_repl.init_tables.chunks_total IS 'A fast init: the block ranges the table is copied in (0 for the other methods).';
COMMENT ON COLUMN steep_repl.init_tables.chunks_done IS 'A fast init: the block ranges copied and committed.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_tables', '');

CREATE TABLE steep_repl.init_samples (
  node       text NOT NULL REFERENCES steep_repl.init_progress (node) ON DELETE CASCADE,
  at         timestamptz NOT NULL,
  rows_done  bigint NOT NULL,
  bytes_done bigint NOT NULL,
  PRIMARY KEY (node, at)
);
COMMENT ON TABLE steep_repl.init_samples IS
  'Progress samples of the last 2 minutes (rates over a rolling 10 s window; the console draws 60 s of them).';

-- Names an init uses; derived, never stored twice. Node names are at most 28 characters,
-- so every name fits in NAMEDATALEN.
CREATE FUNCTION steep_repl._init_names(target text, source text,
  OUT publication text, OUT subscription text, OUT slot_name text)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'sr_pub_' || target, 'sr_' || source || '_' || target, 'sr_' || source || '_' || target;
$$;
COMMENT ON FUNCTION steep_repl._init_names(text, text) IS 'Internal: publication, subscription and slot names of an init.';
