-- Moving a merge's rows (sql/73_merge.sql plans them), called by the sidecar's init.merge job inside
-- its open transaction on each node: _merge_rows reads rows by key on one node, _merge_apply upserts
-- them on the other (and _merge_delete deletes there what the other node deleted while the merge
-- ran) as the table's owner with user triggers off, under the replication origin of that node's
-- subscription from the other (_merge_origin_as, sql/75_merge_init.sql), so the subscriptions
-- created next, origin = none, never send them back. Rows
-- travel as each column's text form under pinned settings: the form pg_dump relies on, exact for
-- every type (to_jsonb is not: json loses its spacing and key order, a user type may cast to json).

-- A table of a merge with its primary key; 55000 without one.
CREATE FUNCTION steep_repl._merge_table(rel regclass) RETURNS steep_repl.compare_table
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v steep_repl.compare_table;
BEGIN
  PERFORM steep_repl._require('rel', rel);
  SELECT c.oid::regclass, n.nspname::text, c.relname::text,
             ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i
                   CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord),
             ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_index i
                   CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord)
    INTO v
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
  IF pg_catalog.cardinality(v.key_cols) = 0 THEN
    RAISE EXCEPTION 'table % has no primary key: a merge moves rows by primary key', rel
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add a primary key on both nodes, or leave the table out of the merge.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_table(regclass) IS 'Internal: rel with its primary key columns and types; 55000 without a primary key.';

-- The rows of rel with the given primary keys (a jsonb array of key objects, as _merge_plan
-- returns them): a jsonb array of objects, column name -> its text form (NULL: JSON null),
-- generated columns left out. Values are printed by their types' output functions (format's %s),
-- never through a cast; read as the table's owner (steep_repl._query_as), who bypasses row-level
-- security: the keys are parsed into the key columns' types, and a domain's CHECK is the owner's
-- code.
CREATE FUNCTION steep_repl._merge_rows(rel regclass, keys jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 3 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_names text[];
  v_values text;
  v jsonb;
BEGIN
  PERFORM steep_repl._require('keys', keys);
  IF pg_catalog.jsonb_typeof(keys) <> 'array' THEN
    RAISE EXCEPTION 'keys must be a JSON array of primary key objects, got %', pg_catalog.left(keys::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('CASE WHEN pg_catalog.num_nulls(r.%1$I) OPERATOR(pg_catalog.=) 1 THEN NULL ELSE pg_catalog.format(''%%s'', r.%1$I) END',
                                                 a.attname), ', ' ORDER BY a.attnum)
    INTO v_names, v_values
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_object(%L::pg_catalog.text[], ARRAY[%s]::pg_catalog.text[])), ''[]'')
     FROM %s r %s',
    v_names, v_values, rel,
    steep_repl._compare_keys_filter(v_t, keys)),
    'v pg_catalog.jsonb')
    INTO v;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_rows(regclass, jsonb) IS
  'Sidecar: the rows of rel with the given primary keys, as a jsonb array of {column: text form} (generated columns left out), printed under pinned settings so that _merge_apply on another node writes the same values.';

-- The query listing, per incoming row (CTE inc: the rows with every column, generated ones
-- computed), the unique indexes other than the primary key it would violate: against the rows
-- of rel it does not replace, and against the other incoming rows. Index expressions and
-- predicates are the index's own, compared with its operator class's equality.
CREATE FUNCTION steep_repl._merge_collisions_sql(t steep_repl.compare_table) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ix record;
  v_parts text[] := '{}';
  v_exprs text;
  v_match_x text;
  v_match_j text;
  v_pred text;
  v_key text := (SELECT pg_catalog.format('pg_catalog.jsonb_build_object(%s)', pg_catalog.string_agg(pg_catalog.format('%L, t.%I', c, c), ', ' ORDER BY o))
                 FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o));
  v_pk_match text := (SELECT pg_catalog.string_agg(pg_catalog.format('n.%1$I = t.%1$I', c), ' AND ' ORDER BY o)
                      FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o));
