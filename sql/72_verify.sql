-- verify(): this node equals the peer it replicates from, row by row; analyze_overlap(): how two
-- populated nodes' rows overlap (sql/71_compare.sql reads the hashes).

-- Whether this node has applied everything the peer committed up to lsn: its subscription's
-- origin has reached it, or (the peer being idle since) the peer's slot says the subscriber
-- confirmed it (an idle subscriber confirms all it received once it has applied it). Polled
-- until timeout; true at once when this node does not subscribe from the peer.
CREATE FUNCTION steep_repl._verify_caught_up(peer text, conn text, lsn pg_lsn, timeout interval) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_sub record;
  v_deadline timestamptz := pg_catalog.clock_timestamp() + timeout;
  v_flush pg_lsn;
BEGIN
  SELECT s.oid, s.subslotname INTO v_sub FROM pg_catalog.pg_subscription s
  WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
    AND s.subname = (steep_repl._init_names(steep_repl._local_node(), peer)).subscription;
  IF NOT FOUND THEN
    RETURN true;
  END IF;
  LOOP
    IF pg_catalog.pg_replication_origin_progress('pg_' || v_sub.oid, true) >= lsn THEN
      RETURN true;
    END IF;
    EXECUTE pg_catalog.format('SELECT f FROM %I.dblink($1, $2) AS t(f pg_lsn)', steep_repl._dblink_schema()) INTO v_flush
      USING conn, pg_catalog.format('SELECT s.confirmed_flush_lsn FROM pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) %L',
                                    v_sub.subslotname);
    IF v_flush >= lsn THEN
      RETURN true;
    END IF;
    IF pg_catalog.clock_timestamp() > v_deadline THEN
      RETURN false;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._verify_caught_up(text, text, pg_lsn, interval) IS
  'Internal: whether this node applied the peer''s WAL up to lsn within timeout (true when it does not subscribe from the peer).';

-- Settles the rows of one table seen differing in a first pass. Each round reads the peer (S1,
-- with its WAL position), waits until this node has applied past it, reads here (T), reads the
-- peer again (S2). T equal to S1 or S2: replication was only behind or ahead. S1 = S2 <> T: the
-- peer's row did not change while this node, past S1's position, held another: a real
-- difference. Otherwise the peer's row changed meanwhile: another round, from S2.
CREATE FUNCTION steep_repl._verify_settle(peer text, conn text, t steep_repl.compare_table, candidates text[],
  rounds integer, catch_up interval, OUT key text, OUT kind text) RETURNS SETOF record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_keys text[] := candidates;
  v_s1 jsonb;
  v_s2 jsonb;
  v_t jsonb;
  v_lsn pg_lsn;
  v_lsn2 pg_lsn;
  v_round integer := 0;
  v_arg jsonb;
BEGIN
  WHILE pg_catalog.cardinality(v_keys) > 0 LOOP
    v_arg := (SELECT pg_catalog.jsonb_agg(k::jsonb) FROM pg_catalog.unnest(v_keys) k);
    IF v_s2 IS NULL THEN
      SELECT r.hashes, r.lsn INTO v_s1, v_lsn FROM steep_repl._compare_peer_read(conn, t, v_arg) r;
    ELSE
      v_s1 := v_s2;
      v_lsn := v_lsn2;
    END IF;
    IF v_round >= rounds THEN
      RETURN QUERY SELECT k, 'unsettled'::text FROM pg_catalog.unnest(v_keys) k;
      RETURN;
    END IF;
    v_round := v_round + 1;
    IF NOT steep_repl._verify_caught_up(peer, conn, v_lsn, catch_up) THEN
      RAISE EXCEPTION 'this node did not apply node %''s changes up to % within %', peer, v_lsn, catch_up
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Replication is behind or stopped: see pg_stat_subscription; or give more time with {"catch_up_timeout": seconds}.';
    END IF;
    v_t := steep_repl._compare_local_read(t, v_arg);
    SELECT r.hashes, r.lsn INTO v_s2, v_lsn2 FROM steep_repl._compare_peer_read(conn, t, v_arg) r;
    RETURN QUERY
      SELECT k, CASE WHEN v_s2->k IS NULL THEN 'extra' WHEN v_t->k IS NULL THEN 'missing' ELSE 'differs' END
      FROM pg_catalog.unnest(v_keys) k
      WHERE v_s1->k IS NOT DISTINCT FROM v_s2->k
        AND v_t->k IS DISTINCT FROM v_s1->k;
    v_keys := ARRAY(SELECT k FROM pg_catalog.unnest(v_keys) k
                    WHERE v_s1->k IS DISTINCT FROM v_s2->k
                      AND v_t->k IS DISTINCT FROM v_s1->k AND v_t->k IS DISTINCT FROM v_s2->k);
  END LOOP;
END
$$;
COMMENT ON FUNCTION steep_repl._verify_settle(text, text, steep_repl.compare_table, text[], integer, interval) IS
  'Internal: which of a table''s rows seen differing really differ, re-read until the peer''s row held still while this node caught up past it.';

