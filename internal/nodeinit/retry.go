package nodeinit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/runner"
)

// Retrying the steps of a job that talks to a peer: a transient failure (dbconn.Transient: the
// source refused, reset or timed out) is tried again with a capped backoff, inside the same job
// so its heartbeat goes on and a cancel ends the wait at once, until the init's source_timeout
// has passed since the first failure. Each retry is an event and one log line.

// retryPolicy bounds the retries of one job.
type retryPolicy struct {
	Timeout time.Duration // how long after the first failure transient failures are retried
	First   time.Duration // the first wait; it doubles up to Max
	Max     time.Duration
	Attempt time.Duration // bound of one attempt: a peer that accepts and never answers is a transient failure
}

// defaultSourceTimeout is start_init's source_timeout default, for a plan that does not say.
const defaultSourceTimeout = 60 * time.Second

func policyFor(plan *api.InitPlan) retryPolicy {
	timeout := defaultSourceTimeout
	if plan.SourceTimeout > 0 {
		timeout = time.Duration(plan.SourceTimeout * float64(time.Second))
	}
	return retryPolicy{Timeout: timeout, First: time.Second, Max: 5 * time.Second, Attempt: 90 * time.Second}
}

// retryState is what a retried job keeps in its checkpoint, so a job a restarted sidecar
// resumes keeps the first failure's time and the count.
type retryState struct {
	FirstFailure time.Time
	Attempts     int
}

func retryStateOf(job *runner.Job) retryState {
	var s retryState
	if cp, ok := job.Checkpoint["retry"].(map[string]any); ok {
		if at, ok := cp["first_failure"].(string); ok {
			s.FirstFailure, _ = time.Parse(time.RFC3339Nano, at)
		}
		if n, ok := cp["attempts"].(float64); ok {
			s.Attempts = int(n)
		}
	}
	return s
}

func (s retryState) checkpoint() map[string]any {
	return map[string]any{"retry": map[string]any{"first_failure": s.FirstFailure.Format(time.RFC3339Nano), "attempts": s.Attempts}}
}

// GaveUpError is the last transient failure of a job whose retries ran out of time.
type GaveUpError struct {
	Err      error
	Attempts int
	Elapsed  time.Duration
	Timeout  time.Duration
}

func (e *GaveUpError) Error() string {
	return fmt.Sprintf("%v (failed %d attempts over %s; source_timeout %s)", e.Err, e.Attempts,
		e.Elapsed.Round(time.Second), e.Timeout)
}
func (e *GaveUpError) Unwrap() error { return e.Err }

// withRetries runs step until it succeeds, fails permanently, ctx ends, or transient failures
// have gone on for pol.Timeout since the first one (then a *GaveUpError). event names the
// retry's event and log line (init.retry), recorded on node with detail about the source.
func withRetries(ctx context.Context, job *runner.Job, pol retryPolicy, node, source, event string, log *slog.Logger,
	step func(context.Context) (map[string]any, error)) (map[string]any, error) {
	st := retryStateOf(job)
	for {
		actx, cancel := context.WithTimeoutCause(ctx, pol.Attempt,
			fmt.Errorf("source node %s: no answer within %s", source, pol.Attempt))
		res, err := step(actx)
		if err != nil && ctx.Err() == nil && actx.Err() != nil {
			err = fmt.Errorf("%w: %w", context.Cause(actx), err) // our own bound: the peer did not answer
		}
		cancel()
		if err == nil || ctx.Err() != nil || !dbconn.Transient(err) {
			return res, err
		}
		now := time.Now()
		if st.Attempts == 0 || st.FirstFailure.IsZero() {
			st.FirstFailure = now
		}
		st.Attempts++
		elapsed := now.Sub(st.FirstFailure)
		if elapsed >= pol.Timeout {
			return nil, &GaveUpError{Err: err, Attempts: st.Attempts, Elapsed: elapsed, Timeout: pol.Timeout}
		}
		wait := min(backoff(pol, st.Attempts), pol.Timeout-elapsed)
		job.SetCheckpoint(st.checkpoint())
		log.Warn("transient failure; retrying", "event", event, "attempt", st.Attempts, "error", err.Error(),
			"retry_in", wait.Round(time.Millisecond).String(), "failing_for", elapsed.Round(time.Millisecond).String())
		if rerr := api.RecordEvent(ctx, job.DB, node, event, map[string]any{"job": job.ID, "source": source,
			"attempt": st.Attempts, "error": err.Error(), "retry_in_ms": wait.Milliseconds(),
			"failing_for_ms": elapsed.Milliseconds()}); rerr != nil && ctx.Err() == nil {
			log.Error("could not record the retry", "event", event+"_record_failed", "error", rerr.Error())
		}
		select {
		case <-ctx.Done(): // a cancel request, a lost lease or a shutdown: at once
			return nil, context.Cause(ctx)
		case <-time.After(wait):
		}
	}
}

// backoff is the wait after the n-th failure: First doubling, at most Max.
func backoff(pol retryPolicy, n int) time.Duration {
	d := pol.First
	for i := 1; i < n && d < pol.Max; i++ {
		d *= 2
	}
	return min(d, pol.Max)
}
