package runner

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/internal/api"
)

// execute runs one claimed job with a heartbeat beside it and reports its outcome. Past its
// kind's time limit the job's context is cancelled (a *TimeLimitError) and, once the handler
// has returned, the job is finished as failed.
func (r *Runner) execute(jobsCtx context.Context, pool *pgxpool.Pool, job *Job) {
	log := r.log.With("job", job.ID, "kind", job.Kind, "attempt", job.Attempt)
	log.Info("job started", "event", "job.start")
	started := time.Now()

	ctx, cancel := context.WithCancelCause(jobsCtx)
	defer cancel(nil)
	limit := r.timeLimit(job.Kind)
	if limit > 0 {
		t := time.AfterFunc(limit, func() { cancel(&TimeLimitError{Job: job.ID, Kind: job.Kind, Limit: limit}) })
		defer t.Stop()
	}
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		r.heartbeat(ctx, cancel, pool, job, log)
	}()

	result, err := r.callHandler(ctx, job)
	cause := context.Cause(ctx)
	cancel(context.Canceled) // stop the heartbeat before finishing
	<-hbDone

	// Finishing must not depend on the job's (possibly cancelled) context.
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	elapsed := time.Since(started).Round(time.Millisecond).String()
	switch {
	case errors.Is(cause, ErrLeaseLost):
		log.Warn("job abandoned: lease lost", "event", "job.lease_lost", "elapsed", elapsed)
	case errors.Is(cause, ErrTimeLimit):
		state := r.finish(fctx, pool, job, api.OutcomeFailed, result, cause.Error(), log)
		log.Warn("job exceeded its time limit", "event", "job.time_limit", "error", cause.Error(),
			"time_limit", limitString(limit), "state", state, "elapsed", elapsed)
	case errors.Is(cause, ErrCancelRequested):
		r.finish(fctx, pool, job, api.OutcomeCancelled, nil, "cancelled on request", log)
		log.Info("job cancelled", "event", "job.cancelled", "elapsed", elapsed)
	case errors.Is(cause, ErrShutdown) && err != nil:
		if rerr := api.ReleaseJob(fctx, pool, job.ID, r.cfg.Worker); rerr != nil {
			log.Error("release failed; the lease will expire", "event", "job.release_failed", "error", rerr.Error())
			return
		}
		log.Info("job released for another sidecar", "event", "job.released", "elapsed", elapsed)
	case err == nil:
		r.finish(fctx, pool, job, api.OutcomeSucceeded, result, "", log)
		log.Info("job succeeded", "event", "job.succeeded", "elapsed", elapsed)
	default:
		outcome := api.OutcomeFailed
		var re retryable
		if errors.As(err, &re) {
			outcome = api.OutcomeRetry
		}
		state := r.finish(fctx, pool, job, outcome, result, err.Error(), log)
		log.Warn("job failed", "event", "job.failed", "error", err.Error(), "state", state, "elapsed", elapsed)
	}
}

// callHandler turns a handler panic into a job error instead of a dead sidecar.
func (r *Runner) callHandler(ctx context.Context, job *Job) (result map[string]any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("handler panicked: " + toString(p))
		}
	}()
	return r.cfg.Handlers[job.Kind](ctx, job)
}

func (r *Runner) finish(ctx context.Context, pool *pgxpool.Pool, job *Job, outcome string, result map[string]any, errText string, log *slog.Logger) string {
	state, err := api.FinishJob(ctx, pool, job.ID, r.cfg.Worker, outcome, result, errText)
	if err != nil {
		log.Error("could not record the job's outcome; its lease will expire and it will be retried",
			"event", "job.finish_failed", "outcome", outcome, "error", err.Error())
	}
	return state
}

// maxHeartbeatEvery bounds how long a cancel request waits to be seen: a DBA's cancel_init must
// stop a job within seconds, whatever the lease.
const maxHeartbeatEvery = 2 * time.Second

// heartbeat extends the lease every Lease/3 (at most every maxHeartbeatEvery) until ctx ends; it
// cancels the job when a cancel is requested or the lease is lost. Transient errors are retried
// until the lease would expire.
func (r *Runner) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, pool *pgxpool.Pool, job *Job, log *slog.Logger) {
	every := min(r.cfg.Lease/3, maxHeartbeatEvery)
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, hcancel := context.WithTimeout(ctx, every)
		cancelRequested, err := api.HeartbeatJob(hctx, pool, job.ID, r.cfg.Worker, r.cfg.Lease, job.takeCheckpoint())
		hcancel()
		switch {
		case err == nil:
			lastOK = time.Now()
			if cancelRequested {
				log.Info("cancel requested", "event", "job.cancel_requested")
				cancel(ErrCancelRequested)
				return
			}
		case api.SQLState(err) == "55000":
			cancel(ErrLeaseLost)
			return
		case ctx.Err() != nil:
			return
		default:
			log.Warn("heartbeat failed", "event", "job.heartbeat_failed", "error", err.Error())
			if time.Since(lastOK) > r.cfg.Lease {
				cancel(ErrLeaseLost)
				return
			}
		}
	}
}