-- verify() for as_role: the tables are read as the extension's owner, as_role must be able to read them.
CREATE FUNCTION steep_repl._verify(peer text, tables text[], options jsonb, as_role regrole)
RETURNS TABLE (schema_name text, table_name text, key jsonb, kind text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_rounds integer;
  v_catch_up integer;
  v_timeout integer;
  v_conn text;
  v_t steep_repl.compare_table;
  v_started timestamptz := pg_catalog.clock_timestamp();
  v_cand text[];
  v_found bigint := 0;
  v_unsettled bigint := 0;
  v_tables integer := 0;
  v_bad text;
  r record;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  options := coalesce(options, '{}');
  IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT pg_catalog.string_agg(k, ', ') INTO v_bad FROM pg_catalog.jsonb_object_keys(options) k
  WHERE k <> ALL (ARRAY['rounds', 'catch_up_timeout', 'statement_timeout']);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'unknown verify option: %', v_bad USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Options: rounds, catch_up_timeout, statement_timeout.';
  END IF;
  v_rounds := steep_repl._int_option(options, 'rounds', 10, 1, 100,
    'rounds is how many times a row seen differing is read again while the peer keeps changing it (1 to 100, default 10).');
  v_catch_up := steep_repl._int_option(options, 'catch_up_timeout', 60, 1, 3600,
    'catch_up_timeout is the number of seconds to wait for this node to apply the peer''s changes before a re-read (1 to 3600, default 60).');
  v_timeout := steep_repl._int_option(options, 'statement_timeout', 3600, 1, 86400,
    'statement_timeout is the number of seconds one read of a table on the peer may take (1 to 86400, default 3600).');
  IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'verify needs a new snapshot for each re-read' USING ERRCODE = 'invalid_transaction_state',
      HINT = 'Run it outside a REPEATABLE READ or SERIALIZABLE transaction.';
  END IF;
  v_conn := steep_repl._compare_conninfo(peer, v_timeout);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);
  v_conn := steep_repl._compare_link('steep_repl_verify', v_conn);
  BEGIN
    FOR v_t IN SELECT * FROM steep_repl._compare_scope(tables, as_role) LOOP
      v_tables := v_tables + 1;
      v_cand := ARRAY(SELECT p.key FROM steep_repl._compare_pass(v_conn, v_t) p);
      CONTINUE WHEN pg_catalog.cardinality(v_cand) = 0;
      FOR r IN SELECT * FROM steep_repl._verify_settle(peer, v_conn, v_t, v_cand, v_rounds,
                                                       pg_catalog.make_interval(secs => v_catch_up)) LOOP
        IF r.kind = 'unsettled' THEN
          v_unsettled := v_unsettled + 1;
        ELSE
          v_found := v_found + 1;
        END IF;
        schema_name := v_t.schema_name;
        table_name := v_t.table_name;
        key := r.key::jsonb;
        kind := r.kind;
        RETURN NEXT;
      END LOOP;
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    PERFORM steep_repl._compare_unlink(v_conn);
    RAISE;
  END;
  PERFORM steep_repl._compare_unlink(v_conn);
  IF v_unsettled > 0 THEN
    RAISE WARNING '% row(s) kept changing on node % through % re-reads and were not settled', v_unsettled, peer, v_rounds
      USING HINT = 'They are listed with kind ''unsettled''; verify them again, or with more {"rounds": n}.';
  END IF;
  INSERT INTO steep_repl.events (node, event, detail)
  VALUES (steep_repl._local_node(), 'verify.done', pg_catalog.jsonb_build_object('peer', peer, 'tables', v_tables,
          'differences', v_found, 'unsettled', v_unsettled, 'requested_by', as_role::text,
          'seconds', pg_catalog.round(extract(epoch FROM pg_catalog.clock_timestamp() - v_started)::numeric, 3)));
END
$$;
COMMENT ON FUNCTION steep_repl._verify(text, text[], jsonb, regrole) IS
  'Internal: verify() on behalf of as_role.';

