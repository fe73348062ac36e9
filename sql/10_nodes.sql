-- The node registry.

CREATE TABLE steep_repl.nodes (
  name              text PRIMARY KEY
                    CONSTRAINT node_name_format CHECK (name ~ '^[a-z][a-z0-9_]{0,27}$'),
  conninfo          text NOT NULL,
  is_local          boolean NOT NULL DEFAULT false,
  init_state        text NOT NULL DEFAULT 'uninitialized'
                    CONSTRAINT init_state_known REFERENCES steep_repl.init_states (state),
  init_source_node  text,
  init_started_at   timestamptz,
  init_completed_at timestamptz,
  state_changed_at  timestamptz NOT NULL DEFAULT now(),
  last_error        text,
  registered_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT synchronized_has_completed_at
    CHECK (init_state <> 'synchronized' OR init_completed_at IS NOT NULL),
  CONSTRAINT failed_has_error CHECK (init_state <> 'failed' OR last_error IS NOT NULL),
  CONSTRAINT source_is_not_self CHECK (init_source_node IS DISTINCT FROM name)
);
-- At most one node is "this" node.
CREATE UNIQUE INDEX nodes_one_local ON steep_repl.nodes (is_local) WHERE is_local;

COMMENT ON TABLE steep_repl.nodes IS
  'Cluster nodes known to this node, with the init state of each. conninfo may hold a password: it is readable by superusers only.';
COMMENT ON COLUMN steep_repl.nodes.init_state IS
  'one of steep_repl.init_states; changed only by steep_repl.transition()';
COMMENT ON COLUMN steep_repl.nodes.is_local IS 'true for the node this database is';

SELECT pg_catalog.pg_extension_config_dump('steep_repl.nodes', '');

-- Superuser only: a conninfo chooses where the superuser's dblink sessions and subscriptions
-- connect, and which stored password they send (as CREATE SUBSCRIPTION without password_required).
CREATE FUNCTION steep_repl.register_node(name text, conninfo text, is_local boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text;
BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = steep_repl._caller()) THEN
    RAISE EXCEPTION 'permission denied to register a node'
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Only a superuser registers nodes or changes their conninfo: it decides where superuser connections go.';
  END IF;
  PERFORM steep_repl._require('name', name);
  PERFORM steep_repl._require('conninfo', conninfo);
  PERFORM steep_repl._require('is_local', is_local);
  IF name !~ '^[a-z][a-z0-9_]{0,27}$' THEN
    RAISE EXCEPTION 'invalid node name "%"', name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A node name starts with a lowercase letter and has at most 28 lowercase letters, digits or underscores (it becomes part of slot and publication names).';
  END IF;
  PERFORM steep_repl.check_conninfo(conninfo);
  IF EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = register_node.name) THEN
    RAISE EXCEPTION 'node "%" is already registered', name
      USING ERRCODE = 'duplicate_object',
            HINT = 'Node names are unique; pick another name or unregister the existing node first.';
  END IF;
  IF is_local THEN
    SELECT n.name INTO v_local FROM steep_repl.nodes n WHERE n.is_local;
    IF FOUND THEN
      RAISE EXCEPTION 'cannot register "%" as the local node: "%" already is', name, v_local
        USING ERRCODE = 'duplicate_object',
              HINT = 'A database is exactly one node; register the other nodes with is_local => false.';
    END IF;
  END IF;
  INSERT INTO steep_repl.nodes (name, conninfo, is_local)
  VALUES (register_node.name, register_node.conninfo, register_node.is_local);
  INSERT INTO steep_repl.events (node, event, to_state, detail)
  VALUES (register_node.name, 'node.registered', 'uninitialized',
          pg_catalog.jsonb_build_object('is_local', register_node.is_local));
END
$$;
COMMENT ON FUNCTION steep_repl.register_node(text, text, boolean) IS
  'Superuser only: registers a node (name, libpq conninfo used to reach it, whether it is this database). Errors: 42501 not superuser, 22004 NULL, 22023 bad name, 42601 bad conninfo, 42710 duplicate.';

CREATE FUNCTION steep_repl.unregister_node(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  PERFORM steep_repl._require('name', name);
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = unregister_node.name FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(name);
  END IF;
  IF v_state IN ('preparing', 'copying', 'catching_up', 'reinitializing') THEN
    RAISE EXCEPTION 'node "%" cannot be unregistered while its init is %', name, v_state
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Cancel the init first.';
  END IF;
  DELETE FROM steep_repl.nodes n WHERE n.name = unregister_node.name;
  INSERT INTO steep_repl.events (node, event, from_state, detail)
  VALUES (unregister_node.name, 'node.unregistered', v_state, '{}');
END
$$;
COMMENT ON FUNCTION steep_repl.unregister_node(text) IS 'Removes a node that has no init in progress.';

CREATE FUNCTION steep_repl._unknown_node(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'node "%" is not registered', name
    USING ERRCODE = 'undefined_object',
          HINT = 'List nodes with SELECT name FROM steep_repl.nodes; register one with steep_repl.register_node(name, conninfo, is_local).';
END
$$;
COMMENT ON FUNCTION steep_repl._unknown_node(text) IS 'Internal: the 42704 error for a node that is not registered.';
