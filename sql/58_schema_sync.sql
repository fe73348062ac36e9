-- Schema sync modes, used wherever a node starts receiving a peer's rows (start_init,
-- complete_init, snapshot apply) and on demand (steep_repl.schema_sync):
--   strict  fail, listing every difference (the default);
--   auto    make this node's tables match the peer's in one transaction (create missing tables
--           with their keys, add missing columns, widen types, set defaults and nullability),
--           refusing what would destroy data (dropping columns, or tables holding rows);
--   manual  record a warning listing the differences and go on only with confirm => true.

CREATE TABLE steep_repl.schema_sync_config (
  singleton            boolean PRIMARY KEY DEFAULT true CONSTRAINT one_row CHECK (singleton),
  default_mode         text NOT NULL DEFAULT 'strict'
                       CONSTRAINT default_mode_valid CHECK (default_mode IN ('strict', 'auto', 'manual')),
  drift_check_interval interval NOT NULL DEFAULT '60 seconds'
                       CONSTRAINT drift_check_interval_valid CHECK (drift_check_interval >= '0 seconds'),
  updated_at           timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE steep_repl.schema_sync_config IS
  'Schema sync settings (at most one row; none means the defaults): default_mode strict | auto | manual, drift_check_interval (0 turns the periodic drift check off). Change them with steep_repl.configure_schema_sync().';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.schema_sync_config', '');

-- Differences a DBA accepted (schema_sync manual with confirm => true): the drift check does not
-- count them as drift.
CREATE TABLE steep_repl.schema_accepted_differences (
  peer        text NOT NULL,
  description text NOT NULL,
  accepted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (peer, description)
);
COMMENT ON TABLE steep_repl.schema_accepted_differences IS
  'Schema differences with a peer accepted by a confirmed schema_sync manual (as worded by schema_diff''s description); the drift check ignores them. Delete a row to count it as drift again.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.schema_accepted_differences', '');

CREATE FUNCTION steep_repl._schema_config() RETURNS steep_repl.schema_sync_config
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c steep_repl.schema_sync_config;
BEGIN
  SELECT * INTO c FROM steep_repl.schema_sync_config;
  IF NOT FOUND THEN
    c := ROW(true, 'strict', interval '60 seconds', pg_catalog.now());
  END IF;
  RETURN c;
END
$$;
COMMENT ON FUNCTION steep_repl._schema_config() IS 'Internal: the schema sync settings, or the defaults.';

