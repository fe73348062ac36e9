-- name: RegisterNode
SELECT steep_repl.register_node($1, $2, $3);

-- name: UnregisterNode
SELECT steep_repl.unregister_node($1);

-- name: Transition
SELECT steep_repl.transition($1, $2, $3);

-- name: ListNodes
SELECT name, is_local, init_state, init_source_node, init_started_at, init_completed_at,
       state_changed_at, last_error
FROM steep_repl.nodes ORDER BY name;

-- name: EnqueueJob
SELECT steep_repl.enqueue_job($1, $2, $3, $4);

-- name: ClaimJob
SELECT id, kind, args, node, attempt, max_attempts, checkpoint
FROM steep_repl.claim_job($1, $2, $3);

-- name: HeartbeatJob
SELECT steep_repl.heartbeat_job($1, $2, $3, $4);

-- name: FinishJob
SELECT steep_repl.finish_job($1, $2, $3, $4, $5);

-- name: CancelJob
SELECT steep_repl.cancel_job($1);

-- name: GetJob
SELECT id, kind, args, node, state, attempt, max_attempts, created_at, scheduled_at, attempted_at,
       finalized_at, lease_owner, lease_expires_at, cancel_requested_at, result, error
FROM steep_repl.jobs WHERE id = $1;

-- name: ListJobs
SELECT id, kind, args, node, state, attempt, max_attempts, created_at, scheduled_at, attempted_at,
       finalized_at, lease_owner, lease_expires_at, cancel_requested_at, result, error
FROM steep_repl.jobs
WHERE ($1::text IS NULL OR state = $1)
ORDER BY id DESC LIMIT $2;

-- name: RecentEvents
SELECT id, at, node, event, from_state, to_state, detail
FROM steep_repl.events
WHERE ($1::text IS NULL OR node = $1)
ORDER BY id DESC LIMIT $2;

-- name: Tick
SELECT steep_repl.tick();

-- name: WakeSupervisor
SELECT steep_repl.wake_supervisor();

-- name: ListenJobs
LISTEN steep_repl_jobs;

-- name: ReleaseJob
SELECT steep_repl.release_job($1, $2);

-- name: StartInit
SELECT steep_repl.start_init($1, $2, $3, $4);

-- name: CancelInit
SELECT steep_repl.cancel_init($1);

-- name: InitPlan
SELECT steep_repl.init_plan($1);

-- name: InitSubscribed
SELECT steep_repl._init_subscribed($1, $2, $3);

-- name: InitFailed
SELECT steep_repl.init_failed($1, $2);

-- name: InitCancelled
SELECT steep_repl.init_cancelled($1, $2);

-- name: InitProgress
SELECT p.node, p.source_node, n.init_state, p.phase, p.percent, p.tables_total, p.tables_done, p.current_tables,
       p.large_tables, p.bytes_total, p.bytes_done, p.rows_total, p.rows_done, p.rows_per_sec, p.bytes_per_sec,
       p.eta_seconds, p.parallel_workers, p.lag_bytes, p.stalled_since, p.started_at, p.updated_at,
       coalesce(n.last_error, p.message)
FROM steep_repl.init_progress p JOIN steep_repl.nodes n ON n.name = p.node
WHERE p.node = $1;

-- name: InitTables
SELECT schema_name, table_name, sync_state, source_bytes, source_rows, rows_copied, bytes_copied, fraction,
       is_large, started_at, finished_at, chunks_total, chunks_done
FROM steep_repl.init_tables WHERE node = $1 ORDER BY schema_name, table_name;

-- name: SubscriptionExists
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = $1);

-- name: PublicationExists
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1);

-- name: SyncWorkerSettings
SELECT current_setting('max_sync_workers_per_subscription')::int, current_setting('max_logical_replication_workers')::int;

-- name: ReloadConf
SELECT pg_reload_conf();

-- name: SourceSlots
SELECT slot_name, active FROM pg_catalog.pg_replication_slots
WHERE slot_name = $1 OR ($2::oid IS NOT NULL AND slot_name LIKE 'pg\_' || $2::text || '\_sync\_%');

-- name: DropSlot
SELECT pg_catalog.pg_drop_replication_slot($1);

-- name: ActiveInitStartJobs
SELECT count(*) FROM steep_repl.jobs WHERE kind IN ('init.start', 'init.fast', 'init.merge', 'reinit.start', 'snapshot.init', 'snapshot.apply') AND node = $1
  AND state IN ('queued', 'running');

-- name: StartReinit
SELECT steep_repl.start_reinit($1, $2);

-- name: ReinitTruncate
SELECT steep_repl.reinit_truncate($1);

-- name: ReinitCopying
SELECT steep_repl.reinit_copying($1, $2);

-- name: ReinitCancelled
SELECT steep_repl.reinit_cancelled($1, $2);

-- name: PublicationTables
SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2;
