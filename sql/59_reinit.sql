-- Partial reinit: copy chosen tables (or a schema) of a replicating node again while every other
-- table keeps replicating. start_reinit validates and records the scope; the sidecar's
-- reinit.start job takes the tables out of the node's publication on the source, refreshes the
-- subscription (their changes stop being applied), empties them here (_reinit_truncate), adds them
-- back and refreshes with copy_data = true (_reinit_copying): each is copied again by a table-sync
-- worker and handed to the apply worker at the right LSN. tick() then moves REINITIALIZING ->
-- CATCHING_UP -> SYNCHRONIZED like an init. A full reinit ({"full": true}) instead drops the
-- subscription (and its slot on the source), empties every replicated table and subscribes again
-- with copy_data = true: an automatic init with the node's last options, in the same job.

CREATE FUNCTION steep_repl.start_reinit(node text, scope jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_known text[] := ARRAY['tables', 'schemas', 'full', 'cascade', 'schema_sync', 'confirm', 'parallel', 'lag_threshold',
                          'stall_timeout', 'source_timeout'];
  v_node steep_repl.nodes;
  p steep_repl.init_progress;
  k text;
  x text;
  v_sub oid;
  v_subrels oid[];  -- what the subscription replicates (and the tables a failed or cancelled reinit left out)
  v_rels oid[] := '{}';
  v_rel oid;
  v_refs oid[];
  v_bad text;
  v_cascade boolean;
  v_tables text[];
  v_errors bigint;
  v_job bigint;
  v_parallel int;
  v_lag bigint;
  v_stall float8;
  v_srctimeout float8;
  v_full boolean;
  v_mode text;
  v_sync jsonb;
  v_msg text;
  v_detail text;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('scope', scope);
  IF pg_catalog.jsonb_typeof(scope) <> 'object' THEN
    RAISE EXCEPTION 'scope must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'One of {"tables": ["public.orders"]}, {"schemas": ["public"]} or {"full": true}, with options such as "cascade": true.';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(scope) LOOP
    IF NOT k = ANY (v_known) THEN
      RAISE EXCEPTION 'unknown reinit option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: ' || pg_catalog.array_to_string(v_known, ', ') || '.';
    END IF;
  END LOOP;
  FOREACH k IN ARRAY ARRAY['full', 'cascade', 'confirm'] LOOP
    IF scope ? k AND pg_catalog.jsonb_typeof(scope->k) <> 'boolean' THEN
      RAISE EXCEPTION '% must be true or false', k USING ERRCODE = 'invalid_parameter_value',
        HINT = '"full": true reinitializes every replicated table; "cascade": true adds the tables that reference the scope''s by a foreign key; "confirm": true lets "schema_sync": "manual" go on despite differences.';
    END IF;
  END LOOP;
  IF (scope ? 'tables')::int + (scope ? 'schemas')::int + coalesce((scope->>'full')::boolean, false)::int <> 1 THEN
    RAISE EXCEPTION 'scope must name exactly one of tables, schemas or full' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'One of {"tables": ["public.orders"]}, {"schemas": ["public"]} or {"full": true}.';
  END IF;
  PERFORM steep_repl._check_scope_options(scope);
  IF EXISTS (SELECT 1 FROM pg_catalog.unnest(ARRAY['tables', 'schemas']) k2
             WHERE scope ? k2 AND CASE WHEN pg_catalog.jsonb_typeof(scope->k2) = 'array'
                                       THEN pg_catalog.jsonb_array_length(scope->k2) = 0 ELSE true END) THEN
    RAISE EXCEPTION 'tables and schemas must name at least one' USING ERRCODE = 'invalid_parameter_value',
      HINT = '{"tables": ["public.orders"]} or {"schemas": ["public"]}; {"full": true} for every replicated table.';
  END IF;
  v_cascade := coalesce((scope->>'cascade')::boolean, false);
  v_full := coalesce((scope->>'full')::boolean, false);
  v_mode := steep_repl._sync_mode(scope->>'schema_sync', false);  -- 22023 unless strict | auto | manual (or absent)

  -- The node row lock serializes start_reinit, start_init and cancel_init for the node.
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = start_reinit.node FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', node
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Call start_reinit on the node to reinitialize (the node registered with is_local => true).';
  END IF;
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = start_reinit.node;
  IF v_node.init_state NOT IN ('synchronized', 'diverged', 'failed')
     OR (v_node.init_state = 'failed' AND NOT (FOUND AND p.options ? 'reinit')) THEN
    RAISE EXCEPTION 'node "%" is % and cannot be reinitialized', node, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = CASE WHEN v_node.init_state = 'failed'
                        THEN 'Its init failed: retry it with steep_repl.start_init, or clean it up with steep_repl.cancel_init.'
                        ELSE 'A node is reinitialized once SYNCHRONIZED, DIVERGED, or FAILED after a reinit; watch a running init with SELECT * FROM steep_repl.init_progress.' END;
  END IF;
  IF p.node IS NULL THEN
    RAISE EXCEPTION 'node "%" has no record of its init', node
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Initialize it with steep_repl.start_init or complete_init first.';
  END IF;
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.cancel', 'reinit.start') AND j.node = start_reinit.node
             AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'an init job for node "%" is still queued or running', node
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.jobs) or cancel it.';
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = p.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  -- A full reinit that failed or was cancelled may have dropped the subscription: it creates it again.
  IF v_sub IS NULL AND NOT (v_full AND p.options ? 'reinit' AND v_node.init_state IN ('diverged', 'failed')) THEN
    RAISE EXCEPTION 'the subscription % of node "%" does not exist', p.subscription, node
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Without it nothing replicates: initialize the node again (steep_repl.cancel_init, then start_init).';
  END IF;
  v_subrels := ARRAY(SELECT sr.srrelid FROM pg_catalog.pg_subscription_rel sr WHERE sr.srsubid = v_sub
                     UNION SELECT t.relid FROM steep_repl.init_tables t
                     WHERE t.node = start_reinit.node AND p.options ? 'reinit' AND v_node.init_state IN ('diverged', 'failed')
                       AND pg_catalog.to_regclass(pg_catalog.format('%I.%I', t.schema_name, t.table_name)) = t.relid);

  -- The tables in scope.
  IF scope ? 'tables' THEN
    FOR x IN SELECT pg_catalog.jsonb_array_elements_text(scope->'tables') LOOP
      SELECT c.oid INTO v_rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND (n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname = x
                                        OR (n.nspname = 'public' AND c.relname = x))
      ORDER BY (n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname = x) DESC LIMIT 1;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" does not exist on node "%"', x, node
          USING ERRCODE = 'undefined_table', HINT = 'Names as stored, without quotes: ["public.orders", "My Schema.Odd Table"]; a bare name means schema public.';
      END IF;
      v_rels := v_rels || v_rel;
    END LOOP;
    SELECT pg_catalog.string_agg(r::regclass::text, ', ' ORDER BY r::regclass::text) INTO v_bad
    FROM pg_catalog.unnest(v_rels) r WHERE NOT r = ANY (v_subrels);
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'tables not replicated by subscription % of node "%": %', p.subscription, node, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Only the tables the node''s subscription copies can be reinitialized (pg_subscription_rel); leave these out.';
    END IF;
  ELSIF scope ? 'schemas' THEN
    FOR x IN SELECT pg_catalog.jsonb_array_elements_text(scope->'schemas') LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = x) THEN
        RAISE EXCEPTION 'schema "%" does not exist on node "%"', x, node
          USING ERRCODE = 'invalid_schema_name', HINT = 'Names as stored, without quotes: ["public", "My Schema"].';
      END IF;
      v_refs := ARRAY(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = x AND c.oid = ANY (v_subrels));
      IF pg_catalog.cardinality(v_refs) = 0 THEN
        RAISE EXCEPTION 'schema "%" has no table replicated by subscription % of node "%"', x, p.subscription, node
          USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Name a schema whose tables the node replicates (pg_subscription_rel).';
      END IF;
      v_rels := v_rels || v_refs;
    END LOOP;
  ELSE
    v_rels := v_subrels;
    IF pg_catalog.cardinality(v_rels) = 0 THEN
      RAISE EXCEPTION 'subscription % of node "%" replicates no table', p.subscription, node
        USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Nothing to reinitialize.';
    END IF;
  END IF;
  v_rels := ARRAY(SELECT DISTINCT r FROM pg_catalog.unnest(v_rels) r);

  -- A table referenced by a table outside the scope cannot be emptied alone: refuse, or with
  -- cascade add the referencing tables (transitively). Never TRUNCATE ... CASCADE.
  LOOP
    v_refs := ARRAY(SELECT DISTINCT con.conrelid FROM pg_catalog.pg_constraint con
                    WHERE con.contype = 'f' AND con.confrelid = ANY (v_rels) AND NOT con.conrelid = ANY (v_rels));
    EXIT WHEN pg_catalog.cardinality(v_refs) = 0;
    IF NOT v_cascade THEN
      SELECT pg_catalog.string_agg(pg_catalog.format('%s (references %s)', con.conrelid::regclass, con.confrelid::regclass), ', '
                                   ORDER BY con.conrelid::regclass::text, con.confrelid::regclass::text) INTO v_bad
      FROM pg_catalog.pg_constraint con
      WHERE con.contype = 'f' AND con.confrelid = ANY (v_rels) AND NOT con.conrelid = ANY (v_rels);
      RAISE EXCEPTION 'tables in the scope are referenced by foreign keys of tables outside it: %', v_bad
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = 'Emptying them would break those foreign keys: add the referencing tables to the scope, or pass "cascade": true to add them.';
    END IF;
    SELECT pg_catalog.string_agg(r::regclass::text, ', ' ORDER BY r::regclass::text) INTO v_bad
    FROM pg_catalog.unnest(v_refs) r WHERE NOT r = ANY (v_subrels);
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'cascade would add tables not replicated by subscription % of node "%": %', p.subscription, node, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'They reference the scope''s tables but cannot be copied again: drop or fix their foreign keys first.';
    END IF;
    v_rels := v_rels || v_refs;
  END LOOP;

  v_parallel := steep_repl._int_option(scope, 'parallel', p.parallel_workers, 1, 16, 'parallel is the number of tables copied at once (default: the init''s).');
  v_lag := steep_repl._int_option(scope, 'lag_threshold', p.lag_threshold_bytes, 0, 1099511627776,
    'lag_threshold is the apply lag in bytes under which the node is SYNCHRONIZED again (default: the init''s, at most 1 TiB).');
  v_stall := steep_repl._num_option(scope, 'stall_timeout', extract(epoch FROM p.stall_timeout), 1, 604800,
    'stall_timeout is the number of seconds without copy progress before init.stalled is raised (default: the init''s, at most a week).');
  v_srctimeout := steep_repl._num_option(scope, 'source_timeout', extract(epoch FROM p.source_timeout), 1, 604800,
    'source_timeout is the number of seconds the source may be unreachable before the reinit fails (default: the init''s, at most a week).');

  -- Schema: with schema_sync, the node's replicated tables are compared with the source's and
  -- made to match (auto) in this transaction, before anything else; a node the drift check
  -- found DIVERGED must match first (its configured mode, strict by default), or the error
  -- lists the differences to fix.
  IF v_mode IS NOT NULL OR (v_node.init_state = 'diverged' AND EXISTS (
       SELECT 1 FROM steep_repl.drift_checks d WHERE d.node = start_reinit.node AND d.status = 'drift')) THEN
    BEGIN
      v_sync := steep_repl._schema_sync(p.source_node, coalesce(v_mode, steep_repl._sync_mode(NULL)), pg_catalog.jsonb_build_object(
        'tables', (SELECT pg_catalog.jsonb_agg(n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname)
                   FROM pg_catalog.unnest(v_subrels || v_rels) r JOIN pg_catalog.pg_class c ON c.oid = r
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace),
        'confirm', coalesce(scope->'confirm', 'false')));
    EXCEPTION WHEN invalid_table_definition THEN
      GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
      RAISE EXCEPTION 'node "%" cannot be reinitialized until its tables match source node "%": %', node, p.source_node, v_msg
        USING ERRCODE = 'invalid_table_definition', DETAIL = v_detail,
              HINT = CASE WHEN v_mode = 'auto' THEN 'Make these changes by hand first (steep_repl.schema_diff lists every difference), then call start_reinit again.'
                          ELSE 'Fix these differences first: by hand, or with "schema_sync": "auto" in the scope to apply them here in the same call.' END;
    END;
  END IF;

  -- Everything checked: record the reinit and hand it to the sidecar.
  v_tables := ARRAY(SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.unnest(v_rels) r
                    JOIN pg_catalog.pg_class c ON c.oid = r JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1);
  SELECT s.apply_error_count + s.sync_error_count INTO v_errors FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = v_sub;
  DELETE FROM steep_repl.init_tables t WHERE t.node = start_reinit.node;
  DELETE FROM steep_repl.init_samples s WHERE s.node = start_reinit.node;
  -- The target's own size stands in for the source's (the table held a copy of it).
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows, is_large)
  SELECT start_reinit.node, n.nspname, c.relname, c.oid, pg_catalog.pg_table_size(c.oid), greatest(c.reltuples, 0)::bigint, false
  FROM pg_catalog.unnest(v_rels) r JOIN pg_catalog.pg_class c ON c.oid = r JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
  UPDATE steep_repl.init_progress ip SET
    options = (ip.options - 'reinit') || pg_catalog.jsonb_build_object('reinit', pg_catalog.jsonb_build_object(
      'scope', scope, 'tables', pg_catalog.to_jsonb(v_tables), 'truncated', false, 'full', v_full,
      'error_base', coalesce(v_errors, 0), 'schema_sync', v_sync)),
    subscription_oid = NULL, parallel_workers = v_parallel, lag_threshold_bytes = v_lag,
    stall_timeout = pg_catalog.make_interval(secs => v_stall), source_timeout = pg_catalog.make_interval(secs => v_srctimeout),
    tables_total = pg_catalog.cardinality(v_tables), tables_done = 0, current_tables = '{}', large_tables = '{}',
    bytes_total = (SELECT coalesce(pg_catalog.sum(t.source_bytes), 0) FROM steep_repl.init_tables t WHERE t.node = start_reinit.node),
    rows_total = (SELECT coalesce(pg_catalog.sum(t.source_rows), 0) FROM steep_repl.init_tables t WHERE t.node = start_reinit.node),
    bytes_done = 0, rows_done = 0, percent = 0, rows_per_sec = NULL, bytes_per_sec = NULL, eta_seconds = NULL, lag_bytes = NULL,
    stalled_since = NULL, source_unreachable_since = NULL, last_progress_at = pg_catalog.now(), started_at = pg_catalog.now(),
    copy_done_at = NULL, synchronized_at = NULL, updated_at = pg_catalog.now(),
    message = pg_catalog.format('reinit of %s table(s): %s', pg_catalog.cardinality(v_tables), pg_catalog.array_to_string(v_tables, ', '))
  WHERE ip.node = start_reinit.node;
  PERFORM steep_repl.transition(node, 'reinitializing',
    pg_catalog.format('start_reinit of %s', pg_catalog.array_to_string(v_tables, ', ')));
  v_job := steep_repl.enqueue_job('reinit.start', pg_catalog.jsonb_build_object('target', node), node, 3);
  UPDATE steep_repl.init_progress ip SET job_id = v_job WHERE ip.node = start_reinit.node;
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl.start_reinit(text, jsonb) IS
  'Copies chosen tables ({"tables": [...]}), schemas ({"schemas": [...]}) or every replicated table ({"full": true}: a new subscription, as an automatic init with the node''s last options) of the local node again while the other tables keep replicating; "cascade": true adds tables referencing them; "schema_sync": "auto" first makes the replicated tables match the source''s (a DIVERGED node with schema drift must match). Validates first (22023, 42704, 42P01, 3F000, 2BP01, 42P16, 55000), creates nothing on error. Returns the reinit.start job id; watch steep_repl.init_progress.';

