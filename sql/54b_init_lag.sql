-- The source of an init, seen from tick() without a new connection every second: one bounded
-- dblink session at most every _source_read_interval() answers at once whether the source is
-- reachable, where its WAL is and where the init's slot is confirmed; between two reads the lag
-- follows the subscription's own progress (pg_stat_subscription.received_lsn) locally.

CREATE TABLE steep_repl.init_source_reads (
  node                text PRIMARY KEY REFERENCES steep_repl.init_progress (node) ON DELETE CASCADE,
  read_at             timestamptz NOT NULL,
  source_lsn          pg_lsn,
  confirmed_flush_lsn pg_lsn,
  received_lsn        pg_lsn,
  error               text,
  CONSTRAINT read_or_error CHECK ((error IS NULL) = (source_lsn IS NOT NULL))
);
COMMENT ON TABLE steep_repl.init_source_reads IS
  'The last read of each init''s source by tick() (one dblink session 5 s after the previous one ended, while the init is CATCHING_UP or stalled; up to 30 s apart while the source does not answer): the source''s pg_current_wal_lsn(), the slot''s confirmed_flush_lsn (NULL: no such slot), the local subscription''s received_lsn at that moment, or the error when the source did not answer.';
COMMENT ON COLUMN steep_repl.init_source_reads.received_lsn IS
  'pg_stat_subscription.received_lsn of the init''s apply worker when the source was read; the lag between two reads is the lag read minus what was received since.';

CREATE FUNCTION steep_repl._source_read_interval() RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT interval '5 seconds';
$$;
COMMENT ON FUNCTION steep_repl._source_read_interval() IS
  'Internal: tick() reads an init''s source at most this often (5 s), and waits at most this long for it to answer.';

