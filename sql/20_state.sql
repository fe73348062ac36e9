-- The init state machine and the event log.
--
--   uninitialized -> preparing -> copying -> catching_up -> synchronized
--   preparing | copying | catching_up | reinitializing -> failed | uninitialized (cancel)
--   synchronized | diverged | failed -> reinitializing -> catching_up (partial reinit)
--   reinitializing -> failed | diverged (cancel: the tables in scope are not replicated)
--   synchronized -> diverged
--   failed -> preparing (retry) | uninitialized (reset)

CREATE TABLE steep_repl.init_transitions (
  from_state text NOT NULL,
  to_state   text NOT NULL,
  PRIMARY KEY (from_state, to_state),
  CONSTRAINT from_state_known FOREIGN KEY (from_state) REFERENCES steep_repl.init_states (state),
  CONSTRAINT to_state_known FOREIGN KEY (to_state) REFERENCES steep_repl.init_states (state)
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
  ('failed', 'preparing'), ('failed', 'uninitialized'),
  ('diverged', 'reinitializing'), ('failed', 'reinitializing'), ('reinitializing', 'diverged');

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
  IF NOT EXISTS (SELECT 1 FROM steep_repl.init_states s WHERE s.state = v_to) THEN
    RAISE EXCEPTION 'unknown init state "%"', to_state
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'States: ' || (SELECT pg_catalog.string_agg(pg_catalog.upper(s.state), ', ' ORDER BY s.position)
                                 FROM steep_repl.init_states s) || '.';
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
                      WHEN v_to IN ('preparing', 'reinitializing', 'uninitialized') THEN NULL
                      ELSE n.last_error END,
    init_source_node = CASE WHEN v_to = 'uninitialized' THEN NULL ELSE n.init_source_node END
  WHERE n.name = transition.node;
  -- The init's progress row shows the node's state; this is its only writer.
  UPDATE steep_repl.init_progress p SET phase = v_to, updated_at = pg_catalog.now() WHERE p.node = transition.node;

  INSERT INTO steep_repl.events (node, event, from_state, to_state, detail)
  VALUES (transition.node, 'init.state_change', v_from, v_to,
          pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('reason', reason)));
  RETURN v_to;
END
$$;
COMMENT ON FUNCTION steep_repl.transition(text, text, text) IS
  'Moves a node''s init state along steep_repl.init_transitions (state names in any case), records an init.state_change event and NOTIFYs steep_repl_events. Illegal: 55000, state unchanged.';
