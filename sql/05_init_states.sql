-- The init states: the one list every state column references (nodes.init_state,
-- init_transitions, init_progress.phase) and the API reads (transition()'s hint, the Go constants
-- are tested against it).

CREATE TABLE steep_repl.init_states (
  state       text PRIMARY KEY CONSTRAINT state_format CHECK (state ~ '^[a-z_]+$'),
  position    integer NOT NULL UNIQUE,
  description text NOT NULL
);
COMMENT ON TABLE steep_repl.init_states IS
  'Every init state of a node, in lifecycle order; the legal moves between them are steep_repl.init_transitions.';

INSERT INTO steep_repl.init_states (state, position, description) VALUES
  ('uninitialized', 1, 'not initialized: no subscription of an init'),
  ('preparing', 2, 'checks done; publication, slot and subscription being created'),
  ('copying', 3, 'tables being copied (subscription table sync, a snapshot load or a restored backup)'),
  ('catching_up', 4, 'every table copied; applying the changes made on the source since'),
  ('synchronized', 5, 'replicating with an apply lag under the threshold'),
  ('reinitializing', 6, 'chosen tables, a schema or the whole node being copied again'),
  ('diverged', 7, 'schema drift or a difference was found; replication may be stopped'),
  ('failed', 8, 'the init stopped on an error (nodes.last_error)');
