-- Drift: a SYNCHRONIZED node whose tables stopped matching its source's goes to DIVERGED, with
-- an event listing the differences. Checked by tick() every drift_check_interval (cheap when
-- not due: one look at nodes and drift_checks) and on demand by steep_repl.check_drift().

CREATE TABLE steep_repl.drift_checks (
  node        text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  source_node text NOT NULL,
  checked_at  timestamptz NOT NULL,
  status      text NOT NULL CONSTRAINT status_valid CHECK (status IN ('match', 'drift', 'error')),
  differences jsonb NOT NULL DEFAULT '[]' CONSTRAINT differences_is_array CHECK (pg_catalog.jsonb_typeof(differences) = 'array'),
  error       text,
  CONSTRAINT error_iff_status_error CHECK ((status = 'error') = (error IS NOT NULL))
);
COMMENT ON TABLE steep_repl.drift_checks IS
  'The last schema drift check of each local node against its init source: match, drift (differences listed) or error (the source could not be read).';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.drift_checks', '');

-- Compare node (this database) with source over the tables it replicates (its init_tables, or
-- every table when it has none), record the outcome, and move a SYNCHRONIZED node with
-- differences to DIVERGED. Errors reading the source propagate.
CREATE FUNCTION steep_repl._drift_check(node text, source text, now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := '{}';
  v_diffs text[];
  v_state text;
  v_diverged boolean := false;
  v_local steep_repl.table_definition[];
  v_peer steep_repl.table_definition[];
BEGIN
  -- Lock order everywhere: the nodes row first (tick() holds it already), then drift_checks.
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = _drift_check.node FOR UPDATE;
  SELECT pg_catalog.jsonb_build_object('tables', pg_catalog.jsonb_agg(t.schema_name || '.' || t.table_name))
    INTO v_opts FROM steep_repl.init_tables t WHERE t.node = _drift_check.node HAVING pg_catalog.count(*) > 0;
  SELECT x.local_defs, x.peer_defs INTO v_local, v_peer FROM steep_repl._load_definitions(source, true, coalesce(v_opts, '{}')) x;
  SELECT pg_catalog.array_agg(d.description) INTO v_diffs FROM steep_repl._differences(v_local, v_peer, node, source) d
  WHERE NOT EXISTS (SELECT 1 FROM steep_repl.schema_accepted_differences a WHERE a.peer = source AND a.description = d.description);
  INSERT INTO steep_repl.drift_checks AS c (node, source_node, checked_at, status, differences, error)
  VALUES (node, source, now, CASE WHEN v_diffs IS NULL THEN 'match' ELSE 'drift' END,
          coalesce(pg_catalog.to_jsonb(v_diffs), '[]'), NULL)
  ON CONFLICT ON CONSTRAINT drift_checks_pkey DO UPDATE SET source_node = excluded.source_node, checked_at = excluded.checked_at,
    status = excluded.status, differences = excluded.differences, error = NULL;
  IF v_diffs IS NOT NULL AND v_state = 'synchronized' THEN
    INSERT INTO steep_repl.events (node, event, detail) VALUES (node, 'schema.drift',
      pg_catalog.jsonb_build_object('source', source, 'differences', pg_catalog.to_jsonb(v_diffs)));
    PERFORM steep_repl.transition(node, 'diverged', pg_catalog.format('schema drift from %s: %s', source,
      pg_catalog.array_to_string(v_diffs, E'\n')));
    v_diverged := true;
  END IF;
  RETURN pg_catalog.jsonb_build_object('node', node, 'source', source, 'checked_at', now,
    'status', CASE WHEN v_diffs IS NULL THEN 'match' ELSE 'drift' END,
    'differences', coalesce(pg_catalog.to_jsonb(v_diffs), '[]'), 'diverged', v_diverged);
END
$$;
COMMENT ON FUNCTION steep_repl._drift_check(text, text, timestamptz) IS
  'Internal: one drift check of a local node against its source; SYNCHRONIZED -> DIVERGED on differences (event schema.drift).';

-- tick()'s part: every due check, each in its own subtransaction so that an unreachable source
-- (recorded as an error, retried next interval) never fails the tick.
CREATE FUNCTION steep_repl._tick_drift(now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_every interval := (steep_repl._schema_config()).drift_check_interval;
  r record;
  v jsonb;
  v_checked integer := 0;
  v_diverged integer := 0;
  v_failed integer := 0;
  v_err text;
BEGIN
  IF v_every = '0 seconds' THEN
    RETURN NULL;
  END IF;
  FOR r IN SELECT n.name, n.init_source_node FROM steep_repl.nodes n
           LEFT JOIN steep_repl.drift_checks c ON c.node = n.name
           WHERE n.is_local AND n.init_state = 'synchronized' AND n.init_source_node IS NOT NULL
             AND (c.checked_at IS NULL OR c.checked_at <= now - v_every OR c.checked_at > now)
           FOR UPDATE OF n SKIP LOCKED LOOP
    v_checked := v_checked + 1;
    BEGIN
      v := steep_repl._drift_check(r.name, r.init_source_node, now);
      v_diverged := v_diverged + (v->>'diverged')::boolean::int;
    EXCEPTION WHEN OTHERS THEN
      v_err := SQLERRM;
      v_failed := v_failed + 1;
      INSERT INTO steep_repl.drift_checks AS c (node, source_node, checked_at, status, error)
      VALUES (r.name, r.init_source_node, now, 'error', v_err)
      ON CONFLICT ON CONSTRAINT drift_checks_pkey DO UPDATE SET source_node = excluded.source_node,
        checked_at = excluded.checked_at, status = 'error', error = excluded.error;
    END;
  END LOOP;
  IF v_checked = 0 THEN
    RETURN NULL;
  END IF;
  RETURN pg_catalog.jsonb_build_object('checked', v_checked, 'diverged', v_diverged, 'errors', v_failed);
END
$$;
COMMENT ON FUNCTION steep_repl._tick_drift(timestamptz) IS
  'Internal: tick()''s periodic drift check of the local SYNCHRONIZED node(s) against their source, when drift_check_interval has passed since the last one; NULL when none was due.';

CREATE FUNCTION steep_repl.check_drift(node text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v steep_repl.nodes;
BEGIN
  IF node IS NULL THEN
    SELECT * INTO v FROM steep_repl.nodes n WHERE n.is_local;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'this database is not registered as a node' USING ERRCODE = 'object_not_in_prerequisite_state',
        HINT = 'Register it with steep_repl.register_node(name, conninfo, is_local => true).';
    END IF;
  ELSE
    SELECT * INTO v FROM steep_repl.nodes n WHERE n.name = check_drift.node;
    IF NOT FOUND THEN
      PERFORM steep_repl._unknown_node(node);
    END IF;
  END IF;
  IF NOT v.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', v.name USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Check a node for drift on the node itself.';
  END IF;
  IF v.init_source_node IS NULL THEN
    RAISE EXCEPTION 'node "%" has no source to drift from', v.name USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'A node has a source once it was initialized from one (start_init or complete_init); compare with any node with steep_repl.schema_diff(peer).';
  END IF;
  RETURN steep_repl._drift_check(v.name, v.init_source_node, pg_catalog.now());
END
$$;
COMMENT ON FUNCTION steep_repl.check_drift(text) IS
  'Checks now whether the local node''s tables (default: this database''s node) still match its init source''s; a SYNCHRONIZED node with differences goes to DIVERGED (event schema.drift). Returns {node, source, status, differences, diverged}. Errors: 42704, 22023, 55000, 08001.';

GRANT EXECUTE ON FUNCTION
  steep_repl.compute_fingerprint(text, text),
  steep_repl.capture_fingerprints(),
  steep_repl.compare_fingerprints(text),
  steep_repl.schema_diff(text, text, text),
  steep_repl.schema_ddl(text, jsonb),
  steep_repl.schema_sync(text, text, jsonb),
  steep_repl.configure_schema_sync(text, interval),
  steep_repl.check_drift(text)
TO steep_repl_admin;
GRANT SELECT ON steep_repl.schema_fingerprints, steep_repl.schema_sync_config, steep_repl.drift_checks TO steep_repl_admin;
GRANT SELECT, DELETE ON steep_repl.schema_accepted_differences TO steep_repl_admin;
