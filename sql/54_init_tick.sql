-- tick()'s init duties: sample the subscription's progress from the target's catalogs into
-- init_progress and move COPYING -> CATCHING_UP -> SYNCHRONIZED, or to FAILED with a reason.

-- How long sync/apply errors of an init whose source answers are watched before they fail it:
-- a failing worker is restarted every wal_retrieve_retry_interval, so a real error recurs within
-- two of them (quiet), and one that keeps recurring for twice that (grace) is no blip.
CREATE FUNCTION steep_repl._init_error_grace(OUT quiet interval, OUT grace interval)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Shown with its unit (5s, 500ms): the text casts to an interval.
  quiet := 2 * pg_catalog.current_setting('wal_retrieve_retry_interval')::interval + interval '2 seconds';
  grace := 2 * quiet;
END
$$;
COMMENT ON FUNCTION steep_repl._init_error_grace() IS
  'Internal: quiet (2 x wal_retrieve_retry_interval + 2 s: no new error for that long forgives them) and grace (twice quiet: errors recurring for that long fail the init).';

CREATE FUNCTION steep_repl._tick_init(p steep_repl.init_progress, now timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_errors bigint;
  v_raw_errors bigint;
  v_probe text;
  v_done int;
  v_rows bigint;
  v_bytes bigint;
  v_percent numeric;
  v_then record;
  v_rps numeric;
  v_bps numeric;
  v_eta numeric;
  v_progressed boolean;
  v_read record;
  v_grace record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.oid = p.subscription_oid) THEN
    PERFORM steep_repl._init_fail(p.node, pg_catalog.format('subscription %s disappeared', p.subscription));
    RETURN;
  END IF;

  -- A sync or apply error fails the init, unless it is the source's outage: a worker whose
  -- connection the source dropped (a crash, a restart) or could not open counts an error too, and
  -- an unreachable source has source_timeout to come back. Such errors are forgiven while the
  -- source does not answer, and until a read of it sees it back (source_unreachable_since).
  -- (A reinit counts only the errors since it started: the subscription may have had some before.)
  SELECT s.apply_error_count + s.sync_error_count INTO v_raw_errors
  FROM pg_catalog.pg_stat_subscription_stats s WHERE s.subid = p.subscription_oid;
  -- Counts below the forgiven one were reset (a crash of this node clears the statistics):
  -- nothing of them is forgiven any more.
  v_errors := coalesce(v_raw_errors, 0) - greatest(coalesce((p.options->'reinit'->>'error_base')::bigint, 0),
                                                   CASE WHEN coalesce(v_raw_errors, 0) < p.errors_forgiven THEN 0 ELSE p.errors_forgiven END);
  IF v_errors > 0 THEN
    v_probe := steep_repl._probe(p.source_node);
    IF v_probe IS NOT NULL OR p.source_unreachable_since IS NOT NULL THEN
      -- The outage explains them: no blip watch goes on (it would hold SYNCHRONIZED back).
      UPDATE steep_repl.init_progress ip SET errors_forgiven = v_raw_errors,
        errors_seen_at = NULL, errors_seen = NULL, errors_grown_at = NULL,
        source_unreachable_since = coalesce(ip.source_unreachable_since, CASE WHEN v_probe IS NOT NULL THEN now END),
        message = CASE WHEN ip.source_unreachable_since IS NULL
                       THEN pg_catalog.format('source node %s unreachable: %s', p.source_node, v_probe) ELSE ip.message END,
        updated_at = now
      WHERE ip.node = p.node
      RETURNING * INTO p;
      IF v_probe IS NOT NULL THEN
        IF now - p.source_unreachable_since > p.source_timeout THEN
          PERFORM steep_repl._init_fail(p.node, pg_catalog.format('source node %s unreachable for more than %s: %s',
                                                                  p.source_node, p.source_timeout, v_probe));
        END IF;
        RETURN;
      END IF;
    ELSE
      -- The source answers. A worker that lost its connection in a blip of the network counts one
      -- error and goes on; a real error (a constraint, a missing column) comes back each time the
      -- worker is restarted. Errors that stop growing for the quiet period are forgiven; errors
      -- still growing past the grace fail the init.
      SELECT * INTO v_grace FROM steep_repl._init_error_grace();
      IF p.errors_seen_at IS NULL THEN
        UPDATE steep_repl.init_progress ip SET errors_seen_at = now, errors_seen = v_raw_errors, errors_grown_at = now,
          message = pg_catalog.format('subscription %s reported %s sync/apply error(s); watching whether they recur',
                                      p.subscription, v_errors), updated_at = now
        WHERE ip.node = p.node RETURNING * INTO p;
      ELSIF v_raw_errors > p.errors_seen THEN
        UPDATE steep_repl.init_progress ip SET errors_seen = v_raw_errors, errors_grown_at = now
        WHERE ip.node = p.node RETURNING * INTO p;
      END IF;
      IF now - p.errors_seen_at > v_grace.grace AND now - p.errors_grown_at <= v_grace.quiet THEN
        PERFORM steep_repl._init_fail(p.node, pg_catalog.format(
          'subscription %s reported %s sync/apply error(s), still recurring after %s; the error text is in the server log of node %s',
          p.subscription, v_errors, v_grace.grace, p.node));
        RETURN;
      ELSIF now - p.errors_grown_at > v_grace.quiet THEN
        UPDATE steep_repl.init_progress ip SET errors_forgiven = v_raw_errors, errors_seen_at = NULL, errors_seen = NULL,
          errors_grown_at = NULL, message = NULL, updated_at = now
        WHERE ip.node = p.node RETURNING * INTO p;
        INSERT INTO steep_repl.events (node, event, detail)
        VALUES (p.node, 'init.errors_forgiven', pg_catalog.jsonb_build_object('errors', v_errors,
                'reason', pg_catalog.format('no new sync/apply error for %s while the source answered', v_grace.quiet)));
      END IF;
    END IF;
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

  -- Rates over the rolling window (steep_repl._rate_eta: the same definition as snapshot_progress).
  INSERT INTO steep_repl.init_samples (node, at, rows_done, bytes_done) VALUES (p.node, now, v_rows, v_bytes)
  ON CONFLICT DO NOTHING;
  DELETE FROM steep_repl.init_samples s WHERE s.node = p.node AND s.at < now - interval '2 minutes';
  SELECT s.at, s.rows_done, s.bytes_done INTO v_then FROM steep_repl.init_samples s
  WHERE s.node = p.node AND s.at >= now - steep_repl._rate_window() AND s.at < now ORDER BY s.at LIMIT 1;
  v_rps := (steep_repl._rate_eta(v_rows, NULL, now, v_then.rows_done, v_then.at)).per_sec;
  SELECT r.per_sec, r.eta_seconds INTO v_bps, v_eta
  FROM steep_repl._rate_eta(v_bytes, p.bytes_total, now, v_then.bytes_done, v_then.at) r;

  UPDATE steep_repl.init_progress ip SET
    tables_done = v_done, rows_done = greatest(ip.rows_done, v_rows), bytes_done = greatest(ip.bytes_done, v_bytes),
    percent = greatest(ip.percent, pg_catalog.round(v_percent, 2)),
    current_tables = (SELECT coalesce(pg_catalog.array_agg(pg_catalog.format('%I.%I', t.schema_name, t.table_name)
                                      ORDER BY t.schema_name, t.table_name), '{}')
                      FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state = 'copying'),
    rows_per_sec = pg_catalog.round(v_rps, 1), bytes_per_sec = pg_catalog.round(v_bps),
    eta_seconds = CASE WHEN v_done = p.tables_total THEN 0 ELSE pg_catalog.round(v_eta) END,
    last_progress_at = CASE WHEN v_progressed THEN now ELSE ip.last_progress_at END,
    stalled_since = CASE WHEN v_progressed THEN NULL ELSE ip.stalled_since END,
    updated_at = now
  WHERE ip.node = p.node
  RETURNING * INTO p;

  -- No progress for stall_timeout: an init.stalled event (once per stall), and a look at the source.
  IF p.phase IN ('copying', 'reinitializing') AND p.stalled_since IS NULL AND now - p.last_progress_at > p.stall_timeout THEN
    UPDATE steep_repl.init_progress ip SET stalled_since = now WHERE ip.node = p.node;
    INSERT INTO steep_repl.events (node, event, detail)
    VALUES (p.node, 'init.stalled', pg_catalog.jsonb_build_object('since', p.last_progress_at, 'percent', p.percent,
            'current_tables', p.current_tables));
    p.stalled_since := now;
  END IF;
  -- The source is read (one dblink session: reachable? its WAL position and the slot's) at most
  -- every _source_read_interval(); between two reads the lag follows the subscription locally.
  -- A source seen unreachable is read too, even mid-copy: the read sees it back (or fails the
  -- init after source_timeout).
  IF p.stalled_since IS NOT NULL OR p.phase = 'catching_up' OR p.source_unreachable_since IS NOT NULL THEN
    SELECT * INTO v_read FROM steep_repl._tick_source_read(p, now);
    IF NOT v_read.reachable THEN
      RETURN;
    END IF;
  END IF;

  IF p.phase IN ('copying', 'reinitializing') AND v_done = p.tables_total THEN
    UPDATE steep_repl.init_progress ip SET copy_done_at = now, percent = 100, current_tables = '{}'
    WHERE ip.node = p.node;
    PERFORM steep_repl.transition(p.node, 'catching_up', pg_catalog.format('all %s tables copied', p.tables_total));
  ELSIF p.phase = 'catching_up' THEN
    UPDATE steep_repl.init_progress ip SET lag_bytes = v_read.lag_bytes
    WHERE ip.node = p.node AND ip.lag_bytes IS DISTINCT FROM v_read.lag_bytes;
    -- SYNCHRONIZED on a lag just read from the source, never on the estimate between reads.
    -- Not while sync/apply errors are watched: SYNCHRONIZED ends the watch.
    IF v_read.fresh AND v_read.lag_bytes IS NOT NULL AND v_read.lag_bytes <= p.lag_threshold_bytes
       AND p.errors_seen_at IS NULL AND NOT EXISTS (SELECT 1 FROM steep_repl.init_tables t WHERE t.node = p.node AND t.sync_state <> 'ready') THEN
      UPDATE steep_repl.init_progress ip SET synchronized_at = now, eta_seconds = 0
      WHERE ip.node = p.node;
      PERFORM steep_repl.transition(p.node, 'synchronized',
        pg_catalog.format('apply lag %s bytes <= %s', v_read.lag_bytes, p.lag_threshold_bytes));
      IF (p.options->>'verify')::boolean THEN
        PERFORM steep_repl.enqueue_job('init.verify', pg_catalog.jsonb_build_object('target', p.node), p.node);
      END IF;
    END IF;
  END IF;
END
$$;
COMMENT ON FUNCTION steep_repl._tick_init(steep_repl.init_progress, timestamptz) IS 'Internal: one progress sample and state step of one init.';

CREATE FUNCTION steep_repl._tick_inits(now timestamptz) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p steep_repl.init_progress;
  n integer := 0;
  v_job steep_repl.jobs;
BEGIN
  FOR p IN SELECT ip.* FROM steep_repl.init_progress ip JOIN steep_repl.nodes nd ON nd.name = ip.node
           WHERE ip.phase IN ('preparing', 'copying', 'catching_up', 'reinitializing') AND nd.init_state = ip.phase
           -- Lock order everywhere: the nodes row, then init_progress (cancel and the sidecar do the same).
           ORDER BY ip.node FOR UPDATE OF nd, ip SKIP LOCKED LOOP
    n := n + 1;
    -- A cancel under way removes the subscription on purpose: leave the init to it.
    IF EXISTS (SELECT 1 FROM steep_repl.jobs j
               WHERE j.kind = 'init.cancel' AND j.node = p.node AND j.state IN ('queued', 'running')) THEN
      CONTINUE;
    END IF;
    IF p.phase = 'preparing' OR (p.phase IN ('reinitializing', 'copying') AND p.subscription_oid IS NULL) THEN
      -- The sidecar's job owns PREPARING (a reinit until its tables are re-added, a fast init
      -- until it subscribes); if it ended without moving on, the init failed.
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
