-- tick()'s duties run one by one, each on its own: a subtransaction bounded by
-- steep_repl.duty_timeout, so a duty that fails or hangs (a peer that accepts connections and
-- never answers) is rolled back alone and the others go on. Each duty's health is one row of
-- supervisor_duties; a failing duty is retried with a doubling backoff and logged once when it
-- starts failing and once when it recovers, never every second.

CREATE TABLE steep_repl.supervisor_duties (
  name                 text PRIMARY KEY,
  last_ok              timestamptz,
  last_error           text,
  last_error_at        timestamptz,
  consecutive_failures integer NOT NULL DEFAULT 0 CONSTRAINT failures_not_negative CHECK (consecutive_failures >= 0),
  next_try_at          timestamptz,
  CONSTRAINT failing_has_error CHECK (consecutive_failures = 0 OR (last_error IS NOT NULL AND last_error_at IS NOT NULL)),
  CONSTRAINT backoff_only_when_failing CHECK (next_try_at IS NULL OR consecutive_failures > 0)
);
COMMENT ON TABLE steep_repl.supervisor_duties IS
  'One row per duty of tick() (reap_leases, inits, expire_slots, drift): when it last succeeded (written at most once a minute while it keeps succeeding), its last error, how many times in a row it failed, and until when it is skipped (a backoff of 1 s doubling up to 5 min).';
COMMENT ON COLUMN steep_repl.supervisor_duties.last_ok IS
  'The tick() time of the last run without error; refreshed at most once a minute while the duty keeps succeeding, so an idle node writes nothing every second.';
COMMENT ON COLUMN steep_repl.supervisor_duties.consecutive_failures IS
  'Failures since the last success; 0 when the duty is healthy.';
COMMENT ON COLUMN steep_repl.supervisor_duties.next_try_at IS
  'While failing: the duty is skipped until then: as long as the failed run took, plus 1 s after the first failure, doubling up to 5 minutes.';

-- Bounding a duty: statement_timeout is armed once per top-level statement, so SET LOCAL
-- statement_timeout inside tick() would bound nothing; this re-arms the statement timer itself.
CREATE FUNCTION steep_repl._duty_deadline(at timestamptz) RETURNS timestamptz
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_duty_deadline';
COMMENT ON FUNCTION steep_repl._duty_deadline(timestamptz) IS
  'Internal: makes this backend''s statement timeout fire at "at" (NULL: never) and returns the deadline it replaced (NULL: none), to be put back afterwards.';

CREATE FUNCTION steep_repl._duty_timeout() RETURNS interval
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text := pg_catalog.current_setting('steep_repl.duty_timeout', true);
BEGIN
  IF v IS NULL OR v = '' THEN
    RETURN interval '10 seconds';
  END IF;
  IF v ~ '^[0-9]+$' THEN
    RETURN v::bigint * interval '1 millisecond';
  END IF;
  RETURN v::interval;
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow OR numeric_value_out_of_range THEN
  RETURN interval '10 seconds';
END
$$;
COMMENT ON FUNCTION steep_repl._duty_timeout() IS
  'Internal: how long one duty of tick() may run before it is cancelled and counted as failed: the setting steep_repl.duty_timeout when the server defines it, else 10 s (0: unbounded).';

-- 1 s after the first failure, doubling, at most 5 minutes.
CREATE FUNCTION steep_repl._duty_backoff(failures integer) RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT least(interval '5 minutes', interval '1 second' * pg_catalog.power(2, least(greatest(failures, 1), 20) - 1));
$$;
COMMENT ON FUNCTION steep_repl._duty_backoff(integer) IS
  'Internal: how long a duty that failed this many times in a row is skipped: 1 s, 2 s, 4 s ... at most 5 minutes.';

