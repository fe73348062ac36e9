-- The job queue (River's shape): claimed with FOR UPDATE SKIP LOCKED under a lease that the
-- worker extends by heartbeats; tick() reaps expired leases. Functions take an optional "now"
-- so tests control the clock.

CREATE TABLE steep_repl.jobs (
  id                  bigserial PRIMARY KEY,
  kind                text NOT NULL CONSTRAINT kind_format CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
  args                jsonb NOT NULL DEFAULT '{}' CONSTRAINT args_is_object CHECK (pg_catalog.jsonb_typeof(args) = 'object'),
  node                text,
  state               text NOT NULL DEFAULT 'queued'
                      CONSTRAINT state_valid CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  priority            smallint NOT NULL DEFAULT 1,
  attempt             integer NOT NULL DEFAULT 0 CONSTRAINT attempt_non_negative CHECK (attempt >= 0),
  max_attempts        integer NOT NULL DEFAULT 3 CONSTRAINT max_attempts_positive CHECK (max_attempts > 0),
  created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
  scheduled_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
  attempted_at        timestamptz,
  finalized_at        timestamptz,
  lease_owner         text,
  lease_expires_at    timestamptz,
  heartbeat_at        timestamptz,
  cancel_requested_at timestamptz,
  checkpoint          jsonb,
  result              jsonb,
  error               text,
  errors              jsonb NOT NULL DEFAULT '[]',
  CONSTRAINT finalized_or_finalized_at_null
    CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finalized_at IS NOT NULL)),
  CONSTRAINT running_has_lease
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CONSTRAINT failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX jobs_claimable ON steep_repl.jobs (priority, scheduled_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leases ON steep_repl.jobs (lease_expires_at) WHERE state = 'running';
COMMENT ON TABLE steep_repl.jobs IS
  'Work for the sidecars: queued -> running (leased) -> succeeded | failed | cancelled; expired leases are requeued by tick().';
COMMENT ON COLUMN steep_repl.jobs.checkpoint IS 'Progress a retried attempt resumes from (set by heartbeat_job).';
COMMENT ON COLUMN steep_repl.jobs.errors IS 'One entry per failed attempt: {attempt, at, error}.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.jobs_id_seq', '');

CREATE FUNCTION steep_repl.enqueue_job(kind text, args jsonb DEFAULT '{}', node text DEFAULT NULL,
                                       max_attempts integer DEFAULT 3, run_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM steep_repl._require('kind', kind);
  PERFORM steep_repl._require('args', args);
  PERFORM steep_repl._require('max_attempts', max_attempts);
  IF kind !~ '^[a-z][a-z0-9_.]{0,63}$' THEN
    RAISE EXCEPTION 'invalid job kind "%"', kind
      USING ERRCODE = 'invalid_parameter_value', HINT = 'A job kind is lowercase letters, digits, "_" and ".", e.g. "snapshot.generate".';
  END IF;
  IF pg_catalog.jsonb_typeof(args) <> 'object' THEN
    RAISE EXCEPTION 'job args must be a JSON object, not %', pg_catalog.jsonb_typeof(args)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_attempts < 1 THEN
    RAISE EXCEPTION 'max_attempts must be at least 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF node IS NOT NULL AND NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = enqueue_job.node) THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  INSERT INTO steep_repl.jobs (kind, args, node, max_attempts, scheduled_at)
  VALUES (kind, args, node, max_attempts, coalesce(run_at, pg_catalog.now()))
  RETURNING id INTO v_id;
  PERFORM pg_catalog.pg_notify('steep_repl_jobs', pg_catalog.json_build_object('id', v_id, 'kind', kind)::text);
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION steep_repl.enqueue_job(text, jsonb, text, integer, timestamptz) IS
  'Queues a job for a sidecar and NOTIFYs steep_repl_jobs; returns its id.';

CREATE FUNCTION steep_repl.claim_job(worker text, kinds text[], lease interval DEFAULT '30 seconds',
                                     now timestamptz DEFAULT NULL)
RETURNS SETOF steep_repl.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.now());
BEGIN
  PERFORM steep_repl._require('worker', worker);
  PERFORM steep_repl._require('kinds', kinds);
  PERFORM steep_repl._require('lease', lease);
  IF lease <= interval '0' THEN
    RAISE EXCEPTION 'lease must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  WITH next AS (
    SELECT j.id FROM steep_repl.jobs j
    WHERE j.state = 'queued' AND j.scheduled_at <= v_now AND j.kind = ANY (kinds)
    ORDER BY j.priority, j.scheduled_at, j.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
  )
  UPDATE steep_repl.jobs j SET
    state = 'running', attempt = j.attempt + 1, attempted_at = v_now, lease_owner = worker,
    lease_expires_at = v_now + lease, heartbeat_at = v_now
  FROM next WHERE j.id = next.id
  RETURNING j.*;
