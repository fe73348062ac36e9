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

-- Auto mode splices a peer's type names and expressions into DDL that it runs as the extension's
-- owner: refuse a type that does not parse back to itself here, and any text that could hold a
-- second statement. NULL when the column is fine.
CREATE FUNCTION steep_repl._unsafe_column(col jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_type text := col->>'type';
  v_ok boolean;
BEGIN
  BEGIN
    v_ok := pg_catalog.format_type(pg_catalog.to_regtype(v_type), pg_catalog.to_regtypemod(v_type)) = v_type;
  EXCEPTION WHEN OTHERS THEN
    v_ok := false;
  END;
  IF NOT coalesce(v_ok, false) THEN
    RETURN pg_catalog.format('its type %s is not a type here', v_type);
  END IF;
  IF pg_catalog.strpos(coalesce(col->>'default', '') || coalesce(col->>'generated', ''), ';') > 0 THEN
    RETURN 'its default or generation expression contains ";"';
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION steep_repl._unsafe_column(jsonb) IS
  'Internal: why auto mode will not put a peer''s column definition into DDL (unknown type, ";" in an expression), or NULL.';
