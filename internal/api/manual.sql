-- name: InitExported
SELECT steep_repl.init_exported($1, $2, $3, $4::pg_lsn, $5, $6::interval, $7);

-- name: InitSnapshotReleased
SELECT steep_repl.init_snapshot_released($1);

-- name: PrepareInit
SELECT slot, lsn::text, publication, expires_at, next_steps FROM steep_repl.prepare_init($1, $2, $3::interval);

-- name: PrepareInitExport
SELECT steep_repl.prepare_init_export($1, $2, $3::interval, $4::interval);

-- name: ExportedSnapshot
SELECT consistent_lsn::text, snapshot_name FROM steep_repl.init_slots WHERE slot_name = $1;

-- name: ReleaseInitSnapshot
SELECT steep_repl.release_init_snapshot($1);

-- name: CompleteInit
SELECT steep_repl.complete_init($1, $2, $3, $4::pg_lsn, $5);