-- The tables of the reinit under way, quoted.
CREATE FUNCTION steep_repl._reinit_tables(node text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ARRAY(SELECT pg_catalog.format('%I.%I', t.schema_name, t.table_name) FROM steep_repl.init_tables t
               WHERE t.node = _reinit_tables.node ORDER BY 1);
$$;
COMMENT ON FUNCTION steep_repl._reinit_tables(text) IS 'Internal: the quoted tables of node''s reinit.';

-- Empties the tables as each one's owner (one statement per owner), so no TRUNCATE trigger runs
-- with this function's rights.
CREATE FUNCTION steep_repl._reinit_empty(node text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._truncate_as_owners(ARRAY(SELECT pg_catalog.to_regclass(x.t) FROM pg_catalog.unnest(steep_repl._reinit_tables(node)) x(t)));
  UPDATE steep_repl.init_tables t SET sync_state = 'pending', rows_copied = 0, bytes_copied = 0, fraction = 0,
    started_at = NULL, finished_at = NULL, n_tup_ins_base = coalesce(pg_catalog.pg_stat_get_tuples_inserted(t.relid), 0)
  WHERE t.node = _reinit_empty.node;
  RETURN pg_catalog.array_to_string(steep_repl._reinit_tables(node), ', ');
END
$$;
COMMENT ON FUNCTION steep_repl._reinit_empty(text) IS 'Internal: truncates the tables of node''s reinit as their owners and resets their progress.';

CREATE FUNCTION steep_repl.reinit_truncate(node text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_done boolean;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = reinit_truncate.node FOR UPDATE;
  SELECT coalesce((p.options->'reinit'->>'truncated')::boolean, false) INTO v_done
  FROM steep_repl.init_progress p WHERE p.node = reinit_truncate.node FOR UPDATE;
  IF v_state IS DISTINCT FROM 'reinitializing' OR v_done IS NULL THEN
    RAISE EXCEPTION 'node "%" has no reinit under way', node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF v_done THEN
    RETURN;  -- a retried job: the tables may be being copied already
  END IF;
  PERFORM steep_repl._reinit_empty(node);
  UPDATE steep_repl.init_progress p SET options = pg_catalog.jsonb_set(p.options, '{reinit,truncated}', 'true'),
    updated_at = pg_catalog.now() WHERE p.node = reinit_truncate.node;
END
$$;
COMMENT ON FUNCTION steep_repl.reinit_truncate(text) IS
  'Sidecar step: the reinit''s tables left the subscription; truncate them (as their owners) once, and reset their progress.';

CREATE FUNCTION steep_repl.reinit_copying(node text, parallel_workers integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sub oid;
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = reinit_copying.node AND n.init_state = 'reinitializing' FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'node "%" has no reinit under way', node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s JOIN steep_repl.init_progress p ON p.subscription = s.subname
  WHERE p.node = reinit_copying.node AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'the subscription of node "%" does not exist', node USING ERRCODE = 'undefined_object';
  END IF;
  -- From now on tick() samples the table-sync workers (before, pg_subscription_rel still
  -- showed the tables as they were before the reinit). Errors count from here: a full reinit's
  -- subscription is a new one, and an apply error of before (a column the target lacked until
  -- schema_sync added it) is not this copy's.
  UPDATE steep_repl.init_progress p SET subscription_oid = v_sub, parallel_workers = reinit_copying.parallel_workers,
    options = pg_catalog.jsonb_set(p.options, '{reinit,error_base}', pg_catalog.to_jsonb(coalesce(
      (SELECT s.apply_error_count + s.sync_error_count FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = v_sub), 0))),
    last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now(),
    message = pg_catalog.format('copying %s table(s) again', p.tables_total)
  WHERE p.node = reinit_copying.node;
END
$$;
COMMENT ON FUNCTION steep_repl.reinit_copying(text, integer) IS
  'Sidecar step: the reinit''s tables are back in the publication and the subscription refreshed with copy_data; tick() follows their copy.';

-- The sidecar took the tables out of the publication and the subscription: empty them (a copy
-- may have been under way) and leave the node DIVERGED, saying which tables are not replicated.
CREATE FUNCTION steep_repl.reinit_cancelled(node text, detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_tables text;
  v_reason text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = reinit_cancelled.node FOR UPDATE;
  IF v_state IS DISTINCT FROM 'reinitializing' THEN
    RETURN;
  END IF;
  v_tables := steep_repl._reinit_empty(node);
  v_reason := pg_catalog.format('reinit cancelled; tables not replicated: %s', v_tables);
  UPDATE steep_repl.init_progress p SET message = v_reason, current_tables = '{}', rows_per_sec = NULL,
    bytes_per_sec = NULL, eta_seconds = NULL, updated_at = pg_catalog.now()
  WHERE p.node = reinit_cancelled.node;
  PERFORM steep_repl.transition(node, 'diverged', v_reason);
  UPDATE steep_repl.nodes n SET last_error = v_reason WHERE n.name = reinit_cancelled.node;
  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (node, 'reinit.cancelled', v_state, 'diverged',
          coalesce(detail, '{}') || pg_catalog.jsonb_build_object('truncated', v_tables));
END
$$;
COMMENT ON FUNCTION steep_repl.reinit_cancelled(text, jsonb) IS
  'Sidecar step: the reinit''s tables are out of the publication and subscription; truncate them, DIVERGED with the tables named.';
