-- tick(): the supervisor's periodic duties, in SQL so tests call it directly.

CREATE FUNCTION steep_repl.tick(now timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.now());
  v_requeued integer := 0;
  v_failed integer := 0;
  v_cancelled integer := 0;
  r record;
BEGIN
  -- Reap jobs whose worker stopped heartbeating.
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
                                       'jobs_cancelled', v_cancelled, 'inits', steep_repl._tick_inits(v_now),
                                       'slots_expired', steep_repl._tick_expire_slots(v_now),
                                       'drift', steep_repl._tick_drift(v_now));
END
$$;
COMMENT ON FUNCTION steep_repl.tick(timestamptz) IS
  'The supervisor''s periodic work (run every steep_repl.naptime): reaps expired job leases (requeue with backoff, or failed after max_attempts), then samples every active init into init_progress and moves it COPYING -> CATCHING_UP -> SYNCHRONIZED or FAILED, drops expired prepared slots, and checks SYNCHRONIZED nodes for schema drift every drift_check_interval (-> DIVERGED).';