CREATE FUNCTION steep_repl.verify(peer text, tables text[] DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS TABLE (schema_name text, table_name text, key jsonb, kind text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT * FROM steep_repl._verify(peer, tables, options, steep_repl._caller());
$$;
COMMENT ON FUNCTION steep_repl.verify(text, text[], jsonb) IS
  'Whether this node holds the same rows as peer (the node it replicates from), by primary key and row_hash: one row per real difference (missing here, extra here, differs), none when equal. Rows seen differing under a write load are read again until settled.';

-- The rows of the last analyze_overlap of each peer and table that are not identical.
CREATE TABLE steep_repl.overlap_rows (
  peer        text NOT NULL,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  key         jsonb NOT NULL,
  category    text NOT NULL CHECK (category IN ('conflicting', 'local_only', 'peer_only')),
  local_hash  bigint,
  peer_hash   bigint,
  analyzed_at timestamptz NOT NULL,
  PRIMARY KEY (peer, schema_name, table_name, key)
);
COMMENT ON TABLE steep_repl.overlap_rows IS
  'The keys of the last steep_repl.analyze_overlap() of each peer and table whose rows are not identical on both nodes.';

CREATE FUNCTION steep_repl.analyze_overlap(peer text, tables text[] DEFAULT NULL)
RETURNS TABLE (schema_name text, table_name text, identical bigint, conflicting bigint, local_only bigint, peer_only bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  SET TimeZone = 'UTC' SET DateStyle = 'ISO' SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
#variable_conflict use_column
DECLARE
  v_conn text;
  v_t steep_repl.compare_table;
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_kept bigint;
BEGIN
  PERFORM steep_repl._require('peer', peer);
  v_conn := steep_repl._compare_conninfo(peer, 3600);
  PERFORM steep_repl._compare_check_peer(peer, v_conn);
  v_conn := steep_repl._compare_link('steep_repl_overlap', v_conn);
  BEGIN
    FOR v_t IN SELECT * FROM steep_repl._compare_scope(tables, steep_repl._caller()) LOOP
      DELETE FROM steep_repl.overlap_rows o
      WHERE o.peer = analyze_overlap.peer AND o.schema_name = v_t.schema_name AND o.table_name = v_t.table_name;
      -- One pass: the counts and the keys of what is not identical come from the same join.
      EXECUTE 'WITH j AS (' || steep_repl._compare_join_sql(v_t) || '),
        kept AS (INSERT INTO steep_repl.overlap_rows (peer, schema_name, table_name, key, category, local_hash, peer_hash, analyzed_at)
                 SELECT $3, $4, $5, j.k::pg_catalog.jsonb,
                        CASE WHEN j.lh IS NULL THEN ''peer_only'' WHEN j.ph IS NULL THEN ''local_only'' ELSE ''conflicting'' END,
                        j.lh, j.ph, $6
                 FROM j WHERE j.lh IS DISTINCT FROM j.ph RETURNING 1)
        SELECT count(*) FILTER (WHERE j.lh = j.ph), count(*) FILTER (WHERE j.lh <> j.ph),
               count(*) FILTER (WHERE j.ph IS NULL), count(*) FILTER (WHERE j.lh IS NULL), (SELECT count(*) FROM kept)
        FROM j'
        INTO identical, conflicting, local_only, peer_only, v_kept
        USING v_conn, steep_repl._compare_peer_sql(v_t), peer, v_t.schema_name, v_t.table_name, v_now;
      schema_name := v_t.schema_name;
      table_name := v_t.table_name;
      RETURN NEXT;
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    PERFORM steep_repl._compare_unlink(v_conn);
    RAISE;
  END;
  PERFORM steep_repl._compare_unlink(v_conn);
END
$$;
COMMENT ON FUNCTION steep_repl.analyze_overlap(text, text[]) IS
  'How the rows of this node and peer overlap, per table: identical, conflicting (same key, other row), local_only, peer_only; the keys of all but identical rows are in steep_repl.overlap_rows. Only keys and row hashes cross the network.';

-- The verification an init asked for ("verify": true), run by the sidecar's init.verify job once
-- the node is SYNCHRONIZED: its tables against its source, as the role that started it; the
-- outcome is the event init.verified (the first 100 differences in its detail).
CREATE FUNCTION steep_repl.init_verify(node text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  v_state text;
  v_detail jsonb;
BEGIN
  SELECT ip.* INTO p FROM steep_repl.init_progress ip WHERE ip.node = init_verify.node;
  SELECT n.init_state INTO v_state FROM steep_repl.nodes n WHERE n.name = init_verify.node;
  IF NOT FOUND OR p.node IS NULL OR v_state <> 'synchronized' OR p.options->>'verify_as' IS NULL THEN
    RETURN pg_catalog.jsonb_build_object('skipped', pg_catalog.format('node %s has no synchronized init to verify (%s)', node, coalesce(v_state, 'unknown')));
  END IF;
  WITH d AS (
    SELECT * FROM steep_repl._verify(p.source_node,
      ARRAY(SELECT t.schema_name || '.' || t.table_name FROM steep_repl.init_tables t WHERE t.node = p.node),
      '{}', (p.options->>'verify_as')::regrole))
  SELECT pg_catalog.jsonb_build_object('source', p.source_node,
           'differences', count(*) FILTER (WHERE d.kind <> 'unsettled'), 'unsettled', count(*) FILTER (WHERE d.kind = 'unsettled'),
           'rows', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)) FROM (SELECT * FROM d LIMIT 100) x), '[]'))
    INTO v_detail FROM d;
  INSERT INTO steep_repl.events (node, event, detail) VALUES (node, 'init.verified', v_detail);
  RETURN v_detail;
END
$$;
COMMENT ON FUNCTION steep_repl.init_verify(text) IS
  'Sidecar: the verification a SYNCHRONIZED init asked for with "verify": true, recorded as the event init.verified.';
GRANT EXECUTE ON FUNCTION steep_repl.init_verify(text) TO steep_repl_sidecar;

GRANT EXECUTE ON FUNCTION steep_repl.verify(text, text[], jsonb), steep_repl.analyze_overlap(text, text[]) TO steep_repl_admin;
GRANT SELECT ON steep_repl.overlap_rows TO steep_repl_admin;
