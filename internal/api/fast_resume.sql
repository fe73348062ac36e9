-- name: FastPlan
SELECT steep_repl.init_fast_plan($1, $2);

-- name: FastRangeDone
SELECT steep_repl.init_fast_range_done($1, $2, $3, $4);

-- name: FastPendingRanges
SELECT schema_name, table_name, from_block, to_block, of_chunks, bytes
FROM steep_repl.init_fast_chunks WHERE node = $1 AND NOT done ORDER BY bytes DESC, schema_name, table_name, from_block;

-- name: FastPlanned
SELECT EXISTS (SELECT 1 FROM steep_repl.init_fast_chunks WHERE node = $1);

-- name: FastHolder
SELECT pid, slot_name, snapshot, lsn::text FROM steep_repl.init_fast_holder WHERE node = $1;

-- name: FastHolderRecord
SELECT steep_repl.init_fast_holder_record($1, $2, $3, $4, $5::pg_lsn);

-- name: FastHolderWanted
SELECT steep_repl.init_fast_holder_wanted($1, $2, $3::interval);

-- name: FastHolderRelease
SELECT steep_repl.init_fast_holder_release($1);

-- name: FastLoaded
SELECT steep_repl.init_fast_loaded($1, $2::pg_lsn);

-- name: FastLoadedLSN
SELECT lsn::text FROM steep_repl.init_fast_loaded WHERE node = $1;
