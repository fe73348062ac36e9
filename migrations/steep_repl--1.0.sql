-- Generated from sql/*.sql by extension/Makefile: edit those files, not this one.
\echo Use "CREATE EXTENSION steep_repl" to load this file. \quit

-- ---- ../sql/00_schema.sql
-- Schema, role and the C entry points.
-- The schema itself is created by CREATE EXTENSION (steep_repl.control: schema = steep_repl).

COMMENT ON SCHEMA steep_repl IS
  'steep_repl: node initialization, snapshots and progress for logical-replication clusters';

-- steep_repl_admin gets EXECUTE on the API; nothing is granted to PUBLIC.
-- Roles are cluster-wide and outlive the extension, so create it only when absent.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'steep_repl_admin') THEN
    CREATE ROLE steep_repl_admin NOLOGIN;
  END IF;
END
$$;

CREATE FUNCTION steep_repl.check_conninfo(conninfo text) RETURNS void
  LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'steep_repl_check_conninfo';
COMMENT ON FUNCTION steep_repl.check_conninfo(text) IS
  'Raises 42601 when conninfo is not a valid libpq connection string (same parser as CREATE SUBSCRIPTION).';

CREATE FUNCTION steep_repl.wake_supervisor() RETURNS boolean
  LANGUAGE c AS 'MODULE_PATHNAME', 'steep_repl_wake_supervisor';
COMMENT ON FUNCTION steep_repl.wake_supervisor() IS
  'Sets the supervisor''s latch so tick() runs now; false when no supervisor runs (library not preloaded).';

-- Raise a NULL-argument error the same way everywhere (22004).
CREATE FUNCTION steep_repl._require(arg_name text, arg_value anyelement) RETURNS void
  LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF arg_value IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', arg_name USING ERRCODE = 'null_value_not_allowed';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._require(text, anyelement) IS 'Internal: 22004 when a required argument is NULL.';

-- ---- ../sql/10_nodes.sql
-- The node registry.

CREATE TABLE steep_repl.nodes (
  name              text PRIMARY KEY
                    CONSTRAINT node_name_format CHECK (name ~ '^[a-z][a-z0-9_]{0,27}$'),
  conninfo          text NOT NULL,
  is_local          boolean NOT NULL DEFAULT false,
  init_state        text NOT NULL DEFAULT 'uninitialized'
                    CONSTRAINT init_state_valid CHECK (init_state IN
                      ('uninitialized', 'preparing', 'copying', 'catching_up', 'synchronized',
                       'reinitializing', 'diverged', 'failed')),
  init_source_node  text,
  init_started_at   timestamptz,
  init_completed_at timestamptz,
  state_changed_at  timestamptz NOT NULL DEFAULT now(),
  last_error        text,
  registered_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT synchronized_has_completed_at
    CHECK (init_state <> 'synchronized' OR init_completed_at IS NOT NULL),
  CONSTRAINT failed_has_error CHECK (init_state <> 'failed' OR last_error IS NOT NULL),
  CONSTRAINT source_is_not_self CHECK (init_source_node IS DISTINCT FROM name)
);
-- At most one node is "this" node.
CREATE UNIQUE INDEX nodes_one_local ON steep_repl.nodes (is_local) WHERE is_local;

COMMENT ON TABLE steep_repl.nodes IS
  'Cluster nodes known to this node, with the init state of each. conninfo may hold a password: it is readable by superusers only.';
COMMENT ON COLUMN steep_repl.nodes.init_state IS
  'uninitialized | preparing | copying | catching_up | synchronized | reinitializing | diverged | failed; changed only by steep_repl.transition()';
COMMENT ON COLUMN steep_repl.nodes.is_local IS 'true for the node this database is';

SELECT pg_catalog.pg_extension_config_dump('steep_repl.nodes', '');

CREATE FUNCTION steep_repl.register_node(name text, conninfo text, is_local boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text;
BEGIN
  PERFORM steep_repl._require('name', name);
  PERFORM steep_repl._require('conninfo', conninfo);
  PERFORM steep_repl._require('is_local', is_local);
  IF name !~ '^[a-z][a-z0-9_]{0,27}$' THEN
    RAISE EXCEPTION 'invalid node name "%"', name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A node name starts with a lowercase letter and has at most 28 lowercase letters, digits or underscores (it becomes part of slot and publication names).';
  END IF;
  PERFORM steep_repl.check_conninfo(conninfo);
  IF EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = register_node.name) THEN
    RAISE EXCEPTION 'node "%" is already registered', name
      USING ERRCODE = 'duplicate_object',
            HINT = 'Node names are unique; pick another name or unregister the existing node first.';
  END IF;
  IF is_local THEN
    SELECT n.name INTO v_local FROM steep_repl.nodes n WHERE n.is_local;
    IF FOUND THEN
      RAISE EXCEPTION 'cannot register "%" as the local node: "%" already is', name, v_local
        USING ERRCODE = 'duplicate_object',
              HINT = 'A database is exactly one node; register the other nodes with is_local => false.';
    END IF;
  END IF;
  INSERT INTO steep_repl.nodes (name, conninfo, is_local)
  VALUES (register_node.name, register_node.conninfo, register_node.is_local);
  INSERT INTO steep_repl.events (node, event, to_state, detail)
  VALUES (register_node.name, 'node.registered', 'uninitialized',
          pg_catalog.jsonb_build_object('is_local', register_node.is_local));
END
$$;
COMMENT ON FUNCTION steep_repl.register_node(text, text, boolean) IS
  'Registers a node (name, libpq conninfo used to reach it, whether it is this database). Errors: 22004 NULL, 22023 bad name, 42601 bad conninfo, 42710 duplicate.';

CREATE FUNCTION steep_repl.unregister_node(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
BEGIN
  PERFORM steep_repl._require('name', name);
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = unregister_node.name FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(name);
  END IF;
  IF v_state IN ('preparing', 'copying', 'catching_up', 'reinitializing') THEN
    RAISE EXCEPTION 'node "%" cannot be unregistered while its init is %', name, v_state
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Cancel the init first.';
  END IF;
  DELETE FROM steep_repl.nodes n WHERE n.name = unregister_node.name;
  INSERT INTO steep_repl.events (node, event, from_state, detail)
  VALUES (unregister_node.name, 'node.unregistered', v_state, '{}');
END
$$;
COMMENT ON FUNCTION steep_repl.unregister_node(text) IS 'Removes a node that has no init in progress.';

CREATE FUNCTION steep_repl._unknown_node(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'node "%" is not registered', name
    USING ERRCODE = 'undefined_object',
          HINT = 'List nodes with SELECT name FROM steep_repl.nodes; register one with steep_repl.register_node(name, conninfo, is_local).';
END
$$;
COMMENT ON FUNCTION steep_repl._unknown_node(text) IS 'Internal: the 42704 error for a node that is not registered.';

-- ---- ../sql/20_state.sql
-- The init state machine and the event log.
--
--   uninitialized -> preparing -> copying -> catching_up -> synchronized
--   preparing | copying | catching_up | reinitializing -> failed | uninitialized (cancel)
--   synchronized -> reinitializing -> catching_up
--   synchronized -> diverged
--   failed -> preparing (retry) | uninitialized (reset)

CREATE TABLE steep_repl.init_transitions (
  from_state text NOT NULL,
  to_state   text NOT NULL,
  PRIMARY KEY (from_state, to_state),
  CONSTRAINT states_valid CHECK (
    from_state IN ('uninitialized', 'preparing', 'copying', 'catching_up', 'synchronized',
                   'reinitializing', 'diverged', 'failed')
    AND to_state IN ('uninitialized', 'preparing', 'copying', 'catching_up', 'synchronized',
                     'reinitializing', 'diverged', 'failed'))
);
COMMENT ON TABLE steep_repl.init_transitions IS
  'The legal init state transitions (the state machine of DESIGN.md as data); steep_repl.transition() allows nothing else.';

INSERT INTO steep_repl.init_transitions (from_state, to_state) VALUES
  ('uninitialized', 'preparing'),
  ('preparing', 'copying'),
  ('copying', 'catching_up'),
  ('catching_up', 'synchronized'),
  ('preparing', 'failed'), ('copying', 'failed'), ('catching_up', 'failed'), ('reinitializing', 'failed'),
  ('preparing', 'uninitialized'), ('copying', 'uninitialized'), ('catching_up', 'uninitialized'),
  ('reinitializing', 'uninitialized'),
  ('synchronized', 'reinitializing'),
  ('reinitializing', 'catching_up'),
  ('synchronized', 'diverged'),
  ('failed', 'preparing'), ('failed', 'uninitialized');

CREATE TABLE steep_repl.events (
  id         bigserial PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  node       text,
  event      text NOT NULL CONSTRAINT event_name_format CHECK (event ~ '^[a-z_]+(\.[a-z_]+)+$'),
  from_state text,
  to_state   text,
  detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_node_at ON steep_repl.events (node, at);
COMMENT ON TABLE steep_repl.events IS
  'Append-only log: init.state_change, node.registered, job.failed, ... with from/to state and details.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.events', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.events_id_seq', '');

-- Append-only: rows are never updated or deleted by the API.
CREATE FUNCTION steep_repl._events_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'steep_repl.events is append-only'
    USING ERRCODE = 'insufficient_privilege', HINT = 'Events are history; add a new event instead.';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE ON steep_repl.events
  FOR EACH ROW EXECUTE FUNCTION steep_repl._events_append_only();

CREATE FUNCTION steep_repl._events_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Small payload: listeners re-read the tables.
  PERFORM pg_catalog.pg_notify('steep_repl_events', pg_catalog.json_build_object(
    'id', NEW.id, 'node', NEW.node, 'event', NEW.event, 'from', NEW.from_state, 'to', NEW.to_state)::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON steep_repl.events
  FOR EACH ROW EXECUTE FUNCTION steep_repl._events_notify();

CREATE FUNCTION steep_repl.transition(node text, to_state text, reason text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_from text;
  v_to   text := pg_catalog.lower(pg_catalog.btrim(to_state));
  v_allowed text;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('to_state', to_state);
  SELECT n.init_state INTO v_from FROM steep_repl.nodes n WHERE n.name = transition.node FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF v_to NOT IN ('uninitialized', 'preparing', 'copying', 'catching_up', 'synchronized',
                  'reinitializing', 'diverged', 'failed') THEN
    RAISE EXCEPTION 'unknown init state "%"', to_state
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'States: UNINITIALIZED, PREPARING, COPYING, CATCHING_UP, SYNCHRONIZED, REINITIALIZING, DIVERGED, FAILED.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.init_transitions t WHERE t.from_state = v_from AND t.to_state = v_to) THEN
    SELECT pg_catalog.string_agg(pg_catalog.upper(t.to_state), ', ' ORDER BY t.to_state) INTO v_allowed
      FROM steep_repl.init_transitions t WHERE t.from_state = v_from;
    RAISE EXCEPTION 'illegal init state transition for node "%": % -> %', node, pg_catalog.upper(v_from), pg_catalog.upper(v_to)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('From %s a node can go to: %s.', pg_catalog.upper(v_from), coalesce(v_allowed, 'nothing'));
  END IF;
  IF v_to = 'failed' AND reason IS NULL THEN
    reason := 'no reason given';
  END IF;

  UPDATE steep_repl.nodes n SET
    init_state = v_to,
    state_changed_at = pg_catalog.now(),
    init_started_at = CASE WHEN v_to IN ('preparing', 'reinitializing') THEN pg_catalog.now() ELSE n.init_started_at END,
    init_completed_at = CASE WHEN v_to = 'synchronized' THEN pg_catalog.now()
                             WHEN v_to IN ('preparing', 'reinitializing', 'uninitialized') THEN NULL
                             ELSE n.init_completed_at END,
    last_error = CASE WHEN v_to = 'failed' THEN reason
                      WHEN v_to IN ('preparing', 'uninitialized') THEN NULL
                      ELSE n.last_error END,
    init_source_node = CASE WHEN v_to = 'uninitialized' THEN NULL ELSE n.init_source_node END
  WHERE n.name = transition.node;

  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (transition.node, 'init.state_change', v_from, v_to,
          pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('reason', reason)));
  RETURN v_to;
END
$$;
COMMENT ON FUNCTION steep_repl.transition(text, text, text) IS
  'Moves a node''s init state along steep_repl.init_transitions (state names in any case), records an init.state_change event and NOTIFYs steep_repl_events. Illegal: 55000, state unchanged.';

-- ---- ../sql/30_jobs.sql
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

-- ---- ../sql/40_tick.sql
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

-- ---- ../sql/50_init_tables.sql
-- Automatic init (copy_data = true): what an init is doing, per node and per table.
-- Written by start_init() and the sidecar's init.start job, refreshed by tick().

CREATE TABLE steep_repl.init_progress (
  node                 text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  source_node          text NOT NULL,
  job_id               bigint,
  method               text NOT NULL,
  options              jsonb NOT NULL,
  publication          text NOT NULL,
  publication_created  boolean NOT NULL DEFAULT false,
  subscription         text NOT NULL,
  slot_name            text NOT NULL,
  subscription_oid     oid,
  phase                text NOT NULL DEFAULT 'preparing'
                       CONSTRAINT phase_valid CHECK (phase IN ('preparing', 'copying', 'catching_up', 'synchronized', 'failed')),
  tables_total         integer NOT NULL DEFAULT 0,
  tables_done          integer NOT NULL DEFAULT 0,
  current_tables       text[] NOT NULL DEFAULT '{}',
  large_tables         text[] NOT NULL DEFAULT '{}',
  bytes_total          bigint NOT NULL DEFAULT 0,
  bytes_done           bigint NOT NULL DEFAULT 0,
  rows_total           bigint NOT NULL DEFAULT 0,
  rows_done            bigint NOT NULL DEFAULT 0,
  percent              numeric(5,2) NOT NULL DEFAULT 0 CONSTRAINT percent_range CHECK (percent BETWEEN 0 AND 100),
  rows_per_sec         numeric,
  bytes_per_sec        numeric,
  eta_seconds          numeric,
  parallel_workers     integer NOT NULL,
  lag_bytes            bigint,
  lag_threshold_bytes  bigint NOT NULL,
  stall_timeout        interval NOT NULL,
  source_timeout       interval NOT NULL,
  stalled_since        timestamptz,
  source_unreachable_since timestamptz,
  last_progress_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
  started_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
  copy_done_at         timestamptz,
  synchronized_at      timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
  message              text,
  CONSTRAINT done_within_total CHECK (tables_done <= tables_total)
);
COMMENT ON TABLE steep_repl.init_progress IS
  'One row per node being (or last) initialized: phase, percent by bytes, rows/s and bytes/s over a rolling 10 s window, ETA, lag. Refreshed by tick().';
COMMENT ON COLUMN steep_repl.init_progress.percent IS
  'Copy progress weighted by source table size (pg_table_size); 100 when every table is copied. Never decreases.';
COMMENT ON COLUMN steep_repl.init_progress.lag_bytes IS
  'On the source: pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) of the init''s slot, i.e. WAL the source wrote that the target has not confirmed as applied. Measured while CATCHING_UP.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_progress', '');

CREATE TABLE steep_repl.init_tables (
  node           text NOT NULL REFERENCES steep_repl.init_progress (node) ON DELETE CASCADE,
  schema_name    text NOT NULL,
  table_name     text NOT NULL,
  relid          oid NOT NULL,
  source_bytes   bigint NOT NULL DEFAULT 0,
  source_rows    bigint NOT NULL DEFAULT 0,
  is_large       boolean NOT NULL DEFAULT false,
  sync_state     text NOT NULL DEFAULT 'pending'
                 CONSTRAINT sync_state_valid CHECK (sync_state IN ('pending', 'copying', 'synced', 'ready')),
  rows_copied    bigint NOT NULL DEFAULT 0,
  bytes_copied   bigint NOT NULL DEFAULT 0,
  fraction       numeric NOT NULL DEFAULT 0 CONSTRAINT fraction_range CHECK (fraction BETWEEN 0 AND 1),
  n_tup_ins_base bigint NOT NULL DEFAULT 0,
  started_at     timestamptz,
  finished_at    timestamptz,
  PRIMARY KEY (node, schema_name, table_name)
);
COMMENT ON TABLE steep_repl.init_tables IS
  'Per-table progress of an init: sync state (from pg_subscription_rel), rows and COPY bytes (pg_stat_progress_copy, pg_stat_user_tables), source size.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_tables', '');

CREATE TABLE steep_repl.init_samples (
  node       text NOT NULL REFERENCES steep_repl.init_progress (node) ON DELETE CASCADE,
  at         timestamptz NOT NULL,
  rows_done  bigint NOT NULL,
  bytes_done bigint NOT NULL,
  PRIMARY KEY (node, at)
);
COMMENT ON TABLE steep_repl.init_samples IS
  'Progress samples of the last 2 minutes (rates over a rolling 10 s window; the console draws 60 s of them).';

-- Names an init uses; derived, never stored twice. Node names are at most 28 characters,
-- so every name fits in NAMEDATALEN.
CREATE FUNCTION steep_repl._init_names(target text, source text,
  OUT publication text, OUT subscription text, OUT slot_name text)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'sr_pub_' || target, 'sr_' || source || '_' || target, 'sr_' || source || '_' || target;
$$;
COMMENT ON FUNCTION steep_repl._init_names(text, text) IS 'Internal: publication, subscription and slot names of an init.';

-- ---- ../sql/51_remote.sql
-- Reaching another node from SQL, the way its subscription will: its registered conninfo,
-- through dblink (whatever schema dblink was installed in).

CREATE FUNCTION steep_repl._dblink_schema() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  SELECT n.nspname INTO v FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname = 'dblink';
  IF v IS NULL THEN
    RAISE EXCEPTION 'the dblink extension is not installed'
      USING ERRCODE = 'undefined_object', HINT = 'CREATE EXTENSION dblink (steep_repl requires it).';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._dblink_schema() IS 'Internal: schema holding dblink.';

-- A node's conninfo with a connect timeout, so a dead peer costs seconds, not minutes.
CREATE FUNCTION steep_repl._conninfo(node text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  SELECT n.conninfo INTO v FROM steep_repl.nodes n WHERE n.name = node;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF v ~* 'connect_timeout' THEN
    RETURN v;
  ELSIF v ~ '^postgres(ql)?://' THEN
    RETURN v || CASE WHEN pg_catalog.strpos(v, '?') > 0 THEN '&' ELSE '?' END || 'connect_timeout=5';
  END IF;
  RETURN v || ' connect_timeout=5';
END
$$;
COMMENT ON FUNCTION steep_repl._conninfo(text) IS 'Internal: a node''s conninfo with connect_timeout=5 added when absent.';

-- The user tables of "this" database with what an init needs to know about each; run locally
-- and, through dblink, on the source, so both sides are described by the same query.
CREATE FUNCTION steep_repl._table_catalog_sql() RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $q$
  SELECT $$
  SELECT n.nspname::text, c.relname::text, c.oid::bigint,
         pg_catalog.pg_table_size(c.oid)::bigint,
         greatest(c.reltuples, 0)::bigint,
         (c.relreplident IN ('f', 'i') OR (c.relreplident = 'd' AND EXISTS (
            SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))),
         coalesce((SELECT pg_catalog.string_agg(pg_catalog.format('%I %s%s', a.attname,
                      pg_catalog.format_type(a.atttypid, a.atttypmod),
                      CASE WHEN a.attnotnull THEN ' not null' ELSE '' END), ', ' ORDER BY a.attname)
                   FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND c.relpersistence = 'p'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'steep_repl')
    AND n.nspname !~ '^pg_(toast|temp)'
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
  $$;
$q$;
COMMENT ON FUNCTION steep_repl._table_catalog_sql() IS
  'Internal: the query describing user tables (schema, name, oid, bytes, row estimate, has replica identity, columns).';

CREATE TYPE steep_repl.table_info AS (
  schema_name text, table_name text, relid bigint, bytes bigint, row_estimate bigint,
  has_identity boolean, columns text);
COMMENT ON TYPE steep_repl.table_info IS 'Internal: one row of steep_repl._table_catalog_sql().';

CREATE FUNCTION steep_repl._local_tables() RETURNS SETOF steep_repl.table_info
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE steep_repl._table_catalog_sql();
END
$$;
COMMENT ON FUNCTION steep_repl._local_tables() IS 'Internal: user tables of this database.';

CREATE FUNCTION steep_repl._remote_tables(node text) RETURNS SETOF steep_repl.table_info
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE pg_catalog.format(
    'SELECT * FROM %I.dblink($1, $2) AS t(schema_name text, table_name text, relid bigint, bytes bigint,
       row_estimate bigint, has_identity boolean, columns text)', steep_repl._dblink_schema())
    USING steep_repl._conninfo(node), steep_repl._table_catalog_sql();
END
$$;
COMMENT ON FUNCTION steep_repl._remote_tables(text) IS 'Internal: user tables of a registered node, read through dblink.';

-- Slot lag on the source (see init_progress.lag_bytes); NULL when the slot does not exist.
CREATE FUNCTION steep_repl._remote_slot_lag(node text, slot text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v bigint;
BEGIN
  EXECUTE pg_catalog.format('SELECT lag FROM %I.dblink($1, $2) AS t(lag bigint)', steep_repl._dblink_schema())
    INTO v
    USING steep_repl._conninfo(node), pg_catalog.format(
      'SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
       FROM pg_catalog.pg_replication_slots WHERE slot_name = %L', slot);
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._remote_slot_lag(text, text) IS 'Internal: bytes of WAL the source wrote beyond the slot''s confirmed_flush_lsn.';

-- NULL when the node answers, else the connection error.
CREATE FUNCTION steep_repl._probe(node text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v int;
  v_detail text;
BEGIN
  EXECUTE pg_catalog.format('SELECT x FROM %I.dblink($1, ''SELECT 1'') AS t(x int)', steep_repl._dblink_schema())
    INTO v USING steep_repl._conninfo(node);
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  -- dblink puts libpq's own words (refused, timeout, auth) in the detail.
  GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
  RETURN pg_catalog.rtrim(SQLERRM || coalesce(': ' || NULLIF(v_detail, ''), ''), E'\n');
END
$$;
COMMENT ON FUNCTION steep_repl._probe(text) IS 'Internal: NULL if the node answers SELECT 1, else the error text.';

-- 08001 with libpq's reason when a node does not answer.
CREATE FUNCTION steep_repl._require_reachable(node text, role text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_err text := steep_repl._probe(node);
BEGIN
  IF v_err IS NOT NULL THEN
    RAISE EXCEPTION '% node "%" is not reachable: %', role, node, v_err
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check the node is up and that its registered conninfo works from this server.';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._require_reachable(text, text) IS 'Internal: 08001 unless the node answers (role names it in the message, e.g. source).';

-- ---- ../sql/52_start_init.sql
-- start_init(): validate everything, create nothing until all checks pass, then queue the
-- sidecar's init.start job. Called on the target node.

-- The tables/schemas scope options, shared by start_init and the snapshot functions.
CREATE FUNCTION steep_repl._check_scope_options(options jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- A JSON null means everything, as an absent key does.
  IF pg_catalog.jsonb_typeof(options->'tables') <> 'null' AND (pg_catalog.jsonb_typeof(options->'tables') <> 'array' OR EXISTS (
       SELECT 1 FROM pg_catalog.jsonb_array_elements(options->'tables') x WHERE pg_catalog.jsonb_typeof(x) <> 'string')) THEN
    RAISE EXCEPTION 'tables must be a JSON array of "schema.table" names' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Names as stored, without quotes: ["public.orders", "My Schema.Odd Table"]; a bare name means schema public.';
  END IF;
  IF pg_catalog.jsonb_typeof(options->'schemas') <> 'null' AND (pg_catalog.jsonb_typeof(options->'schemas') <> 'array' OR EXISTS (
       SELECT 1 FROM pg_catalog.jsonb_array_elements(options->'schemas') x WHERE pg_catalog.jsonb_typeof(x) <> 'string')) THEN
    RAISE EXCEPTION 'schemas must be a JSON array of schema names' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Names as stored, without quotes: ["public", "My Schema"].';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._check_scope_options(jsonb) IS 'Internal: 22023 unless the tables/schemas options are absent, JSON null or arrays of names.';

CREATE FUNCTION steep_repl._init_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k text;
  v_parallel int;
  v_known text[] := ARRAY['parallel', 'schema_sync', 'confirm', 'tables', 'schemas', 'force', 'lag_threshold',
                          'stall_timeout', 'source_timeout', 'large_table_threshold'];
BEGIN
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
    IF NOT k = ANY (v_known) THEN
      RAISE EXCEPTION 'unknown init option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: ' || pg_catalog.array_to_string(v_known, ', ') || '.';
    END IF;
  END LOOP;
  BEGIN
    v_parallel := coalesce((options->>'parallel')::int, 4);
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    v_parallel := -1;
  END;
  IF v_parallel NOT BETWEEN 1 AND 16 THEN
    RAISE EXCEPTION 'parallel must be between 1 and 16, got %', options->'parallel'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'parallel is the number of tables copied at once (default 4).';
  END IF;
  IF options ? 'confirm' AND pg_catalog.jsonb_typeof(options->'confirm') <> 'boolean' THEN
    RAISE EXCEPTION 'confirm must be true or false' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'confirm => true lets schema_sync manual go on despite schema differences.';
  END IF;
  PERFORM steep_repl._check_scope_options(options);
  IF options ? 'force' AND pg_catalog.jsonb_typeof(options->'force') <> 'boolean' THEN
    RAISE EXCEPTION 'force must be true or false' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    RETURN pg_catalog.jsonb_build_object(
      'parallel', v_parallel,
      'schema_sync', steep_repl._sync_mode(options->>'schema_sync'),  -- 22023 unless strict | auto | manual
      'confirm', coalesce((options->>'confirm')::boolean, false),
      'tables', coalesce(options->'tables', 'null'::jsonb),
      'schemas', coalesce(options->'schemas', 'null'::jsonb),
      'force', coalesce((options->>'force')::boolean, false),
      'lag_threshold', coalesce((options->>'lag_threshold')::bigint, 1048576),
      'stall_timeout', coalesce((options->>'stall_timeout')::numeric, 60),
      'source_timeout', coalesce((options->>'source_timeout')::numeric, 60),
      'large_table_threshold', coalesce((options->>'large_table_threshold')::bigint, 10737418240));
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RAISE EXCEPTION 'lag_threshold, large_table_threshold (bytes), stall_timeout and source_timeout (seconds) must be numbers'
      USING ERRCODE = 'invalid_parameter_value';
  END;
END
$$;
COMMENT ON FUNCTION steep_repl._init_options(jsonb) IS 'Internal: validates start_init options and fills in the defaults.';

-- Does a table fall within the init's scope?
CREATE FUNCTION steep_repl._in_scope(opts jsonb, schema_name text, table_name text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT (pg_catalog.jsonb_typeof(opts->'tables') IS DISTINCT FROM 'array'
          OR (opts->'tables') ? (schema_name || '.' || table_name)
          OR (schema_name = 'public' AND (opts->'tables') ? table_name))
     AND (pg_catalog.jsonb_typeof(opts->'schemas') IS DISTINCT FROM 'array' OR (opts->'schemas') ? schema_name);
$$;
COMMENT ON FUNCTION steep_repl._in_scope(jsonb, text, text) IS 'Internal: whether schema.table is within the tables/schemas options.';

CREATE FUNCTION steep_repl.start_init(target text, source text, method text DEFAULT 'snapshot',
                                      options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb;
  v_node steep_repl.nodes;
  v_names record;
  v_err text;
  v_sync jsonb;
  v_bad text;
  v_tables text[];
  v_job bigint;
  v_workers int;
BEGIN
  PERFORM steep_repl._require('target', target);
  PERFORM steep_repl._require('source', source);
  PERFORM steep_repl._require('method', method);
  PERFORM steep_repl._require('options', options);
  IF method = 'two_phase' THEN
    -- Generate on the source into a shared path, apply here, subscribe from the snapshot's LSN
    -- (the apply creates the tables, so it validates on its own: see 60_snapshot_user.sql).
    RETURN steep_repl._start_two_phase_init(target, source, options);
  ELSIF method <> 'snapshot' THEN
    RAISE EXCEPTION 'unknown init method "%"', method
      USING ERRCODE = 'invalid_parameter_value',
            HINT = '"snapshot" copies through the subscription (copy_data = true); "two_phase" generates a snapshot on the source and applies it here (option path).';
  END IF;
  v_opts := steep_repl._init_options(options);
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Initialize a node from another node.';
  END IF;

  -- The node row lock serializes concurrent start_init/cancel_init calls for the target.
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', target
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Call start_init on the target node itself (the node registered with is_local => true).';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  IF v_node.init_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" already has an init in state %', target, pg_catalog.upper(v_node.init_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = pg_catalog.format('Watch it with SELECT * FROM steep_repl.init_progress, or stop it with SELECT steep_repl.cancel_init(%L).', target);
  END IF;
  IF EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'init.cancel') AND j.node = target
             AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'an init job for node "%" is still queued or running', target
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.jobs) or cancel it.';
  END IF;
  SELECT * INTO v_names FROM steep_repl._init_names(target, source);

  -- Reach the source and describe both sides.
  v_err := steep_repl._probe(source);
  IF v_err IS NOT NULL THEN
    RAISE EXCEPTION 'source node "%" is not reachable: %', source, v_err
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check the source is up and that its registered conninfo works from this server.';
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS pg_temp.sr_src (LIKE steep_repl.table_info) ON COMMIT DROP;
  CREATE TEMP TABLE IF NOT EXISTS pg_temp.sr_dst (LIKE steep_repl.table_info) ON COMMIT DROP;
  TRUNCATE pg_temp.sr_src, pg_temp.sr_dst;
  INSERT INTO pg_temp.sr_src SELECT * FROM steep_repl._remote_tables(source) t WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name);
  INSERT INTO pg_temp.sr_dst SELECT * FROM steep_repl._local_tables() t WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name);

  -- Named tables must exist on the source.
  IF pg_catalog.jsonb_typeof(v_opts->'tables') = 'array' THEN
    SELECT pg_catalog.string_agg(x, ', ') INTO v_bad FROM pg_catalog.jsonb_array_elements_text(v_opts->'tables') x
    WHERE NOT EXISTS (SELECT 1 FROM pg_temp.sr_src s
                      WHERE x IN (s.schema_name || '.' || s.table_name, CASE WHEN s.schema_name = 'public' THEN s.table_name END));
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'tables not found on source node "%": %', source, v_bad
        USING ERRCODE = 'undefined_table', HINT = 'Name tables as "schema.table" (or "table" for public).';
    END IF;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_temp.sr_src) THEN
    RAISE EXCEPTION 'nothing to initialize: source node "%" has no user tables in scope', source
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Check the tables and schemas options.';
  END IF;

  -- Schema sync (strict | auto | manual, steep_repl._schema_sync): the target's tables must match
  -- the source's, or be made to; auto may have created or altered tables, so describe them again.
  v_sync := steep_repl._schema_sync(source, v_opts->>'schema_sync', v_opts);
  IF v_sync->>'status' = 'synced' THEN
    TRUNCATE pg_temp.sr_dst;
    INSERT INTO pg_temp.sr_dst SELECT * FROM steep_repl._local_tables() t WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name);
  ELSIF v_sync->>'status' = 'accepted' THEN
    -- manual, confirmed: tables the target lacks cannot be copied, so they are left out.
    DELETE FROM pg_temp.sr_src s WHERE NOT EXISTS (SELECT 1 FROM pg_temp.sr_dst t
      WHERE t.schema_name = s.schema_name AND t.table_name = s.table_name);
    IF NOT EXISTS (SELECT 1 FROM pg_temp.sr_src) THEN
      RAISE EXCEPTION 'nothing to initialize: none of the source''s tables in scope is on node "%"', target
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Create the tables on the target first (steep_repl.schema_ddl).';
    END IF;
  END IF;

  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name), ', ') INTO v_bad
  FROM pg_temp.sr_src s WHERE NOT s.has_identity;
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'tables without a primary key or replica identity on source node "%": %', source, v_bad
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Published tables need one, or UPDATE/DELETE on the source would fail: add a primary key, ALTER TABLE ... REPLICA IDENTITY FULL, or leave them out with the tables option.';
  END IF;

  -- The target must be empty, unless force (which truncates, and says so).
  SELECT pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name) ORDER BY t.schema_name, t.table_name)
    INTO v_tables FROM pg_temp.sr_dst t;
  SELECT pg_catalog.string_agg(x, ', ') INTO v_bad FROM pg_catalog.unnest(v_tables) x
  WHERE steep_repl._has_rows(x);
  IF v_bad IS NOT NULL THEN
    IF NOT (v_opts->>'force')::boolean AND v_node.init_state <> 'failed' THEN
      RAISE EXCEPTION 'target node "%" is not empty: %', target, v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'An init copies into empty tables. To replace their contents use options => ''{"force": true}'' (the tables are truncated first).';
    END IF;
    EXECUTE 'TRUNCATE TABLE ' || pg_catalog.array_to_string(v_tables, ', ');
    RAISE NOTICE 'truncated % table(s) on node "%" before the init: %', pg_catalog.cardinality(v_tables), target, v_bad;
  END IF;

  -- Everything checked: record the init and hand it to the sidecar.
  DELETE FROM steep_repl.init_progress p WHERE p.node = target;
  SELECT pg_catalog.current_setting('max_logical_replication_workers')::int INTO v_workers;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, subscription, slot_name,
    parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, tables_total, bytes_total, rows_total, large_tables)
  SELECT target, source, method, v_opts, v_names.publication, v_names.subscription, v_names.slot_name,
    (v_opts->>'parallel')::int, (v_opts->>'lag_threshold')::bigint,
    pg_catalog.make_interval(secs => (v_opts->>'stall_timeout')::float8),
    pg_catalog.make_interval(secs => (v_opts->>'source_timeout')::float8),
    pg_catalog.count(*), coalesce(pg_catalog.sum(s.bytes), 0), coalesce(pg_catalog.sum(s.row_estimate), 0),
    coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', s.schema_name, s.table_name) ORDER BY s.schema_name, s.table_name)
             FILTER (WHERE s.bytes > (v_opts->>'large_table_threshold')::bigint), '{}')
  FROM pg_temp.sr_src s;
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows, is_large)
  SELECT target, s.schema_name, s.table_name, t.relid::oid, s.bytes, s.row_estimate,
         s.bytes > (v_opts->>'large_table_threshold')::bigint
  FROM pg_temp.sr_src s JOIN pg_temp.sr_dst t USING (schema_name, table_name);

  UPDATE steep_repl.nodes n SET init_source_node = source WHERE n.name = target;
  PERFORM steep_repl.transition(target, 'preparing', pg_catalog.format('start_init from %s', source));
  v_job := steep_repl.enqueue_job('init.start', pg_catalog.jsonb_build_object('target', target, 'source', source), target, 3);
  UPDATE steep_repl.init_progress p SET job_id = v_job WHERE p.node = target;
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl.start_init(text, text, text, jsonb) IS
  'Starts initializing the local node target from source (copy_data = true subscription). Validates first (22023, 42704, 55000, 08001, 42P16, 42P01), creates nothing on error. Returns the init.start job id; watch steep_repl.init_progress.';

CREATE FUNCTION steep_repl._has_rows(qualified_table text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v boolean;
BEGIN
  -- qualified_table is already quoted (format('%I.%I')).
  EXECUTE 'SELECT EXISTS (SELECT 1 FROM ' || qualified_table || ')' INTO v;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._has_rows(text) IS 'Internal: whether an already-quoted schema.table holds a row.';

-- ---- ../sql/53_init_steps.sql
-- The steps the sidecar reports while it runs init.start / init.cancel (superuser only:
-- the plan holds the source's conninfo).

CREATE FUNCTION steep_repl.init_plan(node text) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  v_tables text;
BEGIN
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = init_plan.node;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ' ORDER BY t.schema_name, t.table_name)
    INTO v_tables FROM steep_repl.init_tables t WHERE t.node = p.node;
  RETURN pg_catalog.jsonb_build_object(
    'target', p.node, 'source', p.source_node, 'phase', p.phase,
    'source_conninfo', (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = p.source_node),
    'publication', p.publication, 'publication_created', p.publication_created,
    'subscription', p.subscription, 'slot_name', p.slot_name, 'subscription_oid', p.subscription_oid::bigint,
    'parallel', p.parallel_workers,
    -- DDL the sidecar runs outside a transaction block, quoted here with format().
    'create_publication_sql', pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s', p.publication, v_tables),
    'set_publication_tables_sql', pg_catalog.format('ALTER PUBLICATION %I SET TABLE %s', p.publication, v_tables),
    'drop_publication_sql', pg_catalog.format('DROP PUBLICATION IF EXISTS %I', p.publication),
    'create_subscription_sql', pg_catalog.format(
       'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = true, origin = none, create_slot = true, slot_name = %L)',
       p.subscription, (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = p.source_node), p.publication, p.slot_name),
    'drop_subscription_sql', pg_catalog.format('DROP SUBSCRIPTION IF EXISTS %I', p.subscription),
    'detach_subscription_sql', pg_catalog.format('ALTER SUBSCRIPTION %1$I DISABLE; ALTER SUBSCRIPTION %1$I SET (slot_name = NONE)', p.subscription),
    'tables', v_tables);
END
$$;
COMMENT ON FUNCTION steep_repl.init_plan(text) IS
  'For the sidecar (superuser): what the init of node must create: source conninfo, publication, subscription, slot, tables.';

CREATE FUNCTION steep_repl._init_subscribed(node text, publication_created boolean, parallel_workers integer)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sub oid;
BEGIN
  PERFORM 1 FROM steep_repl.nodes n WHERE n.name = _init_subscribed.node FOR UPDATE;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s JOIN steep_repl.init_progress p ON p.subscription = s.subname
  WHERE p.node = _init_subscribed.node AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'the subscription of the init of node "%" does not exist', node USING ERRCODE = 'undefined_object';
  END IF;
  UPDATE steep_repl.init_progress p SET
    publication_created = p.publication_created OR _init_subscribed.publication_created,
    parallel_workers = _init_subscribed.parallel_workers,
    subscription_oid = v_sub, phase = 'copying', last_progress_at = pg_catalog.now(), updated_at = pg_catalog.now()
  WHERE p.node = _init_subscribed.node;
  -- Rows arriving in a target table from now on are this init's (the tables were empty).
  UPDATE steep_repl.init_tables t SET n_tup_ins_base = coalesce(pg_catalog.pg_stat_get_tuples_inserted(t.relid), 0)
  WHERE t.node = _init_subscribed.node;
  PERFORM steep_repl.transition(node, 'copying', 'subscription created; copying tables');
END
$$;
COMMENT ON FUNCTION steep_repl._init_subscribed(text, boolean, integer) IS 'Sidecar step: the subscription exists; PREPARING -> COPYING.';

-- Any failure of an init: stop the subscription's retry loop, keep what is there for diagnosis
-- (cancel_init or a new start_init cleans up), and record the reason.
CREATE FUNCTION steep_repl._init_fail(node text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = _init_fail.node FOR UPDATE;
  IF v_state NOT IN ('preparing', 'copying', 'catching_up') THEN
    RETURN;
  END IF;
  SELECT * INTO p FROM steep_repl.init_progress ip WHERE ip.node = _init_fail.node;
  IF FOUND AND EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname = p.subscription) THEN
    EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', p.subscription);
  END IF;
  UPDATE steep_repl.init_progress ip SET phase = 'failed', message = reason, updated_at = pg_catalog.now(),
    current_tables = '{}', rows_per_sec = NULL, bytes_per_sec = NULL, eta_seconds = NULL
  WHERE ip.node = _init_fail.node;
  PERFORM steep_repl.transition(node, 'failed', reason);
END
$$;
COMMENT ON FUNCTION steep_repl._init_fail(text, text) IS 'Internal: moves an active init to FAILED with a reason and disables its subscription.';

CREATE FUNCTION steep_repl.init_failed(node text, reason text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT steep_repl._init_fail(node, reason);
$$;
COMMENT ON FUNCTION steep_repl.init_failed(text, text) IS 'Sidecar step: the init.start job failed; the node goes to FAILED with the reason.';

-- The sidecar dropped the subscription, slots and publication: empty the tables this init
-- filled, forget its progress, back to UNINITIALIZED.
CREATE FUNCTION steep_repl.init_cancelled(node text, detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tables text;
  v_state text;
BEGIN
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_cancelled.node FOR UPDATE;
  -- The tables this init filled: those it subscribed to, and those a cancelled two-phase init or
  -- apply of this init had already loaded (before CATCHING_UP there is no init_tables row).
  SELECT pg_catalog.string_agg(DISTINCT x.t, ', ') INTO v_tables FROM (
    SELECT pg_catalog.format('%I.%I', t.schema_name, t.table_name) t
    FROM steep_repl.init_tables t WHERE t.node = init_cancelled.node
    UNION ALL
    SELECT pg_catalog.format('%I.%I', t.schema_name, t.table_name)
    FROM steep_repl.snapshot_apply_tables t
    JOIN steep_repl.snapshot_applies a ON a.id = t.apply_id
    JOIN steep_repl.jobs j ON j.id = a.job_id
    JOIN steep_repl.nodes n ON n.name = j.node
    WHERE j.node = init_cancelled.node AND j.kind IN ('snapshot.init', 'snapshot.apply')
      AND j.cancel_requested_at IS NOT NULL AND j.created_at >= n.init_started_at) x
  WHERE pg_catalog.to_regclass(x.t) IS NOT NULL;
  IF v_tables IS NOT NULL THEN
    EXECUTE 'TRUNCATE TABLE ' || v_tables;
  END IF;
  DELETE FROM steep_repl.init_progress p WHERE p.node = init_cancelled.node;
  IF v_state <> 'uninitialized' THEN
    PERFORM steep_repl.transition(node, 'uninitialized', 'init cancelled');
  END IF;
  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (node, 'init.cancelled', v_state, 'uninitialized',
          coalesce(detail, '{}') || pg_catalog.jsonb_build_object('truncated', coalesce(v_tables, '')));
END
$$;
COMMENT ON FUNCTION steep_repl.init_cancelled(text, jsonb) IS 'Sidecar step: replication objects are gone; truncate the init''s tables, clear progress, UNINITIALIZED.';

CREATE FUNCTION steep_repl.cancel_init(node text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_job bigint;
  r record;
BEGIN
  PERFORM steep_repl._require('node', node);
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = cancel_init.node FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  SELECT j.id INTO v_job FROM steep_repl.jobs j
  WHERE j.kind = 'init.cancel' AND j.node = cancel_init.node AND j.state IN ('queued', 'running');
  IF FOUND THEN
    RAISE NOTICE 'cancel of the init of node "%" is already under way (job %)', node, v_job;
    RETURN v_job;
  END IF;
  IF v_state = 'uninitialized' AND NOT EXISTS (SELECT 1 FROM steep_repl.init_progress p WHERE p.node = cancel_init.node) THEN
    RAISE NOTICE 'node "%" has no init to cancel', node;
    RETURN NULL;
  END IF;
  IF v_state IN ('synchronized', 'diverged', 'reinitializing') THEN
    RAISE EXCEPTION 'node "%" is % and has no init to cancel', node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'cancel_init stops an init in PREPARING, COPYING or CATCHING_UP, or cleans up a FAILED one.';
  END IF;
  -- The jobs that fill the node: an automatic init's start, a two-phase init or an apply.
  FOR r IN SELECT j.id FROM steep_repl.jobs j WHERE j.kind IN ('init.start', 'snapshot.init', 'snapshot.apply') AND j.node = cancel_init.node
           AND j.state IN ('queued', 'running') LOOP
    PERFORM steep_repl.cancel_job(r.id);
  END LOOP;
  v_job := steep_repl.enqueue_job('init.cancel', pg_catalog.jsonb_build_object('target', node), node, 5);
  INSERT INTO steep_repl.events (node, event, from_state, detail)
  VALUES (node, 'init.cancel_requested', v_state, pg_catalog.jsonb_build_object('job', v_job));
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl.cancel_init(text) IS
  'Cancels the init of node: the sidecar drops the subscription, its slots on the source and a publication created for it, truncates the tables it filled; the node goes back to UNINITIALIZED. Idempotent; returns the init.cancel job id (NULL with a notice when there is nothing to cancel).';

-- ---- ../sql/54_init_tick.sql
-- tick()'s init duties: sample the subscription's progress from the target's catalogs into
-- init_progress and move COPYING -> CATCHING_UP -> SYNCHRONIZED, or to FAILED with a reason.

CREATE FUNCTION steep_repl._tick_init(p steep_repl.init_progress, now timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_errors bigint;
  v_probe text;
  v_done int;
  v_rows bigint;
  v_bytes bigint;
  v_percent numeric;
  v_then record;
  v_rps numeric;
  v_bps numeric;
  v_progressed boolean;
  v_lag bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.oid = p.subscription_oid) THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('subscription %s disappeared', p.subscription));
    RETURN;
  END IF;

  -- A sync or apply error fails the init; say whether the source is the cause.
  SELECT s.apply_error_count + s.sync_error_count INTO v_errors
  FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = p.subscription_oid;
  IF coalesce(v_errors, 0) > 0 THEN
    v_probe := steep_repl._probe(p.source_node);
    PERFORM steep_repl._init_fail(p.node, CASE
      WHEN v_probe IS NOT NULL THEN pg_catalog.format('source node %s is unreachable: %s', p.source_node, v_probe)
      ELSE pg_catalog.format('subscription %s reported %s sync/apply error(s); the error text is in the server log of node %s',
                             p.subscription, v_errors, p.node) END);
    RETURN;
  END IF;

  UPDATE steep_repl.init_tables t SET
    sync_state = CASE sr.srsubstate WHEN 'r' THEN 'ready' WHEN 's' THEN 'synced'
                                    WHEN 'd' THEN 'copying' WHEN 'f' THEN 'copying' ELSE 'pending' END,
    rows_copied = greatest(t.rows_copied, coalesce(pc.tuples_processed, 0),
                      coalesce(pg_catalog.pg_stat_get_tuples_inserted(t.relid), 0) - t.n_tup_ins_base),
    bytes_copied = greatest(t.bytes_copied, coalesce(pc.bytes_processed, 0)),
    started_at = coalesce(t.started_at, CASE WHEN sr.srsubstate <> 'i' THEN now END),
    finished_at = coalesce(t.finished_at, CASE WHEN sr.srsubstate IN ('s', 'r') THEN now END)
  FROM pg_catalog.pg_subscription_rel sr
  LEFT JOIN pg_catalog.pg_stat_progress_copy pc ON pc.relid = sr.srrelid AND pc.datname = pg_catalog.current_database()
  WHERE t.node = p.node AND sr.srsubid = p.subscription_oid AND sr.srrelid = t.relid;
  -- Fraction of each table copied: by rows against the source's estimate, else by COPY bytes
  -- against its size; below 1 until the table is synchronized.
  UPDATE steep_repl.init_tables t SET fraction = CASE
      WHEN t.sync_state IN ('synced', 'ready') THEN 1
      WHEN t.sync_state = 'pending' THEN t.fraction
      ELSE greatest(t.fraction, least(0.99, coalesce(
             t.rows_copied::numeric / NULLIF(t.source_rows, 0),
             t.bytes_copied::numeric / NULLIF(t.source_bytes, 0), 0))) END
  WHERE t.node = p.node;

  SELECT pg_catalog.count(*) FILTER (WHERE t.sync_state IN ('synced', 'ready')),
         coalesce(pg_catalog.sum(t.rows_copied), 0),
         coalesce(pg_catalog.sum(pg_catalog.round(t.source_bytes * t.fraction)), 0)::bigint
    INTO v_done, v_rows, v_bytes
  FROM steep_repl.init_tables t WHERE t.node = p.node;
  v_percent := CASE WHEN v_done = p.tables_total THEN 100
                    WHEN p.bytes_total > 0 THEN least(99.99, 100.0 * v_bytes / p.bytes_total)
                    ELSE 100.0 * v_done / NULLIF(p.tables_total, 0) END;
  v_progressed := v_rows > p.rows_done OR v_bytes > p.bytes_done OR v_done > p.tables_done;

  -- Rates over the rolling 10 s window.
  INSERT INTO steep_repl.init_samples (node, at, rows_done, bytes_done) VALUES (p.node, now, v_rows, v_bytes)
  ON CONFLICT DO NOTHING;
  DELETE FROM steep_repl.init_samples s WHERE s.node = p.node AND s.at < now - interval '2 minutes';
  SELECT s.at, s.rows_done, s.bytes_done INTO v_then FROM steep_repl.init_samples s
  WHERE s.node = p.node AND s.at >= now - interval '10 seconds' AND s.at < now ORDER BY s.at LIMIT 1;
  IF v_then.at IS NOT NULL THEN
    v_rps := (v_rows - v_then.rows_done) / extract(epoch FROM now - v_then.at);
    v_bps := (v_bytes - v_then.bytes_done) / extract(epoch FROM now - v_then.at);
  END IF;

  UPDATE steep_repl.init_progress ip SET
    tables_done = v_done, rows_done = greatest(ip.rows_done, v_rows), bytes_done = greatest(ip.bytes_done, v_bytes),
    percent = greatest(ip.percent, pg_catalog.round(v_percent, 2)),
    current_tables = (SELECT coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name)
                                      ORDER BY t.schema_name, t.table_name), '{}')
                      FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'copying'),
    rows_per_sec = pg_catalog.round(v_rps, 1), bytes_per_sec = pg_catalog.round(v_bps),
    eta_seconds = CASE WHEN v_done = p.tables_total THEN 0
                       WHEN v_bps > 0 THEN pg_catalog.round((p.bytes_total - v_bytes) / v_bps) END,
    last_progress_at = CASE WHEN v_progressed THEN now ELSE ip.last_progress_at END,
    stalled_since = CASE WHEN v_progressed THEN NULL ELSE ip.stalled_since END,
    updated_at = now
  WHERE ip.node = p.node
  RETURNING * INTO p;

  -- No progress for stall_timeout: an init.stalled event (once per stall), and a look at the source.
  IF p.phase = 'copying' AND p.stalled_since IS NULL AND now - p.last_progress_at > p.stall_timeout THEN
    UPDATE steep_repl.init_progress ip SET stalled_since = now WHERE ip.node = p.node;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (p.node, 'init.stalled', pg_catalog.jsonb_build_object('since', p.last_progress_at, 'percent', p.percent,
            'current_tables', p.current_tables));
    p.stalled_since := now;
  END IF;
  IF p.stalled_since IS NOT NULL OR p.phase = 'catching_up' THEN
    IF NOT steep_repl._tick_source_reachable(p, now) THEN
      RETURN;
    END IF;
  END IF;

  IF p.phase = 'copying' AND v_done = p.tables_total THEN
    UPDATE steep_repl.init_progress ip SET phase = 'catching_up', copy_done_at = now, percent = 100, current_tables = '{}'
    WHERE ip.node = p.node;
    PERFORM steep_repl.transition(p.node, 'catching_up', pg_catalog.format('all %s tables copied', p.tables_total));
  ELSIF p.phase = 'catching_up' THEN
    v_lag := steep_repl._remote_slot_lag(p.source_node, p.slot_name);
    UPDATE steep_repl.init_progress ip SET lag_bytes = v_lag WHERE ip.node = p.node;
    IF v_lag IS NOT NULL AND v_lag <= p.lag_threshold_bytes
       AND NOT EXISTS (SELECT 1 FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state <> 'ready') THEN
      UPDATE steep_repl.init_progress ip SET phase = 'synchronized', synchronized_at = now, eta_seconds = 0
      WHERE ip.node = p.node;
      PERFORM steep_repl.transition(p.node, 'synchronized', pg_catalog.format('apply lag %s bytes <= %s', v_lag, p.lag_threshold_bytes));
    END IF;
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_init(steep_repl.init_progress, timestamptz) IS 'Internal: one progress sample and state step of one init.';

-- Tracks how long the source has been unreachable; fails the init after source_timeout.
CREATE FUNCTION steep_repl._tick_source_reachable(p steep_repl.init_progress, now timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_probe text := steep_repl._probe(p.source_node);
BEGIN
  IF v_probe IS NULL THEN
    UPDATE steep_repl.init_progress ip SET source_unreachable_since = NULL WHERE ip.node = p.node;
    RETURN true;
  END IF;
  IF p.source_unreachable_since IS NULL THEN
    UPDATE steep_repl.init_progress ip SET source_unreachable_since = now,
      message = pg_catalog.format('source node %s unreachable: %s', p.source_node, v_probe)
    WHERE ip.node = p.node;
  ELSIF now - p.source_unreachable_since > p.source_timeout THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('source node %s unreachable for more than %s: %s',
                                                            p.source_node, p.source_timeout, v_probe));
  END IF;
  RETURN false;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_source_reachable(steep_repl.init_progress, timestamptz) IS 'Internal: probes the source of an init.';

CREATE FUNCTION steep_repl._tick_inits(now timestamptz) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  n integer := 0;
  v_job steep_repl.jobs;
BEGIN
  FOR p IN SELECT ip.* FROM steep_repl.init_progress ip JOIN steep_repl.nodes nd ON nd.name = ip.node
           WHERE ip.phase IN ('preparing', 'copying', 'catching_up') AND nd.init_state = ip.phase
           -- Lock order everywhere: the nodes row, then init_progress (cancel and the sidecar do the same).
           ORDER BY ip.node FOR UPDATE OF nd, ip SKIP LOCKED LOOP
    n := n + 1;
    -- A cancel under way removes the subscription on purpose: leave the init to it.
    IF EXISTS (SELECT 1 FROM steep_repl.jobs j
               WHERE j.kind = 'init.cancel' AND j.node = p.node AND j.state IN ('queued', 'running')) THEN
      CONTINUE;
    END IF;
    IF p.phase = 'preparing' THEN
      -- The sidecar's job owns PREPARING; if it ended without moving on, the init failed.
      SELECT * INTO v_job FROM steep_repl.jobs j WHERE j.id = p.job_id;
      IF v_job.state IN ('failed', 'cancelled') THEN
        PERFORM steep_repl._init_fail(p.node, pg_catalog.format('init job %s %s: %s', v_job.id, v_job.state,
                                                                coalesce(v_job.error, 'no error recorded')));
      END IF;
      CONTINUE;
    END IF;
    PERFORM steep_repl._tick_init(p, now);
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_inits(timestamptz) IS 'Internal: tick()''s pass over active inits.';

-- ---- ../sql/55_manual_init.sql
-- Manual init: the DBA seeds the target from their own backup; prepare_init (on the source)
-- fixes the point L the subscription can start from, complete_init (on the seeded target)
-- subscribes from the backup's end E >= L, so every transaction committed after E arrives once
-- and none before it arrives again.

CREATE TABLE steep_repl.init_slots (
  slot_name      text PRIMARY KEY,
  target_node    text NOT NULL,
  publication    text NOT NULL,
  consistent_lsn pg_lsn NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
  expires_at     timestamptz NOT NULL,
  used_at        timestamptz,
  used_by        text,
  dropped_at     timestamptz,
  drop_reason    text,
  snapshot_name  text,
  export_job     bigint,
  CONSTRAINT expires_after_creation CHECK (expires_at > created_at),
  CONSTRAINT dropped_has_reason CHECK ((dropped_at IS NULL) = (drop_reason IS NULL))
);
COMMENT ON TABLE steep_repl.init_slots IS
  'Slots made by prepare_init on this (source) node: the consistent LSN a seeded target may subscribe from, until expires_at. tick() drops unused ones past expiry.';
COMMENT ON COLUMN steep_repl.init_slots.snapshot_name IS
  'prepare_init_export: the snapshot exported when the slot was created (pg_dump --snapshot), usable while the sidecar holds it (until release_init_snapshot).';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.init_slots', '');

-- The local node's name; 55000 when none is registered.
CREATE FUNCTION steep_repl._local_node() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text;
BEGIN
  SELECT n.name INTO v FROM steep_repl.nodes n WHERE n.is_local;
  IF v IS NULL THEN
    RAISE EXCEPTION 'no local node is registered in this database'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'SELECT steep_repl.register_node(name, conninfo, true) for the node this database is.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._local_node() IS 'Internal: the name of the node this database is.';

-- Runs one statement on a node in its own committed transaction (dblink), e.g. on this node
-- before a slot is created, which PostgreSQL refuses in a transaction that has written.
CREATE FUNCTION steep_repl._remote_exec(node text, statement text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format('SELECT %I.dblink_exec($1, $2)', steep_repl._dblink_schema())
    USING steep_repl._conninfo(node), statement;
END
$$;
COMMENT ON FUNCTION steep_repl._remote_exec(text, text) IS 'Internal: runs a statement on a node through dblink_exec.';

-- Shared checks of prepare_init and prepare_init_export: node is another registered node, the
-- slot name is valid and free; returns the names and the statement that publishes every user table.
CREATE FUNCTION steep_repl._prepare_checks(node text, slot_name text, expires interval,
  OUT local_node text, OUT slot text, OUT publication text, OUT publication_sql text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tables text;
BEGIN
  PERFORM steep_repl._require('node', node);
  PERFORM steep_repl._require('expires', expires);
  local_node := steep_repl._local_node();
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = _prepare_checks.node) THEN
    PERFORM steep_repl._unknown_node(node);
  END IF;
  IF node = local_node THEN
    RAISE EXCEPTION 'a slot is prepared on the source for another node: "%" is this node', node
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Call it on the source with the name of the node to seed.';
  END IF;
  IF expires <= interval '0' THEN
    RAISE EXCEPTION 'expires must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  slot := coalesce(slot_name, (steep_repl._init_names(node, local_node)).slot_name);
  IF slot !~ '^[a-z0-9_]{1,63}$' THEN
    RAISE EXCEPTION 'invalid slot name "%"', slot
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Slot names are 1 to 63 lowercase letters, digits or underscores.';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = _prepare_checks.slot)
     OR EXISTS (SELECT 1 FROM steep_repl.init_slots i WHERE i.slot_name = _prepare_checks.slot AND i.dropped_at IS NULL) THEN
    RAISE EXCEPTION 'replication slot "%" already exists', slot
      USING ERRCODE = 'duplicate_object',
            HINT = 'Pick another slot_name, or drop it (SELECT pg_drop_replication_slot(...)) if it is a leftover.';
  END IF;
  publication := (steep_repl._init_names(node, local_node)).publication;
  SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ' ORDER BY 1)
    INTO v_tables FROM steep_repl._local_tables() t;
  IF v_tables IS NULL THEN
    RAISE EXCEPTION 'node "%" has no user tables to publish', local_node USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  publication_sql := CASE
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_publication p WHERE p.pubname = _prepare_checks.publication)
    THEN pg_catalog.format('ALTER PUBLICATION %I SET TABLE %s', publication, v_tables)
    ELSE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s', publication, v_tables) END;
END
$$;
COMMENT ON FUNCTION steep_repl._prepare_checks(text, text, interval) IS 'Internal: validation and names shared by prepare_init and prepare_init_export.';

CREATE FUNCTION steep_repl.prepare_init(node text, slot_name text DEFAULT NULL, expires interval DEFAULT '7 days',
  OUT slot text, OUT lsn pg_lsn, OUT publication text, OUT expires_at timestamptz, OUT next_steps text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_local text;
BEGIN
  SELECT * INTO c FROM steep_repl._prepare_checks(node, slot_name, expires);
  v_local := c.local_node;
  slot := c.slot;
  publication := c.publication;
  -- The publication must exist before the slot's consistent point (pgoutput reads it with the
  -- historic catalog snapshot), and a slot cannot be created in a transaction that has written:
  -- so it is created in its own transaction, through dblink to this node.
  PERFORM steep_repl._remote_exec(v_local, c.publication_sql);
  SELECT s.lsn INTO lsn FROM pg_catalog.pg_create_logical_replication_slot(slot, 'pgoutput') s;
  expires_at := pg_catalog.now() + expires;
  INSERT INTO steep_repl.init_slots (slot_name, target_node, publication, consistent_lsn, expires_at)
  VALUES (slot, node, publication, lsn, prepare_init.expires_at);
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (node, 'init.prepared', pg_catalog.jsonb_build_object('slot', slot, 'lsn', lsn::text, 'source', v_local,
          'expires_at', prepare_init.expires_at));
  next_steps := pg_catalog.format($t$Slot %1$s holds WAL on %2$s from LSN %3$s until %4$s (it is dropped then if unused).
Seed %5$s with data of %2$s at an LSN E >= %3$s, then on %5$s: SELECT steep_repl.complete_init('%5$s', '%2$s', '%1$s');
 1. physical backup taken now (pg_basebackup, or pg_backup_start/copy/pg_backup_stop): restore it with
    recovery_target = 'immediate' and recovery_target_action = 'promote'; E is found in the new timeline's history file.
 2. an existing standby of %2$s: stop it, set recovery_target_lsn = '%3$s' and recovery_target_action = 'promote', start it.
 3. a logical dump: pg_dump --snapshot of a snapshot exported at %3$s (see the README), then source_lsn => '%3$s'.$t$,
    slot, v_local, lsn, prepare_init.expires_at, node);
END
$$;
COMMENT ON FUNCTION steep_repl.prepare_init(text, text, interval) IS
  'On the source: creates the publication and a pgoutput slot for seeding node from a backup; returns the slot, its consistent LSN L, the expiry and the steps that follow.';

-- E of a promoted physical copy: the switch point of its current timeline, from pg_wal/<tli>.history.
CREATE FUNCTION steep_repl._recovery_end_lsn() RETURNS pg_lsn
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tli int := (SELECT c.timeline_id FROM pg_catalog.pg_control_checkpoint() c);
  v_history text;
  v_line text;
BEGIN
  IF v_tli = 1 THEN
    RAISE EXCEPTION 'source_lsn is needed: this server was never promoted (timeline 1), so no backup end LSN is recorded'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass source_lsn: the end LSN printed by pg_backup_stop/pg_basebackup, or the slot''s LSN for a logical dump.';
  END IF;
  v_history := pg_catalog.pg_read_file(pg_catalog.format('pg_wal/%s.history', pg_catalog.lpad(pg_catalog.upper(pg_catalog.to_hex(v_tli)), 8, '0')));
  SELECT l INTO v_line FROM pg_catalog.regexp_split_to_table(v_history, E'\n') WITH ORDINALITY AS x(l, i)
  WHERE l ~ '^\d+\s+[0-9A-Fa-f]+/[0-9A-Fa-f]+' ORDER BY i DESC LIMIT 1;
  IF v_line IS NULL THEN
    RAISE EXCEPTION 'no switch point in the history file of timeline %', v_tli USING ERRCODE = 'data_corrupted';
  END IF;
  RETURN pg_catalog.split_part(pg_catalog.regexp_replace(v_line, '\s+', ' ', 'g'), ' ', 2)::pg_lsn;
END
$$;
COMMENT ON FUNCTION steep_repl._recovery_end_lsn() IS
  'Internal: where this promoted copy''s recovery ended (the last switch point of its timeline history), i.e. the LSN its data is consistent at.';

-- ---- ../sql/55b_manual_init_export.sql
-- Manual init, logical path: the slot is created over a replication connection that exports its
-- snapshot; the sidecar holds that connection open so the DBA can run
-- pg_dump --snapshot=<name>, then releases it. E = the slot's consistent point.

CREATE FUNCTION steep_repl.prepare_init_export(node text, slot_name text DEFAULT NULL,
  expires interval DEFAULT '7 days', hold interval DEFAULT '12 hours')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
BEGIN
  PERFORM steep_repl._require('hold', hold);
  SELECT * INTO c FROM steep_repl._prepare_checks(node, slot_name, expires);
  IF hold <= interval '0' OR hold > expires THEN
    RAISE EXCEPTION 'hold must be positive and at most expires' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Committed with this call, so the publication exists before the sidecar creates the slot.
  EXECUTE c.publication_sql;
  RETURN steep_repl.enqueue_job('init.export', pg_catalog.jsonb_build_object('node', node, 'slot', c.slot,
    'publication', c.publication, 'expires_seconds', extract(epoch FROM expires),
    'hold_seconds', extract(epoch FROM hold)), node, 1);
END
$$;
COMMENT ON FUNCTION steep_repl.prepare_init_export(text, text, interval, interval) IS
  'On the source, for seeding node from a logical dump: queues the sidecar job that creates the slot and holds its exported snapshot (init_slots.snapshot_name) for pg_dump --snapshot until release_init_snapshot or hold ends. Returns the job id.';

-- Sidecar step: the slot exists and its snapshot is exported and held.
CREATE FUNCTION steep_repl.init_exported(node text, slot_name text, publication text, lsn pg_lsn,
  snapshot_name text, expires interval, job bigint)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO steep_repl.init_slots (slot_name, target_node, publication, consistent_lsn, expires_at, snapshot_name, export_job)
  VALUES (init_exported.slot_name, node, publication, lsn, pg_catalog.now() + expires, init_exported.snapshot_name, job);
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (node, 'init.prepared', pg_catalog.jsonb_build_object('slot', init_exported.slot_name, 'lsn', lsn::text,
          'snapshot', init_exported.snapshot_name, 'source', steep_repl._local_node()));
END
$$;
COMMENT ON FUNCTION steep_repl.init_exported(text, text, text, pg_lsn, text, interval, bigint) IS
  'Sidecar step of prepare_init_export: records the slot, its consistent LSN and the exported snapshot name.';

-- Sidecar step: the exporting connection is closed; the snapshot cannot be imported any more.
CREATE FUNCTION steep_repl.init_snapshot_released(slot_name text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE steep_repl.init_slots i SET snapshot_name = NULL WHERE i.slot_name = init_snapshot_released.slot_name;
$$;
COMMENT ON FUNCTION steep_repl.init_snapshot_released(text) IS 'Sidecar step: the exported snapshot of a slot is no longer held.';

CREATE FUNCTION steep_repl.release_init_snapshot(slot_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_job bigint;
BEGIN
  PERFORM steep_repl._require('slot_name', slot_name);
  SELECT i.export_job INTO v_job FROM steep_repl.init_slots i WHERE i.slot_name = release_init_snapshot.slot_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'slot "%" was not prepared here', slot_name USING ERRCODE = 'undefined_object';
  END IF;
  IF v_job IS NULL OR NOT EXISTS (SELECT 1 FROM steep_repl.jobs j WHERE j.id = v_job AND j.state = 'running') THEN
    RAISE NOTICE 'the snapshot of slot "%" is not held', slot_name;
    RETURN false;
  END IF;
  PERFORM steep_repl.cancel_job(v_job);
  RETURN true;
END
$$;
COMMENT ON FUNCTION steep_repl.release_init_snapshot(text) IS
  'Ends the hold of a slot''s exported snapshot (after pg_dump --snapshot finished); the slot stays for complete_init.';

-- ---- ../sql/56_complete_init.sql
-- complete_init(): on a target seeded from a backup, subscribe from the backup's end LSN.

-- What the source knows of a prepared slot, read through dblink.
CREATE FUNCTION steep_repl._remote_init_slot(source text, slot text,
  OUT prepared boolean, OUT slot_exists boolean, OUT active boolean, OUT consistent_lsn pg_lsn,
  OUT expires_at timestamptz, OUT used_at timestamptz, OUT used_by text, OUT dropped_at timestamptz,
  OUT drop_reason text, OUT publication text, OUT target_node text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE pg_catalog.format(
    'SELECT * FROM %I.dblink($1, $2) AS t(prepared boolean, slot_exists boolean, active boolean, consistent_lsn pg_lsn,
       expires_at timestamptz, used_at timestamptz, used_by text, dropped_at timestamptz, drop_reason text,
       publication text, target_node text)', steep_repl._dblink_schema())
  INTO prepared, slot_exists, active, consistent_lsn, expires_at, used_at, used_by, dropped_at, drop_reason, publication, target_node
  USING steep_repl._conninfo(source), pg_catalog.format(
    'SELECT i.slot_name IS NOT NULL, s.slot_name IS NOT NULL, coalesce(s.active, false), i.consistent_lsn,
            i.expires_at, i.used_at, i.used_by, i.dropped_at, i.drop_reason, i.publication, i.target_node
     FROM (SELECT 1) one
     LEFT JOIN steep_repl.init_slots i ON i.slot_name = %1$L
     LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = %1$L', slot);
END
$$;
COMMENT ON FUNCTION steep_repl._remote_init_slot(text, text) IS 'Internal: a prepared slot as the source records it.';

-- A restored physical copy believes it is the source: make it the target, and forget the
-- source's queue, progress and prepared slots that came with the copy.
CREATE FUNCTION steep_repl._assume_identity(target text, source text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_local text;
BEGIN
  SELECT n.name INTO v_local FROM steep_repl.nodes n WHERE n.is_local;
  IF v_local IS NOT DISTINCT FROM target THEN
    RETURN false;
  END IF;
  IF v_local IS NOT NULL AND v_local <> source THEN
    RAISE EXCEPTION 'this database is node "%", not "%"', v_local, target
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Run complete_init on the node that was seeded.';
  END IF;
  UPDATE steep_repl.nodes n SET is_local = false WHERE n.is_local;
  UPDATE steep_repl.nodes n SET is_local = true WHERE n.name = target;
  DELETE FROM steep_repl.jobs;
  DELETE FROM steep_repl.init_progress;
  DELETE FROM steep_repl.init_slots;
  DELETE FROM steep_repl.drift_checks;
  DELETE FROM steep_repl.schema_accepted_differences;
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (target, 'node.identity_assumed', pg_catalog.jsonb_build_object('was', v_local,
          'reason', 'restored from a copy of ' || coalesce(v_local, source)));
  RETURN true;
END
$$;
COMMENT ON FUNCTION steep_repl._assume_identity(text, text) IS 'Internal: turns a restored copy of source into node target.';

CREATE FUNCTION steep_repl.complete_init(target text, source text, slot_name text, source_lsn pg_lsn DEFAULT NULL,
                                         options jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_state text;
  v_slot record;
  v_lsn pg_lsn := source_lsn;
  v_lsn_from text := 'source_lsn';
  v_names record;
  v_sub oid;
  v_identity boolean;
  v_sync jsonb;
  k text;
BEGIN
  PERFORM steep_repl._require('target', target);
  PERFORM steep_repl._require('source', source);
  PERFORM steep_repl._require('slot_name', slot_name);
  PERFORM steep_repl._require('options', options);
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
    IF k NOT IN ('schema_sync', 'confirm', 'lag_threshold', 'source_timeout') THEN
      RAISE EXCEPTION 'unknown complete_init option "%"', k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: schema_sync, confirm, lag_threshold, source_timeout.';
    END IF;
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = target) THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF v_state NOT IN ('uninitialized', 'failed') THEN
    RAISE EXCEPTION 'node "%" is % and cannot complete a manual init', target, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'complete_init needs an UNINITIALIZED or FAILED node.';
  END IF;
  SELECT * INTO v_names FROM steep_repl._init_names(target, source);
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname = v_names.subscription) THEN
    RAISE EXCEPTION 'subscription "%" already exists', v_names.subscription
      USING ERRCODE = 'duplicate_object', HINT = 'Drop it first, or cancel_init the node.';
  END IF;

  PERFORM steep_repl._require_reachable(source, 'source');
  SELECT * INTO v_slot FROM steep_repl._remote_init_slot(source, slot_name);
  IF NOT v_slot.prepared THEN
    RAISE EXCEPTION 'slot "%" was not prepared on node "%"', slot_name, source
      USING ERRCODE = 'undefined_object', HINT = pg_catalog.format('Run SELECT * FROM steep_repl.prepare_init(%L) on %s before taking the backup.', target, source);
  ELSIF v_slot.dropped_at IS NOT NULL OR NOT v_slot.slot_exists THEN
    RAISE EXCEPTION 'slot "%" on node "%" is gone: %', slot_name, source, coalesce(v_slot.drop_reason, 'dropped outside steep_repl')
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Prepare a new slot and seed the target again from a backup taken after it.';
  ELSIF v_slot.expires_at < pg_catalog.now() THEN
    RAISE EXCEPTION 'slot "%" on node "%" expired at %', slot_name, source, v_slot.expires_at
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Prepare a new slot and seed the target again from a backup taken after it.';
  ELSIF v_slot.used_at IS NOT NULL THEN
    RAISE EXCEPTION 'slot "%" was already used by node "%" at %', slot_name, v_slot.used_by, v_slot.used_at
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'A prepared slot serves one target once.';
  ELSIF v_slot.active THEN
    RAISE EXCEPTION 'slot "%" on node "%" is in use by a running replication connection', slot_name, source
      USING ERRCODE = 'object_in_use';
  ELSIF v_slot.target_node <> target THEN
    RAISE EXCEPTION 'slot "%" was prepared for node "%", not "%"', slot_name, v_slot.target_node, target
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  IF v_lsn IS NULL THEN
    v_lsn := steep_repl._recovery_end_lsn();
    v_lsn_from := 'timeline history';
  END IF;
  IF v_lsn < v_slot.consistent_lsn THEN
    RAISE EXCEPTION 'the target''s data is from LSN %, before slot "%"''s consistent point %: transactions committed in between would be lost',
        v_lsn, slot_name, v_slot.consistent_lsn
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Seed the target from a backup taken after prepare_init (its end LSN must be at or after the slot''s LSN).';
  END IF;

  -- The seeded tables must match the source's (strict | auto | manual, as for start_init).
  v_sync := steep_repl._schema_sync(source, options->>'schema_sync', options);
  v_identity := steep_repl._assume_identity(target, source);
  -- The publication and the source's own objects came along with a physical copy; they are not the target's.
  EXECUTE pg_catalog.format('DROP PUBLICATION IF EXISTS %I', v_slot.publication);
  EXECUTE pg_catalog.format(
    'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = false, create_slot = false, slot_name = %L, enabled = false)',
    v_names.subscription, (SELECT n.conninfo FROM steep_repl.nodes n WHERE n.name = source), v_slot.publication, slot_name);
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = v_names.subscription AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  PERFORM pg_catalog.pg_replication_origin_advance('pg_' || v_sub, v_lsn);
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I ENABLE', v_names.subscription);

  DELETE FROM steep_repl.init_progress p WHERE p.node = target;
  INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, publication_created, subscription,
    slot_name, subscription_oid, phase, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, percent,
    copy_done_at, message)
  VALUES (target, source, 'manual', options, v_slot.publication, false, v_names.subscription, slot_name, v_sub, 'catching_up', 0,
    coalesce((options->>'lag_threshold')::bigint, 1048576), interval '60 seconds',
    pg_catalog.make_interval(secs => coalesce((options->>'source_timeout')::float8, 60)), 100, pg_catalog.now(),
    pg_catalog.format('seeded from a backup at %s (%s); slot %s consistent at %s', v_lsn, v_lsn_from, slot_name, v_slot.consistent_lsn));
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, sync_state, fraction)
  SELECT target, n.nspname, c.relname, c.oid, 'ready', 1
  FROM pg_catalog.pg_subscription_rel sr JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE sr.srsubid = v_sub;
  UPDATE steep_repl.init_progress p SET tables_total = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = target),
    tables_done = (SELECT pg_catalog.count(*) FROM steep_repl.init_tables t WHERE t.node = target)
  WHERE p.node = target;

  UPDATE steep_repl.nodes n SET init_source_node = source WHERE n.name = target;
  PERFORM steep_repl.transition(target, 'preparing', pg_catalog.format('complete_init from %s, slot %s', source, slot_name));
  PERFORM steep_repl.transition(target, 'copying', pg_catalog.format('data seeded by the DBA up to LSN %s (%s)', v_lsn, v_lsn_from));
  PERFORM steep_repl.transition(target, 'catching_up', pg_catalog.format('subscribed from LSN %s', v_lsn));
  -- Last, so that a refusal above leaves the slot usable: the source records it as used.
  PERFORM steep_repl._remote_exec(source, pg_catalog.format(
    'UPDATE steep_repl.init_slots SET used_at = pg_catalog.now(), used_by = %L WHERE slot_name = %L', target, slot_name));
  RETURN pg_catalog.jsonb_build_object('subscription', v_names.subscription, 'slot', slot_name, 'lsn', v_lsn::text,
    'lsn_from', v_lsn_from, 'consistent_lsn', v_slot.consistent_lsn::text, 'identity_assumed', v_identity,
    'schema_sync', v_sync->>'status');
END
$$;
COMMENT ON FUNCTION steep_repl.complete_init(text, text, text, pg_lsn, jsonb) IS
  'On a target seeded from a backup of source: checks the prepared slot (exists, not expired, unused) and that the data is at or after its consistent point, subscribes with copy_data = false from that LSN (origin advanced), CATCHING_UP -> SYNCHRONIZED.';

-- tick(): drop prepared slots nobody used before their expiry (a forgotten slot holds WAL
-- until the disk fills).
CREATE FUNCTION steep_repl._tick_expire_slots(now timestamptz) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN SELECT i.slot_name, i.target_node, i.expires_at FROM steep_repl.init_slots i
           WHERE i.expires_at < now AND i.used_at IS NULL AND i.dropped_at IS NULL
           FOR UPDATE SKIP LOCKED LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = r.slot_name AND s.active) THEN
      CONTINUE; -- in use right now: try again at the next tick
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = r.slot_name) THEN
      PERFORM pg_catalog.pg_drop_replication_slot(r.slot_name);
    END IF;
    UPDATE steep_repl.init_slots i SET dropped_at = now, drop_reason = pg_catalog.format('expired at %s unused', r.expires_at)
    WHERE i.slot_name = r.slot_name;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (r.target_node, 'init.slot_expired', pg_catalog.jsonb_build_object('slot', r.slot_name, 'expired_at', r.expires_at));
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_expire_slots(timestamptz) IS 'Internal: tick()''s drop of unused prepared slots past expiry.';

-- ---- ../sql/57_fingerprint.sql
-- Schema fingerprints: one SHA-256 per user table over its column definitions taken in name
-- order (name, type with typmod, NOT NULL, DEFAULT or GENERATED clause) and its primary key.
-- The same catalog query describes this database and, through dblink, a peer; both run it with
-- search_path = pg_catalog, pg_temp, so types and default expressions print alike on both sides.
-- Physical column order is left out on purpose: replication maps columns by name.

CREATE TYPE steep_repl.table_definition AS (
  schema_name text, table_name text, fingerprint text, columns jsonb, primary_key jsonb);
COMMENT ON TYPE steep_repl.table_definition IS
  'A user table''s definition: fingerprint (hex SHA-256), columns as a jsonb array in name order of {name, type, not_null, default, generated, position}, primary key column names in key order (NULL: none).';

CREATE TABLE steep_repl.schema_fingerprints (
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  fingerprint text NOT NULL CONSTRAINT fingerprint_is_sha256 CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  columns     jsonb NOT NULL CONSTRAINT columns_is_array CHECK (pg_catalog.jsonb_typeof(columns) = 'array'),
  primary_key jsonb CONSTRAINT primary_key_is_array
                    CHECK (primary_key IS NULL OR pg_catalog.jsonb_typeof(primary_key) = 'array'),
  captured_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (schema_name, table_name)
);
COMMENT ON TABLE steep_repl.schema_fingerprints IS
  'The local node''s user tables as of the last steep_repl.capture_fingerprints(): fingerprint, column definitions and primary key as captured with that fingerprint (reordering columns keeps the fingerprint, and the row).';
COMMENT ON COLUMN steep_repl.schema_fingerprints.captured_at IS
  'When this fingerprint was first captured (a capture that finds the table unchanged keeps it): the table''s definition is unchanged since.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.schema_fingerprints', '');

-- The catalog query. {columns} is the jsonb column list or NULL (comparing needs only the
-- fingerprints), {filter} narrows it to some tables. The column text hashed is exactly what
-- steep_repl._column_ddl() builds from the jsonb, so a table created from a definition has its
-- fingerprint. Plain defaults are deparsed without a relation (pg_get_expr(adbin, 0): they
-- cannot reference columns), which spares a relation lookup per column.
CREATE FUNCTION steep_repl._fingerprint_sql(with_columns boolean DEFAULT true, only_relids oid[] DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $q$
  SELECT pg_catalog.replace(pg_catalog.replace($$
  WITH t AS (
    SELECT c.oid, n.nspname, c.relname
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND c.relpersistence = 'p' {filter}
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'steep_repl')
      AND n.nspname !~ '^pg_(toast|temp)'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                      WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND e.objid = c.oid AND e.deptype = 'e')),
  a AS (
    SELECT a.attrelid, a.attname AS name, a.attnum AS position, a.attnotnull AS not_null,
           pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
           CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, 0) END AS dflt,
           CASE WHEN a.attidentity = 'a' THEN 'GENERATED ALWAYS AS IDENTITY'
                WHEN a.attidentity = 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY'
                WHEN a.attgenerated = 's' THEN 'GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) || ') STORED'
                WHEN a.attgenerated = 'v' THEN 'GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) || ') VIRTUAL'
           END AS gen
    FROM t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped),
  cols AS (
    SELECT a.attrelid,
           pg_catalog.string_agg(pg_catalog.quote_ident(a.name) || ' ' || a.type || CASE WHEN a.not_null THEN ' NOT NULL' ELSE '' END
                                 || coalesce(' DEFAULT ' || a.dflt, '') || coalesce(' ' || a.gen, ''), ', ' ORDER BY a.name) AS canon,
           {columns} AS columns
    FROM a GROUP BY a.attrelid),
  pk AS (
    SELECT i.indrelid, pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord) AS canon,
           pg_catalog.jsonb_agg(a.attname ORDER BY k.ord) AS cols
    FROM t JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND i.indisprimary
    CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    GROUP BY i.indrelid)
  SELECT t.nspname::text AS schema_name, t.relname::text AS table_name,
         pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
           coalesce(cols.canon, '') || coalesce(' PRIMARY KEY (' || pk.canon || ')', ''), 'UTF8')), 'hex') AS fingerprint,
         coalesce(cols.columns, '[]'::jsonb) AS columns, pk.cols AS primary_key
  FROM t LEFT JOIN cols ON cols.attrelid = t.oid LEFT JOIN pk ON pk.indrelid = t.oid
  $$,
  '{columns}', CASE WHEN with_columns THEN
    $$pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('name', a.name, 'type', a.type, 'not_null', a.not_null,
        'default', a.dflt, 'generated', a.gen, 'position', a.position) ORDER BY a.name)$$
    ELSE 'NULL::jsonb' END),
  '{filter}', CASE WHEN only_relids IS NULL THEN '' ELSE pg_catalog.format('AND c.oid = ANY (%L::pg_catalog.oid[])', only_relids) END);
$q$;
COMMENT ON FUNCTION steep_repl._fingerprint_sql(boolean, oid[]) IS
  'Internal: the query describing user tables as steep_repl.table_definition rows (columns NULL unless with_columns; only the tables only_relids when given).';

-- A column's definition as DDL: the text the fingerprint hashes, and what auto mode creates.
CREATE FUNCTION steep_repl._column_ddl(col jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.quote_ident(col->>'name') || ' ' || (col->>'type')
         || CASE WHEN (col->>'not_null')::boolean THEN ' NOT NULL' ELSE '' END
         || coalesce(' DEFAULT ' || (col->>'default'), '') || coalesce(' ' || (col->>'generated'), '');
$$;
COMMENT ON FUNCTION steep_repl._column_ddl(jsonb) IS 'Internal: "name type [NOT NULL] [DEFAULT expr] [GENERATED ...]" of one column of a table_definition.';

CREATE FUNCTION steep_repl._local_definitions(with_columns boolean DEFAULT true)
RETURNS SETOF steep_repl.table_definition
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY EXECUTE steep_repl._fingerprint_sql(with_columns);
END
$$;
COMMENT ON FUNCTION steep_repl._local_definitions(boolean) IS 'Internal: the definitions of this database''s user tables.';

-- 22004 with a hint (steep_repl._require has none).
CREATE FUNCTION steep_repl._require_arg(arg_name text, arg_value anyelement, hint text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF arg_value IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', arg_name USING ERRCODE = 'null_value_not_allowed', HINT = hint;
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._require_arg(text, anyelement, text) IS 'Internal: 22004 with a hint when a required argument is NULL.';

-- This node's name in messages.
CREATE FUNCTION steep_repl._local_name() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT n.name FROM steep_repl.nodes n WHERE n.is_local), 'this node');
$$;
COMMENT ON FUNCTION steep_repl._local_name() IS 'Internal: the local node''s name, or "this node" when none is registered.';

-- Both sides' definitions into pg_temp.sr_def_local and pg_temp.sr_def_peer, keeping the tables
-- within opts (tables/schemas, see steep_repl._in_scope). The peer is reached the way its
-- subscription reaches it (registered conninfo) and computes its side while this side computes
-- its own: the query is sent asynchronously first.
CREATE FUNCTION steep_repl._load_definitions(peer text, with_columns boolean, opts jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_dblink text := steep_repl._dblink_schema();
  v_conninfo text;
  v_conn text := 'steep_repl_schema';
  v_detail text;
BEGIN
  PERFORM steep_repl._require_arg('peer', peer, 'Name a registered node: SELECT name FROM steep_repl.nodes.');
  v_conninfo := steep_repl._conninfo(peer);  -- 42704 when not registered
  CREATE TEMP TABLE IF NOT EXISTS sr_def_local (LIKE steep_repl.table_definition) ON COMMIT DROP;
  CREATE TEMP TABLE IF NOT EXISTS sr_def_peer (LIKE steep_repl.table_definition) ON COMMIT DROP;
  TRUNCATE pg_temp.sr_def_local, pg_temp.sr_def_peer;
  EXECUTE pg_catalog.format('SELECT %1$I.dblink_disconnect($1) WHERE $1 = ANY (%1$I.dblink_get_connections())', v_dblink)
    USING v_conn;
  BEGIN
    EXECUTE pg_catalog.format('SELECT %I.dblink_connect($1, $2)', v_dblink) USING v_conn, v_conninfo;
  EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection THEN
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'node "%" is not reachable: %', peer, pg_catalog.rtrim(coalesce(NULLIF(v_detail, ''), SQLERRM), E'\n')
      USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
            HINT = 'Check that the node is up and that its registered conninfo (steep_repl.nodes) works from this server.';
  END;
  BEGIN
    -- The same search_path as here, so both sides print types and defaults alike.
    EXECUTE pg_catalog.format('SELECT %I.dblink_exec($1, $2)', v_dblink) USING v_conn, 'SET search_path = pg_catalog, pg_temp';
    EXECUTE pg_catalog.format('SELECT %I.dblink_send_query($1, $2)', v_dblink) USING v_conn, steep_repl._fingerprint_sql(with_columns);
    INSERT INTO pg_temp.sr_def_local SELECT * FROM steep_repl._local_definitions(with_columns) d
    WHERE steep_repl._in_scope(opts, d.schema_name, d.table_name);
    EXECUTE pg_catalog.format('INSERT INTO pg_temp.sr_def_peer SELECT * FROM %I.dblink_get_result($1)
      AS t(schema_name text, table_name text, fingerprint text, columns jsonb, primary_key jsonb)
      WHERE steep_repl._in_scope($2, t.schema_name, t.table_name)', v_dblink) USING v_conn, opts;
    EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_dblink) USING v_conn;
  EXCEPTION WHEN OTHERS THEN
    EXECUTE pg_catalog.format('SELECT %1$I.dblink_disconnect($1) WHERE $1 = ANY (%1$I.dblink_get_connections())', v_dblink)
      USING v_conn;
    RAISE;
  END;
END
$$;
COMMENT ON FUNCTION steep_repl._load_definitions(text, boolean, jsonb) IS
  'Internal: fills pg_temp.sr_def_local and pg_temp.sr_def_peer with the table definitions in scope on both sides (42704 unknown peer, 08001 unreachable).';

CREATE FUNCTION steep_repl.compute_fingerprint(schema_name text, table_name text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rel oid;
  v text;
BEGIN
  PERFORM steep_repl._require_arg('schema_name', schema_name, 'Pass the schema name as stored, e.g. ''public''.');
  PERFORM steep_repl._require_arg('table_name', table_name, 'Pass the table name as stored, without quotes.');
  v_rel := pg_catalog.to_regclass(pg_catalog.format('%I.%I', schema_name, table_name));
  IF v_rel IS NULL THEN
    RAISE EXCEPTION 'table %.% does not exist', pg_catalog.quote_ident(schema_name), pg_catalog.quote_ident(table_name)
      USING ERRCODE = 'undefined_table',
            HINT = 'Pass the schema and table names as stored, without quotes: compute_fingerprint(''public'', ''My Table'').';
  END IF;
  EXECUTE pg_catalog.format('SELECT d.fingerprint FROM (%s) d', steep_repl._fingerprint_sql(false, ARRAY[v_rel])) INTO v;
  IF v IS NULL THEN
    RAISE EXCEPTION '%.% is not a user table', pg_catalog.quote_ident(schema_name), pg_catalog.quote_ident(table_name)
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Fingerprints cover permanent ordinary tables outside the system schemas, steep_repl and extensions.';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl.compute_fingerprint(text, text) IS
  'SHA-256 (hex) of a table''s column definitions in name order (name, type with typmod, NOT NULL, default) and primary key. Errors: 22004 NULL, 42P01 no such table, 42809 not a user table.';

-- Fingerprints first (cheap); the column definitions only of the tables whose fingerprint is new,
-- so a capture that finds little changed costs little more than computing the fingerprints.
CREATE FUNCTION steep_repl.capture_fingerprints() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
  v_changed oid[];
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS sr_capture (relid oid, schema_name text, table_name text, fingerprint text) ON COMMIT DROP;
  TRUNCATE pg_temp.sr_capture;
  INSERT INTO pg_temp.sr_capture
  SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', d.schema_name, d.table_name)), d.schema_name, d.table_name, d.fingerprint
  FROM steep_repl._local_definitions(false) d;
  DELETE FROM steep_repl.schema_fingerprints f
  WHERE NOT EXISTS (SELECT 1 FROM pg_temp.sr_capture d WHERE d.schema_name = f.schema_name AND d.table_name = f.table_name);
  SELECT pg_catalog.array_agg(d.relid) INTO v_changed FROM pg_temp.sr_capture d
  WHERE NOT EXISTS (SELECT 1 FROM steep_repl.schema_fingerprints f
                    WHERE f.schema_name = d.schema_name AND f.table_name = d.table_name AND f.fingerprint = d.fingerprint);
  IF v_changed IS NOT NULL THEN
    EXECUTE pg_catalog.format('INSERT INTO steep_repl.schema_fingerprints AS f (schema_name, table_name, fingerprint, columns, primary_key)
      SELECT d.schema_name, d.table_name, d.fingerprint, d.columns, d.primary_key FROM (%s) d
      ON CONFLICT (schema_name, table_name) DO UPDATE SET fingerprint = excluded.fingerprint, columns = excluded.columns,
        primary_key = excluded.primary_key, captured_at = excluded.captured_at', steep_repl._fingerprint_sql(true, v_changed));
  END IF;
  SELECT pg_catalog.count(*) INTO n FROM pg_temp.sr_capture;
  RETURN n;
END
$$;
COMMENT ON FUNCTION steep_repl.capture_fingerprints() IS
  'Records the fingerprint, column definitions and primary key of every user table in steep_repl.schema_fingerprints (tables whose fingerprint is unchanged keep their row; dropped tables are forgotten); returns the number of tables.';

-- ---- ../sql/57_fingerprint_compare.sql
-- Comparing this node's tables with a peer's: per-table status (compare_fingerprints), per-column
-- differences (schema_diff) and the DDL that recreates tables (schema_ddl). All read the live
-- catalogs of both sides (steep_repl._load_definitions), never a stale capture.

-- Every difference between pg_temp.sr_def_local and pg_temp.sr_def_peer, seen from this node:
-- "missing" is on the peer but not here, "extra" is here but not on the peer. One row per
-- difference, with a one-line description naming both nodes.
CREATE FUNCTION steep_repl._differences(local_node text, peer text)
RETURNS TABLE (schema_name text, table_name text, column_name text, kind text,
               local_value jsonb, peer_value jsonb, description text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY
  WITH t AS (
    SELECT coalesce(l.schema_name, p.schema_name) AS s, coalesce(l.table_name, p.table_name) AS tb,
           l.table_name IS NOT NULL AS here, p.table_name IS NOT NULL AS there,
           l.columns AS lcols, p.columns AS pcols, l.primary_key AS lpk, p.primary_key AS ppk
    FROM pg_temp.sr_def_local l
    FULL JOIN pg_temp.sr_def_peer p ON p.schema_name = l.schema_name AND p.table_name = l.table_name
    WHERE l.fingerprint IS DISTINCT FROM p.fingerprint),
  c AS (
    SELECT t.s, t.tb, coalesce(x.lc->>'name', x.pc->>'name') AS col, x.lc, x.pc
    FROM t CROSS JOIN LATERAL (
      SELECT lc, pc FROM pg_catalog.jsonb_array_elements(t.lcols) lc
      FULL JOIN pg_catalog.jsonb_array_elements(t.pcols) pc ON lc->>'name' = pc->>'name') x
    WHERE t.here AND t.there),
  d AS (
    SELECT t.s, t.tb, NULL::text AS col, 1 AS ord, 'missing' AS kind, NULL::jsonb AS lv, t.pcols AS pv,
           pg_catalog.format('table %I.%I is on %s but not on %s', t.s, t.tb, peer, local_node) AS descr
    FROM t WHERE NOT t.here
    UNION ALL
    SELECT t.s, t.tb, NULL, 1, 'extra', t.lcols, NULL,
           pg_catalog.format('table %I.%I is on %s but not on %s', t.s, t.tb, local_node, peer)
    FROM t WHERE NOT t.there
    UNION ALL
    SELECT c.s, c.tb, c.col, 2, 'missing', NULL, c.pc,
           pg_catalog.format('table %I.%I: column %s is on %s but not on %s', c.s, c.tb, steep_repl._column_ddl(c.pc), peer, local_node)
    FROM c WHERE c.lc IS NULL
    UNION ALL
    SELECT c.s, c.tb, c.col, 2, 'extra', c.lc, NULL,
           pg_catalog.format('table %I.%I: column %s is on %s but not on %s', c.s, c.tb, steep_repl._column_ddl(c.lc), local_node, peer)
    FROM c WHERE c.pc IS NULL
    UNION ALL
    SELECT c.s, c.tb, c.col, 3, 'type', c.lc, c.pc,
           pg_catalog.format('table %I.%I: column %I has type %s on %s but %s on %s', c.s, c.tb, c.col,
                             c.pc->>'type', peer, c.lc->>'type', local_node)
    FROM c WHERE c.lc->>'type' <> c.pc->>'type'  -- NULL unless the column is on both sides
    UNION ALL
    SELECT c.s, c.tb, c.col, 4, 'default', c.lc, c.pc,
           pg_catalog.format('table %I.%I: column %I has %s on %s but %s on %s', c.s, c.tb, c.col,
                             coalesce('DEFAULT ' || (c.pc->>'default'), c.pc->>'generated', 'no default'), peer,
                             coalesce('DEFAULT ' || (c.lc->>'default'), c.lc->>'generated', 'no default'), local_node)
    FROM c WHERE c.lc IS NOT NULL AND c.pc IS NOT NULL
      AND (c.lc->>'default', c.lc->>'generated') IS DISTINCT FROM (c.pc->>'default', c.pc->>'generated')
    UNION ALL
    SELECT c.s, c.tb, c.col, 5, 'nullability', c.lc, c.pc,
           pg_catalog.format('table %I.%I: column %I is %s on %s but %s on %s', c.s, c.tb, c.col,
                             CASE WHEN (c.pc->>'not_null')::boolean THEN 'NOT NULL' ELSE 'nullable' END, peer,
                             CASE WHEN (c.lc->>'not_null')::boolean THEN 'NOT NULL' ELSE 'nullable' END, local_node)
    FROM c WHERE c.lc->>'not_null' <> c.pc->>'not_null'
    UNION ALL
    SELECT t.s, t.tb, NULL, 6, 'primary_key', t.lpk, t.ppk,
           pg_catalog.format('table %I.%I has %s on %s but %s on %s', t.s, t.tb,
                             coalesce('primary key (' || steep_repl._ident_list(t.ppk) || ')', 'no primary key'), peer,
                             coalesce('primary key (' || steep_repl._ident_list(t.lpk) || ')', 'no primary key'), local_node)
    FROM t WHERE t.here AND t.there AND t.lpk IS DISTINCT FROM t.ppk)
  SELECT d.s, d.tb, d.col, d.kind, d.lv, d.pv, d.descr FROM d ORDER BY d.s, d.tb, d.ord, d.col COLLATE "C", d.kind;
END
$$;
COMMENT ON FUNCTION steep_repl._differences(text, text) IS
  'Internal: the differences between the loaded local and peer definitions (kind missing | extra | type | default | nullability | primary_key), each with a one-line description.';

CREATE FUNCTION steep_repl._ident_list(names jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x.v), ', ' ORDER BY x.i)
  FROM pg_catalog.jsonb_array_elements_text(names) WITH ORDINALITY AS x(v, i);
$$;
COMMENT ON FUNCTION steep_repl._ident_list(jsonb) IS 'Internal: a jsonb array of names as a quoted, comma-separated list.';

CREATE FUNCTION steep_repl.compare_fingerprints(peer text)
RETURNS TABLE (schema_name text, table_name text, status text, local_fingerprint text, peer_fingerprint text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._load_definitions(peer, false);
  RETURN QUERY
  SELECT coalesce(l.schema_name, p.schema_name), coalesce(l.table_name, p.table_name),
         CASE WHEN p.table_name IS NULL THEN 'LOCAL_ONLY' WHEN l.table_name IS NULL THEN 'REMOTE_ONLY'
              WHEN l.fingerprint = p.fingerprint THEN 'MATCH' ELSE 'MISMATCH' END,
         l.fingerprint, p.fingerprint
  FROM pg_temp.sr_def_local l
  FULL JOIN pg_temp.sr_def_peer p ON p.schema_name = l.schema_name AND p.table_name = l.table_name
  ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION steep_repl.compare_fingerprints(text) IS
  'Compares every user table''s fingerprint here and on peer (read live through its registered conninfo): MATCH, MISMATCH, LOCAL_ONLY or REMOTE_ONLY. Errors: 22004 NULL, 42704 unknown peer, 08001 unreachable.';

CREATE FUNCTION steep_repl.schema_diff(peer text, only_schema text DEFAULT NULL, only_table text DEFAULT NULL)
RETURNS TABLE (schema_name text, table_name text, column_name text, difference text,
               local_definition text, peer_definition text, description text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := '{}';
BEGIN
  IF only_table IS NOT NULL THEN
    PERFORM steep_repl._require_arg('only_schema', only_schema,
      'With a table name, give its schema too: schema_diff(''node_a'', ''public'', ''orders'').');
    v_opts := pg_catalog.jsonb_build_object('tables', pg_catalog.jsonb_build_array(only_schema || '.' || only_table));
  ELSIF only_schema IS NOT NULL THEN
    v_opts := pg_catalog.jsonb_build_object('schemas', pg_catalog.jsonb_build_array(only_schema));
  END IF;
  PERFORM steep_repl._load_definitions(peer, true, v_opts);
  IF only_table IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_temp.sr_def_local) AND NOT EXISTS (SELECT 1 FROM pg_temp.sr_def_peer) THEN
    RAISE EXCEPTION 'table %.% is neither here nor on node "%"', pg_catalog.quote_ident(only_schema),
        pg_catalog.quote_ident(only_table), peer
      USING ERRCODE = 'undefined_table',
            HINT = 'Pass the schema and table names as stored, without quotes; compare_fingerprints(peer) lists the tables.';
  END IF;
  RETURN QUERY
  SELECT d.schema_name, d.table_name, d.column_name, d.kind,
         CASE WHEN d.column_name IS NOT NULL THEN steep_repl._column_ddl(d.local_value)
              WHEN d.kind = 'primary_key' THEN steep_repl._ident_list(d.local_value) END,
         CASE WHEN d.column_name IS NOT NULL THEN steep_repl._column_ddl(d.peer_value)
              WHEN d.kind = 'primary_key' THEN steep_repl._ident_list(d.peer_value) END,
         d.description
  FROM steep_repl._differences(steep_repl._local_name(), peer) d;
END
$$;
COMMENT ON FUNCTION steep_repl.schema_diff(text, text, text) IS
  'Every difference between this node''s tables and peer''s (all tables, one schema, or one table): difference is missing (on the peer, not here), extra (here, not on the peer), type, default, nullability or primary_key. Errors: 22004, 42704, 08001, 42P01.';

-- The tables/schemas options shared by every scoped call (see steep_repl._in_scope).
CREATE FUNCTION steep_repl._check_scope(opts jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF opts IS NULL OR pg_catalog.jsonb_typeof(opts) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'For example {"tables": ["public.orders"], "schemas": ["sales"]}, or ''{}'' for everything.';
  END IF;
  PERFORM steep_repl._check_scope_options(opts);
  RETURN opts;
END
$$;
COMMENT ON FUNCTION steep_repl._check_scope(jsonb) IS 'Internal: 22023 unless options is an object whose tables/schemas are arrays of strings.';

CREATE FUNCTION steep_repl._create_table_ddl(d steep_repl.table_definition) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format('CREATE TABLE %I.%I (%s)', d.schema_name, d.table_name, pg_catalog.concat_ws(', ',
    (SELECT pg_catalog.string_agg(steep_repl._column_ddl(c), ', ' ORDER BY (c->>'position')::int)
     FROM pg_catalog.jsonb_array_elements(d.columns) c),
    'PRIMARY KEY (' || steep_repl._ident_list(d.primary_key) || ')'));
$$;
COMMENT ON FUNCTION steep_repl._create_table_ddl(steep_repl.table_definition) IS
  'Internal: CREATE TABLE for a definition, columns in their physical order, with its primary key.';

-- The sequence a nextval('seq'::regclass) default names, re-quoted from its parsed parts (the
-- text comes from a peer and is spliced into DDL), or NULL.
CREATE FUNCTION steep_repl._default_sequence(default_expr text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m text[] := pg_catalog.regexp_match(default_expr, '^nextval\(''(.+)''::regclass\)$');
  v text;
BEGIN
  IF m IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x.part), '.' ORDER BY x.i) INTO v
  FROM pg_catalog.unnest(pg_catalog.parse_ident(pg_catalog.replace(m[1], '''''', ''''))) WITH ORDINALITY AS x(part, i);
  RETURN v;
EXCEPTION WHEN invalid_parameter_value OR syntax_error THEN
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION steep_repl._default_sequence(text) IS 'Internal: the quoted name of the sequence a nextval() default uses, NULL when there is none.';

-- CREATE SEQUENCE for the sequence a nextval() default names, NULL when it exists here or there is none.
CREATE FUNCTION steep_repl._sequence_ddl(default_expr text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'CREATE SEQUENCE IF NOT EXISTS ' || s.name
  FROM (SELECT steep_repl._default_sequence(default_expr) AS name) s
  WHERE s.name IS NOT NULL AND pg_catalog.to_regclass(s.name) IS NULL;
$$;
COMMENT ON FUNCTION steep_repl._sequence_ddl(text) IS 'Internal: CREATE SEQUENCE for the sequence a nextval() default names, NULL when it exists or there is none.';

CREATE FUNCTION steep_repl.schema_ddl(peer text DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS TABLE (schema_name text, table_name text, statement text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._check_scope(options);
  IF peer IS NULL THEN
    CREATE TEMP TABLE IF NOT EXISTS sr_def_peer (LIKE steep_repl.table_definition) ON COMMIT DROP;
    TRUNCATE pg_temp.sr_def_peer;
    INSERT INTO pg_temp.sr_def_peer SELECT * FROM steep_repl._local_definitions(true) d
    WHERE steep_repl._in_scope(options, d.schema_name, d.table_name);
  ELSE
    PERFORM steep_repl._load_definitions(peer, true, options);
  END IF;
  RETURN QUERY
  SELECT x.s, x.t, x.stmt FROM (
    SELECT DISTINCT d.schema_name AS s, NULL::text AS t, 1 AS ord, pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I', d.schema_name) AS stmt
    FROM pg_temp.sr_def_peer d WHERE d.schema_name <> 'public'
    UNION ALL
    SELECT d.schema_name, d.table_name, 2, 'CREATE SEQUENCE IF NOT EXISTS ' || q.name
    FROM pg_temp.sr_def_peer d, pg_catalog.jsonb_array_elements(d.columns) c,
         steep_repl._default_sequence(c->>'default') q(name)
    WHERE q.name IS NOT NULL
    UNION ALL
    SELECT d.schema_name, d.table_name, 3, steep_repl._create_table_ddl(ROW(d.*)::steep_repl.table_definition) FROM pg_temp.sr_def_peer d) x
  ORDER BY x.ord, x.s COLLATE "C", x.t COLLATE "C", x.stmt;
END
$$;
COMMENT ON FUNCTION steep_repl.schema_ddl(text, jsonb) IS
  'The DDL recreating the user tables of this node (peer NULL) or of peer, within options {"tables": [...], "schemas": [...]}: schemas, sequences named by defaults, CREATE TABLE with primary keys. Errors: 22023, 42704, 08001.';

-- ---- ../sql/58_schema_sync.sql
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

-- ---- ../sql/58_schema_sync_auto.sql
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

-- ---- ../sql/58_schema_sync_drift.sql
-- Drift: a SYNCHRONIZED node whose tables stopped matching its source's goes to DIVERGED, with
-- an event listing the differences. Checked by tick() every drift_check_interval (cheap when
-- not due: one look at nodes and drift_checks) and on demand by steep_repl.check_drift().

CREATE TABLE steep_repl.drift_checks (
  node        text PRIMARY KEY REFERENCES steep_repl.nodes (name) ON DELETE CASCADE,
  source_node text NOT NULL,
  checked_at  timestamptz NOT NULL,
  status      text NOT NULL CONSTRAINT status_valid CHECK (status IN ('match', 'drift', 'error')),
  differences jsonb NOT NULL DEFAULT '[]' CONSTRAINT differences_is_array CHECK (pg_catalog.jsonb_typeof(differences) = 'array'),
  error       text,
  CONSTRAINT error_iff_status_error CHECK ((status = 'error') = (error IS NOT NULL))
);
COMMENT ON TABLE steep_repl.drift_checks IS
  'The last schema drift check of each local node against its init source: match, drift (differences listed) or error (the source could not be read).';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.drift_checks', '');

-- Compare node (this database) with source over the tables it replicates (its init_tables, or
-- every table when it has none), record the outcome, and move a SYNCHRONIZED node with
-- differences to DIVERGED. Errors reading the source propagate.
CREATE FUNCTION steep_repl._drift_check(node text, source text, now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_opts jsonb := '{}';
  v_diffs text[];
  v_state text;
  v_diverged boolean := false;
BEGIN
  -- Lock order everywhere: the nodes row first (tick() holds it already), then drift_checks.
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = _drift_check.node FOR UPDATE;
  SELECT pg_catalog.jsonb_build_object('tables', pg_catalog.jsonb_agg(t.schema_name || '.' || t.table_name))
    INTO v_opts FROM steep_repl.init_tables t WHERE t.node = _drift_check.node HAVING pg_catalog.count(*) > 0;
  PERFORM steep_repl._load_definitions(source, true, coalesce(v_opts, '{}'));
  SELECT pg_catalog.array_agg(d.description) INTO v_diffs FROM steep_repl._differences(node, source) d
  WHERE NOT EXISTS (SELECT 1 FROM steep_repl.schema_accepted_differences a WHERE a.peer = source AND a.description = d.description);
  INSERT INTO steep_repl.drift_checks AS c (node, source_node, checked_at, status, differences, error)
  VALUES (node, source, now, CASE WHEN v_diffs IS NULL THEN 'match' ELSE 'drift' END,
          coalesce(pg_catalog.to_jsonb(v_diffs), '[]'), NULL)
  ON CONFLICT ON CONSTRAINT drift_checks_pkey DO UPDATE SET source_node = excluded.source_node, checked_at = excluded.checked_at,
    status = excluded.status, differences = excluded.differences, error = NULL;
  IF v_diffs IS NOT NULL AND v_state = 'synchronized' THEN
    INSERT INTO steep_repl.events (node, event, detail) VALUES (node, 'schema.drift',
      pg_catalog.jsonb_build_object('source', source, 'differences', pg_catalog.to_jsonb(v_diffs)));
    PERFORM steep_repl.transition(node, 'diverged', pg_catalog.format('schema drift from %s: %s', source,
      pg_catalog.array_to_string(v_diffs, E'\n')));
    v_diverged := true;
  END IF;
  RETURN pg_catalog.jsonb_build_object('node', node, 'source', source, 'checked_at', now,
    'status', CASE WHEN v_diffs IS NULL THEN 'match' ELSE 'drift' END,
    'differences', coalesce(pg_catalog.to_jsonb(v_diffs), '[]'), 'diverged', v_diverged);
END
$$;
COMMENT ON FUNCTION steep_repl._drift_check(text, text, timestamptz) IS
  'Internal: one drift check of a local node against its source; SYNCHRONIZED -> DIVERGED on differences (event schema.drift).';

-- tick()'s part: every due check, each in its own subtransaction so that an unreachable source
-- (recorded as an error, retried next interval) never fails the tick.
CREATE FUNCTION steep_repl._tick_drift(now timestamptz) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_every interval := (steep_repl._schema_config()).drift_check_interval;
  r record;
  v jsonb;
  v_checked integer := 0;
  v_diverged integer := 0;
  v_failed integer := 0;
  v_err text;
BEGIN
  IF v_every = '0 seconds' THEN
    RETURN NULL;
  END IF;
  FOR r IN SELECT n.name, n.init_source_node FROM steep_repl.nodes n
           LEFT JOIN steep_repl.drift_checks c ON c.node = n.name
           WHERE n.is_local AND n.init_state = 'synchronized' AND n.init_source_node IS NOT NULL
             AND (c.checked_at IS NULL OR c.checked_at <= now - v_every OR c.checked_at > now)
           FOR UPDATE OF n SKIP LOCKED LOOP
    v_checked := v_checked + 1;
    BEGIN
      v := steep_repl._drift_check(r.name, r.init_source_node, now);
      v_diverged := v_diverged + (v->>'diverged')::boolean::int;
    EXCEPTION WHEN OTHERS THEN
      v_err := SQLERRM;
      v_failed := v_failed + 1;
      INSERT INTO steep_repl.drift_checks AS c (node, source_node, checked_at, status, error)
      VALUES (r.name, r.init_source_node, now, 'error', v_err)
      ON CONFLICT ON CONSTRAINT drift_checks_pkey DO UPDATE SET source_node = excluded.source_node,
        checked_at = excluded.checked_at, status = 'error', error = excluded.error;
    END;
  END LOOP;
  IF v_checked = 0 THEN
    RETURN NULL;
  END IF;
  RETURN pg_catalog.jsonb_build_object('checked', v_checked, 'diverged', v_diverged, 'errors', v_failed);
END
$$;
COMMENT ON FUNCTION steep_repl._tick_drift(timestamptz) IS
  'Internal: tick()''s periodic drift check of the local SYNCHRONIZED node(s) against their source, when drift_check_interval has passed since the last one; NULL when none was due.';

CREATE FUNCTION steep_repl.check_drift(node text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v steep_repl.nodes;
BEGIN
  IF node IS NULL THEN
    SELECT * INTO v FROM steep_repl.nodes n WHERE n.is_local;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'this database is not registered as a node' USING ERRCODE = 'object_not_in_prerequisite_state',
        HINT = 'Register it with steep_repl.register_node(name, conninfo, is_local => true).';
    END IF;
  ELSE
    SELECT * INTO v FROM steep_repl.nodes n WHERE n.name = check_drift.node;
    IF NOT FOUND THEN
      PERFORM steep_repl._unknown_node(node);
    END IF;
  END IF;
  IF NOT v.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', v.name USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Check a node for drift on the node itself.';
  END IF;
  IF v.init_source_node IS NULL THEN
    RAISE EXCEPTION 'node "%" has no source to drift from', v.name USING ERRCODE = 'object_not_in_prerequisite_state',
      HINT = 'A node has a source once it was initialized from one (start_init or complete_init); compare with any node with steep_repl.schema_diff(peer).';
  END IF;
  RETURN steep_repl._drift_check(v.name, v.init_source_node, pg_catalog.now());
END
$$;
COMMENT ON FUNCTION steep_repl.check_drift(text) IS
  'Checks now whether the local node''s tables (default: this database''s node) still match its init source''s; a SYNCHRONIZED node with differences goes to DIVERGED (event schema.drift). Returns {node, source, status, differences, diverged}. Errors: 42704, 22023, 55000, 08001.';

GRANT EXECUTE ON FUNCTION
  steep_repl.compute_fingerprint(text, text),
  steep_repl.capture_fingerprints(),
  steep_repl.compare_fingerprints(text),
  steep_repl.schema_diff(text, text, text),
  steep_repl.schema_ddl(text, jsonb),
  steep_repl.schema_sync(text, text, jsonb),
  steep_repl.configure_schema_sync(text, interval),
  steep_repl.check_drift(text)
TO steep_repl_admin;
GRANT SELECT ON steep_repl.schema_fingerprints, steep_repl.schema_sync_config, steep_repl.drift_checks TO steep_repl_admin;
GRANT SELECT, DELETE ON steep_repl.schema_accepted_differences TO steep_repl_admin;

-- ---- ../sql/60_snapshot.sql
-- Two-phase snapshots: what was generated on this node, what was applied to it, and the live
-- progress of both. The sidecar does the file I/O; these tables are what it resumes from.
--
--   snapshots.state:        queued -> generating -> complete | failed | cancelled
--                           any -> deleting -> deleted (delete_snapshot)
--   snapshot_applies.state: queued -> applying -> complete | failed | cancelled

CREATE TABLE steep_repl.snapshots (
  id                text PRIMARY KEY CONSTRAINT snapshot_id_format CHECK (id ~ '^snap_[a-z0-9_]{1,40}$'),
  path              text NOT NULL CONSTRAINT path_absolute CHECK (path LIKE '/%'),
  state             text NOT NULL DEFAULT 'queued'
                    CONSTRAINT snapshot_state_valid CHECK (state IN
                      ('queued', 'generating', 'complete', 'failed', 'cancelled', 'deleting', 'deleted')),
  options           jsonb NOT NULL,
  compression       text NOT NULL CONSTRAINT compression_valid CHECK (compression IN ('none', 'gzip', 'lz4', 'zstd')),
  parallel          integer NOT NULL CONSTRAINT parallel_range CHECK (parallel BETWEEN 1 AND 16),
  source_node       text NOT NULL,
  publication       text NOT NULL,
  slot_name         text NOT NULL,
  job_id            bigint,
  lsn               pg_lsn,
  exported_snapshot text,
  slot_expiry       interval NOT NULL,
  slot_expires_at   timestamptz,
  slot_dropped_at   timestamptz,
  tables_total      integer,
  rows_total        bigint,
  bytes_raw         bigint,
  bytes_compressed  bigint,
  restarts          integer NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
  completed_at      timestamptz,
  error             text,
  CONSTRAINT complete_has_lsn CHECK (state <> 'complete' OR (lsn IS NOT NULL AND completed_at IS NOT NULL)),
  CONSTRAINT failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
);
COMMENT ON TABLE steep_repl.snapshots IS
  'Snapshots generated on this node (generate_snapshot): directory, consistent LSN, slot kept until slot_expires_at, totals.';
COMMENT ON COLUMN steep_repl.snapshots.lsn IS 'The consistent point of the snapshot''s slot: the data is exactly the database as of this LSN.';
COMMENT ON COLUMN steep_repl.snapshots.exported_snapshot IS
  'Name of the exported snapshot while the generating sidecar holds it (a resumed job imports it if it is still valid).';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshots', '');

CREATE TABLE steep_repl.snapshot_tables (
  snapshot_id      text NOT NULL REFERENCES steep_repl.snapshots (id) ON DELETE CASCADE,
  schema_name      text NOT NULL,
  table_name       text NOT NULL,
  file             text NOT NULL,
  est_bytes        bigint NOT NULL DEFAULT 0,
  state            text NOT NULL DEFAULT 'pending' CONSTRAINT table_state_valid CHECK (state IN ('pending', 'done')),
  rows             bigint,
  raw_bytes        bigint,
  compressed_bytes bigint,
  sha256           text,
  finished_at      timestamptz,
  PRIMARY KEY (snapshot_id, schema_name, table_name),
  CONSTRAINT done_has_checksum CHECK (state <> 'done' OR (sha256 IS NOT NULL AND rows IS NOT NULL))
);
COMMENT ON TABLE steep_repl.snapshot_tables IS
  'Per-table files of a generated snapshot; a table is done once its file is written, synced and renamed.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_tables', '');

CREATE TABLE steep_repl.snapshot_applies (
  id              bigserial PRIMARY KEY,
  job_id          bigint,
  path            text NOT NULL CONSTRAINT path_absolute CHECK (path LIKE '/%'),
  snapshot_id     text,
  source_node     text,
  lsn             pg_lsn,
  options         jsonb NOT NULL,
  state           text NOT NULL DEFAULT 'queued'
                  CONSTRAINT apply_state_valid CHECK (state IN ('queued', 'applying', 'complete', 'failed', 'cancelled')),
  subscription    text,
  tuples_skipped  bigint NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
  completed_at    timestamptz,
  error           text,
  CONSTRAINT failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
);
COMMENT ON TABLE steep_repl.snapshot_applies IS
  'Snapshots applied to this node (apply_snapshot); snapshot_id, source_node and lsn come from the manifest once the sidecar validated it.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_applies', '');
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_applies_id_seq', '');

CREATE TABLE steep_repl.snapshot_apply_tables (
  apply_id       bigint NOT NULL REFERENCES steep_repl.snapshot_applies (id) ON DELETE CASCADE,
  schema_name    text NOT NULL,
  table_name     text NOT NULL,
  rows           bigint NOT NULL,
  tuples_skipped bigint NOT NULL DEFAULT 0,
  raw_bytes      bigint NOT NULL,
  sha256         text NOT NULL,
  created        boolean NOT NULL DEFAULT false,
  loaded_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  PRIMARY KEY (apply_id, schema_name, table_name)
);
COMMENT ON TABLE steep_repl.snapshot_apply_tables IS
  'Tables an apply has loaded and verified: each row is written in the same transaction as the table''s data, so a resumed apply skips exactly these.';
SELECT pg_catalog.pg_extension_config_dump('steep_repl.snapshot_apply_tables', '');
COMMENT ON COLUMN steep_repl.snapshot_apply_tables.created IS 'The apply created the table from the manifest''s DDL (its foreign keys are added once every table is loaded).';

CREATE TABLE steep_repl.snapshot_progress (
  job_id             bigint PRIMARY KEY,
  snapshot_id        text,
  phase              text NOT NULL CONSTRAINT phase_valid CHECK (phase IN ('generation', 'application')),
  step               text NOT NULL,
  percent            numeric(5,2) NOT NULL DEFAULT 0 CONSTRAINT percent_range CHECK (percent BETWEEN 0 AND 100),
  bytes_done         bigint NOT NULL DEFAULT 0,
  bytes_total        bigint NOT NULL DEFAULT 0,
  rows_done          bigint NOT NULL DEFAULT 0,
  rows_total         bigint NOT NULL DEFAULT 0,
  tables_done        integer NOT NULL DEFAULT 0,
  tables_total       integer NOT NULL DEFAULT 0,
  throughput_bytes_s numeric,
  eta_seconds        numeric,
  current_table      text,
  compression_ratio  numeric,
  checksums_verified integer NOT NULL DEFAULT 0,
  checksums_failed   integer NOT NULL DEFAULT 0,
  tuples_skipped     bigint NOT NULL DEFAULT 0,
  message            text,
  started_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at         timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE steep_repl.snapshot_progress IS
  'Live progress of a snapshot job (generation on the source, application on a target), refreshed by the sidecar at least every 500 ms and announced on NOTIFY steep_repl_progress. Throughput is over a rolling 10 s window; percent never decreases within an attempt.';
COMMENT ON COLUMN steep_repl.snapshot_progress.compression_ratio IS 'Raw COPY bytes / file bytes of the tables written or read so far.';

CREATE FUNCTION steep_repl._snapshot_progress_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Small payload: listeners re-read the row.
  PERFORM pg_catalog.pg_notify('steep_repl_progress', pg_catalog.json_build_object(
    'job_id', NEW.job_id, 'snapshot_id', NEW.snapshot_id, 'phase', NEW.phase, 'percent', NEW.percent)::text);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_progress_notify() IS 'Internal: NOTIFY steep_repl_progress on every progress write.';
CREATE TRIGGER snapshot_progress_notify AFTER INSERT OR UPDATE ON steep_repl.snapshot_progress
  FOR EACH ROW EXECUTE FUNCTION steep_repl._snapshot_progress_notify();

-- ---- ../sql/60_snapshot_ddl.sql
-- What a snapshot records about each table, built from the catalogs (there is no pg_dump on
-- every host): the columns COPY moves, its schema fingerprint (steep_repl.compute_fingerprint),
-- and the DDL that recreates the table on an empty target.

-- The columns COPY reads and writes: every stored, non-generated column in attnum order.
CREATE FUNCTION steep_repl._snapshot_columns(relid oid) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(pg_catalog.array_agg(a.attname::text ORDER BY a.attnum), '{}')
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
$$;
COMMENT ON FUNCTION steep_repl._snapshot_columns(oid) IS 'Internal: the columns a snapshot copies (stored, not generated), in attnum order.';

-- Tables a snapshot covers: the user tables within the tables/schemas options, largest first.
CREATE FUNCTION steep_repl._snapshot_scope(opts jsonb)
RETURNS TABLE (schema_name text, table_name text, relid bigint, bytes bigint, row_estimate bigint,
               columns text[], fingerprint text, is_partition boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT t.schema_name, t.table_name, t.relid, t.bytes, t.row_estimate,
         steep_repl._snapshot_columns(t.relid::oid), steep_repl.compute_fingerprint(t.schema_name, t.table_name),
         c.relispartition
  FROM steep_repl._local_tables() t JOIN pg_catalog.pg_class c ON c.oid = t.relid::oid
  WHERE steep_repl._in_scope(opts, t.schema_name, t.table_name)
  ORDER BY t.bytes DESC, t.schema_name, t.table_name;
$$;
COMMENT ON FUNCTION steep_repl._snapshot_scope(jsonb) IS 'Internal: the tables a snapshot with these options covers, largest first.';

CREATE FUNCTION steep_repl._snapshot_identity(relid oid, attname name, kind "char") RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.format(' GENERATED %s AS IDENTITY (SEQUENCE NAME %I.%I INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s)',
           CASE kind WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END, sn.nspname, sc.relname,
           s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END)
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
  JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
  JOIN pg_catalog.pg_sequence s ON s.seqrelid = sc.oid
  JOIN pg_catalog.pg_attribute a ON a.attrelid = relid AND a.attname = _snapshot_identity.attname
  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = relid
    AND d.refobjsubid = a.attnum AND d.deptype = 'i';
$$;
COMMENT ON FUNCTION steep_repl._snapshot_identity(oid, name, "char") IS 'Internal: the identity clause of a column, with its sequence''s name and options.';

-- DDL of one table: "create" (columns, defaults, identity, generated, NOT NULL), "post"
-- (primary key, unique, check and exclusion constraints, other indexes, replica identity: run
-- after the data is loaded) and "foreign_keys" (run once every table is loaded).
CREATE FUNCTION steep_repl._snapshot_table_ddl(relid oid) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_name text;
  v_cols text;
  v_post jsonb;
  v_fks jsonb;
  v_ident text;
BEGIN
  SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) INTO v_name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = relid;
  SELECT pg_catalog.string_agg(pg_catalog.format('  %I %s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod))
      || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
              THEN (SELECT pg_catalog.format(' COLLATE %I.%I', cn.nspname, co.collname)
                    FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                    WHERE co.oid = a.attcollation) ELSE '' END
      || CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) || ') STORED'
              WHEN a.attgenerated = 'v' THEN ' GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) || ') VIRTUAL'
              WHEN a.attidentity IN ('a', 'd') THEN coalesce(steep_repl._snapshot_identity(relid, a.attname, a.attidentity), '')
              WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid)
              ELSE '' END
      || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
      E',\n' ORDER BY a.attnum) INTO v_cols
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped;

  SELECT coalesce(pg_catalog.jsonb_agg(x.stmt ORDER BY x.ord, x.name), '[]') INTO v_post FROM (
    SELECT 1 AS ord, co.conname::text AS name,
           pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_name, co.conname, pg_catalog.pg_get_constraintdef(co.oid)) AS stmt
    FROM pg_catalog.pg_constraint co WHERE co.conrelid = relid AND co.contype IN ('p', 'u', 'c', 'x')
    UNION ALL
    SELECT 2, ic.relname::text, pg_catalog.pg_get_indexdef(i.indexrelid)
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid = relid
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint co WHERE co.conindid = i.indexrelid AND co.conrelid = relid)
  ) x;

  SELECT CASE c.relreplident
           WHEN 'f' THEN pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', v_name)
           WHEN 'n' THEN pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY NOTHING', v_name)
           WHEN 'i' THEN (SELECT pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY USING INDEX %I', v_name, ic.relname)
                          FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                          WHERE i.indrelid = relid AND i.indisreplident)
         END INTO v_ident
  FROM pg_catalog.pg_class c WHERE c.oid = relid;
  IF v_ident IS NOT NULL THEN
    v_post := v_post || pg_catalog.to_jsonb(v_ident);
  END IF;

  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_name, co.conname,
                                       pg_catalog.pg_get_constraintdef(co.oid)) ORDER BY co.conname), '[]')
    INTO v_fks
  FROM pg_catalog.pg_constraint co WHERE co.conrelid = relid AND co.contype = 'f';

  RETURN pg_catalog.jsonb_build_object(
    'create', pg_catalog.format(E'CREATE TABLE %s (\n%s\n)', v_name, coalesce(v_cols, '')),
    'post', v_post, 'foreign_keys', v_fks);
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_table_ddl(oid) IS
  'Internal: the DDL recreating a table on an empty target: create, post (constraints, indexes, replica identity) and foreign_keys.';

-- Sequences a snapshot carries: those owned by its tables (serial and identity) and the free
-- ones in the schemas of its tables. ddl is NULL for identity sequences (the table creates them).
CREATE FUNCTION steep_repl._snapshot_sequences(opts jsonb)
RETURNS TABLE (schema_name text, sequence_name text, ddl text, owned_by text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH scope AS (SELECT s.relid::oid AS relid, s.schema_name FROM steep_repl._snapshot_scope(opts) s),
  seqs AS (
    SELECT c.oid, n.nspname::text AS nsp, c.relname::text AS rel,
           (SELECT d.deptype FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS deptype,
           (SELECT pg_catalog.format('%I.%I.%I', tn.nspname, tc.relname, ta.attname)
            FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class tc ON tc.oid = d.refobjid
            JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace
            JOIN pg_catalog.pg_attribute ta ON ta.attrelid = tc.oid AND ta.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owner_col,
           (SELECT d.refobjid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owner_rel
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'steep_repl')
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = c.oid AND d.deptype = 'e'))
  SELECT s.nsp, s.rel,
         CASE WHEN s.deptype = 'i' THEN NULL ELSE
           (SELECT pg_catalog.format('CREATE SEQUENCE IF NOT EXISTS %I.%I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s',
                     s.nsp, s.rel, pg_catalog.format_type(q.seqtypid, NULL), q.seqincrement, q.seqmin, q.seqmax, q.seqstart,
                     q.seqcache, CASE WHEN q.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END)
            FROM pg_catalog.pg_sequence q WHERE q.seqrelid = s.oid) END,
         CASE WHEN s.deptype = 'a' THEN pg_catalog.format('ALTER SEQUENCE %I.%I OWNED BY %s', s.nsp, s.rel, s.owner_col) END
  FROM seqs s
  WHERE s.owner_rel IN (SELECT relid FROM scope)
     OR (s.owner_rel IS NULL AND s.nsp IN (SELECT schema_name FROM scope))
  ORDER BY 1, 2;
$$;
COMMENT ON FUNCTION steep_repl._snapshot_sequences(jsonb) IS
  'Internal: sequences of a snapshot with the DDL creating them (NULL for identity sequences) and their OWNED BY.';

-- ---- ../sql/60_snapshot_steps.sql
-- Snapshot steps the sidecar reports (superuser only), and option checking shared by the API.

CREATE FUNCTION steep_repl._snapshot_check_options(options jsonb, known text[], what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k text;
BEGIN
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION '% options must be a JSON object', what USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
    IF NOT k = ANY (known) THEN
      RAISE EXCEPTION 'unknown % option "%"', what, k
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: ' || pg_catalog.array_to_string(known, ', ') || '.';
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_check_options(jsonb, text[], text) IS 'Internal: 22023 for a non-object or an unknown key.';

CREATE FUNCTION steep_repl._snapshot_int_option(options jsonb, key text, dflt bigint, lo bigint, hi bigint, hint text)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v bigint;
BEGIN
  BEGIN
    v := coalesce((options->>key)::bigint, dflt);
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    v := NULL;
  END;
  IF v IS NULL OR v < lo OR v > hi THEN
    RAISE EXCEPTION '% must be an integer between % and %, got %', key, lo, hi, options->key
      USING ERRCODE = 'invalid_parameter_value', HINT = hint;
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_int_option(jsonb, text, bigint, bigint, bigint, text) IS 'Internal: an integer option within bounds, or 22023.';

CREATE FUNCTION steep_repl._snapshot_bool_option(options jsonb, key text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF options ? key AND pg_catalog.jsonb_typeof(options->key) <> 'boolean' THEN
    RAISE EXCEPTION '% must be true or false', key USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN coalesce((options->>key)::boolean, false);
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_bool_option(jsonb, text) IS 'Internal: a boolean option (default false), or 22023.';

-- A directory path the sidecar may use: absolute, no "." or ".." component.
CREATE FUNCTION steep_repl._snapshot_path(path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text := pg_catalog.rtrim(pg_catalog.btrim(path), '/');
BEGIN
  IF v = '' OR pg_catalog.left(v, 1) <> '/' THEN
    RAISE EXCEPTION 'snapshot path "%" is not an absolute path', path
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The sidecar on the node''s host reads and writes it: give an absolute directory such as /var/lib/steep/snap1.';
  END IF;
  IF v ~ '(^|/)\.\.?(/|$)' OR pg_catalog.strpos(v, '//') > 0 THEN
    RAISE EXCEPTION 'snapshot path "%" has an empty, "." or ".." component', path USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_path(text) IS 'Internal: normalizes a snapshot directory (absolute, no . or .. components), or 22023.';

-- steep_repl._local_node() is defined in sql/55_manual_init.sql.


-- The apply loaded its tables and the sidecar created and enabled the subscription from the
-- snapshot's LSN: record the init the way start_init does (init_progress in catching_up with
-- the subscription), so tick() samples it and moves the node to SYNCHRONIZED.
CREATE FUNCTION steep_repl._snapshot_subscribed(apply_id bigint, subscription text, slot_name text, publication text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a steep_repl.snapshot_applies;
  v_node text := steep_repl._local_node();
  v_state text;
  v_sub oid;
BEGIN
  SELECT * INTO a FROM steep_repl.snapshot_applies sa WHERE sa.id = apply_id;
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = v_node FOR UPDATE;
  SELECT s.oid INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subname = _snapshot_subscribed.subscription
    AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
  IF v_sub IS NULL THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription USING ERRCODE = 'undefined_object';
  END IF;
  IF v_state = 'catching_up' AND EXISTS (SELECT 1 FROM steep_repl.init_progress p WHERE p.node = v_node AND p.subscription_oid = v_sub) THEN
    RETURN; -- recorded by an earlier attempt
  END IF;
  DELETE FROM steep_repl.init_progress p WHERE p.node = v_node;
  INSERT INTO steep_repl.init_progress (node, source_node, job_id, method, options, publication, publication_created,
    subscription, slot_name, subscription_oid, phase, tables_total, tables_done, bytes_total, bytes_done, rows_total, rows_done,
    percent, eta_seconds, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout, copy_done_at, message)
  SELECT v_node, a.source_node, a.job_id, 'two_phase', a.options, publication, false, subscription, slot_name, v_sub,
    'catching_up', pg_catalog.count(*), pg_catalog.count(*), coalesce(pg_catalog.sum(t.raw_bytes), 0), coalesce(pg_catalog.sum(t.raw_bytes), 0),
    coalesce(pg_catalog.sum(t.rows), 0), coalesce(pg_catalog.sum(t.rows), 0), 100, 0,
    steep_repl._snapshot_int_option(a.options, 'parallel', 4, 1, 16, ''),
    steep_repl._snapshot_int_option(a.options, 'lag_threshold', 1048576, 0, 9223372036854775807, ''),
    interval '60 seconds', interval '60 seconds', pg_catalog.now(),
    pg_catalog.format('snapshot %s applied; subscribed from LSN %s', a.snapshot_id, a.lsn)
  FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id;
  INSERT INTO steep_repl.init_tables (node, schema_name, table_name, relid, source_bytes, source_rows, sync_state,
    rows_copied, bytes_copied, fraction, started_at, finished_at)
  SELECT v_node, t.schema_name, t.table_name, pg_catalog.to_regclass(pg_catalog.format('%I.%I', t.schema_name, t.table_name))::oid,
    t.raw_bytes, t.rows, 'ready', t.rows, t.raw_bytes, 1, t.loaded_at, t.loaded_at
  FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id;
  UPDATE steep_repl.snapshot_applies sa SET subscription = _snapshot_subscribed.subscription WHERE sa.id = a.id;
  UPDATE steep_repl.nodes n SET init_source_node = a.source_node WHERE n.name = v_node;
  IF v_state = 'preparing' THEN
    PERFORM steep_repl.transition(v_node, 'copying', pg_catalog.format('loading snapshot %s', a.snapshot_id));
    v_state := 'copying';
  END IF;
  PERFORM steep_repl.transition(v_node, 'catching_up',
    pg_catalog.format('snapshot %s loaded; subscription %s streams from LSN %s', a.snapshot_id, subscription, a.lsn));
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_subscribed(bigint, text, text, text) IS
  'Sidecar step: the subscription of a snapshot apply is enabled at the manifest LSN; records the init (init_progress, init_tables) and moves the node to CATCHING_UP.';

-- The apply read a valid manifest and starts loading: a subscribing apply moves the node
-- PREPARING -> COPYING.
CREATE FUNCTION steep_repl._snapshot_apply_loading(apply_id bigint, snapshot_id text, source_node text, lsn pg_lsn)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a steep_repl.snapshot_applies;
  v_node text;
  v_state text;
BEGIN
  UPDATE steep_repl.snapshot_applies sa SET state = 'applying', snapshot_id = _snapshot_apply_loading.snapshot_id,
    source_node = _snapshot_apply_loading.source_node, lsn = _snapshot_apply_loading.lsn, error = NULL
  WHERE sa.id = apply_id RETURNING * INTO a;
  IF NOT steep_repl._snapshot_bool_option(a.options, 'subscribe') THEN
    RETURN;
  END IF;
  v_node := steep_repl._local_node();
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = v_node FOR UPDATE;
  IF v_state = 'preparing' THEN
    UPDATE steep_repl.nodes n SET init_source_node = _snapshot_apply_loading.source_node WHERE n.name = v_node;
    PERFORM steep_repl.transition(v_node, 'copying', pg_catalog.format('loading snapshot %s from %s', snapshot_id, source_node));
  ELSIF v_state NOT IN ('copying', 'catching_up', 'synchronized') THEN
    RAISE EXCEPTION 'node "%" is % and cannot take this snapshot''s subscription', v_node, pg_catalog.upper(v_state)
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_apply_loading(bigint, text, text, pg_lsn) IS
  'Sidecar step: the manifest is valid and loading starts; a subscribing apply moves the node to COPYING.';

-- An apply failed for good: record it, and fail the node's init when it was subscribing.
CREATE FUNCTION steep_repl._snapshot_apply_failed(apply_id bigint, reason text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a steep_repl.snapshot_applies;
  v_node text;
BEGIN
  UPDATE steep_repl.snapshot_applies sa SET state = 'failed', error = reason, completed_at = pg_catalog.now()
  WHERE sa.id = apply_id RETURNING * INTO a;
  IF FOUND AND steep_repl._snapshot_bool_option(a.options, 'subscribe') THEN
    SELECT n.name INTO v_node FROM steep_repl.nodes n WHERE n.is_local;
    IF v_node IS NOT NULL THEN
      -- Only an active init fails (preparing, copying or catching_up); the subscription, if any, is disabled.
      PERFORM steep_repl._init_fail(v_node, reason);
    END IF;
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_apply_failed(bigint, text) IS 'Sidecar step: an apply failed; a subscribing apply fails the node''s init with the reason.';

-- ---- ../sql/60_snapshot_user.sql
-- The snapshot API: each call validates, records, and queues a job for the sidecar on this
-- node's host (which does the file I/O); the CLI calls the same functions.

CREATE FUNCTION steep_repl._snapshot_generate_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_compression text := coalesce(options->>'compression', 'zstd');
BEGIN
  PERFORM steep_repl._snapshot_check_options(options,
    ARRAY['compression', 'parallel', 'tables', 'schemas', 'slot_expiry', 'subscribable', 'max_rate'], 'snapshot');
  IF v_compression NOT IN ('none', 'gzip', 'lz4', 'zstd') THEN
    RAISE EXCEPTION 'unknown compression "%"', v_compression
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Compression: zstd (default), lz4, gzip or none.';
  END IF;
  PERFORM steep_repl._check_scope_options(options);
  RETURN pg_catalog.jsonb_build_object(
    'compression', v_compression,
    'parallel', steep_repl._snapshot_int_option(options, 'parallel', 4, 1, 16, 'parallel is the number of tables written at once.'),
    'tables', coalesce(options->'tables', 'null'::jsonb),
    'schemas', coalesce(options->'schemas', 'null'::jsonb),
    'slot_expiry', steep_repl._snapshot_int_option(options, 'slot_expiry', 86400, 60, 31536000,
                     'slot_expiry is how many seconds the slot is kept for subscribers (default 86400); it holds WAL on this node meanwhile.'),
    'subscribable', coalesce((options->>'subscribable')::boolean, true),
    'max_rate', steep_repl._snapshot_int_option(options, 'max_rate', 0, 0, 9223372036854775807,
                  'max_rate caps each worker''s COPY stream in bytes per second (0: no cap), to spare a busy source.'));
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_generate_options(jsonb) IS 'Internal: validates generate_snapshot options and fills in the defaults.';

CREATE FUNCTION steep_repl.generate_snapshot(path text, options jsonb DEFAULT '{}') RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_path text;
  v_opts jsonb;
  v_node text;
  v_id text;
  v_job bigint;
  v_bad text;
BEGIN
  PERFORM steep_repl._require('path', path);
  PERFORM steep_repl._require('options', options);
  v_path := steep_repl._snapshot_path(path);
  v_opts := steep_repl._snapshot_generate_options(options);
  v_node := steep_repl._local_node();
  IF EXISTS (SELECT 1 FROM steep_repl.snapshots s JOIN steep_repl.jobs j ON j.id = s.job_id
             WHERE s.path = v_path AND s.state IN ('queued', 'generating') AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'a snapshot is already being generated into %', v_path
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.list_snapshots()) or pick another directory.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl._snapshot_scope(v_opts)) THEN
    RAISE EXCEPTION 'nothing to snapshot: no user tables in scope' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Check the tables and schemas options.';
  END IF;
  IF (v_opts->>'subscribable')::boolean THEN
    SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name), ', ') INTO v_bad
    FROM steep_repl._local_tables() t
    WHERE steep_repl._in_scope(v_opts, t.schema_name, t.table_name) AND NOT t.has_identity;
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'tables without a primary key or replica identity: %', v_bad
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'A subscribable snapshot publishes its tables, and UPDATE/DELETE of a published table without one fails: add a primary key or REPLICA IDENTITY FULL, leave them out with the tables option, or generate with {"subscribable": false}.';
    END IF;
  END IF;
  v_id := 'snap_' || pg_catalog.to_char(pg_catalog.clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS') || '_'
          || pg_catalog.substr(pg_catalog.md5(pg_catalog.random()::text || pg_catalog.clock_timestamp()::text), 1, 6);
  INSERT INTO steep_repl.snapshots (id, path, options, compression, parallel, source_node, publication, slot_name, slot_expiry)
  VALUES (v_id, v_path, v_opts, v_opts->>'compression', (v_opts->>'parallel')::int, v_node,
          'sr_pub_' || v_id, 'sr_' || v_id, pg_catalog.make_interval(secs => (v_opts->>'slot_expiry')::float8));
  v_job := steep_repl.enqueue_job('snapshot.generate', pg_catalog.jsonb_build_object('snapshot_id', v_id), v_node, 3);
  UPDATE steep_repl.snapshots s SET job_id = v_job WHERE s.id = v_id;
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (v_node, 'snapshot.requested', pg_catalog.jsonb_build_object('snapshot_id', v_id, 'path', v_path, 'job', v_job));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION steep_repl.generate_snapshot(text, jsonb) IS
  'Queues the generation of a snapshot of this node into directory path (on this node''s host) and returns its id. Options: compression (zstd|lz4|gzip|none), parallel (1-16), tables, schemas, slot_expiry (seconds), subscribable, max_rate (bytes/s per worker). Watch steep_repl.snapshot_progress.';

CREATE FUNCTION steep_repl._snapshot_apply_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tol bigint;
BEGIN
  PERFORM steep_repl._snapshot_check_options(options,
    ARRAY['parallel', 'subscribe', 'error_tolerance', 'truncate', 'lag_threshold', 'max_rate'], 'apply');
  v_tol := steep_repl._snapshot_int_option(options, 'error_tolerance', 0, 0, 9223372036854775807,
             'error_tolerance is how many malformed rows per table may be skipped (0: fail on the first).');
  IF v_tol > 0 AND pg_catalog.current_setting('server_version_num')::int < 170000 THEN
    RAISE EXCEPTION 'error_tolerance needs PostgreSQL 17 or later (COPY ON_ERROR); this server is %',
        pg_catalog.current_setting('server_version')
      USING ERRCODE = 'feature_not_supported', HINT = 'Apply without error_tolerance, or on a newer server.';
  END IF;
  RETURN pg_catalog.jsonb_build_object(
    'parallel', steep_repl._snapshot_int_option(options, 'parallel', 4, 1, 16, 'parallel is the number of tables loaded at once.'),
    'subscribe', steep_repl._snapshot_bool_option(options, 'subscribe'),
    'error_tolerance', v_tol,
    'truncate', steep_repl._snapshot_bool_option(options, 'truncate'),
    'lag_threshold', steep_repl._snapshot_int_option(options, 'lag_threshold', 1048576, 0, 9223372036854775807, 'bytes'),
    'max_rate', steep_repl._snapshot_int_option(options, 'max_rate', 0, 0, 9223372036854775807,
                  'max_rate caps each worker''s COPY stream in bytes per second (0: no cap).'));
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_apply_options(jsonb) IS 'Internal: validates apply_snapshot options and fills in the defaults.';

-- Records an apply (and, when it subscribes, starts the node's init) and queues its job.
CREATE FUNCTION steep_repl._snapshot_queue_apply(path text, opts jsonb, kind text, args jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_node text;
  v_state text;
  v_apply bigint;
  v_job bigint;
BEGIN
  SELECT n.name, n.init_state INTO v_node, v_state FROM steep_repl.nodes n WHERE n.is_local FOR UPDATE;
  -- An apply whose job ended without recording it (a sidecar killed on its last attempt) is not active.
  IF EXISTS (SELECT 1 FROM steep_repl.snapshot_applies a JOIN steep_repl.jobs j ON j.id = a.job_id
             WHERE a.state IN ('queued', 'applying') AND j.state IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'a snapshot apply is already queued or running on this node'
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Wait for it (steep_repl.list_snapshots()) or cancel its job.';
  END IF;
  IF (opts->>'subscribe')::boolean THEN
    v_node := steep_repl._local_node();
    IF v_state NOT IN ('uninitialized', 'failed') THEN
      RAISE EXCEPTION 'node "%" already has an init in state %', v_node, pg_catalog.upper(v_state)
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = pg_catalog.format('A subscribing apply initializes the node: cancel the current init first (SELECT steep_repl.cancel_init(%L)).', v_node);
    END IF;
    DELETE FROM steep_repl.init_progress p WHERE p.node = v_node;
    PERFORM steep_repl.transition(v_node, 'preparing', pg_catalog.format('apply_snapshot %s', path));
  END IF;
  INSERT INTO steep_repl.snapshot_applies (path, options) VALUES (path, opts) RETURNING id INTO v_apply;
  v_job := steep_repl.enqueue_job(kind, args || pg_catalog.jsonb_build_object('apply_id', v_apply), v_node, 3);
  UPDATE steep_repl.snapshot_applies a SET job_id = v_job WHERE a.id = v_apply;
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl._snapshot_queue_apply(text, jsonb, text, jsonb) IS 'Internal: records an apply and queues its job; returns the job id.';

CREATE FUNCTION steep_repl.apply_snapshot(path text, options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._require('path', path);
  PERFORM steep_repl._require('options', options);
  RETURN steep_repl._snapshot_queue_apply(steep_repl._snapshot_path(path), steep_repl._snapshot_apply_options(options),
                                          'snapshot.apply', '{}');
END
$$;
COMMENT ON FUNCTION steep_repl.apply_snapshot(text, jsonb) IS
  'Queues loading the snapshot in directory path (on this node''s host) into this node and returns the job id (the snapshot id is in the manifest, which only the sidecar reads). Options: parallel (1-16), subscribe, error_tolerance (rows per table, PostgreSQL 17+), truncate, lag_threshold, max_rate (bytes/s per worker). Watch steep_repl.snapshot_progress.';

CREATE FUNCTION steep_repl.list_snapshots()
RETURNS TABLE (id text, role text, state text, path text, source_node text, lsn pg_lsn, slot_name text,
               slot_expires_at timestamptz, slot_dropped boolean, compression text, tables integer, rows bigint,
               bytes_raw bigint, bytes_compressed bigint, tuples_skipped bigint, job_id bigint,
               created_at timestamptz, completed_at timestamptz, error text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- A job that ended without recording the outcome (lease expired on its last attempt) shows as its job's state.
  SELECT s.id, 'generated',
         CASE WHEN s.state IN ('queued', 'generating') AND j.state IN ('failed', 'cancelled') THEN j.state ELSE s.state END,
         s.path, s.source_node, s.lsn, s.slot_name, s.slot_expires_at,
         s.slot_dropped_at IS NOT NULL, s.compression, s.tables_total, s.rows_total, s.bytes_raw, s.bytes_compressed,
         NULL::bigint, s.job_id, s.created_at, s.completed_at, coalesce(s.error, j.error)
  FROM steep_repl.snapshots s LEFT JOIN steep_repl.jobs j ON j.id = s.job_id
  UNION ALL
  SELECT a.snapshot_id, 'applied',
         CASE WHEN a.state IN ('queued', 'applying') AND j.state IN ('failed', 'cancelled') THEN j.state ELSE a.state END,
         a.path, a.source_node, a.lsn, NULL, NULL, NULL, NULL,
         (SELECT pg_catalog.count(*)::int FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id),
         (SELECT pg_catalog.sum(t.rows)::bigint FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id),
         (SELECT pg_catalog.sum(t.raw_bytes)::bigint FROM steep_repl.snapshot_apply_tables t WHERE t.apply_id = a.id),
         NULL, a.tuples_skipped, a.job_id, a.created_at, a.completed_at, coalesce(a.error, j.error)
  FROM steep_repl.snapshot_applies a LEFT JOIN steep_repl.jobs j ON j.id = a.job_id
  ORDER BY 17 DESC, 1;
$$;
COMMENT ON FUNCTION steep_repl.list_snapshots() IS
  'Snapshots generated on this node (role generated) and applied to it (role applied), newest first.';

CREATE FUNCTION steep_repl.delete_snapshot(id text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s steep_repl.snapshots;
  v_job bigint;
BEGIN
  PERFORM steep_repl._require('id', id);
  SELECT * INTO s FROM steep_repl.snapshots x WHERE x.id = delete_snapshot.id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'snapshot "%" was not generated on this node', id
      USING ERRCODE = 'undefined_object', HINT = 'List them with SELECT * FROM steep_repl.list_snapshots().';
  END IF;
  SELECT j.id INTO v_job FROM steep_repl.jobs j
  WHERE j.kind = 'snapshot.delete' AND j.args->>'snapshot_id' = s.id AND j.state IN ('queued', 'running');
  IF FOUND THEN
    RAISE NOTICE 'snapshot % is already being deleted (job %)', s.id, v_job;
    RETURN v_job;
  END IF;
  IF s.job_id IS NOT NULL AND (SELECT j.state FROM steep_repl.jobs j WHERE j.id = s.job_id) IN ('queued', 'running') THEN
    PERFORM steep_repl.cancel_job(s.job_id);
  END IF;
  UPDATE steep_repl.snapshots x SET state = 'deleting' WHERE x.id = s.id;
  v_job := steep_repl.enqueue_job('snapshot.delete', pg_catalog.jsonb_build_object('snapshot_id', s.id), s.source_node, 5);
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (s.source_node, 'snapshot.delete_requested', pg_catalog.jsonb_build_object('snapshot_id', s.id, 'job', v_job));
  RETURN v_job;
END
$$;
COMMENT ON FUNCTION steep_repl.delete_snapshot(text) IS
  'Deletes a snapshot generated on this node: the sidecar removes its files, drops its slot (and its publication when no subscriber''s slot uses it). Cancels a generation still running. Returns the snapshot.delete job id.';

-- start_init(target, source, 'two_phase', {"path": ...}) on the target: generate on the source
-- into path (seen by both hosts), apply here, subscribe from the snapshot's LSN.
CREATE FUNCTION steep_repl._start_two_phase_init(target text, source text, options jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_node steep_repl.nodes;
  v_path text;
  v_gen jsonb;
  v_apply jsonb;
BEGIN
  PERFORM steep_repl._require('target', target);
  PERFORM steep_repl._require('source', source);
  PERFORM steep_repl._require('options', options);
  PERFORM steep_repl._snapshot_check_options(options, ARRAY['path', 'compression', 'parallel', 'tables', 'schemas',
    'slot_expiry', 'error_tolerance', 'lag_threshold', 'max_rate'], 'two_phase init');
  IF NOT options ? 'path' THEN
    RAISE EXCEPTION 'a two_phase init needs a "path" option' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'path is a directory both the source''s and the target''s hosts see (e.g. an NFS mount).';
  END IF;
  v_path := steep_repl._snapshot_path(options->>'path');
  v_gen := steep_repl._snapshot_generate_options(options - ARRAY['path', 'error_tolerance', 'lag_threshold']);
  v_apply := steep_repl._snapshot_apply_options((options - ARRAY['path', 'compression', 'tables', 'schemas', 'slot_expiry'])
                                                || '{"subscribe": true}');
  SELECT * INTO v_node FROM steep_repl.nodes n WHERE n.name = target FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM steep_repl._unknown_node(target);
  END IF;
  IF NOT v_node.is_local THEN
    RAISE EXCEPTION 'node "%" is not this database''s local node', target
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Call start_init on the target node itself.';
  END IF;
  IF target = source THEN
    RAISE EXCEPTION 'target and source are the same node "%"', target USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = source) THEN
    PERFORM steep_repl._unknown_node(source);
  END IF;
  PERFORM steep_repl._require_reachable(source, 'source');
  RETURN steep_repl._snapshot_queue_apply(v_path || '/' || target || '_from_' || source, v_apply, 'snapshot.init',
    pg_catalog.jsonb_build_object('target', target, 'source', source, 'generate_options', v_gen));
END
$$;
COMMENT ON FUNCTION steep_repl._start_two_phase_init(text, text, jsonb) IS
  'Internal (called by start_init for method two_phase): queues snapshot.init, which generates a snapshot on the source into path/<target>_from_<source>, applies it here and subscribes from its LSN. Returns the job id.';

GRANT EXECUTE ON FUNCTION
  steep_repl.generate_snapshot(text, jsonb),
  steep_repl.apply_snapshot(text, jsonb),
  steep_repl.list_snapshots(),
  steep_repl.delete_snapshot(text)
TO steep_repl_admin;
GRANT SELECT ON steep_repl.snapshots, steep_repl.snapshot_tables, steep_repl.snapshot_applies,
  steep_repl.snapshot_apply_tables, steep_repl.snapshot_progress TO steep_repl_admin;

-- ---- ../sql/90_security.sql
-- Privileges: nothing for PUBLIC; steep_repl_admin runs the API (SECURITY DEFINER functions with a
-- fixed search_path) and reads the state tables, except nodes.conninfo, which may hold a password.

REVOKE ALL ON SCHEMA steep_repl FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA steep_repl FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA steep_repl FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA steep_repl FROM PUBLIC;

GRANT USAGE ON SCHEMA steep_repl TO steep_repl_admin;
GRANT EXECUTE ON FUNCTION
  steep_repl.register_node(text, text, boolean),
  steep_repl.unregister_node(text),
  steep_repl.transition(text, text, text),
  steep_repl.enqueue_job(text, jsonb, text, integer, timestamptz),
  steep_repl.claim_job(text, text[], interval, timestamptz),
  steep_repl.heartbeat_job(bigint, text, interval, jsonb, timestamptz),
  steep_repl.finish_job(bigint, text, text, jsonb, text, timestamptz),
  steep_repl.cancel_job(bigint, timestamptz),
  steep_repl.release_job(bigint, text),
  steep_repl.tick(timestamptz),
  steep_repl.wake_supervisor(),
  steep_repl.start_init(text, text, text, jsonb),
  steep_repl.cancel_init(text),
  steep_repl.prepare_init(text, text, interval),
  steep_repl.complete_init(text, text, text, pg_lsn, jsonb),
  steep_repl.prepare_init_export(text, text, interval, interval),
  steep_repl.release_init_snapshot(text)
TO steep_repl_admin;
GRANT SELECT ON steep_repl.jobs, steep_repl.events, steep_repl.init_transitions,
  steep_repl.init_progress, steep_repl.init_tables, steep_repl.init_samples, steep_repl.init_slots TO steep_repl_admin;
GRANT SELECT (name, is_local, init_state, init_source_node, init_started_at, init_completed_at,
              state_changed_at, last_error, registered_at)
  ON steep_repl.nodes TO steep_repl_admin;
