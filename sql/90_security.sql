-- Privileges: nothing for PUBLIC; steep_repl_admin runs the API (SECURITY DEFINER functions with a
-- fixed search_path) and reads the state tables, except nodes.conninfo, which may hold a password.
-- register_node is the superuser's (it chooses where superuser connections go); the queue and
-- the state machine's raw moves are the sidecar's (steep_repl_sidecar), so an operator cannot
-- enqueue a job past the checks of the API verbs or drive tick() with a clock of its choosing.

REVOKE ALL ON SCHEMA steep_repl FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA steep_repl FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA steep_repl FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA steep_repl FROM PUBLIC;
-- But row_hash: a comparison reads each table as its owner (steep_repl._query_as), and the
-- executor checks EXECUTE on row_hash as that owner. A pure function, and PUBLIC, without USAGE
-- on the schema, cannot name it.
GRANT EXECUTE ON FUNCTION steep_repl.row_hash(record) TO PUBLIC;
-- And _written_here, which _merge_apply's read-back of what it wrote runs as the table's owner.
GRANT EXECUTE ON FUNCTION steep_repl._written_here(xid) TO PUBLIC;

GRANT USAGE ON SCHEMA steep_repl TO steep_repl_admin;
GRANT USAGE ON SCHEMA steep_repl TO steep_repl_sidecar;
GRANT EXECUTE ON FUNCTION
  steep_repl.transition(text, text, text),
  steep_repl.enqueue_job(text, jsonb, text, integer, timestamptz),
  steep_repl.claim_job(text, text[], interval, timestamptz),
  steep_repl.heartbeat_job(bigint, text, interval, jsonb, timestamptz),
  steep_repl.finish_job(bigint, text, text, jsonb, text, timestamptz),
  steep_repl.release_job(bigint, text),
  steep_repl.tick(timestamptz),
  steep_repl.wake_supervisor()
TO steep_repl_sidecar;
GRANT EXECUTE ON FUNCTION
  steep_repl.unregister_node(text),
  steep_repl.cancel_job(bigint, timestamptz),
  steep_repl.wake_supervisor(),
  steep_repl.start_init(text, text, text, jsonb),
  steep_repl.cancel_init(text),
  steep_repl.start_reinit(text, jsonb),
  steep_repl.prepare_init(text, text, interval),
  steep_repl.complete_init(text, text, text, pg_lsn, jsonb),
  steep_repl.prepare_init_export(text, text, interval, interval),
  steep_repl.release_init_snapshot(text)
TO steep_repl_admin;
-- key_hash_chunks is what analyze-overlap streams from each node, as the DBA: it reads a table
-- only where its caller could read every row.
GRANT EXECUTE ON FUNCTION steep_repl.key_hash_chunks(regclass) TO steep_repl_admin;
GRANT SELECT ON steep_repl.jobs, steep_repl.events, steep_repl.init_states, steep_repl.init_transitions,
  steep_repl.init_progress, steep_repl.init_tables, steep_repl.init_samples, steep_repl.init_slots,
  steep_repl.init_slot_usage TO steep_repl_admin;
GRANT SELECT (name, is_local, init_state, init_source_node, init_started_at, init_completed_at,
              state_changed_at, last_error, registered_at)
  ON steep_repl.nodes TO steep_repl_admin;
-- The supervisor's health: a duty that keeps failing.
GRANT SELECT ON steep_repl.supervisor_duties TO steep_repl_admin;
-- What tick() last read of an init's source.
GRANT SELECT ON steep_repl.init_source_reads TO steep_repl_admin;
-- What a fast init dropped from the target's tables and will re-create.
GRANT SELECT ON steep_repl.init_fast_objects TO steep_repl_admin;
