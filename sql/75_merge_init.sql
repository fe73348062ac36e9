-- start_init(target, source, 'merge'): both nodes hold data. The sidecar's init.merge job unions
-- them (steep_repl._merge_plan / _merge_rows / _merge_apply, sql/73_merge.sql) in one transaction
-- per node, then under a short write freeze (steep_repl._merge_lock) re-plans what changed,
-- creates a slot on each node for the other and subscribes both ways (origin = none). These are
-- start_init's half and the job's steps; the source's half (init_merge_link) is called by the
-- target's sidecar over its session to the source.

-- The options of start_init that a merge shares with the other methods; the rest are
-- _merge_options'.
CREATE FUNCTION steep_repl._merge_init_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ARRAY['lag_threshold', 'stall_timeout', 'source_timeout'];
$$;
COMMENT ON FUNCTION steep_repl._merge_init_keys() IS
  'Internal: the start_init options a merge takes besides _merge_options'' own (lag_threshold, stall_timeout, source_timeout).';

-- The state of the source's local node and whether it knows the target: its tick needs the
-- target's conninfo to read the lag of the reverse link.
CREATE FUNCTION steep_repl._merge_peer_state(peer text, target text, OUT init_state text, OUT knows_target boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format('SELECT s, k FROM %I.dblink($1, $2) AS t(s text, k boolean)', steep_repl._dblink_schema())
    INTO init_state, knows_target USING steep_repl._conninfo(peer), pg_catalog.format(
      'SELECT (SELECT n.init_state FROM steep_repl.nodes n WHERE n.is_local), EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name OPERATOR(pg_catalog.=) %L)',
      target);
END
$$;
COMMENT ON FUNCTION steep_repl._merge_peer_state(text, text) IS
  'Internal: the init state of peer''s local node and whether peer has target registered, read through dblink.';

-- start_init's method merge (called by start_init, SECURITY DEFINER): checks everything, creates
-- nothing on error, records the init and queues init.merge.
CREATE FUNCTION steep_repl._start_merge_init(target text, source text, options jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_mopts jsonb;
  v_iopts jsonb;
  v_node steep_repl.nodes;
  v_names record;
  v_peer record;
  v_err text;
  v_bad text;
  v_src steep_repl.table_info[];
  v_dst steep_repl.table_info[];
  v_scope jsonb;
  v_job bigint;
BEGIN
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- 22023 on an unknown key, a bad strategy, dry_run not a boolean, ...
  v_mopts := steep_repl._merge_options(options - steep_repl._merge_init_keys());
  v_iopts := steep_repl._init_options((SELECT coalesce(pg_catalog.jsonb_object_agg(e.key, e.value), '{}')
                                       FROM pg_catalog.jsonb_each(options) e WHERE e.key = ANY (steep_repl._merge_init_keys()))
                                      || pg_catalog.jsonb_build_object('verify', v_mopts->'verify'));
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Merge a node with another node.';
  END IF;
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Call start_init on the target node itself (the node registered with is_local => true).';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  IF v_node.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" already has an init in state %', target, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'A merge joins two nodes that are not replicating yet; a SYNCHRONIZED node needs no merge (steep_repl.verify compares it).';
  END IF;
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.fast', 'init.merge', 'init.cancel') AND j.node = target
             AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'an init job for node "%" is still queued or running', target
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.jobs) or cancel it.';
  END IF;
  v_err := steep_repl._probe(source);
  IF v_err IS NOT NULL THEN
    RAISE EXCEPTION 'source node "%" is not reachable: %', source, v_err
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check the source is up and that its registered conninfo works from this server.';
  END IF;
  -- The source ends with a link of its own (its subscription from this node): it must be free too.
  SELECT * INTO v_peer FROM steep_repl._merge_peer_state(source, target);
  IF v_peer.init_state IS NULL OR v_peer.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'source node "%" is %', source, coalesce(pg_catalog.upper(v_peer.init_state), 'not registered as its own local node')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Both nodes of a merge must be UNINITIALIZED or FAILED: the merge subscribes each to the other.';
  END IF;
  IF NOT v_peer.knows_target THEN
    RAISE EXCEPTION 'source node "%" has no node "%" registered', source, target
      USING ERRCODE = 'undefined_object',
            HINT = pg_catalog.format('On %s: SELECT steep_repl.register_node(%L, <conninfo of %s>) (its subscription from this node uses it).', source, target, target);
  END IF;

  -- The scope: the tables option, else every user table; on both nodes.
  v_scope := pg_catalog.jsonb_build_object('tables', v_mopts->'tables');
  v_src := ARRAY(SELECT t FROM steep_repl._remote_tables(source) t WHERE steep_repl._in_scope(v_scope, t.schema_name, t.table_name));
  v_dst := ARRAY(SELECT t FROM steep_repl._local_tables() t WHERE steep_repl._in_scope(v_scope, t.schema_name, t.table_name));
  SELECT pg_catalog.string_agg(x.n, ', ') INTO v_bad FROM (
    SELECT s.schema_name || '.' || s.table_name n FROM pg_catalog.unnest(v_src) s
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_dst) d WHERE d.schema_name = s.schema_name AND d.table_name = s.table_name)
    UNION ALL
    SELECT d.schema_name || '.' || d.table_name || ' (only here)' FROM pg_catalog.unnest(v_dst) d
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v_src) s WHERE d.schema_name = s.schema_name AND d.table_name = s.table_name)) x;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables in scope not on both nodes: %', v_bad
      USING ERRCODE = 'undefined_table', HINT = 'Create them on the other node (steep_repl.schema_ddl) or leave them out with "tables".';
  END IF;
  IF pg_catalog.cardinality(v_dst) = 0 THEN
    RAISE EXCEPTION 'nothing to merge: no user tables in scope' USING ERRCODE = 'invalid_parameter_value', HINT = 'Check the tables option.';
  END IF;

  SELECT * INTO v_names FROM steep_repl._init_names(target, source);
  DELETE FROM steep_repl.init_progress p WHERE p.node = target;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription, slot_name,
    parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, tables_total, bytes_total, rows_total, message)
  SELECT target, source, 'merge',
    -- The plan reads both nodes' tables as the role that asked (merge_as), as verify_as for "verify".
    v_iopts || pg_catalog.jsonb_build_object('merge', v_mopts, 'merge_as', steep_repl._caller()::text),
    -- The merge's publications are its own (named for this pair): it drops them on cancel.
    v_names.publication, true, v_names.subscription, v_names.slot_name,
    1, (v_iopts->>'lag_threshold')::bigint,
    pg_catalog.make_interval(secs => (v_iopts->>'stall_timeout')::float8),
    pg_catalog.make_interval(secs => (v_iopts->>'source_timeout')::float8),
    pg_catalog.count(*), coalesce(pg_catalog.sum(d.bytes), 0), 0,
    CASE WHEN (v_mopts->>'dry_run')::boolean THEN 'merge dry run: planning' ELSE 'merge: planning' END
  FROM pg_catalog.unnest(v_dst) d;
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows)
  SELECT target, d.schema_name, d.table_name, d.relid::oid, s.bytes, 0
  FROM pg_catalog.unnest(v_dst) d JOIN pg_catalog.unnest(v_src) s USING (schema_name, table_name);
  UPDATE steep_repl.nodes n SET init_source_node = source WHERE n.name = target;
  PERFORM steep_repl.transition(target, 'preparing', pg_catalog.format('start_init merge with %s%s', source,
    CASE WHEN (v_mopts->>'dry_run')::boolean THEN ' (dry run)' ELSE '' END));
  v_job := steep_repl.enqueue_job('init.merge', pg_catalog.jsonb_build_object('target', target, 'source', source), target, 3);
  UPDATE steep_repl.init_progress p SET job_id = v_job WHERE p.node = target;
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl._start_merge_init(text, text, jsonb) IS
  'Internal (start_init method merge): validates (22023, 42704, 42P01, 55000, 08001), records the init (method merge, options {merge: _merge_options, merge_as: the caller}) and queues init.merge.';