BEGIN
  FOR ix IN SELECT i.indexrelid, c.relname::text AS name, i.indnkeyatts, i.indnullsnotdistinct, i.indclass,
                   pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) AS pred
            FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = t.relid AND i.indisunique AND NOT i.indisprimary AND i.indislive AND i.indisready
            ORDER BY c.relname LOOP
    SELECT pg_catalog.string_agg(pg_catalog.format('(%s) AS u%s', pg_catalog.pg_get_indexdef(ix.indexrelid, k, true), k), ', ' ORDER BY k),
           pg_catalog.string_agg(CASE WHEN ix.indnullsnotdistinct
                                      THEN pg_catalog.format('(x.u%1$s %2$s i.u%1$s OR (x.u%1$s IS NULL AND i.u%1$s IS NULL))', k, op)
                                      ELSE pg_catalog.format('x.u%1$s %2$s i.u%1$s', k, op) END, ' AND ' ORDER BY k)
      INTO v_exprs, v_match_x
    FROM pg_catalog.generate_series(1, ix.indnkeyatts) k
    CROSS JOIN LATERAL (
      SELECT pg_catalog.format('OPERATOR(%I.%s)', n.nspname, o.oprname) AS op
      FROM pg_catalog.pg_opclass oc
      JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoplefttype = oc.opcintype
                                 AND ao.amoprighttype = oc.opcintype AND ao.amopstrategy = 3
      JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr
      JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
      WHERE oc.oid = ix.indclass[k - 1]) e;
    v_match_j := pg_catalog.replace(v_match_x, 'x.u', 'j.u');
    v_pred := coalesce('(' || ix.pred || ')', 'true');
    v_parts := v_parts || pg_catalog.format(
      'SELECT i.key, %1$L::pg_catalog.text AS idx FROM (SELECT %2$s AS key, %3$s FROM inc t WHERE %4$s) i
       WHERE EXISTS (SELECT 1 FROM (SELECT %3$s FROM %5$s t WHERE %4$s AND NOT EXISTS (SELECT 1 FROM inc n WHERE %6$s)) x WHERE %7$s)
          OR EXISTS (SELECT 1 FROM (SELECT %2$s AS key, %3$s FROM inc t WHERE %4$s) j WHERE j.key OPERATOR(pg_catalog.<>) i.key AND %8$s)',
      ix.name, v_key, v_exprs, v_pred, t.relid, v_pk_match, v_match_x, v_match_j);
  END LOOP;
  IF pg_catalog.cardinality(v_parts) = 0 THEN
    RETURN NULL;
  END IF;
  RETURN 'SELECT pg_catalog.count(*), pg_catalog.string_agg(pg_catalog.format(''key %s collides on %s'', g.key, g.idx), ''; '' ORDER BY g.key)
          FROM (SELECT u.key::pg_catalog.text AS key, pg_catalog.string_agg(u.idx, '', '' ORDER BY u.idx) AS idx
                FROM (' || pg_catalog.array_to_string(v_parts, ' UNION ALL ') || ') u GROUP BY u.key) g';
END
$$;
COMMENT ON FUNCTION steep_repl._merge_collisions_sql(steep_repl.compare_table) IS
  'Internal: the query counting and describing incoming rows (CTE inc) that collide with a unique index of the table other than its primary key.';

