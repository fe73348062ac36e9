package nodeinit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

// start runs init.start, the automatic init (runInit: retries, FAILED with the reason).
func start(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	return runInit(ctx, job, initMethod{phases: []string{api.StatePreparing}, step: subscribe}, log)
}

// initMethod is what a way of filling a node from a source does inside runInit.
type initMethod struct {
	phases  []string      // the init states the job acts in; in any other it is skipped
	attempt time.Duration // bound of one attempt (0: policyFor's)
	step    func(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error)
	failed  func(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) // before FAILED is recorded; nil: nothing
}

// runInit runs an init job. A transient failure (the source refused, reset or timed out) is
// retried with backoff until the init's source_timeout has passed since the first one; then,
// or at once for a permanent failure, m.failed runs and the node goes to FAILED with the error
// as the reason (the DBA retries with start_init). A cancel leaves the clean-up to init.cancel.
func runInit(ctx context.Context, job *runner.Job, m initMethod, log *slog.Logger) (map[string]any, error) {
	target, err := targetOf(job)
	if err != nil {
		return nil, err
	}
	skipped := map[string]any{"skipped": "the init is no longer " + strings.Join(m.phases, " or ")}
	plan, err := api.GetInitPlan(ctx, job.DB, target)
	if err != nil {
		return nil, err
	}
	if plan == nil || !slices.Contains(m.phases, plan.Phase) {
		return skipped, nil
	}
	log = log.With("node", target, "source", plan.Source, "job", job.ID)
	pol := policyFor(plan)
	if m.attempt > 0 {
		pol.Attempt = m.attempt
	}
	res, err := withRetries(ctx, job, pol, target, plan.Source, "init.retry", log,
		func(ctx context.Context) (map[string]any, error) {
			// Read again: a retry must see a cancel, and what an earlier attempt recorded.
			plan, err := api.GetInitPlan(ctx, job.DB, target)
			if err != nil {
				return nil, err
			}
			if plan == nil || !slices.Contains(m.phases, plan.Phase) {
				return skipped, nil
			}
			return m.step(ctx, job, plan, log)
		})
	if err != nil && ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if m.failed != nil {
			m.failed(fctx, job, plan, log)
		}
		if ferr := api.InitFailed(fctx, job.DB, target, err.Error()); ferr != nil {
			log.Error("could not record the init failure", "event", "init.fail_record_failed", "error", ferr.Error())
		}
	}
	return res, err
}

// subscribe performs the PREPARING steps of an automatic init; each is idempotent so a retried job resumes.
func subscribe(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())

	if err := dropLeftovers(ctx, job.DB, src, plan, log); err != nil {
		return nil, err
	}

	created, err := EnsurePublication(ctx, src, plan.Publication, plan.Tables)
	if err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	log.Info("publication ready on the source", "event", "init.publication_ready", "publication", plan.Publication, "created", created)

	workers, err := api.SetSyncWorkers(ctx, job.DB, plan.Parallel)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if err := api.CreateSubscription(ctx, job.DB, api.Subscription{Name: plan.Subscription, Conninfo: plan.SourceConninfo,
		Publication: plan.Publication, Slot: plan.SlotName, CopyData: true, CreateSlot: true}); err != nil {
		return nil, err
	}
	if err := api.InitSubscribed(ctx, job.DB, plan.Target, created || plan.PublicationCreated, workers); err != nil {
		return nil, err
	}
	log.Info("subscription created; copying", "event", "init.subscribed", "subscription", plan.Subscription, "parallel", workers)
	return map[string]any{"subscription": plan.Subscription, "publication": plan.Publication, "parallel": workers}, nil
}