-- For the sidecar: what init.merge needs besides init_plan.
CREATE FUNCTION steep_repl.init_merge_plan(node text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object('options', p.options->'merge', 'as_role', p.options->>'merge_as',
    'lag_threshold', p.options->'lag_threshold', 'stall_timeout', p.options->'stall_timeout',
    'source_timeout', p.options->'source_timeout',
    -- The reverse link: publication here, subscription on the source, slot here.
    'reverse_publication', r.publication, 'reverse_subscription', r.subscription, 'reverse_slot', r.slot_name)
  FROM steep_repl.init_progress p, steep_repl._init_names(p.source_node, p.node) r
  WHERE p.node = init_merge_plan.node AND p.method = 'merge';
$$;
COMMENT ON FUNCTION steep_repl.init_merge_plan(text) IS
  'Sidecar step of init.merge: the merge options, the role that asked, and the names of the reverse link (publication and slot here, subscription on the source); NULL unless node''s init is a merge.';

-- PREPARING -> COPYING with the rows to move per table (tables: [{schema_name, table_name, rows}]).
CREATE FUNCTION steep_repl.init_merge_copying(node text, tables jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_merge_copying.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying') THEN
    RAISE EXCEPTION 'the merge of node "%" is %, not preparing or copying', node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE steep_repl.init_tables t SET source_rows = coalesce(x.rows, 0), rows_copied = 0,
    fraction = CASE WHEN coalesce(x.rows, 0) = 0 THEN 1 ELSE 0 END,
    sync_state = CASE WHEN coalesce(x.rows, 0) = 0 THEN 'synced' ELSE 'pending' END, started_at = NULL, finished_at = NULL
  FROM steep_repl.init_tables t2
  LEFT JOIN pg_catalog.jsonb_to_recordset(tables) AS x(schema_name text, table_name text, rows bigint)
    ON x.schema_name = t2.schema_name AND x.table_name = t2.table_name
  WHERE t.node = init_merge_copying.node AND t2.node = t.node AND t2.schema_name = t.schema_name AND t2.table_name = t.table_name;
  UPDATE steep_repl.init_progress p SET rows_total = (SELECT coalesce(pg_catalog.sum(t.source_rows), 0) FROM steep_repl.init_tables t WHERE t.node = p.node),
    rows_done = 0, bytes_done = 0, percent = 0,
    tables_done = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'synced'),
    message = 'merge: moving rows', last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_merge_copying.node;
  IF v_state = 'preparing' THEN
    PERFORM steep_repl.transition(node, 'copying', 'merge: moving rows both ways');
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_copying(text, jsonb) IS
  'Sidecar step of init.merge: records the rows to move per table ([{schema_name, table_name, rows}]), PREPARING -> COPYING.';

-- Rows moved so far of one table (done: all of them), and the line the console and init status show.
CREATE FUNCTION steep_repl.init_merge_moved(node text, schema_name text, table_name text, moved bigint, done boolean, message text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE steep_repl.init_tables t SET rows_copied = init_merge_moved.moved,
    fraction = CASE WHEN done THEN 1 ELSE least(0.99, init_merge_moved.moved::numeric / NULLIF(t.source_rows, 0)) END,
    sync_state = CASE WHEN done THEN 'synced' ELSE 'copying' END,
    started_at = coalesce(t.started_at, pg_catalog.now()), finished_at = CASE WHEN done THEN pg_catalog.now() END
  WHERE t.node = init_merge_moved.node AND t.schema_name = init_merge_moved.schema_name AND t.table_name = init_merge_moved.table_name;
  UPDATE steep_repl.init_progress p SET
    rows_done = (SELECT coalesce(pg_catalog.sum(t.rows_copied), 0) FROM steep_repl.init_tables t WHERE t.node = p.node),
    tables_done = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'synced'),
    current_tables = CASE WHEN done THEN '{}' ELSE ARRAY[pg_catalog.format('%I.%I', init_merge_moved.schema_name, init_merge_moved.table_name)] END,
    percent = greatest(p.percent, least(99.99, pg_catalog.round(100.0 * (SELECT coalesce(pg_catalog.sum(t.rows_copied), 0) FROM steep_repl.init_tables t WHERE t.node = p.node)
                                            / NULLIF(p.rows_total, 0), 2))),
    message = coalesce(init_merge_moved.message, p.message), last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = init_merge_moved.node;
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_moved(text, text, text, bigint, boolean, text) IS
  'Sidecar step of init.merge: rows moved so far of one table (done: all), and the progress message.';

CREATE FUNCTION steep_repl.init_merge_message(node text, message text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.init_progress p SET message = init_merge_message.message, updated_at = pg_catalog.now()
  WHERE p.node = init_merge_message.node;
$$;
COMMENT ON FUNCTION steep_repl.init_merge_message(text, text) IS 'Sidecar step of init.merge: the progress message (freeze, subscribing).';

-- A dry run is over: the plan is in merges / merge_audit_log, nothing moved; PREPARING -> UNINITIALIZED.
CREATE FUNCTION steep_repl.init_merge_planned(node text, merge_id bigint, counts jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_merge_planned.node FOR UPDATE;
  DELETE FROM steep_repl.init_progress p WHERE p.node = init_merge_planned.node;
  IF v_state <> 'uninitialized' THEN
    PERFORM steep_repl.transition(node, 'uninitialized', pg_catalog.format('merge dry run %s planned; nothing moved', merge_id));
  END IF;
  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (node, 'init.merge_planned', v_state, 'uninitialized', pg_catalog.jsonb_build_object('merge_id', merge_id, 'tables', counts));
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_planned(text, bigint, jsonb) IS
  'Sidecar step of init.merge: a dry run recorded its plan (merge_id, counts per table and direction in the event init.merge_planned); the node goes back to UNINITIALIZED.';

-- The write freeze: LOCK every table in scope IN EXCLUSIVE MODE (reads go on, writes wait) for
-- the rest of the caller's transaction; the caller sets lock_timeout. Each lock is taken as the
-- table's owner, like every other statement on a user table, in name order (two freezes over the
-- same tables queue rather than deadlock).
CREATE FUNCTION steep_repl._merge_lock(tables jsonb) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rel regclass;
  n integer := 0;
BEGIN
  FOR v_rel IN SELECT pg_catalog.format('%I.%I', x.schema, x."table")::regclass
               FROM pg_catalog.jsonb_to_recordset(tables) AS x(schema text, "table" text) ORDER BY x.schema, x."table" LOOP
    PERFORM steep_repl._exec_as_owner(v_rel, pg_catalog.format('LOCK TABLE %s IN EXCLUSIVE MODE', v_rel));
    n := n + 1;
  END LOOP;
  IF n = 0 THEN
    RAISE EXCEPTION 'no tables to lock' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_lock(jsonb) IS
  'Sidecar step of init.merge (its write freeze): LOCK TABLE [{schema, table}] IN EXCLUSIVE MODE as each table''s owner until the caller''s transaction ends; returns how many.';

-- Called on the SOURCE of a merge by the target's sidecar once the source's subscription from
-- the target exists: the source's own init, method merge, with the target as its init source,
-- so its tick takes it COPYING -> CATCHING_UP -> SYNCHRONIZED like any init's.
CREATE FUNCTION steep_repl.init_merge_link(peer text, subscription text, slot_name text, publication text,
                                           tables jsonb, options jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_node steep_repl.nodes;
  v_sub oid;
BEGIN
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.is_local FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'this database has no local node' USING ERRCODE = 'undefined_object';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = peer) THEN
    PERFORM steep_repl._unknown_node(peer);
  END IF;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = init_merge_link.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription USING ERRCODE = 'undefined_object';
  END IF;
  IF v_node.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" is %: the merge cannot link it', v_node.name, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  DELETE FROM steep_repl.init_progress p WHERE p.node = v_node.name;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription, slot_name,
    subscription_oid, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, tables_total, message)
  VALUES (v_node.name, peer, 'merge', options, publication, true, subscription, slot_name, v_sub, 1,
    coalesce((options->>'lag_threshold')::bigint, 1048576),
    pg_catalog.make_interval(secs => coalesce((options->>'stall_timeout')::float8, 60)),
    pg_catalog.make_interval(secs => coalesce((options->>'source_timeout')::float8, 60)),
    pg_catalog.jsonb_array_length(tables), pg_catalog.format('merged with %s; subscribed from it', peer));
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, sync_state, fraction)
  SELECT v_node.name, x.schema, x."table", pg_catalog.to_regclass(pg_catalog.format('%I.%I', x.schema, x."table"))::oid, 'synced', 1
  FROM pg_catalog.jsonb_to_recordset(tables) AS x(schema text, "table" text);
  UPDATE steep_repl.nodes n SET init_source_node = peer WHERE n.name = v_node.name;
  PERFORM steep_repl.transition(v_node.name, 'preparing', pg_catalog.format('merge with %s: subscribed from it', peer));
  PERFORM steep_repl.transition(v_node.name, 'copying', pg_catalog.format('merge with %s: rows merged on both nodes', peer));
