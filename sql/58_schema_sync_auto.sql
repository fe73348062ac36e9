-- steep_repl._schema_sync(): compare this node (the target) with a peer (the source) and act per
-- mode; auto mode's plan of DDL and its all-or-nothing application.

-- The DDL making this node's tables match the peer's, from pg_temp.sr_diff, into pg_temp.sr_plan:
-- one row per statement (rank orders them) or per refused change (refusal says why). Tables that
-- change are locked first, in name order, so what is seen of their rows stays true.
CREATE FUNCTION steep_repl._auto_plan(local_node text, peer text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d record;
  v_qt text;
  v_def steep_repl.table_definition;
  v_pk text;
  v_nulls boolean;
  v_unsafe text;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS sr_plan (ord bigint GENERATED ALWAYS AS IDENTITY, rank int NOT NULL, stmt text, refusal text)
    ON COMMIT DROP;
  TRUNCATE pg_temp.sr_plan;
  FOR d IN SELECT DISTINCT l.schema_name, l.table_name FROM pg_temp.sr_def_local l
           JOIN pg_temp.sr_diff x ON x.schema_name = l.schema_name AND x.table_name = l.table_name
           ORDER BY 1, 2 LOOP
    EXECUTE pg_catalog.format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', d.schema_name, d.table_name);
  END LOOP;

  FOR d IN SELECT x.*, x.local_value AS lc, x.peer_value AS pc FROM pg_temp.sr_diff x ORDER BY x.ord LOOP
    v_qt := pg_catalog.format('%I.%I', d.schema_name, d.table_name);
    v_unsafe := CASE WHEN d.kind IN ('missing', 'type', 'default') AND d.column_name IS NOT NULL
                     THEN steep_repl._unsafe_column(d.pc) END;
    IF d.column_name IS NULL AND d.kind = 'missing' THEN
      SELECT * INTO v_def FROM pg_temp.sr_def_peer p WHERE p.schema_name = d.schema_name AND p.table_name = d.table_name;
      SELECT pg_catalog.format('create table %s: column %I: %s', v_qt, c->>'name', steep_repl._unsafe_column(c)) INTO v_unsafe
      FROM pg_catalog.jsonb_array_elements(v_def.columns) c WHERE steep_repl._unsafe_column(c) IS NOT NULL LIMIT 1;
      IF v_unsafe IS NOT NULL THEN
        INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (3, v_unsafe);
        CONTINUE;
      END IF;
      INSERT INTO pg_temp.sr_plan (rank, stmt) SELECT 1, pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I', d.schema_name)
      WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = d.schema_name)
        AND NOT EXISTS (SELECT 1 FROM pg_temp.sr_plan p WHERE p.stmt = pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I', d.schema_name));
      INSERT INTO pg_temp.sr_plan (rank, stmt) SELECT 2, s.ddl
      FROM pg_catalog.jsonb_array_elements(v_def.columns) c, steep_repl._sequence_ddl(c->>'default') s(ddl) WHERE s.ddl IS NOT NULL;
      INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (3, steep_repl._create_table_ddl(v_def));
    ELSIF v_unsafe IS NOT NULL THEN
      INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (7, pg_catalog.format('column %I of %s: %s', d.column_name, v_qt, v_unsafe));
    ELSIF d.column_name IS NULL AND d.kind = 'extra' THEN
      IF steep_repl._has_rows(v_qt) THEN
        INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (0, pg_catalog.format(
          'drop table %s: it is not on %s but holds rows on %s', v_qt, peer, local_node));
      ELSE
        INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (0, 'DROP TABLE ' || v_qt);
      END IF;
    ELSIF d.kind = 'missing' THEN
      IF (d.pc->>'not_null')::boolean AND d.pc->>'default' IS NULL AND d.pc->>'generated' IS NULL AND steep_repl._has_rows(v_qt) THEN
        INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (7, pg_catalog.format(
          'add column %I to %s: it is NOT NULL without a default and the table holds rows', d.column_name, v_qt));
      ELSE
        INSERT INTO pg_temp.sr_plan (rank, stmt) SELECT 2, s.ddl FROM steep_repl._sequence_ddl(d.pc->>'default') s(ddl)
        WHERE s.ddl IS NOT NULL;
        INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (7, pg_catalog.format('ALTER TABLE %s ADD COLUMN %s', v_qt, steep_repl._column_ddl(d.pc)));
      END IF;
    ELSIF d.kind = 'extra' THEN
      INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (7, pg_catalog.format(
        'drop column %I of %s: it is not on %s, and dropping a column destroys its data', d.column_name, v_qt, peer));
    ELSIF d.kind = 'type' THEN
      IF steep_repl._type_widens(d.lc->>'type', d.pc->>'type') THEN
        INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (6, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s',
          v_qt, d.column_name, d.pc->>'type'));
      ELSIF NOT steep_repl._has_rows(v_qt) THEN
        INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (6, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s',
          v_qt, d.column_name, d.pc->>'type', d.column_name, d.pc->>'type'));
      ELSE
        INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (6, pg_catalog.format(
          'change column %I of %s from %s to %s: not a widening, and the table holds rows that could be lost or fail to convert',
          d.column_name, v_qt, d.lc->>'type', d.pc->>'type'));
      END IF;
    ELSIF d.kind = 'default' THEN
      IF d.lc->>'generated' IS NOT NULL OR d.pc->>'generated' IS NOT NULL THEN
        INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (8, pg_catalog.format(
          'change column %I of %s from %s to %s: identity and generated columns are changed by hand', d.column_name, v_qt,
          coalesce(d.lc->>'generated', 'DEFAULT ' || (d.lc->>'default'), 'no default'),
          coalesce(d.pc->>'generated', 'DEFAULT ' || (d.pc->>'default'), 'no default')));
      ELSIF d.pc->>'default' IS NULL THEN
        INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (8, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', v_qt, d.column_name));
      ELSE
        INSERT INTO pg_temp.sr_plan (rank, stmt) SELECT 2, s.ddl FROM steep_repl._sequence_ddl(d.pc->>'default') s(ddl)
        WHERE s.ddl IS NOT NULL;
        INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (8, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s',
          v_qt, d.column_name, d.pc->>'default'));
      END IF;
    ELSIF d.kind = 'nullability' AND (d.pc->>'not_null')::boolean THEN
      EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I IS NULL)', v_qt, d.column_name) INTO v_nulls;
      IF v_nulls THEN
        INSERT INTO pg_temp.sr_plan (rank, refusal) VALUES (9, pg_catalog.format(
          'set NOT NULL on column %I of %s: it holds NULLs', d.column_name, v_qt));
      ELSE
        INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (9, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', v_qt, d.column_name));
      END IF;
    ELSIF d.kind = 'nullability' THEN
      INSERT INTO pg_temp.sr_plan (rank, stmt) VALUES (5, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', v_qt, d.column_name));
    ELSIF d.kind = 'primary_key' THEN
      -- Dropped early (before nullability changes), added last (after the columns exist).
      SELECT c.conname INTO v_pk FROM pg_catalog.pg_constraint c
      WHERE c.conrelid = pg_catalog.to_regclass(v_qt) AND c.contype = 'p';
      INSERT INTO pg_temp.sr_plan (rank, stmt) SELECT 4, pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', v_qt, v_pk)
      WHERE v_pk IS NOT NULL;
      INSERT INTO pg_temp.sr_plan (rank, stmt) SELECT 10, pg_catalog.format('ALTER TABLE %s ADD PRIMARY KEY (%s)', v_qt, steep_repl._ident_list(d.pc))
      WHERE d.pc IS NOT NULL;
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._auto_plan(text, text) IS
  'Internal: auto mode''s DDL (pg_temp.sr_plan) for the differences in pg_temp.sr_diff, and the changes it refuses.';

CREATE FUNCTION steep_repl._schema_sync(peer text, mode text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := coalesce(options, '{}');
  v_mode text := steep_repl._sync_mode(mode);
BEGIN
  PERFORM steep_repl._require_arg('peer', peer, 'Name the registered node to compare with: SELECT name FROM steep_repl.nodes.');
  PERFORM steep_repl._check_sync_options(v_opts);
  PERFORM steep_repl._load_definitions(peer, true, v_opts);
  RETURN steep_repl._schema_sync_loaded(peer, v_mode, v_opts);
END
$$;
COMMENT ON FUNCTION steep_repl._schema_sync(text, text, jsonb) IS
  'Internal API (start_init, complete_init, snapshot apply): compares this node with peer (read live through its registered conninfo) within options tables/schemas and applies mode strict | auto | manual (NULL: the configured default; option confirm for manual). Returns a report {peer, node, mode, status match|synced|accepted, tables, differences, applied}; raises 42P16 when the tables may not be used as they are, 22023, 22004, 42704, 08001.';

-- The same, against definitions recorded elsewhere (a snapshot manifest holding
-- steep_repl._schema_definitions() of its source), for when the source is not reachable.
CREATE FUNCTION steep_repl._schema_sync_from(definitions jsonb, peer text, mode text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := coalesce(options, '{}');
  v_mode text := steep_repl._sync_mode(mode);
BEGIN
  PERFORM steep_repl._require_arg('definitions', definitions, 'Pass the source''s steep_repl._schema_definitions().');
  PERFORM steep_repl._require_arg('peer', peer, 'Name the node the definitions come from (used in messages).');
  PERFORM steep_repl._check_sync_options(v_opts);
  IF pg_catalog.jsonb_typeof(definitions) <> 'array' THEN
    RAISE EXCEPTION 'definitions must be a JSON array of table definitions' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Pass the source''s steep_repl._schema_definitions().';
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS sr_def_local (LIKE steep_repl.table_definition) ON COMMIT DROP;
  CREATE TEMP TABLE IF NOT EXISTS sr_def_peer (LIKE steep_repl.table_definition) ON COMMIT DROP;
  TRUNCATE pg_temp.sr_def_local, pg_temp.sr_def_peer;
  INSERT INTO pg_temp.sr_def_local SELECT * FROM steep_repl._local_definitions(true) d
  WHERE steep_repl._in_scope(v_opts, d.schema_name, d.table_name);
  INSERT INTO pg_temp.sr_def_peer SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::steep_repl.table_definition, definitions) d
  WHERE steep_repl._in_scope(v_opts, d.schema_name, d.table_name);
  RETURN steep_repl._schema_sync_loaded(peer, v_mode, v_opts);
END
$$;
COMMENT ON FUNCTION steep_repl._schema_sync_from(jsonb, text, text, jsonb) IS
  'Internal API: steep_repl._schema_sync against recorded definitions (a JSON array of steep_repl.table_definition, as _schema_definitions() returns) instead of a live peer; peer names their origin in messages.';

CREATE FUNCTION steep_repl._schema_definitions(options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(d) ORDER BY d.schema_name, d.table_name), '[]')
  FROM steep_repl._local_definitions(true) d WHERE steep_repl._in_scope(coalesce(options, '{}'), d.schema_name, d.table_name);
$$;
COMMENT ON FUNCTION steep_repl._schema_definitions(jsonb) IS
  'Internal API: this node''s table definitions within options tables/schemas, as a JSON array (for a snapshot manifest; see _schema_sync_from).';

CREATE FUNCTION steep_repl._check_sync_options(opts jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._check_scope(opts);
  IF opts ? 'confirm' AND pg_catalog.jsonb_typeof(opts->'confirm') <> 'boolean' THEN
    RAISE EXCEPTION 'confirm must be true or false' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'confirm => true lets schema_sync manual proceed despite differences.';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._check_sync_options(jsonb) IS 'Internal: 22023 unless options hold valid tables/schemas and a boolean confirm (other keys are ignored).';

-- The mode's work on the loaded definitions (pg_temp.sr_def_local, pg_temp.sr_def_peer).
CREATE FUNCTION steep_repl._schema_sync_loaded(peer text, sync_mode text, opts jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text := steep_repl._local_name();
  v_node text := (SELECT n.name FROM steep_repl.nodes n WHERE n.is_local);
  v_diffs text[];
  v_refused text[];
  v_applied text[] := '{}';
  v_stmt text;
  v_tables integer;
  v_state text;
  v_msg text;
  v_detail text;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS sr_diff (ord bigint GENERATED ALWAYS AS IDENTITY, schema_name text, table_name text,
    column_name text, kind text, local_value jsonb, peer_value jsonb, description text) ON COMMIT DROP;
  TRUNCATE pg_temp.sr_diff;
  INSERT INTO pg_temp.sr_diff (schema_name, table_name, column_name, kind, local_value, peer_value, description)
  SELECT * FROM steep_repl._differences(v_local, peer);
  SELECT pg_catalog.array_agg(x.description ORDER BY x.ord) INTO v_diffs FROM pg_temp.sr_diff x;
  SELECT pg_catalog.count(*) INTO v_tables FROM pg_temp.sr_def_peer;

  IF v_diffs IS NULL THEN
    RETURN steep_repl._sync_report(peer, v_local, sync_mode, 'match', v_tables, '{}', '{}');
  ELSIF sync_mode = 'strict' THEN
    RAISE EXCEPTION 'schemas of "%" and "%" differ', peer, v_local
      USING ERRCODE = 'invalid_table_definition', DETAIL = pg_catalog.array_to_string(v_diffs, E'\n'),
            HINT = 'schema_sync is strict: create the same tables here first (steep_repl.schema_ddl, pg_dump --schema-only), limit the scope with the tables/schemas options, or use schema_sync auto or manual.';
  ELSIF sync_mode = 'manual' THEN
    IF NOT coalesce((opts->>'confirm')::boolean, false) THEN
      RAISE EXCEPTION 'schemas of "%" and "%" differ and schema_sync is manual', peer, v_local
        USING ERRCODE = 'invalid_table_definition', DETAIL = pg_catalog.array_to_string(v_diffs, E'\n'),
              HINT = 'Review the differences; to go on anyway, call again with the option confirm => true (it is recorded as a schema.differences_accepted event).';
    END IF;
    RAISE WARNING 'schemas of "%" and "%" differ in % place(s); going on because confirm is true', peer, v_local,
      pg_catalog.cardinality(v_diffs) USING DETAIL = pg_catalog.array_to_string(v_diffs, E'\n');
    INSERT INTO steep_repl.schema_accepted_differences (peer, description)
    SELECT peer, x FROM pg_catalog.unnest(v_diffs) x ON CONFLICT DO NOTHING;
    INSERT INTO steep_repl.events (node, event, detail) VALUES (v_node, 'schema.differences_accepted',
      pg_catalog.jsonb_build_object('peer', peer, 'differences', pg_catalog.to_jsonb(v_diffs)));
    RETURN steep_repl._sync_report(peer, v_local, sync_mode, 'accepted', v_tables, v_diffs, '{}');
  END IF;

  PERFORM steep_repl._auto_plan(v_local, peer);
  SELECT pg_catalog.array_agg(p.refusal ORDER BY p.rank, p.ord) INTO v_refused FROM pg_temp.sr_plan p WHERE p.refusal IS NOT NULL;
  IF v_refused IS NOT NULL THEN
    RAISE EXCEPTION 'schema_sync auto refuses % change(s) to node "%"', pg_catalog.cardinality(v_refused), v_local
      USING ERRCODE = 'invalid_table_definition', DETAIL = pg_catalog.array_to_string(v_refused, E'\n'),
            HINT = 'Nothing was changed. Make these changes by hand (steep_repl.schema_diff lists every difference), or use schema_sync manual with confirm => true.';
  END IF;
  BEGIN
    FOR v_stmt IN SELECT p.stmt FROM pg_temp.sr_plan p ORDER BY p.rank, p.ord LOOP
      EXECUTE v_stmt;
      v_applied := v_applied || v_stmt;
    END LOOP;
    v_stmt := NULL;
    -- Verify: this side, read again, now matches the peer.
    TRUNCATE pg_temp.sr_def_local;
    INSERT INTO pg_temp.sr_def_local SELECT * FROM steep_repl._local_definitions(true) d
    WHERE steep_repl._in_scope(opts, d.schema_name, d.table_name);
    SELECT pg_catalog.string_agg(x.description, E'\n') INTO v_detail FROM steep_repl._differences(v_local, peer) x;
    IF v_detail IS NOT NULL THEN
      RAISE EXCEPTION 'the tables still differ after % statement(s)', pg_catalog.cardinality(v_applied)
        USING ERRCODE = 'invalid_table_definition', DETAIL = v_detail;
    END IF;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'schema_sync auto rolled back on node "%": %', v_local, v_msg
      USING ERRCODE = v_state,
            DETAIL = pg_catalog.concat_ws(E'\n', 'failed statement: ' || v_stmt, NULLIF(v_detail, ''),
                                          pg_catalog.format('%s statement(s) before it were rolled back', pg_catalog.cardinality(v_applied))),
            HINT = 'Nothing was changed: fix the cause (or make the changes by hand) and try again.';
  END;
  INSERT INTO steep_repl.events (node, event, detail) VALUES (v_node, 'schema.synced', pg_catalog.jsonb_build_object(
    'peer', peer, 'mode', 'auto', 'differences', pg_catalog.to_jsonb(v_diffs), 'applied', pg_catalog.to_jsonb(v_applied)));
  RETURN steep_repl._sync_report(peer, v_local, sync_mode, 'synced', v_tables, v_diffs, v_applied);
END
$$;
COMMENT ON FUNCTION steep_repl._schema_sync_loaded(text, text, jsonb) IS
  'Internal: strict, manual or auto on the loaded definitions; see steep_repl._schema_sync.';

CREATE FUNCTION steep_repl._sync_report(peer text, node text, mode text, status text, tables integer,
                                        differences text[], applied text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object('peer', peer, 'node', node, 'mode', mode, 'status', status, 'tables', tables,
    'differences', pg_catalog.to_jsonb(differences), 'applied', pg_catalog.to_jsonb(applied));
$$;
COMMENT ON FUNCTION steep_repl._sync_report(text, text, text, text, integer, text[], text[]) IS 'Internal: the jsonb report of steep_repl._schema_sync().';

CREATE FUNCTION steep_repl.schema_sync(peer text, mode text DEFAULT NULL, options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._require_arg('peer', peer, 'Name the registered node to compare with: SELECT name FROM steep_repl.nodes.');
  PERFORM steep_repl._require_arg('options', options, 'Pass ''{}'' for every table.');
  RETURN steep_repl._schema_sync(peer, mode, options);
END
$$;
COMMENT ON FUNCTION steep_repl.schema_sync(text, text, jsonb) IS
  'Makes this node''s tables agree with peer''s per mode (strict: check only; auto: apply the safe DDL in this transaction; manual: needs {"confirm": true}); options {"tables": [...], "schemas": [...], "confirm": bool}. Returns what was found and done. Errors: 22004, 22023, 42704, 08001, 42P16.';
