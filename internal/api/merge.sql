-- name: MergeInitPlan
SELECT steep_repl.init_merge_plan($1)::text;

-- name: MergePlanAs
SELECT apply_order, schema_name, table_name, key::text, category, resolution, tie, local_hash, peer_hash,
       local_committed_at, peer_committed_at
FROM steep_repl._merge_plan($1, $2::jsonb, $3::regrole)
ORDER BY apply_order, schema_name, table_name, key::text;

-- name: MergePlan
SELECT apply_order, schema_name, table_name, key::text, category, resolution, tie, local_hash, peer_hash,
       local_committed_at, peer_committed_at
FROM steep_repl.merge_plan($1, $2::jsonb)
ORDER BY apply_order, schema_name, table_name, key::text;

-- name: MergeRows
SELECT steep_repl._merge_rows($1::regclass, $2::jsonb)::text;

-- name: MergeApply
SELECT steep_repl._merge_apply($1::regclass, $2::jsonb, $3::jsonb)::text;

-- name: MergeOriginEnd
SELECT steep_repl._merge_origin_end();

-- name: MergeBegin
SELECT steep_repl._merge_begin($1, $2::jsonb, $3::regrole);

-- name: MergeAudit
SELECT steep_repl._merge_audit($1, $2::jsonb);

-- name: MergeFinish
SELECT steep_repl._merge_finish($1, $2, $3::jsonb);

-- name: MergeCopying
SELECT steep_repl.init_merge_copying($1, $2::jsonb);

-- name: MergeMoved
SELECT steep_repl.init_merge_moved($1, $2, $3, $4, $5, $6);

-- name: MergeMessage
SELECT steep_repl.init_merge_message($1, $2);

-- name: MergePlanned
SELECT steep_repl.init_merge_planned($1, $2, $3::jsonb);

-- name: MergeLock
SELECT steep_repl._merge_lock($1::jsonb);

-- name: MergeLink
SELECT steep_repl.init_merge_link($1, $2, $3, $4, $5::jsonb, $6::jsonb);

-- name: MergeLocalTimeouts
SELECT pg_catalog.set_config('lock_timeout', $1, true), pg_catalog.set_config('statement_timeout', $2, true);

-- name: MergeYieldDeadlocks
SELECT CASE WHEN pg_catalog.current_setting('is_superuser')::boolean
            THEN pg_catalog.set_config('deadlock_timeout', $1, true) END;

-- name: MergeSessionTimeout
SELECT pg_catalog.set_config('statement_timeout', $1, false);

-- name: MergeCreateSlot
SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput');

-- name: MergeMaxPrepared
SELECT pg_catalog.current_setting('max_prepared_transactions')::int;

-- name: MergePreparedXacts
SELECT gid FROM pg_catalog.pg_prepared_xacts
WHERE gid LIKE $1 || '%' AND database = pg_catalog.current_database() ORDER BY gid;

-- name: MergeCurrentXid
SELECT pg_catalog.pg_current_xact_id()::text;

-- name: MergeXactStatus
SELECT pg_catalog.pg_xact_status($1::xid8);

-- name: MergeOriginAs
SELECT steep_repl._merge_origin_as($1);

-- name: MergeAuditAgain
SELECT steep_repl._merge_audit_again($1, $2::jsonb);

-- name: MergeChangedSince
SELECT steep_repl._merge_changed_since($1::regclass, $2::jsonb, $3, $4);

-- name: MergeClock
SELECT pg_catalog.clock_timestamp();

-- name: MergeBaseline
SELECT steep_repl._merge_baseline($1)::text;

-- name: MergeRecordBaseline
SELECT steep_repl._merge_record_baseline($1, $2, $3::xid8, $4::xid8);

-- name: MergeRecordPass
SELECT steep_repl._merge_record_pass($1, $2::xid8, $3::xid8);

-- name: MergeBaselineOf
SELECT baseline_local::text, baseline_peer::text, pass_xids_local::text[], pass_xids_peer::text[]
FROM steep_repl._merge_baseline_of($1);

-- name: MergeExistedBefore
SELECT steep_repl._merge_existed_before($1::regclass, $2::jsonb, $3::xid8, $4::xid8[]);

-- name: MergeDelete
SELECT steep_repl._merge_delete($1::regclass, $2::jsonb)::text;

-- name: MergeMovedKeys
SELECT steep_repl._merge_moved_keys($1, $2, $3, $4::jsonb);

-- name: MergePlanKeysAs
SELECT apply_order, schema_name, table_name, key::text, category, resolution, tie, local_hash, peer_hash,
       local_committed_at, peer_committed_at
FROM steep_repl._merge_plan_keys($1, $2::jsonb, $3::regrole, $4::jsonb)
ORDER BY apply_order, schema_name, table_name, key::text;

-- name: MergeDrainSettings
SELECT pg_catalog.set_config('TimeZone', 'UTC', true), pg_catalog.set_config('DateStyle', 'ISO', true),
       pg_catalog.set_config('IntervalStyle', 'postgres', true), pg_catalog.set_config('extra_float_digits', '1', true),
       pg_catalog.set_config('bytea_output', 'hex', true), pg_catalog.set_config('statement_timeout', $1, true);

-- name: MergeFlushWal
SELECT pg_catalog.pg_logical_emit_message(false, 'steep_repl_merge', '', true)::text;

-- name: MergeDrainChanges
SELECT data FROM pg_catalog.pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1',
  'publication_names', pg_catalog.quote_ident($2), 'origin', 'none');

-- name: MergeTableRows
SELECT x.schema || '.' || x."table", c.reltuples::bigint
FROM pg_catalog.jsonb_to_recordset($1::jsonb) AS x(schema text, "table" text)
JOIN pg_catalog.pg_namespace n ON n.nspname = x.schema
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = x."table";