END
$$;
COMMENT ON FUNCTION steep_repl.init_merge_link(text, text, text, text, jsonb, jsonb) IS
  'Sidecar step of init.merge, on the merge''s source: records its subscription from the target (peer) as its own init, method merge, so tick() takes it to SYNCHRONIZED and the console shows the link.';

-- The merge's writes on a node carry the replication origin of that node's subscription from
-- the other (created disabled before pass 1, its progress untouched until advanced to the
-- slot's LSN): the other node's subscription (origin = none) does not send them back, and on 18 a
-- later update of such a row by that subscription is no update_origin_differs conflict (the
-- row's origin is the subscription's own).
CREATE FUNCTION steep_repl._merge_origin_as(subscription text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_origin text;
BEGIN
  SELECT 'pg_' || s.oid INTO v_origin FROM pg_catalog.pg_subscription s
  WHERE s.subname = _merge_origin_as.subscription
    AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_origin IS NULL THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription USING ERRCODE = 'undefined_object';
  END IF;
  IF pg_catalog.pg_replication_origin_session_is_setup() THEN
    PERFORM pg_catalog.pg_replication_origin_session_reset();
  END IF;
  PERFORM pg_catalog.pg_replication_origin_session_setup(v_origin);
  RETURN v_origin;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_origin_as(text) IS
  'Sidecar step of init.merge: this session''s writes carry the replication origin of subscription (pg_<oid>) until _merge_origin_end; returns the origin''s name.';

-- Audit rows of the freeze's re-check: a row moved again since pass 1 keeps one audit row (the
-- primary key is per merge and key), now saying what the freeze did; the loser's image of pass 1
-- is kept when the freeze has none.
CREATE FUNCTION steep_repl._merge_audit_again(merge_id bigint, rows jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  v_n bigint;
BEGIN
  INSERT INTO steep_repl.merge_audit_log AS a (merge_id, schema_name, table_name, key, category, resolution, tie, local_hash, peer_hash,
                                               local_row, peer_row, local_committed_at, peer_committed_at)
  SELECT _merge_audit_again.merge_id, x.schema_name, x.table_name, x.key, x.category, x.resolution, coalesce(x.tie, false),
         x.local_hash, x.peer_hash, x.local_row, x.peer_row, x.local_committed_at, x.peer_committed_at
  FROM pg_catalog.jsonb_to_recordset(rows) AS x(schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
         local_hash bigint, peer_hash bigint, local_row jsonb, peer_row jsonb, local_committed_at timestamptz, peer_committed_at timestamptz)
  ON CONFLICT (merge_id, schema_name, table_name, key) DO UPDATE SET category = EXCLUDED.category, resolution = EXCLUDED.resolution,
    tie = EXCLUDED.tie, local_hash = EXCLUDED.local_hash, peer_hash = EXCLUDED.peer_hash,
    local_row = coalesce(EXCLUDED.local_row, a.local_row), peer_row = coalesce(EXCLUDED.peer_row, a.peer_row),
    local_committed_at = EXCLUDED.local_committed_at, peer_committed_at = EXCLUDED.peer_committed_at,
    logged_at = pg_catalog.clock_timestamp();
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_audit_again(bigint, jsonb) IS
  'Sidecar step of init.merge: audit rows of the write freeze''s re-check, replacing those of pass 1 for a row moved again; returns how many.';

-- Of the rows of rel with the given primary keys, the keys (as _merge_plan prints them) of those
-- whose version was committed after since by a transaction of another origin than origin (the
-- merge's own writes carry it): the rows a user changed on this node since the merge began. The
-- freeze's re-check gives a row changed on one side only to that side, whatever the strategy
-- (the other side holds a copy pass 1 made, or the row as it was). NULL without
-- track_commit_timestamp (the strategy then decides).
CREATE FUNCTION steep_repl._merge_changed_since(rel regclass, keys jsonb, since timestamptz, origin text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v text[];
BEGIN
  IF NOT pg_catalog.current_setting('track_commit_timestamp')::boolean THEN
    RETURN NULL;
  END IF;
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.array_agg(%s), ''{}'')
     FROM %s r CROSS JOIN LATERAL pg_catalog.pg_xact_commit_timestamp_origin(r.xmin) c
     %s
       AND c."timestamp" OPERATOR(pg_catalog.>) %L::pg_catalog.timestamptz
       AND c.roident IS DISTINCT FROM (SELECT o.roident FROM pg_catalog.pg_replication_origin o WHERE o.roname OPERATOR(pg_catalog.=) %L)',
    steep_repl._compare_key_expr(v_t),
    rel,
    steep_repl._compare_keys_filter(v_t, keys),
    since::text, origin), 'v pg_catalog.text[]')
    INTO v;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_changed_since(regclass, jsonb, timestamptz, text) IS
  'Sidecar step of init.merge (the freeze''s re-check): keys of the given rows of rel last committed after since by another origin than origin (a user''s change since the merge began); NULL without track_commit_timestamp.';

-- Deletes made while a merge runs (#13). Pass 1 makes both nodes hold the union of what its plan
-- read; a row one node deletes after that is, at the write freeze, on the other node only, like a
-- row written there since. What tells them apart is the version the other node still holds: if
-- its transaction had ended before the plan read the table (below the node's baseline xid), or
-- it is a copy a pass of the merge wrote, the row was on both nodes after pass 1, so the node
-- that lacks it deleted it: the delete is propagated (category deleted_during_merge). Any other
-- version was written by a user while the merge ran: it is copied, and if the row was on both
-- nodes after pass 1 (pass 1 moved it) that is a change against a delete, where the change wins
-- (category update_delete), as a later write does in replication. A row the merge saw as
-- identical, changed on one node and deleted on the other, is copied too but shows as local_only
-- or peer_only: the merge keeps no list of the rows that were identical.

-- This node's baseline, taken just before the plan: every transaction with a smaller xid (a
-- subtransaction's too) has ended. pg_current_snapshot()'s xmax, once the transactions running
-- then have ended (waited for up to wait_seconds); else the oldest of them still running.
CREATE FUNCTION steep_repl._merge_baseline(wait_seconds double precision) RETURNS xid8
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_snap pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
  v_until timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => greatest(wait_seconds, 0));
  v_running xid8[];
BEGIN
  -- A subtransaction's xid is in no snapshot's xip: waiting for its top transaction to end is
  -- what makes "below the baseline" mean "ended" for it too (its xid is above its parent's).
  LOOP
    v_running := ARRAY(SELECT x FROM pg_catalog.pg_snapshot_xip(v_snap) x WHERE pg_catalog.pg_xact_status(x) = 'in progress');
    EXIT WHEN pg_catalog.cardinality(v_running) = 0 OR pg_catalog.clock_timestamp() >= v_until;
    PERFORM pg_catalog.pg_sleep(0.02);
  END LOOP;
  RETURN (SELECT s.x FROM (SELECT pg_catalog.pg_snapshot_xmax(v_snap) UNION ALL SELECT pg_catalog.unnest(v_running)) s(x) ORDER BY s.x LIMIT 1);
END
$$;
COMMENT ON FUNCTION steep_repl._merge_baseline(double precision) IS
  'Sidecar step of init.merge: an xid below which every transaction of this node has ended (waiting up to wait_seconds for those running now), taken before the plan.';

CREATE FUNCTION steep_repl._merge_record_baseline(merge_id bigint, job_id bigint, local_baseline xid8, peer_baseline xid8) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.merges m SET job_id = _merge_record_baseline.job_id, baseline_local = local_baseline, baseline_peer = peer_baseline
  WHERE m.merge_id = _merge_record_baseline.merge_id;
$$;
COMMENT ON FUNCTION steep_repl._merge_record_baseline(bigint, bigint, xid8, xid8) IS
  'Sidecar step of init.merge: records the merge''s job and both nodes'' baseline xids (_merge_baseline).';

-- Called in the target's transaction of a pass, so the xids are recorded exactly when the pass
-- commits here (the source commits with it, or resolvePrepared finishes it).
CREATE FUNCTION steep_repl._merge_record_pass(merge_id bigint, local_xid xid8, peer_xid xid8) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.merges m SET pass_xids_local = m.pass_xids_local || local_xid, pass_xids_peer = m.pass_xids_peer || peer_xid
  WHERE m.merge_id = _merge_record_pass.merge_id;
$$;
COMMENT ON FUNCTION steep_repl._merge_record_pass(bigint, xid8, xid8) IS
  'Sidecar step of init.merge: records the xids of a pass of the merge on both nodes, in the target''s transaction of that pass.';

-- The baseline a merge's write freeze judges deletes by: that of the first merge of its job whose
-- pass 1 committed (a retried attempt's nodes held the union since then), with the xids of every
-- pass of the job. No row, or empty xids, while no pass has committed: nothing to judge yet.
CREATE FUNCTION steep_repl._merge_baseline_of(merge_id bigint,
  OUT baseline_local xid8, OUT baseline_peer xid8, OUT pass_xids_local xid8[], OUT pass_xids_peer xid8[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH job AS (
    SELECT m2.merge_id FROM steep_repl.merges m1 JOIN steep_repl.merges m2
      ON m2.merge_id = m1.merge_id OR (m2.job_id = m1.job_id AND NOT m2.dry_run)
    WHERE m1.merge_id = _merge_baseline_of.merge_id)
  SELECT f.baseline_local, f.baseline_peer,
         ARRAY(SELECT x FROM steep_repl.merges m, pg_catalog.unnest(m.pass_xids_local) x WHERE m.merge_id IN (SELECT j.merge_id FROM job j)),
         ARRAY(SELECT x FROM steep_repl.merges m, pg_catalog.unnest(m.pass_xids_peer) x WHERE m.merge_id IN (SELECT j.merge_id FROM job j))
  FROM (SELECT m.baseline_local, m.baseline_peer FROM steep_repl.merges m
        WHERE m.merge_id IN (SELECT j.merge_id FROM job j) AND pg_catalog.cardinality(m.pass_xids_local) > 0
        ORDER BY m.merge_id LIMIT 1) f;
$$;
COMMENT ON FUNCTION steep_repl._merge_baseline_of(bigint) IS
  'Sidecar step of init.merge: the baselines of the first merge of the job whose pass committed and the xids of all its passes; no row before any pass committed.';

-- Of the rows of rel with the given primary keys, the keys (as _merge_plan prints them) of those
-- whose version existed on both nodes after pass 1: its xmin below this node's baseline, or one of
-- the merge's passes (xids). xmin is a 32-bit xid: its epoch is the one that puts it at most 2^32
-- below the next xid (no live row is older, except a frozen one more than 2^32 xids old, which
-- keeps its raw xmin and may then look recent: it is copied back rather than deleted). xmin 1
-- and 2 (bootstrap, frozen before 9.4) are older than any baseline.
CREATE FUNCTION steep_repl._merge_existed_before(rel regclass, keys jsonb, baseline xid8, xids xid8[]) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_next bigint := pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint;
  v text[];
BEGIN
  PERFORM steep_repl._require('baseline', baseline);
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.array_agg(%s), ''{}'')
     FROM %s r CROSS JOIN LATERAL (SELECT r.xmin::pg_catalog.text::bigint AS x32) x
     CROSS JOIN LATERAL (SELECT (%s::bigint - ((%s::bigint - x.x32) %% 4294967296 + 4294967296) %% 4294967296)::pg_catalog.text::pg_catalog.xid8 AS x) f
     %s
       AND (x.x32 < 3 OR f.x < %L::pg_catalog.xid8 OR f.x = ANY (%L::pg_catalog.xid8[]))',
    steep_repl._compare_key_expr(v_t),
    rel, v_next, v_next,
    steep_repl._compare_keys_filter(v_t, keys),
    baseline::text, coalesce(xids, '{}')::text), 'v pg_catalog.text[]')
    INTO v;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_existed_before(regclass, jsonb, xid8, xid8[]) IS
  'Sidecar step of init.merge (the write freeze): keys of the given rows of rel whose version predates baseline or was written by one of xids (a pass of the merge): rows the other node deleted while the merge ran.';

-- Of the given keys of a table, those a pass of the merge's job moved (its audit rows): the row
-- was on both nodes after pass 1. Tells update_delete from a row inserted while the merge ran.
CREATE FUNCTION steep_repl._merge_moved_keys(merge_id bigint, schema_name text, table_name text, keys jsonb) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(pg_catalog.array_agg(DISTINCT a.key::text), '{}')
  FROM steep_repl.merge_audit_log a
  WHERE a.merge_id IN (SELECT m2.merge_id FROM steep_repl.merges m1 JOIN steep_repl.merges m2
                         ON m2.merge_id = m1.merge_id OR (m2.job_id = m1.job_id AND NOT m2.dry_run)
                       WHERE m1.merge_id = _merge_moved_keys.merge_id)
    AND a.schema_name = _merge_moved_keys.schema_name AND a.table_name = _merge_moved_keys.table_name
    AND a.resolution IN ('to_local', 'to_peer')
    AND a.key IN (SELECT pg_catalog.jsonb_array_elements(keys));
$$;
COMMENT ON FUNCTION steep_repl._merge_moved_keys(bigint, text, text, jsonb) IS
  'Sidecar step of init.merge (the write freeze): of the given keys of a table, those a pass of the merge''s job moved.';