-- The expected versions of a batch's rows on the node written (the plan's row_hash of each
-- key there, NULL: absent), as the sidecar passes them: {key as _compare_key_expr prints it:
-- hash or null}; their keys as a jsonb array of key objects. 22023 otherwise.
CREATE FUNCTION steep_repl._merge_expect_keys(expect jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
BEGIN
  PERFORM steep_repl._require('expect', expect);
  IF pg_catalog.jsonb_typeof(expect) <> 'object'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(expect) e WHERE pg_catalog.jsonb_typeof(e.value) NOT IN ('number', 'null')) THEN
    RAISE EXCEPTION 'expect must be a JSON object of key text -> row hash or null, got %', pg_catalog.left(expect::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    SELECT coalesce(pg_catalog.jsonb_agg(k::jsonb), '[]') INTO v FROM pg_catalog.jsonb_object_keys(expect) k;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'expect''s keys must be key objects as JSON text' USING ERRCODE = 'invalid_parameter_value';
  END;
  IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
    RAISE EXCEPTION 'expect''s keys must be key objects as JSON text' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_expect_keys(jsonb) IS
  'Internal: the keys of a merge batch''s expected versions ({key text: row hash or null}) as a jsonb array of key objects; 22023 if malformed.';

-- The condition that the key columns of row alias are among the keys (a jsonb array of key
-- objects) held by setting, each parsed into its column's type: for the owner's statements of
-- _merge_apply and _merge_delete, which may name nothing of steep_repl (the owner need not
-- use the schema).
CREATE FUNCTION steep_repl._merge_keys_in(t steep_repl.compare_table, alias text, setting text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(
           '(%s) IN (SELECT %s FROM pg_catalog.jsonb_to_recordset(pg_catalog.current_setting(%L)::pg_catalog.jsonb) AS k(%s))',
           (SELECT pg_catalog.string_agg(pg_catalog.format('%s.%I', alias, c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           (SELECT pg_catalog.string_agg(pg_catalog.format('k.%I', c), ', ' ORDER BY o) FROM pg_catalog.unnest(t.key_cols) WITH ORDINALITY x(c, o)),
           setting,
           (SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', c, ty), ', ' ORDER BY o)
            FROM ROWS FROM (pg_catalog.unnest(t.key_cols), pg_catalog.unnest(t.key_types)) WITH ORDINALITY x(c, ty, o)));
$$;
COMMENT ON FUNCTION steep_repl._merge_keys_in(steep_repl.compare_table, text, text) IS
  'Internal: the condition that row alias''s key is among the key objects of a setting (a jsonb array), parsed into the key''s types.';

-- The keys of expect ({key text: row hash or null}) whose row on rel is that version now (cur:
-- {key text: row hash} of rel's rows of those keys, read as the owner), as a jsonb array of key
-- objects; present: only those expected present.
CREATE FUNCTION steep_repl._merge_unchanged(expect jsonb, cur jsonb, present boolean) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(pg_catalog.jsonb_agg(e.key::pg_catalog.jsonb ORDER BY e.key), '[]')
  FROM pg_catalog.jsonb_each(expect) e
  WHERE (cur OPERATOR(pg_catalog.->>) e.key)::pg_catalog.int8 IS NOT DISTINCT FROM (e.value OPERATOR(pg_catalog.#>>) '{}')::pg_catalog.int8
    AND (NOT present OR pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=) 'number');
$$;
COMMENT ON FUNCTION steep_repl._merge_unchanged(jsonb, jsonb, boolean) IS
  'Internal: the keys of a merge batch whose rows are still the expected version (present: of those expected present), as key objects.';

-- Whether a row's xmin is this transaction's (or one of its subtransactions'), in C: what
-- _merge_apply counts as written.
CREATE FUNCTION steep_repl._written_here(x xid) RETURNS boolean
  LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'steep_repl_written_here';
COMMENT ON FUNCTION steep_repl._written_here(xid) IS
  'Internal: whether x is this transaction''s xid or an open subtransaction''s: a row with that xmin was written here.';

-- Upserts rows (as _merge_rows returns them) into rel: INSERT ... ON CONFLICT (primary key) DO
-- UPDATE every other column, identity values kept, generated columns computed. It runs as the
-- table's owner (its defaults, CHECKs and index expressions never run with the definer's rights)
-- with session_replication_role = replica, so user triggers do not fire. A row is written only
-- where rel still holds the version the plan read (expect: {key text: row hash, NULL absent};
-- #13): the plan takes no lock, and a user's update, delete or insert of that key since is a
-- later write, which the write freeze re-checks and keeps. The existing rows of those keys are
-- locked first, so none changes between the check and the write; a key absent then is
-- inserted, and a user's concurrent insert of it is left as is (the ON CONFLICT guard). First
-- every unique constraint other than the primary key is checked: one 23505 lists every
-- collision, and nothing is written. Returns {"written": n, "skipped": [keys not written]}.
CREATE FUNCTION steep_repl._merge_apply(rel regclass, rows jsonb, expect jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica'
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_keys jsonb;
  v_n bigint;
  v_bad text;
  v_cols text;
  v_casts text;
  v_set text;
  v_gen text;
  v_all text;
  v_inc text;
  v_check text;
  v_insert text;
  v_cur jsonb;
  v_written jsonb;
BEGIN
  PERFORM steep_repl._require('rows', rows);
  IF pg_catalog.jsonb_typeof(rows) <> 'array'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(rows) e WHERE pg_catalog.jsonb_typeof(e) <> 'object') THEN
    RAISE EXCEPTION 'rows must be a JSON array of row objects, got %', pg_catalog.left(rows::text, 200)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_keys := steep_repl._merge_expect_keys(expect);
  v_n := pg_catalog.jsonb_array_length(rows);
  IF v_n = 0 AND pg_catalog.jsonb_array_length(v_keys) = 0 THEN
    RETURN '{"written": 0, "skipped": []}';
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ') INTO v_bad FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped AND a.attname::text <> ALL (v_t.key_cols);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'column % of % is GENERATED ALWAYS AS IDENTITY outside the primary key: a merge cannot update it', v_bad, rel
      USING ERRCODE = 'feature_not_supported',
            HINT = 'ALTER TABLE ... ALTER COLUMN ... SET GENERATED BY DEFAULT on both nodes for the merge, or leave the table out.';
  END IF;
  -- Each value through its type's input function, cast to the column's exact type (a type name
  -- without its typmod is not always unconstrained: character means character(1)).
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('(e.value OPERATOR(pg_catalog.->>) %L)::%s AS %I', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attname),
                               ', ' ORDER BY a.attnum),
         pg_catalog.string_agg(pg_catalog.format('%1$I = EXCLUDED.%1$I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname::text <> ALL (v_t.key_cols))
    INTO v_cols, v_casts, v_set
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  SELECT pg_catalog.string_agg(pg_catalog.format(', (%s) AS %I', pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attname), '' ORDER BY a.attnum)
    INTO v_gen
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '';
  -- The rows and versions reach the owner's statements through settings of this call (reset
  -- when it returns), not as literals nested in three levels of quoting.
  PERFORM pg_catalog.set_config('steep_repl_merge.rows', rows::text, true);
  PERFORM pg_catalog.set_config('steep_repl_merge.expect', expect::text, true);
  -- The rows of those keys locked, then read: none changes before this transaction ends, so the
  -- ones still as the plan read them are written (kept), the others left; a key still absent is
  -- inserted, but not over a user's concurrent insert of it (the guard: present keys only).
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('SELECT 1 FROM %s r%s FOR UPDATE', rel, steep_repl._compare_keys_filter(v_t, v_keys)));
  EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(y.k, y.h), ''{}'') FROM (%s) y', steep_repl._compare_owned_sql(v_t, v_keys))
    INTO v_cur;
  PERFORM pg_catalog.set_config('steep_repl_merge.kept', steep_repl._merge_unchanged(expect, v_cur, false)::text, true);
  PERFORM pg_catalog.set_config('steep_repl_merge.present', steep_repl._merge_unchanged(expect, v_cur, true)::text, true);
  v_all := pg_catalog.format('SELECT %s FROM pg_catalog.jsonb_array_elements(pg_catalog.current_setting(''steep_repl_merge.rows'')::pg_catalog.jsonb) e',
                             v_casts);
  v_inc := pg_catalog.format('SELECT r.* FROM (%s) r WHERE %s', v_all, steep_repl._merge_keys_in(v_t, 'r', 'steep_repl_merge.kept'));
  v_check := steep_repl._merge_collisions_sql(v_t);
  v_insert := pg_catalog.format('INSERT INTO %s AS t (%s) %s SELECT * FROM (%s) i ON CONFLICT (%s) DO %s',
    rel, v_cols,
    CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attidentity = 'a' AND NOT a.attisdropped)
         THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END,
    v_inc, (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(v_t.key_cols) c),
    coalesce('UPDATE SET ' || v_set || ' WHERE ' || steep_repl._merge_keys_in(v_t, 'EXCLUDED', 'steep_repl_merge.present'), 'NOTHING'));
  -- One block run as the owner: the check sees the rows as the owner does, and
  -- its error (or the insert's) reaches the caller with nothing written.
  IF v_check IS NOT NULL THEN
    v_check := 'WITH inc AS MATERIALIZED (SELECT i.*' || coalesce(v_gen, '') || ' FROM (' || v_inc || ') i) ' || v_check;
  END IF;
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DO %L', pg_catalog.format($do$
DECLARE
  v_count bigint;
  v_detail text;
BEGIN
  EXECUTE %2$L INTO v_count;
  IF v_count > 0 THEN
    RAISE EXCEPTION '%% row(s) to merge into %% have no expected version', v_count, %3$L USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF %4$s THEN
    EXECUTE %5$L INTO v_count, v_detail;
    IF v_count > 0 THEN
      RAISE EXCEPTION '%% row(s) to merge into %% collide with unique constraints', v_count, %3$L
        USING ERRCODE = 'unique_violation', DETAIL = v_detail,
              HINT = 'Each listed row would repeat a value another row of the table holds: change or delete one of the two on either node (or leave the table out), then merge again.';
    END IF;
  END IF;
  EXECUTE %6$L;
END
$do$,
    NULL, pg_catalog.format('SELECT pg_catalog.count(*) FROM (%s) r WHERE NOT (SELECT pg_catalog.current_setting(''steep_repl_merge.expect'')::pg_catalog.jsonb) OPERATOR(pg_catalog.?) %s',
                      v_all, steep_repl._compare_key_expr(v_t)),
    rel::text, (v_check IS NOT NULL)::text, v_check, v_insert)));
  -- What was written is what this transaction wrote (the owner's block cannot hand a result
  -- back: its settings end with it); the rows of the other keys are locked until it ends.
  EXECUTE steep_repl._owned_sql(rel, pg_catalog.format(
    'SELECT coalesce(pg_catalog.jsonb_agg(%s), ''[]'') FROM %s r%s AND steep_repl._written_here(r.xmin)',
    steep_repl._compare_key_expr(v_t), rel, steep_repl._compare_keys_filter(v_t, v_keys)), 'v pg_catalog.jsonb')
    INTO v_written;
  RETURN pg_catalog.jsonb_build_object('written', pg_catalog.jsonb_array_length(v_written),
    'skipped', (SELECT coalesce(pg_catalog.jsonb_agg(k ORDER BY k), '[]') FROM pg_catalog.jsonb_object_keys(expect) k
                WHERE k NOT IN (SELECT pg_catalog.jsonb_array_elements_text(v_written))));
END
$$;
COMMENT ON FUNCTION steep_repl._merge_apply(regclass, jsonb, jsonb) IS
  'Sidecar: upserts rows (as _merge_rows returns them) into rel by primary key, as its owner, with user triggers off, each only where rel still holds the version expect names ({key text: row hash or null}); 23505 listing every row that collides with a unique constraint other than the primary key (with all of them), nothing written. Returns {"written": n, "skipped": [keys left as a user changed them]}.';

-- Deletes the rows of rel whose keys expect names ({key text: row hash}, as _merge_apply's):
-- rows the other node deleted while the merge ran (the write freeze decides which,
-- sql/75_merge_init.sql), each only if it is still the version the plan read (a user's update
-- since is a later write, kept). As the table's owner, with session_replication_role = replica
-- like _merge_apply, so neither user triggers nor foreign-key actions fire: the other node's
-- delete already did what its own triggers and cascades do, and each row it removed there is
-- deleted here by its own key. Returns {"deleted": n, "skipped": [keys whose rows changed]}.
CREATE FUNCTION steep_repl._merge_delete(rel regclass, expect jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET session_replication_role = 'replica'
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
  v_t steep_repl.compare_table := steep_repl._merge_table(rel);
  v_keys jsonb := steep_repl._merge_expect_keys(expect);
  v_cur jsonb;
  v_del jsonb;
BEGIN
  IF pg_catalog.jsonb_array_length(v_keys) = 0 THEN
    RETURN '{"deleted": 0, "skipped": []}';
  END IF;
  -- Locked, then read (the owner's block cannot hand a result back: its settings end with it):
  -- nothing changes in between, so the rows still as the plan read them are deleted, by key.
  PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('SELECT 1 FROM %s r%s FOR UPDATE', rel, steep_repl._compare_keys_filter(v_t, v_keys)));
  EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.jsonb_object_agg(y.k, y.h), ''{}'') FROM (%s) y', steep_repl._compare_owned_sql(v_t, v_keys))
    INTO v_cur;
  v_del := steep_repl._merge_unchanged(expect, v_cur, true);
  IF pg_catalog.jsonb_array_length(v_del) > 0 THEN
    -- The keys reach the owner's statement through a setting of this call, as _merge_apply's rows.
    PERFORM pg_catalog.set_config('steep_repl_merge.keys', v_del::text, true);
    PERFORM steep_repl._exec_as_owner(rel, pg_catalog.format('DELETE FROM %s r WHERE %s', rel,
      steep_repl._merge_keys_in(v_t, 'r', 'steep_repl_merge.keys')));
  END IF;
  -- Left: the rows there that are not the expected version (a user wrote them since).
  RETURN pg_catalog.jsonb_build_object('deleted', pg_catalog.jsonb_array_length(v_del),
    'skipped', (SELECT coalesce(pg_catalog.jsonb_agg(c.key ORDER BY c.key), '[]') FROM pg_catalog.jsonb_object_keys(v_cur) c(key)
                WHERE c.key::pg_catalog.jsonb NOT IN (SELECT pg_catalog.jsonb_array_elements(v_del))));
END
$$;
COMMENT ON FUNCTION steep_repl._merge_delete(regclass, jsonb) IS
  'Sidecar: deletes the rows of rel whose keys expect names ({key text: row hash}: rows the other node deleted while the merge ran), each only if it is still that version, as its owner, with user triggers and foreign-key actions off; returns {"deleted": n, "skipped": [keys of rows changed since]}.';

CREATE FUNCTION steep_repl._merge_origin_end() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.pg_replication_origin_session_is_setup() THEN
    PERFORM pg_catalog.pg_replication_origin_session_reset();
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_origin_end() IS 'Sidecar: ends _merge_origin_as (no error when no origin is set up).';

CREATE FUNCTION steep_repl._merge_begin(peer text, options jsonb, as_role regrole) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb;
  v_id bigint;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  PERFORM steep_repl._require('as_role', as_role);
  v_opts := steep_repl._merge_options(options);
  INSERT INTO steep_repl.merges (peer, requested_by, options, dry_run)
  VALUES (peer, as_role::text, v_opts, (v_opts->>'dry_run')::boolean)
  RETURNING merge_id INTO v_id;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_begin(text, jsonb, regrole) IS 'Sidecar: records a merge (or dry run) with peer on behalf of as_role; returns its merge_id.';

CREATE FUNCTION steep_repl._merge_audit(merge_id bigint, rows jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_n bigint;
BEGIN
  PERFORM steep_repl._require('merge_id', merge_id);
  IF pg_catalog.jsonb_typeof(rows) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'rows must be a JSON array of audit rows' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO steep_repl.merge_audit_log (merge_id, schema_name, table_name, key, category, resolution, tie, local_hash, peer_hash,
                                          local_row, peer_row, local_committed_at, peer_committed_at, logged_at)
  SELECT _merge_audit.merge_id, x.schema_name, x.table_name, x.key, x.category, x.resolution, coalesce(x.tie, false),
         x.local_hash, x.peer_hash, x.local_row, x.peer_row, x.local_committed_at, x.peer_committed_at,
         coalesce(x.logged_at, pg_catalog.clock_timestamp())
  FROM pg_catalog.jsonb_to_recordset(rows) AS x(schema_name text, table_name text, key jsonb, category text, resolution text, tie boolean,
         local_hash bigint, peer_hash bigint, local_row jsonb, peer_row jsonb, local_committed_at timestamptz,
         peer_committed_at timestamptz, logged_at timestamptz);
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_audit(bigint, jsonb) IS 'Sidecar: adds audit rows (objects with merge_audit_log''s column names) to a merge; returns how many.';

CREATE FUNCTION steep_repl._merge_finish(merge_id bigint, freeze_ms numeric, result jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE steep_repl.merges m SET finished_at = pg_catalog.clock_timestamp(), freeze_ms = _merge_finish.freeze_ms, result = _merge_finish.result
  WHERE m.merge_id = _merge_finish.merge_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no merge %', merge_id USING ERRCODE = 'undefined_object';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._merge_finish(bigint, numeric, jsonb) IS 'Sidecar: records the end of a merge: its write freeze in ms and its result.';

GRANT EXECUTE ON FUNCTION steep_repl._merge_rows(regclass, jsonb), steep_repl._merge_apply(regclass, jsonb, jsonb),
  steep_repl._merge_delete(regclass, jsonb), steep_repl._merge_origin_end(), steep_repl._merge_begin(text, jsonb, regrole),
  steep_repl._merge_audit(bigint, jsonb), steep_repl._merge_finish(bigint, numeric, jsonb)
TO steep_repl_sidecar;