END
$$;
COMMENT ON FUNCTION steep_repl.claim_job(text, text[], interval, timestamptz) IS
  'Claims the next queued job of one of the given kinds for worker (SKIP LOCKED) under a lease; no row when none is ready.';

CREATE FUNCTION steep_repl._job_for_worker(job_id bigint, worker text) RETURNS steep_repl.jobs
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_job steep_repl.jobs;
BEGIN
  SELECT * INTO v_job FROM steep_repl.jobs j WHERE j.id = job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job % does not exist', job_id USING ERRCODE = 'undefined_object';
  END IF;
  IF v_job.state <> 'running' OR v_job.lease_owner IS DISTINCT FROM worker THEN
    RAISE EXCEPTION 'job % is not running under worker "%" (state %, lease owner %)',
        job_id, worker, v_job.state, coalesce(v_job.lease_owner, 'none')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Its lease expired and it was requeued or finished elsewhere: stop working on it.';
  END IF;
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl._job_for_worker(bigint, text) IS 'Internal: locks a running job owned by worker, or 55000.';

CREATE FUNCTION steep_repl.heartbeat_job(job_id bigint, worker text, lease interval DEFAULT '30 seconds',
                                         checkpoint jsonb DEFAULT NULL, now timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.now());
  v_job steep_repl.jobs;
BEGIN
  PERFORM steep_repl._require('job_id', job_id);
  PERFORM steep_repl._require('worker', worker);
  PERFORM steep_repl._require('lease', lease);
  v_job := steep_repl._job_for_worker(job_id, worker);
  UPDATE steep_repl.jobs j SET
    lease_expires_at = v_now + lease, heartbeat_at = v_now,
    checkpoint = coalesce(heartbeat_job.checkpoint, j.checkpoint)
  WHERE j.id = job_id;
  RETURN v_job.cancel_requested_at IS NOT NULL;
END
$$;
COMMENT ON FUNCTION steep_repl.heartbeat_job(bigint, text, interval, jsonb, timestamptz) IS
  'Extends the lease of a running job (optionally saving a checkpoint); returns true when a cancel was requested. 55000 when the worker lost the lease.';

CREATE FUNCTION steep_repl.finish_job(job_id bigint, worker text, outcome text, result jsonb DEFAULT NULL,
                                      error text DEFAULT NULL, now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.now());
  v_job steep_repl.jobs;
  v_state text;