-- One bounded read of a source. A source that does not answer (refused, reset, down, or
-- connected and silent past the bound) is an error text; any other error (the source answered
-- with one) is raised: it is the duty's failure, not an unreachable source.
CREATE FUNCTION steep_repl._source_read_remote(node text, slot text,
  OUT source_lsn pg_lsn, OUT confirmed_flush_lsn pg_lsn, OUT error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_bound interval := steep_repl._source_read_interval();
  v_deadline timestamptz := pg_catalog.clock_timestamp() + v_bound;
  v_prev timestamptz;
  v_detail text;
BEGIN
  BEGIN
    v_prev := steep_repl._duty_deadline(v_deadline);
    IF v_prev < v_deadline THEN
      PERFORM steep_repl._duty_deadline(v_prev); -- the duty's own deadline comes first
    END IF;
    EXECUTE pg_catalog.format('SELECT lsn, flush FROM %I.dblink($1, $2) AS t(lsn pg_lsn, flush pg_lsn)',
                              steep_repl._dblink_schema())
      INTO source_lsn, confirmed_flush_lsn
      USING steep_repl._conninfo(node), pg_catalog.format(
        'SELECT pg_catalog.pg_current_wal_lsn(), (SELECT s.confirmed_flush_lsn FROM pg_catalog.pg_replication_slots s
           WHERE s.slot_name OPERATOR(pg_catalog.=) %L)', slot);
    PERFORM steep_repl._duty_deadline(v_prev);
  EXCEPTION
    WHEN query_canceled THEN
      PERFORM steep_repl._duty_deadline(v_prev);
      IF pg_catalog.clock_timestamp() < v_deadline OR v_prev <= v_deadline THEN
        RAISE; -- a cancel, or the duty's deadline: not this read's to survive
      END IF;
      error := pg_catalog.format('no answer within %s', v_bound);
    WHEN OTHERS THEN
      PERFORM steep_repl._duty_deadline(v_prev);
      -- 08: connection exception (dblink puts libpq's reason in the detail); 57P: the source is
      -- shutting down, starting up or was restarted.
      IF SQLSTATE NOT LIKE '08%' AND SQLSTATE NOT LIKE '57P%' THEN
        RAISE;
      END IF;
      GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
      error := pg_catalog.rtrim(SQLERRM || coalesce(': ' || NULLIF(v_detail, ''), ''), E'\n');
  END;
END
$$;
COMMENT ON FUNCTION steep_repl._source_read_remote(text, text) IS
  'Internal: one dblink session to a node, bounded by _source_read_interval(): its pg_current_wal_lsn() and the confirmed_flush_lsn of slot, or the reason it did not answer (other errors are raised).';

-- What tick() knows of an init's source: read now when the last read is older than
-- _source_read_interval() (fresh), else the last read less what the subscription received
-- since. An unreachable source is tracked in init_progress and fails the init after
-- source_timeout.
CREATE FUNCTION steep_repl._tick_source_read(p steep_repl.init_progress, now timestamptz,
  OUT fresh boolean, OUT reachable boolean, OUT lag_bytes bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c steep_repl.init_source_reads;
  v_received pg_lsn;
  v_read record;
  v_gap interval := steep_repl._source_read_interval();
  v_started timestamptz;
BEGIN
  SELECT s.received_lsn INTO v_received FROM pg_catalog.pg_stat_subscription s
  WHERE s.subid = p.subscription_oid AND s.relid IS NULL AND s.leader_pid IS NULL;
  SELECT * INTO c FROM steep_repl.init_source_reads r WHERE r.node = p.node;
  -- A source that does not answer is read less and less often (each try may cost the whole
  -- bound): after as long as it had been unreachable at the last read, 30 s at most (measured
  -- to now, the gap would always exceed the time since the read: one read every 30 s).
  IF c.error IS NOT NULL AND p.source_unreachable_since IS NOT NULL THEN
    v_gap := least(interval '30 seconds', greatest(v_gap, c.read_at - p.source_unreachable_since));
  END IF;
  IF FOUND AND c.read_at <= now AND now - c.read_at < v_gap THEN
    fresh := false;
    reachable := p.source_unreachable_since IS NULL;
    -- greatest() skips NULLs: no lag read (no slot, no answer) stays NULL.
    lag_bytes := CASE WHEN c.source_lsn IS NOT NULL AND c.confirmed_flush_lsn IS NOT NULL THEN
                   greatest(0, pg_catalog.pg_wal_lsn_diff(c.source_lsn, c.confirmed_flush_lsn)
                               - greatest(0, coalesce(pg_catalog.pg_wal_lsn_diff(v_received, c.received_lsn), 0)))::bigint END;
    RETURN;
  END IF;

  v_started := pg_catalog.clock_timestamp();
  SELECT * INTO v_read FROM steep_repl._source_read_remote(p.source_node, p.slot_name);
  -- read_at is when the read ended, on the tick's clock: the next one is due a gap after it.
  INSERT INTO steep_repl.init_source_reads AS r (node, read_at, source_lsn, confirmed_flush_lsn, received_lsn, error)
  VALUES (p.node, now + (pg_catalog.clock_timestamp() - v_started), v_read.source_lsn, v_read.confirmed_flush_lsn,
          v_received, v_read.error)
  ON CONFLICT ON CONSTRAINT init_source_reads_pkey DO UPDATE SET read_at = excluded.read_at,
    source_lsn = excluded.source_lsn, confirmed_flush_lsn = excluded.confirmed_flush_lsn,
    received_lsn = excluded.received_lsn, error = excluded.error;
  fresh := true;
  IF v_read.error IS NULL THEN
    IF p.source_unreachable_since IS NOT NULL THEN
      UPDATE steep_repl.init_progress ip SET source_unreachable_since = NULL WHERE ip.node = p.node;
    END IF;
    reachable := true;
    lag_bytes := pg_catalog.pg_wal_lsn_diff(v_read.source_lsn, v_read.confirmed_flush_lsn)::bigint;
    RETURN;
  END IF;
  reachable := false;
  IF p.source_unreachable_since IS NULL THEN
    UPDATE steep_repl.init_progress ip SET source_unreachable_since = now,
      message = pg_catalog.format('source node %s unreachable: %s', p.source_node, v_read.error)
    WHERE ip.node = p.node;
  ELSIF now - p.source_unreachable_since > p.source_timeout THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('source node %s unreachable for more than %s: %s',
                                                            p.source_node, p.source_timeout, v_read.error));
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_source_read(steep_repl.init_progress, timestamptz) IS
  'Internal: is the source of an init reachable, and its slot''s lag in bytes: read from the source _source_read_interval() after the previous read ended (fresh; up to 30 s apart while it does not answer), estimated locally in between; an unreachable source fails the init after source_timeout.';
