-- The streaming overlap analysis (internal/overlap, run by steep-repl analyze-overlap): the
-- sidecar streams each table's keys and row hashes from both nodes itself and joins them in Go;
-- these two functions give it the scope (the same rules as analyze_overlap) and record what it
-- found in steep_repl.overlap_rows as analyze_overlap does.

-- The tables of an overlap analysis with peer and the send form of their key columns: the
-- column types' oids, lengths (typlen > 0: fixed, sent raw; otherwise length-prefixed) and send
-- functions, which the stream's query applies to each key column.
CREATE FUNCTION steep_repl.overlap_scope(peer text, tables text[] DEFAULT NULL)
RETURNS TABLE (schema_name text, table_name text, key_cols text[], key_types text[], key_oids oid[], key_lens integer[], key_sends text[])
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
  PERFORM steep_repl._overlap_check_peer(peer);
  RETURN QUERY
    SELECT s.schema_name, s.table_name, s.key_cols, s.key_types,
           ARRAY(SELECT a.atttypid FROM pg_catalog.unnest(s.key_cols) WITH ORDINALITY k(c, o)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = s.relid AND a.attname = k.c ORDER BY k.o),
           -- name has a fixed length on disk but sends its text: length-prefixed like text.
           ARRAY(SELECT CASE WHEN ty.typlen > 0 AND ty.oid <> 'pg_catalog.name'::pg_catalog.regtype THEN ty.typlen::integer ELSE -1 END FROM pg_catalog.unnest(s.key_cols) WITH ORDINALITY k(c, o)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = s.relid AND a.attname = k.c
                 JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid ORDER BY k.o),
           ARRAY(SELECT pg_catalog.format('%I.%I', pn.nspname, p.proname) FROM pg_catalog.unnest(s.key_cols) WITH ORDINALITY k(c, o)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = s.relid AND a.attname = k.c
                 JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
                 JOIN pg_catalog.pg_proc p ON p.oid = ty.typsend
                 JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace ORDER BY k.o)
    FROM steep_repl._compare_scope(tables, steep_repl._caller()) s;
END
$$;
COMMENT ON FUNCTION steep_repl.overlap_scope(text, text[]) IS
  'The tables of a streaming overlap analysis with peer (all, or the named ones; 42P01, 55000, 42501 as analyze_overlap) and their key columns'' types, lengths and send functions.';

-- 22004 for NULL, 42704 for a node that is not registered, 22023 for this node.
CREATE FUNCTION steep_repl._overlap_check_peer(peer text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM steep_repl._require('peer', peer);
  IF NOT EXISTS (SELECT 1 FROM steep_repl.nodes n WHERE n.name = peer) THEN
    PERFORM steep_repl._unknown_node(peer);
  END IF;
  IF peer = steep_repl._local_node() THEN
    RAISE EXCEPTION 'node % is this node: compare it with another one', peer USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._overlap_check_peer(text) IS 'Internal: 22004, 42704 or 22023 unless peer is another registered node.';

-- Replaces peer's and the table's rows of steep_repl.overlap_rows with the keys given (one per
-- row that is not identical, built by the caller with jsonb_build_object as analyze_overlap
-- builds them) and returns the counts. The caller must be able to read the table in full, as
-- for analyze_overlap: the keys recorded are its rows'.
CREATE FUNCTION steep_repl.overlap_record(peer text, schema text, relname text, identical_rows bigint,
  keys jsonb[], categories text[], local_hashes bigint[], peer_hashes bigint[])
RETURNS TABLE (schema_name text, table_name text, identical bigint, conflicting bigint, local_only bigint, peer_only bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  v_t steep_repl.compare_table;
  v_name text := overlap_record.schema || '.' || overlap_record.relname;
  v_n integer := coalesce(pg_catalog.cardinality(keys), 0);
BEGIN
  PERFORM steep_repl._overlap_check_peer(peer);
  PERFORM steep_repl._require('identical_rows', identical_rows);
  IF identical_rows < 0 OR v_n <> coalesce(pg_catalog.cardinality(categories), 0)
     OR v_n <> coalesce(pg_catalog.cardinality(local_hashes), 0) OR v_n <> coalesce(pg_catalog.cardinality(peer_hashes), 0) THEN
    RAISE EXCEPTION 'keys, categories, local_hashes and peer_hashes must be as long as each other, identical_rows not negative'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO v_t FROM steep_repl._compare_scope(ARRAY[v_name], steep_repl._caller()) s
  WHERE s.schema_name = overlap_record.schema AND s.table_name = overlap_record.relname;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no such table on this node: %', v_name USING ERRCODE = 'undefined_table';
  END IF;
  DELETE FROM steep_repl.overlap_rows o
  WHERE o.peer = overlap_record.peer AND o.schema_name = v_t.schema_name AND o.table_name = v_t.table_name;
  INSERT INTO steep_repl.overlap_rows (peer, schema_name, table_name, key, category, local_hash, peer_hash, analyzed_at)
  SELECT peer, v_t.schema_name, v_t.table_name, k.key, k.category, k.lh, k.ph, pg_catalog.clock_timestamp()
  FROM ROWS FROM (pg_catalog.unnest(keys), pg_catalog.unnest(categories), pg_catalog.unnest(local_hashes), pg_catalog.unnest(peer_hashes)) k(key, category, lh, ph);
  RETURN QUERY
    SELECT v_t.schema_name, v_t.table_name, identical_rows,
           count(*) FILTER (WHERE c = 'conflicting'), count(*) FILTER (WHERE c = 'local_only'), count(*) FILTER (WHERE c = 'peer_only')
    FROM pg_catalog.unnest(categories) c;
END
$$;
COMMENT ON FUNCTION steep_repl.overlap_record(text, text, text, bigint, jsonb[], text[], bigint[], bigint[]) IS
  'Records a streaming overlap analysis of one table with peer: replaces its keys in steep_repl.overlap_rows with the given ones (category conflicting, local_only or peer_only) and returns the counts.';

GRANT EXECUTE ON FUNCTION steep_repl.overlap_scope(text, text[]),
  steep_repl.overlap_record(text, text, text, bigint, jsonb[], text[], bigint[], bigint[]) TO steep_repl_admin;

-- The stream of one table for the streaming analysis, in C (extension/src/key_hash_chunks.c):
-- every row's key send forms and row hash, ~64 kB a chunk, from one sequential scan that starts
-- at block 0. The caller reads the table itself: SELECT on it, and no row-level security.
CREATE FUNCTION steep_repl.key_hash_chunks(rel regclass) RETURNS SETOF bytea
  LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'steep_repl_key_hash_chunks';
COMMENT ON FUNCTION steep_repl.key_hash_chunks(regclass) IS
  'Every row of rel (a table with a primary key) as its key columns'' send forms and its 8-byte row_hash, packed in chunks of about 64 kB in physical order: what steep-repl analyze-overlap streams from each node. 42501 without SELECT on rel or under row-level security, 55000 without a primary key, 42809 for what is not a table.';