-- One duty: skipped while backed off, else run in a subtransaction under its deadline, then
-- recorded. outcome is ok, failed or skipped; result is what the duty returned (merged into
-- tick()'s result).
CREATE FUNCTION steep_repl._run_duty(duty text, now timestamptz,
  OUT outcome text, OUT result jsonb, OUT error text, OUT next_try_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d steep_repl.supervisor_duties;
  v_timeout interval := steep_repl._duty_timeout();
  v_deadline timestamptz;
  v_prev timestamptz;
  v_failures integer;
  v_started timestamptz := pg_catalog.clock_timestamp();
BEGIN
  SELECT * INTO d FROM steep_repl.supervisor_duties sd WHERE sd.name = duty;
  -- Backed off, unless next_try_at is beyond any backoff (a clock that went back, or a test's).
  IF d.consecutive_failures > 0 AND d.next_try_at > now AND d.next_try_at <= now + interval '5 minutes' THEN
    outcome := 'skipped';
    next_try_at := d.next_try_at;
    error := d.last_error;
    RETURN;
  END IF;

  BEGIN
    IF v_timeout > interval '0' THEN
      v_deadline := pg_catalog.clock_timestamp() + v_timeout;
      v_prev := steep_repl._duty_deadline(v_deadline);
      IF v_prev < v_deadline THEN
        PERFORM steep_repl._duty_deadline(v_prev); -- the caller's own statement_timeout comes first
      END IF;
    END IF;
    result := steep_repl._tick_duty(duty, now);
    IF v_deadline IS NOT NULL THEN
      PERFORM steep_repl._duty_deadline(v_prev);
    END IF;
  EXCEPTION
    WHEN query_canceled THEN
      IF v_deadline IS NOT NULL THEN
        PERFORM steep_repl._duty_deadline(v_prev);
      END IF;
      -- A cancel, or the caller's statement_timeout: not this duty's deadline, so not ours to survive.
      IF v_deadline IS NULL OR pg_catalog.clock_timestamp() < v_deadline OR v_prev <= v_deadline THEN
        RAISE;
      END IF;
      error := pg_catalog.format('did not finish within %s (steep_repl.duty_timeout): cancelled', v_timeout);
    WHEN OTHERS THEN
      IF v_deadline IS NOT NULL THEN
        PERFORM steep_repl._duty_deadline(v_prev);
      END IF;
      error := pg_catalog.format('%s (SQLSTATE %s)', SQLERRM, SQLSTATE);
  END;

  IF error IS NULL THEN
    outcome := 'ok';
    IF d.name IS NULL THEN
      INSERT INTO steep_repl.supervisor_duties AS sd (name, last_ok) VALUES (duty, now)
      ON CONFLICT ON CONSTRAINT supervisor_duties_pkey DO NOTHING;
    ELSIF d.consecutive_failures > 0 THEN
      -- SKIP LOCKED: a concurrent tick() holding the row records its own outcome; never wait.
      UPDATE steep_repl.supervisor_duties sd SET last_ok = now, consecutive_failures = 0, next_try_at = NULL
      WHERE sd.name = (SELECT x.name FROM steep_repl.supervisor_duties x WHERE x.name = duty FOR UPDATE SKIP LOCKED);
      IF FOUND THEN
        RAISE LOG 'steep_repl supervisor: duty % succeeds again after % failure(s)', duty, d.consecutive_failures;
      END IF;
    ELSIF d.last_ok IS NULL OR d.last_ok <= now - interval '1 minute' OR d.last_ok > now THEN
      UPDATE steep_repl.supervisor_duties sd SET last_ok = now
      WHERE sd.name = (SELECT x.name FROM steep_repl.supervisor_duties x WHERE x.name = duty FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN;
  END IF;

  -- The backoff counts from the end of the failed run (in whole seconds): a duty that hung
  -- until its deadline is skipped at least as long again.
  outcome := 'failed';
  v_failures := coalesce(d.consecutive_failures, 0) + 1;
  next_try_at := now + pg_catalog.date_trunc('second', pg_catalog.clock_timestamp() - v_started)
                 + steep_repl._duty_backoff(v_failures);
  IF d.name IS NULL THEN
    INSERT INTO steep_repl.supervisor_duties AS sd (name, last_error, last_error_at, consecutive_failures, next_try_at)
    VALUES (duty, error, now, v_failures, _run_duty.next_try_at)
    ON CONFLICT ON CONSTRAINT supervisor_duties_pkey DO NOTHING;
  ELSE
    UPDATE steep_repl.supervisor_duties sd SET last_error = error, last_error_at = now,
      consecutive_failures = v_failures, next_try_at = _run_duty.next_try_at
    WHERE sd.name = (SELECT x.name FROM steep_repl.supervisor_duties x WHERE x.name = duty FOR UPDATE SKIP LOCKED);
  END IF;
  IF FOUND AND v_failures = 1 THEN
    RAISE WARNING 'steep_repl supervisor: duty % failed: %', duty, error
      USING DETAIL = 'The other duties go on. This one is retried with a backoff (1 s, doubling up to 5 minutes) and logged again when it succeeds.',
            HINT = 'SELECT * FROM steep_repl.supervisor_duties shows every duty''s last error and next try.';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._run_duty(text, timestamptz) IS
  'Internal: runs one duty of tick() unless it is backed off, in a subtransaction bounded by steep_repl.duty_timeout; records the outcome in supervisor_duties (WARNING when the duty starts failing, LOG when it recovers).';
