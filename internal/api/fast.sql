-- name: FastCopying
SELECT steep_repl.init_fast_copying($1);

-- name: FastReset
SELECT steep_repl.init_fast_reset($1);

-- name: FastDropObjects
SELECT steep_repl.init_fast_drop_objects($1);

-- name: FastObjects
SELECT id, kind = 'foreign_key', stage FROM steep_repl.init_fast_objects WHERE node = $1 ORDER BY kind = 'foreign_key', stage, id;

-- name: FastRestoreObject
SELECT steep_repl.init_fast_restore_object($1);

-- name: FastChunkDone
SELECT steep_repl.init_fast_chunk_done($1, $2, $3, $4, $5, $6);

-- name: FastMessage
SELECT steep_repl.init_fast_message($1, $2);

-- name: FastSplitThreshold
SELECT coalesce((options->>'split_threshold')::bigint, 67108864) FROM steep_repl.init_progress WHERE node = $1;

-- name: FastTargetTables
SELECT t.schema_name, t.table_name, c.relowner::regrole::text, a.names, a.types, a.binary_io, false
FROM steep_repl.init_tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid,
LATERAL (SELECT coalesce(pg_catalog.array_agg(a.attname::text ORDER BY a.attnum), '{}') AS names,
                coalesce(pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum), '{}') AS types,
                coalesce(pg_catalog.bool_and(ty.typsend::oid <> 0 AND ty.typreceive::oid <> 0), true) AS binary_io
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
         WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') a
WHERE t.node = $1 ORDER BY t.schema_name, t.table_name;

-- name: FastSourceColumns
SELECT x.s, x.t, a.names, a.types, a.binary_io
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS x(s, t)
JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) x.s
JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid AND c.relname OPERATOR(pg_catalog.=) x.t,
LATERAL (SELECT coalesce(pg_catalog.array_agg(a.attname::text ORDER BY a.attnum), '{}') AS names,
                coalesce(pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum), '{}') AS types,
                coalesce(pg_catalog.bool_and(ty.typsend::oid OPERATOR(pg_catalog.<>) 0 AND ty.typreceive::oid OPERATOR(pg_catalog.<>) 0), true) AS binary_io
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.atttypid
         WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped) a;

-- name: FastCopyFormat
SELECT coalesce(options->>'copy_format', 'auto') FROM steep_repl.init_progress WHERE node = $1;

-- name: FastServerMajor
SELECT pg_catalog.current_setting('server_version_num')::int OPERATOR(pg_catalog./) 10000;

-- name: FastSourceBlocks
SELECT x.s, x.t, pg_catalog.pg_relation_size(c.oid) OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::bigint,
       pg_catalog.current_setting('block_size')::bigint
FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS x(s, t)
JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) x.s
JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid AND c.relname OPERATOR(pg_catalog.=) x.t;

-- name: FastChunkTimeout
SELECT pg_catalog.set_config('statement_timeout', $1, false);

-- name: FastOriginSetup
SELECT pg_catalog.pg_replication_origin_session_setup($1);

-- name: FastOriginReset
SELECT pg_catalog.pg_replication_origin_session_reset();

-- name: FastIndexSettings
SELECT coalesce(options->>'maintenance_work_mem', '256MB'),
       coalesce((options->>'max_parallel_maintenance_workers')::int, parallel_workers OPERATOR(pg_catalog./) 2)
FROM steep_repl.init_progress WHERE node = $1;

-- name: FastIndexSession
SELECT pg_catalog.set_config('maintenance_work_mem', $1, false),
       pg_catalog.set_config('max_parallel_maintenance_workers', $2::int::text, false);

-- name: FastIndexSessionReset
SELECT pg_catalog.set_config(s.name, s.reset_val, false) FROM pg_catalog.pg_settings s
WHERE s.name IN ('maintenance_work_mem', 'max_parallel_maintenance_workers');
