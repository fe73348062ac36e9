-- name: ApplyRequester
-- The role that asked for apply $1 (NULL for one queued before 1.1), whether it still exists
-- and whether it is a superuser now.
SELECT a.requested_by IS NOT NULL, r.rolname::text, coalesce(r.rolsuper, false)
FROM steep_repl.snapshot_applies a
LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.requested_by::pg_catalog.oid
WHERE a.id OPERATOR(pg_catalog.=) $1;