CREATE FUNCTION steep_repl.configure_schema_sync(default_mode text DEFAULT NULL, drift_check_interval interval DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c steep_repl.schema_sync_config := steep_repl._schema_config();
BEGIN
  c.default_mode := coalesce(steep_repl._sync_mode(default_mode, false), c.default_mode);
  IF drift_check_interval < '0 seconds' THEN
    RAISE EXCEPTION 'drift_check_interval must not be negative, got %', drift_check_interval
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''0'' to turn the periodic drift check off.';
  END IF;
  c.drift_check_interval := coalesce(drift_check_interval, c.drift_check_interval);
  INSERT INTO steep_repl.schema_sync_config AS s (singleton, default_mode, drift_check_interval, updated_at)
  VALUES (true, c.default_mode, c.drift_check_interval, pg_catalog.now())
  ON CONFLICT (singleton) DO UPDATE SET default_mode = excluded.default_mode,
    drift_check_interval = excluded.drift_check_interval, updated_at = excluded.updated_at;
  RETURN pg_catalog.jsonb_build_object('default_mode', c.default_mode,
    'drift_check_interval_seconds', extract(epoch FROM c.drift_check_interval));
END
$$;
COMMENT ON FUNCTION steep_repl.configure_schema_sync(text, interval) IS
  'Sets the default schema_sync mode (strict | auto | manual) and the interval of the periodic drift check (0: off); NULL keeps a setting. Returns the settings.';

-- A mode name, validated (22023), or the configured default when NULL and use_default.
CREATE FUNCTION steep_repl._sync_mode(mode text, use_default boolean DEFAULT true) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text := pg_catalog.lower(pg_catalog.btrim(mode));
BEGIN
  IF v IS NULL THEN
    RETURN CASE WHEN use_default THEN (steep_repl._schema_config()).default_mode END;
  END IF;
  IF v NOT IN ('strict', 'auto', 'manual') THEN
    RAISE EXCEPTION 'unknown schema_sync mode "%"', mode
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'strict fails on any difference, auto makes this node''s tables match the peer''s, manual needs confirm => true.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._sync_mode(text, boolean) IS 'Internal: strict | auto | manual, or the configured default for NULL.';

-- Does converting a column from from_type to to_type keep every value, so that auto mode may do
-- it on a table holding rows? Widening only: int2 < int4 < int8 < numeric, float4 < float8, numeric(p,s) to more digits on
-- both sides of the point, varchar/bit varying/char/time/timestamp/interval to a larger or no
-- typmod, varchar <-> text.
CREATE FUNCTION steep_repl._type_widens(from_type text, to_type text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  f text[] := pg_catalog.regexp_match(from_type, '^([a-z ]+?)(?:\((\d+)(?:,(\d+))?\))?((?: with(?:out)? time zone)?)$');
  t text[] := pg_catalog.regexp_match(to_type, '^([a-z ]+?)(?:\((\d+)(?:,(\d+))?\))?((?: with(?:out)? time zone)?)$');
  v_int_digits int;
BEGIN
  IF f IS NULL OR t IS NULL THEN
    RETURN false;  -- arrays, user types, anything unusual: not known to be safe
  END IF;
  v_int_digits := CASE f[1] WHEN 'smallint' THEN 5 WHEN 'integer' THEN 10 WHEN 'bigint' THEN 19 END;
  IF v_int_digits IS NOT NULL THEN
    RETURN (f[1], t[1]) IN (('smallint', 'integer'), ('smallint', 'bigint'), ('integer', 'bigint'))
        OR (t[1] = 'numeric' AND (t[2] IS NULL OR t[2]::int - coalesce(t[3]::int, 0) >= v_int_digits));
  END IF;
  IF f[1] = 'real' THEN
    RETURN t[1] = 'double precision';
  END IF;
  IF f[1] = 'numeric' AND t[1] = 'numeric' THEN
    RETURN t[2] IS NULL OR (f[2] IS NOT NULL AND coalesce(t[3]::int, 0) >= coalesce(f[3]::int, 0)
                            AND t[2]::int - coalesce(t[3]::int, 0) >= f[2]::int - coalesce(f[3]::int, 0));
  END IF;
  IF (f[1], t[1]) IN (('character varying', 'text'), ('text', 'character varying')) THEN
    RETURN t[2] IS NULL;
  END IF;
  IF f[1] = t[1] AND f[4] = t[4] AND f[3] IS NULL AND t[3] IS NULL
     AND f[1] IN ('character varying', 'bit varying', 'character', 'time', 'timestamp', 'interval') THEN
    RETURN t[2] IS NULL OR (f[2] IS NOT NULL AND t[2]::int >= f[2]::int);
  END IF;
  RETURN false;
END
$$;
COMMENT ON FUNCTION steep_repl._type_widens(text, text) IS
  'Internal: whether converting a column from from_type to to_type (format_type spelling) keeps every value.';

-- Auto mode splices a peer's type names and expressions into DDL: refuse a type that does not
-- parse back to itself here or is a temporary type (a permanent column would depend on it), and
-- any text that could hold a second statement. NULL when the column is fine.
CREATE FUNCTION steep_repl._unsafe_column(col jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_type text := col->>'type';
  v_oid oid;
  v_ok boolean;
BEGIN
  BEGIN
    v_oid := pg_catalog.to_regtype(v_type);
    v_ok := pg_catalog.format_type(v_oid, pg_catalog.to_regtypemod(v_type)) = v_type;
  EXCEPTION WHEN OTHERS THEN
    v_ok := false;
  END;
  IF NOT coalesce(v_ok, false) OR EXISTS (
       SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = v_oid
         AND (t.typnamespace = pg_catalog.pg_my_temp_schema() OR pg_catalog.pg_is_other_temp_schema(t.typnamespace))) THEN
    RETURN pg_catalog.format('its type %s is not a type here', v_type);
  END IF;
  IF pg_catalog.strpos(coalesce(col->>'default', '') || coalesce(col->>'generated', ''), ';') > 0 THEN
    RETURN 'its default or generation expression contains ";"';
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION steep_repl._unsafe_column(jsonb) IS
  'Internal: why auto mode will not put a peer''s column definition into DDL (unknown or temporary type, ";" in an expression), or NULL.';

-- A peer's expressions are never evaluated here: auto mode applies a column default only when it
-- is a constant or nextval() of a sequence the sync creates, and no generation expression.
-- Decided on the text alone with strict patterns, and re-spelled from the parsed parts; anything
-- else is refused with its DDL, for a DBA to review and run by hand.

-- The spelling of a type that may follow a constant in a peer's default ('x'::type), or NULL. The
-- cast runs the type's input function when the DDL is parsed (for each element of an array): a
-- base type's or an enum's (server code), or any type of pg_catalog; not a domain (its CHECKs
-- are user code), a composite or range outside pg_catalog, or a temporary type.
CREATE FUNCTION steep_repl._constant_type(type_name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_oid oid;
  v_text text;
BEGIN
  BEGIN
    v_oid := pg_catalog.to_regtype(type_name);
    v_text := pg_catalog.format_type(v_oid, pg_catalog.to_regtypemod(type_name));
  EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
  END;
  IF v_oid IS NULL OR v_text IS DISTINCT FROM type_name OR EXISTS (
       SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type b ON b.oid IN (t.oid, t.typelem)
       WHERE t.oid = v_oid
         AND (NOT (b.typtype IN ('b', 'e') OR b.typnamespace = 'pg_catalog'::pg_catalog.regnamespace)
              OR b.typnamespace = pg_catalog.pg_my_temp_schema() OR pg_catalog.pg_is_other_temp_schema(b.typnamespace))) THEN
    RETURN NULL;
  END IF;
  RETURN v_text;
END
$$;
COMMENT ON FUNCTION steep_repl._constant_type(text) IS
  'Internal: the type name (format_type spelling) when a constant of a peer''s default may be cast to it without running a user''s code (base types, enums, pg_catalog types, arrays of those), else NULL.';

-- A peer's column default as auto mode applies it, re-spelled from its parsed parts, or NULL when
-- it is not applied: 'literal' or NULL (optionally ::type, see _constant_type), a number, true or
-- false (optionally cast to a pg_catalog type: a cast to another type may call a user's function),
-- or nextval('schema.sequence'::regclass) of a sequence that does not exist here (the sync creates
-- it). A function call, an operator, a subquery, anything else: NULL. Literals are read as the
-- peer printed them (standard_conforming_strings on, see _load_definitions).
CREATE FUNCTION steep_repl._constant_default(default_expr text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  m text[];
  v_type text;
  v_seq text[];
  v_name text;
BEGIN
  IF default_expr IS NULL THEN
    RETURN NULL;
  END IF;
  m := pg_catalog.regexp_match(default_expr, $re$^(?:'((?:[^']|'')*)'|(NULL))(?:::(.+))?$$re$);
  IF m IS NOT NULL THEN
    v_type := steep_repl._constant_type(m[3]);
    IF m[3] IS NOT NULL AND v_type IS NULL THEN
      RETURN NULL;
    END IF;
    RETURN CASE WHEN m[2] IS NOT NULL THEN 'NULL' ELSE pg_catalog.quote_literal(pg_catalog.replace(m[1], '''''', '''')) END
           || coalesce('::' || v_type, '');
  END IF;
  m := pg_catalog.regexp_match(default_expr, $re$^([0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|true|false)(?:::(.+))?$$re$);
  IF m IS NOT NULL THEN
    v_type := steep_repl._constant_type(m[2]);
    IF m[2] IS NOT NULL AND (v_type IS NULL OR NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = pg_catalog.to_regtype(v_type)
           AND t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace)) THEN
      RETURN NULL;
    END IF;
    RETURN m[1] || coalesce('::' || v_type, '');
  END IF;
  m := pg_catalog.regexp_match(default_expr, $re$^nextval\('((?:[^']|'')+)'::regclass\)$$re$);
  IF m IS NULL THEN
    RETURN NULL;
  END IF;
  BEGIN
    v_seq := pg_catalog.parse_ident(pg_catalog.replace(m[1], '''''', ''''));
  EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
  END;
  IF pg_catalog.cardinality(v_seq) <> 2 OR v_seq[1] ~ '^pg_' THEN
    RETURN NULL;
  END IF;
  v_name := pg_catalog.quote_ident(v_seq[1]) || '.' || pg_catalog.quote_ident(v_seq[2]);
  IF pg_catalog.to_regclass(v_name) IS NOT NULL THEN
    RETURN NULL;  -- not a sequence this sync creates
  END IF;
  RETURN pg_catalog.format('pg_catalog.nextval(%L::pg_catalog.regclass)', v_name);
END
$f$;
COMMENT ON FUNCTION steep_repl._constant_default(text) IS
  'Internal: a peer''s column default re-spelled for auto mode''s DDL when it is a constant or nextval() of a schema-qualified sequence that does not exist here; NULL for anything else (nothing is evaluated).';

-- Why auto mode does not apply a peer column's default or generation expression, or NULL.
CREATE FUNCTION steep_repl._unapplied_expression(col jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF col->>'generated' IS NOT NULL
     AND col->>'generated' NOT IN ('GENERATED ALWAYS AS IDENTITY', 'GENERATED BY DEFAULT AS IDENTITY') THEN
    RETURN pg_catalog.format('its expression %s would be evaluated on this node', col->>'generated');
  END IF;
  IF col->>'default' IS NOT NULL AND steep_repl._constant_default(col->>'default') IS NULL THEN
    RETURN pg_catalog.format('its default %s is neither a constant nor nextval() of a sequence schema sync creates, and would be evaluated on this node',
                             col->>'default');
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION steep_repl._unapplied_expression(jsonb) IS
  'Internal: why auto mode leaves a peer column''s default or generation expression to a DBA (not a constant, not nextval() of a sequence it creates, a generation expression), or NULL.';

-- A peer's column as auto mode creates it: its default re-spelled by _constant_default (only
-- for columns _unapplied_expression accepts).
CREATE FUNCTION steep_repl._applied_column(col jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF col->>'default' IS NULL THEN
    RETURN col;
  END IF;
  RETURN col || pg_catalog.jsonb_build_object('default', steep_repl._constant_default(col->>'default'));
END
$$;
COMMENT ON FUNCTION steep_repl._applied_column(jsonb) IS 'Internal: a peer''s column with its default spelled as auto mode''s DDL applies it.';

-- Whether values of a type are checked by a user's code: a domain (or an array of one, or a
-- domain over one) with a CHECK constraint, outside pg_catalog and information_schema. Adding or
-- converting a column of such a type runs the check over every row.
CREATE FUNCTION steep_repl._type_has_user_checks(type_name text) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_oid oid;
BEGIN
  BEGIN
    v_oid := pg_catalog.to_regtype(type_name);
  EXCEPTION WHEN OTHERS THEN
    RETURN true;
  END;
  RETURN EXISTS (
    WITH RECURSIVE ty(oid) AS (
      SELECT v_oid
      UNION
      SELECT v.x FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
      CROSS JOIN LATERAL (VALUES (NULLIF(t.typbasetype, 0::oid)), (NULLIF(t.typelem, 0::oid))) v(x)
      WHERE v.x IS NOT NULL)
    SELECT 1 FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
    JOIN pg_catalog.pg_constraint c ON c.contypid = t.oid AND c.contype = 'c'
    WHERE t.typnamespace <> ALL (ARRAY['pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace]::oid[]));
END
$$;
COMMENT ON FUNCTION steep_repl._type_has_user_checks(text) IS
  'Internal: whether a type (format_type spelling) is, or is an array of, a domain with CHECK constraints outside pg_catalog and information_schema.';

-- One step of auto mode's plan: a statement and the role it runs as, or a refusal; none (an
-- empty array) when both are NULL.
CREATE FUNCTION steep_repl._plan_step(rank integer, run_as oid, stmt text, refusal text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN stmt IS NULL AND refusal IS NULL THEN '[]'::pg_catalog.jsonb
              ELSE pg_catalog.jsonb_build_array(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                     'rank', rank, 'run_as', run_as::pg_catalog.int8, 'stmt', stmt, 'refusal', refusal))) END;
$$;
COMMENT ON FUNCTION steep_repl._plan_step(integer, oid, text, text) IS
  'Internal: a one-element jsonb array {rank, run_as (role oid), stmt} or {rank, refusal} to append to auto mode''s plan; [] when stmt and refusal are NULL.';
