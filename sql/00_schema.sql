-- Schema, role and the C entry points.
-- The schema itself is created by CREATE EXTENSION (steep_repl.control: schema = steep_repl).

COMMENT ON SCHEMA steep_repl IS
  'steep_repl: node initialization, snapshots and progress for logical-replication clusters';

-- steep_repl_admin gets EXECUTE on the API; nothing is granted to PUBLIC.
-- Roles are cluster-wide and outlive the extension, so create it only when absent.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'steep_repl_admin') THEN
    CREATE ROLE steep_repl_admin NOLOGIN;
  END IF;
END
$$;

CREATE FUNCTION steep_repl.check_conninfo(conninfo text) RETURNS void
  LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'steep_repl_check_conninfo';
COMMENT ON FUNCTION steep_repl.check_conninfo(text) IS
  'Raises 42601 when conninfo is not a valid libpq connection string (same parser as CREATE SUBSCRIPTION).';

CREATE FUNCTION steep_repl.wake_supervisor() RETURNS boolean
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_wake_supervisor';
COMMENT ON FUNCTION steep_repl.wake_supervisor() IS
  'Sets the supervisor''s latch so tick() runs now; false when no supervisor runs (library not preloaded).';

-- Raise a NULL-argument error the same way everywhere (22004).
CREATE FUNCTION steep_repl._require(arg_name text, arg_value anyelement) RETURNS void
  LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF arg_value IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', arg_name USING ERRCODE = 'null_value_not_allowed';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._require(text, anyelement) IS 'Internal: 22004 when a required argument is NULL.';
