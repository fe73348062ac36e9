-- Row hashes (extension/src/row_hash.c): what overlap analysis, merge and verification compare
-- between nodes instead of the rows themselves.
CREATE FUNCTION steep_repl.row_hash(r record) RETURNS bigint
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'steep_repl_row_hash';
COMMENT ON FUNCTION steep_repl.row_hash(record) IS
  'A 64-bit hash of every column''s binary send form in column order, NULL distinct from every value, the same whatever the session''s TimeZone, DateStyle, extra_float_digits, bytea_output or client_encoding: SELECT id, steep_repl.row_hash(t) FROM t.';
-- A hash discloses nothing the caller cannot read: it is computed of a row the caller passes.
GRANT EXECUTE ON FUNCTION steep_repl.row_hash(record) TO steep_repl_admin, steep_repl_sidecar;
