-- steep_repl._schema_sync(): compare this node (the target) with a peer (the source) and act per
-- mode; auto mode's plan of DDL and its all-or-nothing application. Definitions, differences and
-- the plan pass between functions as arrays and jsonb: no temp table (a caller owns pg_temp and
-- could create one first, with a trigger).

-- The DDL making this node's tables match the peer's, for diffs (a jsonb array of
-- steep_repl._differences rows, in order): a jsonb array of steps {rank, run_as, stmt}, run in
-- rank then array order, or {rank, refusal} (a change not made, and why; with the DDL to run by
-- hand when a DBA may after review). Each statement runs as the role run_as: the table's owner
-- for a change to an existing table, the caller (steep_repl._caller()) for what creates a table,
-- so a trigger, default or CHECK never runs with the definer's rights. Tables that change are
-- locked first, in name order, so what is seen of their rows stays true.
CREATE FUNCTION steep_repl._auto_plan(local_defs steep_repl.table_definition[], peer_defs steep_repl.table_definition[],
                                      diffs jsonb, local_node text, peer text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_plan jsonb := '[]';
  v_caller oid := steep_repl._caller();
  d record;
  v_qt text;
  v_owner oid;
  v_def steep_repl.table_definition;
  v_pk text;
  v_nulls boolean;
  v_unsafe text;
  v_stmt text;
BEGIN
  FOR d IN SELECT DISTINCT l.schema_name, l.table_name FROM pg_catalog.unnest(local_defs) l
           JOIN pg_catalog.jsonb_array_elements(diffs) x ON x->>'schema_name' = l.schema_name AND x->>'table_name' = l.table_name
           ORDER BY 1, 2 LOOP
    EXECUTE pg_catalog.format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', d.schema_name, d.table_name);
  END LOOP;

  FOR d IN SELECT x->>'schema_name' AS schema_name, x->>'table_name' AS table_name, x->>'column_name' AS column_name,
                  x->>'kind' AS kind, NULLIF(x->'local_value', 'null') AS lc, NULLIF(x->'peer_value', 'null') AS pc
           FROM pg_catalog.jsonb_array_elements(diffs) WITH ORDINALITY AS e(x, ord) ORDER BY e.ord LOOP
    v_qt := pg_catalog.format('%I.%I', d.schema_name, d.table_name);
    v_owner := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(v_qt));
    v_unsafe := CASE WHEN d.kind IN ('missing', 'type', 'default') AND d.column_name IS NOT NULL
                     THEN steep_repl._unsafe_column(d.pc) END;
    IF d.column_name IS NULL AND d.kind = 'missing' THEN
      SELECT * INTO v_def FROM pg_catalog.unnest(peer_defs) p WHERE p.schema_name = d.schema_name AND p.table_name = d.table_name;
      SELECT pg_catalog.format('create table %s: column %I: %s', v_qt, c->>'name', steep_repl._unsafe_column(c)) INTO v_unsafe
      FROM pg_catalog.jsonb_array_elements(v_def.columns) c WHERE steep_repl._unsafe_column(c) IS NOT NULL LIMIT 1;
      IF v_unsafe IS NULL THEN
        SELECT pg_catalog.format('create table %s: %s; review it, then run by hand: %s', v_qt,
                                 pg_catalog.string_agg(pg_catalog.format('column %I: %s', c->>'name', steep_repl._unapplied_expression(c)), '; '),
                                 pg_catalog.concat_ws('; ',
                                   (SELECT pg_catalog.string_agg(DISTINCT 'CREATE SEQUENCE IF NOT EXISTS ' || q.name, '; ')
                                    FROM pg_catalog.jsonb_array_elements(v_def.columns) sc, steep_repl._default_sequence(sc->>'default') q(name)),
                                   steep_repl._create_table_ddl(v_def)))
          INTO v_unsafe
        FROM pg_catalog.jsonb_array_elements(v_def.columns) c WHERE steep_repl._unapplied_expression(c) IS NOT NULL
        HAVING pg_catalog.count(*) > 0;
      END IF;
      IF v_unsafe IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(3, NULL, NULL, v_unsafe);
        CONTINUE;
      END IF;
      v_stmt := pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I', d.schema_name);
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = d.schema_name)
         AND NOT v_plan @> pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('stmt', v_stmt)) THEN
        v_plan := v_plan || steep_repl._plan_step(1, v_caller, v_stmt);
      END IF;
      FOR v_stmt IN SELECT s.ddl FROM pg_catalog.jsonb_array_elements(v_def.columns) c,
                      steep_repl._sequence_ddl(c->>'default') s(ddl) WHERE s.ddl IS NOT NULL LOOP
        v_plan := v_plan || steep_repl._plan_step(2, v_caller, v_stmt);
      END LOOP;
      v_def.columns := (SELECT pg_catalog.jsonb_agg(steep_repl._applied_column(c) ORDER BY e.i)
                        FROM pg_catalog.jsonb_array_elements(v_def.columns) WITH ORDINALITY AS e(c, i));
      v_plan := v_plan || steep_repl._plan_step(3, v_caller, steep_repl._create_table_ddl(v_def));
    ELSIF v_unsafe IS NOT NULL THEN
      v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format('column %I of %s: %s', d.column_name, v_qt, v_unsafe));
    ELSIF d.column_name IS NULL AND d.kind = 'extra' THEN
      IF steep_repl._has_rows(v_qt) THEN
        v_plan := v_plan || steep_repl._plan_step(0, NULL, NULL, pg_catalog.format(
          'drop table %s: it is not on %s but holds rows on %s', v_qt, peer, local_node));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(0, v_owner, 'DROP TABLE ' || v_qt);
      END IF;
    ELSIF d.kind = 'missing' THEN
      v_unsafe := coalesce(steep_repl._unapplied_expression(d.pc),
        CASE WHEN steep_repl._type_has_user_checks(d.pc->>'type') THEN pg_catalog.format(
          'its type %s is a domain whose CHECK constraints would run over the table''s rows', d.pc->>'type') END);
      IF v_unsafe IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format(
          'add column %I to %s: %s; review it, then run by hand: %s', d.column_name, v_qt, v_unsafe,
          pg_catalog.concat_ws('; ', steep_repl._sequence_ddl(d.pc->>'default'),
                               pg_catalog.format('ALTER TABLE %s ADD COLUMN %s', v_qt, steep_repl._column_ddl(d.pc)))));
      ELSIF (d.pc->>'not_null')::boolean AND d.pc->>'default' IS NULL AND d.pc->>'generated' IS NULL AND steep_repl._has_rows(v_qt) THEN
        v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format(
          'add column %I to %s: it is NOT NULL without a default and the table holds rows', d.column_name, v_qt));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(2, v_owner, steep_repl._sequence_ddl(d.pc->>'default'))
                         || steep_repl._plan_step(7, v_owner, pg_catalog.format('ALTER TABLE %s ADD COLUMN %s', v_qt,
                              steep_repl._column_ddl(steep_repl._applied_column(d.pc))));
      END IF;
    ELSIF d.kind = 'extra' THEN
      v_plan := v_plan || steep_repl._plan_step(7, NULL, NULL, pg_catalog.format(
        'drop column %I of %s: it is not on %s, and dropping a column destroys its data', d.column_name, v_qt, peer));
    ELSIF d.kind = 'type' THEN
      IF steep_repl._type_has_user_checks(d.pc->>'type') THEN
        v_plan := v_plan || steep_repl._plan_step(6, NULL, NULL, pg_catalog.format(
          'change column %I of %s from %s to %s: a domain whose CHECK constraints would run over the table''s rows; review it, then run by hand: ALTER TABLE %s ALTER COLUMN %I TYPE %s',
          d.column_name, v_qt, d.lc->>'type', d.pc->>'type', v_qt, d.column_name, d.pc->>'type'));
      ELSIF steep_repl._type_widens(d.lc->>'type', d.pc->>'type') THEN
        v_plan := v_plan || steep_repl._plan_step(6, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s',
          v_qt, d.column_name, d.pc->>'type'));
      ELSIF NOT steep_repl._has_rows(v_qt) THEN
        v_plan := v_plan || steep_repl._plan_step(6, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s',
          v_qt, d.column_name, d.pc->>'type', d.column_name, d.pc->>'type'));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(6, NULL, NULL, pg_catalog.format(
          'change column %I of %s from %s to %s: not a widening, and the table holds rows that could be lost or fail to convert',
          d.column_name, v_qt, d.lc->>'type', d.pc->>'type'));
      END IF;
    ELSIF d.kind = 'default' THEN
      IF d.lc->>'generated' IS NOT NULL OR d.pc->>'generated' IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(8, NULL, NULL, pg_catalog.format(
          'change column %I of %s from %s to %s: identity and generated columns are changed by hand', d.column_name, v_qt,
          coalesce(d.lc->>'generated', 'DEFAULT ' || (d.lc->>'default'), 'no default'),
          coalesce(d.pc->>'generated', 'DEFAULT ' || (d.pc->>'default'), 'no default')));
      ELSIF d.pc->>'default' IS NULL THEN
        v_plan := v_plan || steep_repl._plan_step(8, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', v_qt, d.column_name));
      ELSIF steep_repl._unapplied_expression(d.pc) IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(8, NULL, NULL, pg_catalog.format(
          'set the default of column %I of %s: %s; review it, then run by hand: %s', d.column_name, v_qt,
          steep_repl._unapplied_expression(d.pc),
          pg_catalog.concat_ws('; ', steep_repl._sequence_ddl(d.pc->>'default'),
            pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', v_qt, d.column_name, d.pc->>'default'))));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(2, v_owner, steep_repl._sequence_ddl(d.pc->>'default'))
                         || steep_repl._plan_step(8, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s',
                              v_qt, d.column_name, steep_repl._constant_default(d.pc->>'default')));
      END IF;
    ELSIF d.kind = 'nullability' AND (d.pc->>'not_null')::boolean THEN
      EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I IS NULL)', v_qt, d.column_name) INTO v_nulls;
      IF v_nulls THEN
        v_plan := v_plan || steep_repl._plan_step(9, NULL, NULL, pg_catalog.format(
          'set NOT NULL on column %I of %s: it holds NULLs', d.column_name, v_qt));
      ELSE
        v_plan := v_plan || steep_repl._plan_step(9, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', v_qt, d.column_name));
      END IF;
    ELSIF d.kind = 'nullability' THEN
      v_plan := v_plan || steep_repl._plan_step(5, v_owner, pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', v_qt, d.column_name));
    ELSIF d.kind = 'primary_key' THEN
      -- Dropped early (before nullability changes), added last (after the columns exist).
      SELECT c.conname INTO v_pk FROM pg_catalog.pg_constraint c
      WHERE c.conrelid = pg_catalog.to_regclass(v_qt) AND c.contype = 'p';
      IF v_pk IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(4, v_owner, pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', v_qt, v_pk));
      END IF;
      IF d.pc IS NOT NULL THEN
        v_plan := v_plan || steep_repl._plan_step(10, v_owner, pg_catalog.format('ALTER TABLE %s ADD PRIMARY KEY (%s)', v_qt, steep_repl._ident_list(d.pc)));
      END IF;
    END IF;
  END LOOP;
  RETURN v_plan;
END
$$;
COMMENT ON FUNCTION steep_repl._auto_plan(steep_repl.table_definition[], steep_repl.table_definition[], jsonb, text, text) IS
  'Internal: auto mode''s plan for the differences diffs, as a jsonb array of {rank, run_as, stmt} (the statement and the role it runs as: the table''s owner, or the caller for a new table) and {rank, refusal} (a change it will not make).';

CREATE FUNCTION steep_repl._schema_sync(peer text, mode text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := coalesce(options, '{}');
  v_mode text := steep_repl._sync_mode(mode);
  v_local steep_repl.table_definition[];
  v_peer steep_repl.table_definition[];
BEGIN
  PERFORM steep_repl._require_arg('peer', peer, 'Name the registered node to compare with: SELECT name FROM steep_repl.nodes.');
  PERFORM steep_repl._check_sync_options(v_opts);
  SELECT x.local_defs, x.peer_defs INTO v_local, v_peer FROM steep_repl._load_definitions(peer, true, v_opts) x;
  RETURN steep_repl._schema_sync_loaded(v_local, v_peer, peer, v_mode, v_opts);
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
  RETURN steep_repl._schema_sync_loaded(
    ARRAY(SELECT d FROM steep_repl._local_definitions(true) d
          WHERE steep_repl._in_scope(v_opts, d.schema_name, d.table_name) ORDER BY d.schema_name, d.table_name),
    ARRAY(SELECT d FROM pg_catalog.jsonb_populate_recordset(NULL::steep_repl.table_definition, definitions) d
          WHERE steep_repl._in_scope(v_opts, d.schema_name, d.table_name) ORDER BY d.schema_name, d.table_name),
    peer, v_mode, v_opts);
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

-- The mode's work on both sides' definitions.
CREATE FUNCTION steep_repl._schema_sync_loaded(local_defs steep_repl.table_definition[], peer_defs steep_repl.table_definition[],
                                               peer text, sync_mode text, opts jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text := steep_repl._local_name();
  v_node text := (SELECT n.name FROM steep_repl.nodes n WHERE n.is_local);
  v_diff jsonb;
  v_diffs text[];
  v_plan jsonb;
  v_refused text[];
  v_applied text[] := '{}';
  v_step record;
  v_stmt text;
  v_tables integer := pg_catalog.cardinality(peer_defs);
  v_state text;
  v_msg text;
  v_detail text;
BEGIN
  SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.ord), pg_catalog.array_agg(x.description ORDER BY x.ord)
    INTO v_diff, v_diffs
  FROM steep_repl._differences(local_defs, peer_defs, v_local, peer)
       WITH ORDINALITY AS x(schema_name, table_name, column_name, kind, local_value, peer_value, description, ord);

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

  v_plan := steep_repl._auto_plan(local_defs, peer_defs, v_diff, v_local, peer);
  SELECT pg_catalog.array_agg(e.s->>'refusal' ORDER BY (e.s->>'rank')::integer, e.ord) INTO v_refused
  FROM pg_catalog.jsonb_array_elements(v_plan) WITH ORDINALITY AS e(s, ord) WHERE e.s ? 'refusal';
  IF v_refused IS NOT NULL THEN
    RAISE EXCEPTION 'schema_sync auto refuses % change(s) to node "%"', pg_catalog.cardinality(v_refused), v_local
      USING ERRCODE = 'invalid_table_definition', DETAIL = pg_catalog.array_to_string(v_refused, E'\n'),
            HINT = 'Nothing was changed. Make these changes by hand (steep_repl.schema_diff lists every difference), or use schema_sync manual with confirm => true.';
  END IF;
  BEGIN
    -- Each statement as the role the plan names (steep_repl._exec_as: a security-restricted
    -- operation with search_path pg_catalog; an error restores the definer's identity).
    FOR v_step IN SELECT (e.s->>'run_as')::pg_catalog.oid::pg_catalog.regrole AS run_as, e.s->>'stmt' AS stmt
                  FROM pg_catalog.jsonb_array_elements(v_plan) WITH ORDINALITY AS e(s, ord)
                  ORDER BY (e.s->>'rank')::integer, e.ord LOOP
      v_stmt := v_step.stmt;
      PERFORM steep_repl._exec_as(v_step.run_as, v_step.stmt);
      v_applied := v_applied || v_stmt;
    END LOOP;
    v_stmt := NULL;
    -- Verify: this side, read again, now matches the peer.
    SELECT pg_catalog.string_agg(x.description, E'\n') INTO v_detail
    FROM steep_repl._differences(ARRAY(SELECT d FROM steep_repl._local_definitions(true) d
                                       WHERE steep_repl._in_scope(opts, d.schema_name, d.table_name)),
                                 peer_defs, v_local, peer) x;
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
    'peer', peer, 'mode', 'auto', 'differences', pg_catalog.to_jsonb(v_diffs), 'applied', pg_catalog.to_jsonb(v_applied),
    'caller', steep_repl._caller()::text));
  RETURN steep_repl._sync_report(peer, v_local, sync_mode, 'synced', v_tables, v_diffs, v_applied);
END
$$;
COMMENT ON FUNCTION steep_repl._schema_sync_loaded(steep_repl.table_definition[], steep_repl.table_definition[], text, text, jsonb) IS
  'Internal: strict, manual or auto on both sides'' definitions (auto runs each statement as the table''s owner, or the caller for a new table); see steep_repl._schema_sync.';

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
