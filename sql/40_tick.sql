-- tick(): the supervisor's periodic duties, in SQL so tests call it directly. Each duty runs on
-- its own (steep_repl._run_duty, sql/41_duties.sql): one that fails or hangs is rolled back,
-- recorded in supervisor_duties and backed off while the others go on.

-- Reap jobs whose worker stopped heartbeating.
CREATE FUNCTION steep_repl._tick_reap_leases(now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := now;
  v_requeued integer := 0;
  v_failed integer := 0;
  v_cancelled integer := 0;
  r record;
BEGIN
  FOR r IN
    SELECT j.id, j.kind, j.node, j.attempt, j.max_attempts, j.lease_owner, j.cancel_requested_at
    FROM steep_repl.jobs j
    WHERE j.state = 'running' AND j.lease_expires_at < v_now
    ORDER BY j.id
    FOR UPDATE SKIP LOCKED
  LOOP
    IF r.cancel_requested_at IS NOT NULL THEN
      UPDATE steep_repl.jobs j SET state = 'cancelled', finalized_at = v_now, lease_owner = NULL, lease_expires_at = NULL
      WHERE j.id = r.id;
      v_cancelled := v_cancelled + 1;
    ELSIF r.attempt < r.max_attempts THEN
      UPDATE steep_repl.jobs j SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
        scheduled_at = v_now + steep_repl._backoff(r.attempt),
        errors = j.errors || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('attempt', r.attempt, 'at', v_now,
          'error', pg_catalog.format('lease expired: worker %s stopped heartbeating', r.lease_owner)))
      WHERE j.id = r.id;
      v_requeued := v_requeued + 1;
    ELSE
      UPDATE steep_repl.jobs j SET state = 'failed', finalized_at = v_now, lease_owner = NULL, lease_expires_at = NULL,
        error = pg_catalog.format('lease expired on attempt %s of %s: worker %s stopped heartbeating',
                                  r.attempt, r.max_attempts, r.lease_owner),
        errors = j.errors || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('attempt', r.attempt, 'at', v_now,
          'error', pg_catalog.format('lease expired: worker %s stopped heartbeating', r.lease_owner)))
      WHERE j.id = r.id;
      INSERT INTO steep_repl.events (node, event, detail)
      VALUES (r.node, 'job.failed', pg_catalog.jsonb_build_object('job', r.id, 'kind', r.kind,
              'error', pg_catalog.format('lease expired after %s attempts', r.attempt)));
      v_failed := v_failed + 1;
    END IF;
  END LOOP;
  IF v_requeued > 0 THEN
    PERFORM pg_catalog.pg_notify('steep_repl_jobs', '{"requeued":true}');
  END IF;
  RETURN pg_catalog.jsonb_build_object('jobs_requeued', v_requeued, 'jobs_failed', v_failed,
                                       'jobs_cancelled', v_cancelled);
END
$$;
COMMENT ON FUNCTION steep_repl._tick_reap_leases(timestamptz) IS
  'Internal: tick()''s reaping of expired job leases: requeued with backoff, failed after max_attempts, or cancelled when a cancel was requested.';

-- The duties, in the order tick() runs them.
CREATE FUNCTION steep_repl._duties() RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ARRAY['reap_leases', 'inits', 'expire_slots', 'drift'];
$$;
COMMENT ON FUNCTION steep_repl._duties() IS
  'Internal: the duties of tick() in the order it runs them (the names of steep_repl.supervisor_duties).';

-- One duty by name; what it returns is merged into tick()'s result.
CREATE FUNCTION steep_repl._tick_duty(duty text, now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  CASE duty
    WHEN 'reap_leases' THEN RETURN steep_repl._tick_reap_leases(now);
    WHEN 'inits' THEN RETURN pg_catalog.jsonb_build_object('inits', steep_repl._tick_inits(now));
    WHEN 'expire_slots' THEN RETURN pg_catalog.jsonb_build_object('slots_expired', steep_repl._tick_expire_slots(now));
    WHEN 'drift' THEN RETURN pg_catalog.jsonb_build_object('drift', steep_repl._tick_drift(now));
    ELSE RAISE EXCEPTION 'unknown duty "%"', duty USING ERRCODE = 'invalid_parameter_value';
  END CASE;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_duty(text, timestamptz) IS 'Internal: runs one duty of tick() (see steep_repl._duties()).';

CREATE FUNCTION steep_repl.tick(now timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.now());
  v_result jsonb := '{}';
  v_ran text[] := '{}';
  v_failed jsonb := '{}';
  v_skipped jsonb := '{}';
  v_duty text;
  r record;
BEGIN
  FOREACH v_duty IN ARRAY steep_repl._duties() LOOP
    SELECT * INTO r FROM steep_repl._run_duty(v_duty, v_now);
    CASE r.outcome
      WHEN 'ok' THEN
        v_ran := v_ran || v_duty;
        v_result := v_result || coalesce(r.result, '{}');
      WHEN 'failed' THEN
        v_failed := v_failed || pg_catalog.jsonb_build_object(v_duty, r.error);
      ELSE
        v_skipped := v_skipped || pg_catalog.jsonb_build_object(v_duty, r.next_try_at);
    END CASE;
  END LOOP;
  RETURN v_result || pg_catalog.jsonb_build_object('duties', pg_catalog.jsonb_build_object(
    'ran', pg_catalog.to_jsonb(v_ran), 'failed', v_failed, 'skipped', v_skipped));
END
$$;
COMMENT ON FUNCTION steep_repl.tick(timestamptz) IS
  'The supervisor''s periodic work (run every steep_repl.naptime), as duties each run in its own subtransaction bounded by a duty timeout (10 s, or steep_repl.duty_timeout where the server defines that setting): reap_leases (expired job leases requeued with backoff, or failed after max_attempts), inits (every active init sampled into init_progress and moved COPYING -> CATCHING_UP -> SYNCHRONIZED or FAILED), expire_slots (expired prepared slots dropped), drift (SYNCHRONIZED nodes checked for schema drift every drift_check_interval -> DIVERGED). A failing duty does not stop the others: it is recorded in steep_repl.supervisor_duties, skipped for a backoff and logged once per change of state. Returns each duty''s counts (jobs_requeued, jobs_failed, jobs_cancelled, inits, slots_expired, drift) and duties: {ran: [names], failed: {name: error}, skipped: {name: next_try_at}}.';
