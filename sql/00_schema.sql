-- Schema, role and the C entry points.
-- The schema itself is created by CREATE EXTENSION (steep_repl.control: schema = steep_repl).
-- CREATE EXTENSION adopts a schema of that name that already exists: refuse one that another
-- role owns or that holds objects, or their owner would control what the API runs.
DO $$
DECLARE
  v_owner oid;
BEGIN
  SELECT n.nspowner INTO v_owner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'steep_repl';
  IF v_owner IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
     OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = 'steep_repl'::regnamespace)
     OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'steep_repl'::regnamespace)
     OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typnamespace = 'steep_repl'::regnamespace) THEN
    RAISE EXCEPTION 'schema "steep_repl" already exists and was not created for this extension'
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Drop or rename that schema (check who created it and why) before CREATE EXTENSION steep_repl.';
  END IF;
END
$$;

COMMENT ON SCHEMA steep_repl IS
  'steep_repl: node initialization, snapshots and progress for logical-replication clusters';

-- steep_repl_admin gets EXECUTE on the API; nothing is granted to PUBLIC.
-- Roles are cluster-wide and outlive the extension, so create it only when absent.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'steep_repl_admin') THEN
    CREATE ROLE steep_repl_admin NOLOGIN;
  END IF;
  -- The sidecar's group role: the queue functions are its alone (README, "Security model").
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'steep_repl_sidecar') THEN
    CREATE ROLE steep_repl_sidecar NOLOGIN;
  END IF;
END
$$;

CREATE FUNCTION steep_repl.check_conninfo(conninfo text) RETURNS void
  LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'steep_repl_check_conninfo';
COMMENT ON FUNCTION steep_repl.check_conninfo(text) IS
  'Raises 42601 when conninfo is not a valid libpq connection string (same parser as CREATE SUBSCRIPTION), and 22023 for values libpq refuses only when it connects: a port that is not an integer 1..65535 (in a multi-host list: any element), more than one port but not one per host, a hostaddr that is not a numeric IP address.';

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

-- Acting as a table's owner (extension/src/as_role.c): SECURITY DEFINER functions cannot SET ROLE.
CREATE FUNCTION steep_repl._exec_as(role regrole, stmt text) RETURNS void
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_exec_as';
COMMENT ON FUNCTION steep_repl._exec_as(regrole, text) IS
  'Internal: runs stmt as role in a security-restricted operation (search_path pg_catalog), as VACUUM or REFRESH MATERIALIZED VIEW run as the table owner.';

CREATE FUNCTION steep_repl._query_as(role regrole, query text) RETURNS SETOF record
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_query_as';
COMMENT ON FUNCTION steep_repl._query_as(regrole, text) IS
  'Internal: the rows of query run as role in a security-restricted operation (search_path pg_catalog), in the caller''s snapshot: SELECT * FROM steep_repl._query_as(owner, q) AS t(k text, h bigint).';

CREATE FUNCTION steep_repl._caller() RETURNS regrole
  LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'steep_repl_caller';
COMMENT ON FUNCTION steep_repl._caller() IS
  'Internal: the role that called the API (current_user outside every SECURITY DEFINER function).';

CREATE FUNCTION steep_repl._exec_as_owner(rel regclass, stmt text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._exec_as((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = rel)::regrole, stmt);
$$;
COMMENT ON FUNCTION steep_repl._exec_as_owner(regclass, text) IS
  'Internal: runs stmt (a TRUNCATE, COPY or DDL of rel) as rel''s owner, so its triggers, defaults and CHECKs never run with the definer''s rights.';

-- Empties tables as their owners, one TRUNCATE per owner (tables linked by a foreign key must be
-- emptied together; across owners they cannot be), so no TRUNCATE trigger runs with the definer's
-- rights. Names that no longer resolve are skipped; returns how many tables were emptied.
CREATE FUNCTION steep_repl._truncate_as_owners(rels regclass[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN SELECT c.relowner::regrole AS owner, pg_catalog.string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid::regclass::text) AS tables,
                  pg_catalog.count(*) AS k
           FROM pg_catalog.pg_class c WHERE c.oid = ANY (rels)
           GROUP BY c.relowner ORDER BY c.relowner LOOP
    PERFORM steep_repl._exec_as(r.owner, 'TRUNCATE TABLE ' || r.tables);
    n := n + r.k;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._truncate_as_owners(regclass[]) IS
  'Internal: TRUNCATE the given tables, one statement per owner run as that owner; returns how many.';