BEGIN
  PERFORM steep_repl._require('job_id', job_id);
  PERFORM steep_repl._require('worker', worker);
  PERFORM steep_repl._require('outcome', outcome);
  IF outcome NOT IN ('succeeded', 'failed', 'cancelled', 'retry') THEN
    RAISE EXCEPTION 'invalid job outcome "%"', outcome
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Outcomes: succeeded, failed, cancelled, retry.';
  END IF;
  IF outcome IN ('failed', 'retry') AND error IS NULL THEN
    RAISE EXCEPTION 'a % outcome needs an error text', outcome USING ERRCODE = 'null_value_not_allowed';
  END IF;
  v_job := steep_repl._job_for_worker(job_id, worker);
  v_state := CASE WHEN outcome <> 'retry' THEN outcome
                  WHEN v_job.attempt < v_job.max_attempts THEN 'queued'
                  ELSE 'failed' END;
  UPDATE steep_repl.jobs j SET
    state = v_state,
    finalized_at = CASE WHEN v_state = 'queued' THEN NULL ELSE v_now END,
    scheduled_at = CASE WHEN v_state = 'queued' THEN v_now + steep_repl._backoff(j.attempt) ELSE j.scheduled_at END,
    lease_owner = NULL, lease_expires_at = NULL,
    result = finish_job.result,
    error = finish_job.error,
    errors = CASE WHEN finish_job.error IS NULL THEN j.errors
                  ELSE j.errors || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                         'attempt', j.attempt, 'at', v_now, 'error', finish_job.error)) END
  WHERE j.id = job_id;
  IF v_state = 'failed' THEN
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (v_job.node, 'job.failed', pg_catalog.jsonb_build_object('job', job_id, 'kind', v_job.kind, 'error', error));
  ELSIF v_state = 'queued' THEN
    PERFORM pg_catalog.pg_notify('steep_repl_jobs', pg_catalog.json_build_object('id', job_id, 'kind', v_job.kind)::text);
  END IF;
  RETURN v_state;
END
$$;
COMMENT ON FUNCTION steep_repl.finish_job(bigint, text, text, jsonb, text, timestamptz) IS
  'Ends the worker''s attempt: succeeded, failed, cancelled, or retry (requeued with backoff while attempts remain, else failed). Returns the job''s new state.';

CREATE FUNCTION steep_repl._backoff(attempt integer) RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.make_interval(secs => least(pg_catalog.power(2, attempt), 300));
$$;
COMMENT ON FUNCTION steep_repl._backoff(integer) IS 'Internal: delay before retrying after attempt n: 2^n seconds, at most 5 minutes.';

CREATE FUNCTION steep_repl.cancel_job(job_id bigint, now timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_now timestamptz := coalesce(now, pg_catalog.now());
  v_state text;
BEGIN
  PERFORM steep_repl._require('job_id', job_id);
  SELECT j.state INTO v_state FROM steep_repl.jobs j WHERE j.id = job_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job % does not exist', job_id USING ERRCODE = 'undefined_object';
  END IF;
  IF v_state = 'queued' THEN
    UPDATE steep_repl.jobs j SET state = 'cancelled', finalized_at = v_now, cancel_requested_at = v_now
    WHERE j.id = job_id;
    RETURN 'cancelled';
  ELSIF v_state = 'running' THEN
    UPDATE steep_repl.jobs j SET cancel_requested_at = coalesce(j.cancel_requested_at, v_now) WHERE j.id = job_id;
    RAISE NOTICE 'cancel of job % requested; its worker stops at its next heartbeat', job_id;
    RETURN 'running';
  END IF;
  RAISE NOTICE 'job % is already %; nothing to cancel', job_id, v_state;
  RETURN v_state;
END
$$;
COMMENT ON FUNCTION steep_repl.cancel_job(bigint, timestamptz) IS
  'Cancels a queued job at once, or asks the worker of a running job to stop (seen at its next heartbeat). Returns the state after the call.';

CREATE FUNCTION steep_repl.release_job(job_id bigint, worker text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_job steep_repl.jobs;
BEGIN
  PERFORM steep_repl._require('job_id', job_id);
  PERFORM steep_repl._require('worker', worker);
  v_job := steep_repl._job_for_worker(job_id, worker);
  -- The attempt did not fail (the worker is shutting down): it does not count, and the
  -- checkpoint stays so the next worker resumes.
  UPDATE steep_repl.jobs j SET state = 'queued', attempt = j.attempt - 1, scheduled_at = pg_catalog.now(),
    lease_owner = NULL, lease_expires_at = NULL
  WHERE j.id = job_id;
  PERFORM pg_catalog.pg_notify('steep_repl_jobs', pg_catalog.json_build_object('id', job_id, 'kind', v_job.kind)::text);
END
$$;
COMMENT ON FUNCTION steep_repl.release_job(bigint, text) IS
  'Hands a running job back to the queue at once without counting the attempt (a worker shutting down).';
