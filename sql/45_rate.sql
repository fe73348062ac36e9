-- Rates and ETAs: the one definition behind every progress row (init_progress, sampled by
-- tick() into init_samples; snapshot_progress, sampled by _snapshot_progress_set into
-- snapshot_samples). A rate runs from the oldest sample of the last _rate_window() before
-- now to now; callers hand that sample to _rate_eta.

CREATE FUNCTION steep_repl._rate_window() RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT interval '10 seconds'
$$;
COMMENT ON FUNCTION steep_repl._rate_window() IS
  'Internal: the rolling window rates are measured over (10 s): from the oldest sample in it to now.';

-- per_sec: (done - since_done) per second since `since`, never negative; NULL without a
-- sample at least 200 ms old. eta_seconds: 0 when nothing is left (done >= total), the
-- seconds left at per_sec when it is above 0, else NULL (a NULL total gives a NULL ETA).
CREATE FUNCTION steep_repl._rate_eta(done bigint, total bigint, now timestamptz, since_done bigint, since timestamptz,
  OUT per_sec numeric, OUT eta_seconds numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT r.per_sec,
         CASE WHEN total - done <= 0 THEN 0
              WHEN r.per_sec > 0 THEN (total - done) / r.per_sec END
  FROM (SELECT CASE WHEN now - since >= interval '200 milliseconds'
                    THEN greatest(0, (done - since_done) / extract(epoch FROM now - since)) END AS per_sec) r
$$;
COMMENT ON FUNCTION steep_repl._rate_eta(bigint, bigint, timestamptz, bigint, timestamptz) IS
  'Internal: the rate of done since an earlier sample (since_done at since; NULL when none or under 200 ms old) and the ETA to total at that rate (0 when done >= total, NULL when unknown).';
