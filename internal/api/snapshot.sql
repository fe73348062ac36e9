-- name: GenerateSnapshot
SELECT steep_repl.generate_snapshot($1, $2);

-- name: ApplySnapshot
SELECT steep_repl.apply_snapshot($1, $2);

-- name: DeleteSnapshot
SELECT steep_repl.delete_snapshot($1);

-- name: ListSnapshots
SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]') FROM steep_repl.list_snapshots() s;

-- name: SnapshotProgress
SELECT to_jsonb(p) FROM steep_repl.snapshot_progress p WHERE job_id = $1;

-- name: SetSnapshotProgress
SELECT FROM steep_repl._snapshot_progress_set($1, $2, $3);

-- name: GetSnapshot
SELECT to_jsonb(s) || jsonb_build_object('slot_expiry_s', extract(epoch FROM s.slot_expiry)::bigint)
FROM steep_repl.snapshots s WHERE id = $1;

-- name: SnapshotScope
SELECT schema_name, table_name, relid, bytes, row_estimate, columns, fingerprint, is_partition
FROM steep_repl._snapshot_scope($1);

-- name: SnapshotSequences
SELECT schema_name, sequence_name, ddl, owned_by FROM steep_repl._snapshot_sequences($1);

-- name: SnapshotServerVersion
SELECT current_setting('server_version'), current_setting('server_version_num')::int,
       current_database(), current_setting('server_encoding');

-- name: SnapshotBegin
-- A snapshot worker's transaction; SET TRANSACTION SNAPSHOT must follow before any query.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- name: SnapshotEnd
-- Ends a snapshot worker's read-only transaction (it wrote nothing).
ROLLBACK;

-- name: SnapshotStarted
WITH s AS (
  UPDATE steep_repl.snapshots SET state = 'generating', lsn = $2::pg_lsn, exported_snapshot = $3, error = NULL
  WHERE id = $1 RETURNING id
)
INSERT INTO steep_repl.snapshot_tables (snapshot_id, schema_name, table_name, file, est_bytes)
SELECT s.id, x->>'schema', x->>'table', x->>'file', (x->>'est_bytes')::bigint
FROM s, jsonb_array_elements($4::jsonb) x
ON CONFLICT (snapshot_id, schema_name, table_name) DO UPDATE SET file = EXCLUDED.file, est_bytes = EXCLUDED.est_bytes,
  state = 'pending', rows = NULL, raw_bytes = NULL, compressed_bytes = NULL, sha256 = NULL, finished_at = NULL;

-- name: SnapshotRestart
WITH d AS (DELETE FROM steep_repl.snapshot_tables WHERE snapshot_id = $1)
UPDATE steep_repl.snapshots SET lsn = NULL, exported_snapshot = NULL, restarts = restarts + 1 WHERE id = $1;

-- name: SnapshotEvent
INSERT INTO steep_repl.events (node, event, detail) VALUES ($1, $2, $3);

-- name: SnapshotTablesDone
SELECT schema_name, table_name, file, rows, raw_bytes, compressed_bytes, sha256
FROM steep_repl.snapshot_tables WHERE snapshot_id = $1 AND state = 'done';

-- name: SnapshotTableDone
UPDATE steep_repl.snapshot_tables SET state = 'done', rows = $4, raw_bytes = $5, compressed_bytes = $6, sha256 = $7,
  finished_at = now()
WHERE snapshot_id = $1 AND schema_name = $2 AND table_name = $3;

-- name: SnapshotComplete
UPDATE steep_repl.snapshots SET state = 'complete', completed_at = now(), exported_snapshot = NULL,
  slot_expires_at = CASE WHEN $6 THEN now() + slot_expiry END,
  slot_dropped_at = CASE WHEN $6 THEN NULL ELSE now() END,
  tables_total = $2, rows_total = $3, bytes_raw = $4, bytes_compressed = $5
WHERE id = $1
RETURNING slot_expires_at;

-- name: EnqueueJobAt
SELECT steep_repl.enqueue_job($1, $2, $3, $4, $5);

-- name: SnapshotFinished
UPDATE steep_repl.snapshots SET state = $2, error = $3, exported_snapshot = NULL,
  completed_at = CASE WHEN $2 = 'deleted' THEN completed_at ELSE now() END
WHERE id = $1 AND state NOT IN ('deleting', 'deleted');

-- name: SnapshotDeleted
UPDATE steep_repl.snapshots SET state = 'deleted', exported_snapshot = NULL,
  slot_dropped_at = coalesce(slot_dropped_at, CASE WHEN $2 THEN now() END)
WHERE id = $1;

-- name: SnapshotSlotDropped
UPDATE steep_repl.snapshots SET slot_dropped_at = coalesce(slot_dropped_at, now()) WHERE id = $1;

-- name: SnapshotJobState
SELECT state FROM steep_repl.jobs WHERE id = $1;

-- name: SlotInfo
SELECT active, confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots WHERE slot_name = $1;

-- name: SlotsWithPrefix
SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE starts_with(slot_name::text, $1) AND slot_name <> $1;

-- name: CopySlot
SELECT pg_catalog.pg_copy_logical_replication_slot($1, $2);

