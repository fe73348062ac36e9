-- Option checking shared by every API function that takes a jsonb of options: each numeric option
-- is a finite number within its range (NaN, Infinity and 1e300 are refused before anything is
-- probed or created), with the allowed range in the HINT.

CREATE FUNCTION steep_repl._num_option(options jsonb, key text, dflt numeric, lo numeric, hi numeric, hint text)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v numeric;
BEGIN
  IF options IS NULL OR NOT options ? key OR pg_catalog.jsonb_typeof(options->key) = 'null' THEN
    RETURN dflt;
  END IF;
  IF pg_catalog.jsonb_typeof(options->key) IN ('number', 'string') THEN
    BEGIN
      v := (options->>key)::numeric;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
      v := NULL;
    END;
  END IF;
  IF v IS NULL OR v = 'NaN'::numeric OR v < lo OR v > hi THEN
    RAISE EXCEPTION '% must be between % and %, got %', key, lo, hi, options->key
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._num_option(jsonb, text, numeric, numeric, numeric, text) IS
  'Internal: a finite number option within [lo, hi] (default dflt when absent or null), or 22023 naming the range.';

CREATE FUNCTION steep_repl._int_option(options jsonb, key text, dflt bigint, lo bigint, hi bigint, hint text)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v numeric := steep_repl._num_option(options, key, dflt, lo, hi, hint);
BEGIN
  IF v <> pg_catalog.trunc(v) THEN
    RAISE EXCEPTION '% must be an integer between % and %, got %', key, lo, hi, options->key
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  RETURN v::bigint;
END
$$;
COMMENT ON FUNCTION steep_repl._int_option(jsonb, text, bigint, bigint, bigint, text) IS
  'Internal: an integer option within [lo, hi] (default dflt), or 22023 naming the range.';
