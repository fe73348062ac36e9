-- Queries of the console (steep-console): read-only views of one node's database.

-- name: ConsoleServerInfo
SELECT pg_catalog.current_setting('server_version_num')::int,
       pg_catalog.to_regclass('steep_repl.nodes') IS NOT NULL,
       CASE WHEN pg_catalog.to_regclass('steep_repl.nodes') IS NULL THEN false
            ELSE pg_catalog.has_column_privilege('steep_repl.nodes', 'conninfo', 'SELECT') END,
       pg_catalog.to_regclass('steep_repl.snapshots') IS NOT NULL
         AND pg_catalog.to_regclass('steep_repl.snapshot_progress') IS NOT NULL
         AND pg_catalog.to_regprocedure('steep_repl.list_snapshots()') IS NOT NULL,
       pg_catalog.to_regclass('steep_repl.supervisor_duties') IS NOT NULL,
       coalesce(pg_catalog.current_setting('steep_repl.snapshot_root', true), '');

-- name: ConsoleNodeConninfos
SELECT name, conninfo FROM steep_repl.nodes ORDER BY name;

-- name: ConsoleListenEvents
LISTEN steep_repl_events;

-- name: ConsoleListenProgress
LISTEN steep_repl_progress;

-- name: ConsoleSubscriptions
SELECT s.subname::text, s.subslotname::text, s.subenabled
FROM pg_catalog.pg_subscription s
WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
ORDER BY s.subname;

-- name: ConsoleSubscriptionsPG18
SELECT s.subname::text, s.subslotname::text, s.subenabled,
       coalesce(st.confl_insert_exists, 0), coalesce(st.confl_update_origin_differs, 0),
       coalesce(st.confl_update_exists, 0), coalesce(st.confl_update_missing, 0),
       coalesce(st.confl_delete_origin_differs, 0), coalesce(st.confl_delete_missing, 0),
       coalesce(st.confl_multiple_unique_conflicts, 0)
FROM pg_catalog.pg_subscription s
LEFT JOIN pg_catalog.pg_stat_subscription_stats st ON st.subid = s.oid
WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
ORDER BY s.subname;

-- name: ConsoleSlotLags
SELECT slot_name::text, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
FROM pg_catalog.pg_replication_slots
WHERE slot_type = 'logical' AND confirmed_flush_lsn IS NOT NULL AND NOT pg_catalog.pg_is_in_recovery()
ORDER BY slot_name;

-- name: ConsoleInitSamples
SELECT s.at, s.rows_done, s.bytes_done
FROM steep_repl.init_samples s
WHERE s.node = $1
  AND s.at >= (SELECT max(m.at) FROM steep_repl.init_samples m WHERE m.node = $1) - pg_catalog.make_interval(secs => $2::float8)
ORDER BY s.at;

-- name: ConsoleSnapshotProgress
SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p) ORDER BY p.job_id), '[]')
FROM steep_repl.snapshot_progress p
WHERE p.job_id = ANY ($1::bigint[]);

-- name: ConsoleSupervisorDuties
SELECT d.name, d.consecutive_failures, d.last_ok, d.last_error, d.last_error_at, d.next_try_at
FROM steep_repl.supervisor_duties d
ORDER BY d.name;