-- name: GetApply
SELECT to_jsonb(a) FROM steep_repl.snapshot_applies a WHERE id = $1;

-- name: ApplyLoading
SELECT steep_repl._snapshot_apply_loading($1, $2, $3, $4::pg_lsn);

-- name: ApplyLoadedTables
SELECT schema_name, table_name, rows, tuples_skipped, created FROM steep_repl.snapshot_apply_tables WHERE apply_id = $1;

-- name: RecordTableLoaded
INSERT INTO steep_repl.snapshot_apply_tables (apply_id, schema_name, table_name, rows, tuples_skipped, raw_bytes, sha256, created)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: SetSequence
SELECT pg_catalog.setval($1::regclass, $2, $3);

-- name: ApplyComplete
UPDATE steep_repl.snapshot_applies SET state = 'complete', completed_at = now(), error = NULL,
  tuples_skipped = (SELECT coalesce(sum(t.tuples_skipped), 0) FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = $1)
WHERE id = $1;

-- name: ApplyFailed
SELECT steep_repl._snapshot_apply_failed($1, $2);

-- name: ApplyCancelled
UPDATE steep_repl.snapshot_applies SET state = 'cancelled', completed_at = now() WHERE id = $1 AND state IN ('queued', 'applying');

-- name: ApplySnapshotID
UPDATE steep_repl.snapshot_applies SET snapshot_id = $2 WHERE id = $1;

-- name: LocalForeignKeys
SELECT cn.nspname || '.' || c.relname, pn.nspname || '.' || p.relname
FROM pg_catalog.pg_constraint co
JOIN pg_catalog.pg_class c ON c.oid = co.conrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = co.confrelid JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE co.contype = 'f';

-- name: ConstraintExists
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint co
  WHERE co.conrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND co.conname = $3);

-- name: NodeConninfo
SELECT conninfo FROM steep_repl.nodes WHERE name = $1;

-- name: InitNames
SELECT publication, subscription, slot_name FROM steep_repl._init_names($1, $2);

-- name: LocalNode
SELECT name FROM steep_repl.nodes WHERE is_local;

-- name: SubscriptionState
SELECT oid::bigint, subenabled FROM pg_catalog.pg_subscription
WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());

-- name: OriginAdvance
SELECT pg_catalog.pg_replication_origin_advance('pg_' || $1::bigint::text, $2::pg_lsn);

-- name: SnapshotSubscribed
SELECT steep_repl._snapshot_subscribed($1, $2, $3, $4);

-- name: FindSnapshotByPath
SELECT id FROM steep_repl.snapshots WHERE path = $1 AND state IN ('queued', 'generating', 'complete')
ORDER BY created_at DESC LIMIT 1;

-- name: SnapshotJobOf
SELECT job_id FROM steep_repl.snapshots WHERE id = $1;

-- name: SnapshotDumpExclusions
-- Tables of the dumped schemas the snapshot does not cover (out of its tables option, unlogged,
-- foreign), so pg_dump leaves them out; the partitioned ancestors of covered partitions stay.
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE n.nspname OPERATOR(pg_catalog.=) ANY ($1::text[]) AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'f']::"char"[])
  AND c.oid::bigint OPERATOR(pg_catalog.<>) ALL ($2::bigint[])
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest($2::bigint[]) s(relid), pg_catalog.pg_partition_ancestors(s.relid::oid) a
                  WHERE a.relid OPERATOR(pg_catalog.=) c.oid)
ORDER BY 1, 2;

-- name: SnapshotMatViews
-- Materialized views of the dumped schemas that hold data (apply refreshes them).
SELECT schemaname::text, matviewname::text FROM pg_catalog.pg_matviews
WHERE ispopulated AND schemaname OPERATOR(pg_catalog.=) ANY ($1::text[]) ORDER BY 1, 2;

-- name: ApplyEventRecorded
-- Whether an event of this apply was recorded (the schema steps it took in an earlier attempt).
SELECT EXISTS (SELECT 1 FROM steep_repl.events WHERE event OPERATOR(pg_catalog.=) $2
               AND detail OPERATOR(pg_catalog.@>) pg_catalog.jsonb_build_object('apply_id', $1::bigint));

-- name: ExistingSchemas
SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) ANY ($1::text[]) ORDER BY 1;

-- name: ApplyHalfRestored
-- The apply of snapshot $1 on this node that restored the schema's pre-data section last, when
-- no post-data of the snapshot was restored since (it failed in between), or none: a new
-- apply of the snapshot into the tables it left finishes it.
SELECT (e.detail->>'apply_id')::bigint FROM steep_repl.events e
WHERE e.event OPERATOR(pg_catalog.=) 'snapshot.schema_pre_data' AND e.detail->>'snapshot_id' OPERATOR(pg_catalog.=) $1
  AND NOT EXISTS (SELECT 1 FROM steep_repl.events p WHERE p.event OPERATOR(pg_catalog.=) 'snapshot.schema_post_data'
                  AND p.detail->>'snapshot_id' OPERATOR(pg_catalog.=) $1 AND p.id OPERATOR(pg_catalog.>) e.id)
ORDER BY e.id DESC LIMIT 1;
