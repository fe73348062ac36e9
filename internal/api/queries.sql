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

-- name: ReleaseJob
SELECT steep_repl.release_job($1, $2);
