package autoinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/runner"
)

// Handlers returns the job handlers of automatic init.
func Handlers(log *slog.Logger) map[string]runner.Handler {
	return map[string]runner.Handler{
		"init.start":  func(ctx context.Context, job *runner.Job) (map[string]any, error) { return start(ctx, job, log) },
		"init.cancel": func(ctx context.Context, job *runner.Job) (map[string]any, error) { return cancel(ctx, job, log) },
	}
}

func targetOf(job *runner.Job) (string, error) {
	target, _ := job.Args["target"].(string)
	if target == "" {
		return "", errors.New("job args lack the target node")
	}
	return target, nil
}

// start runs init.start. A failure moves the node to FAILED with the error as the reason
// (the DBA retries with start_init); a cancel leaves the clean-up to init.cancel.
func start(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	target, err := targetOf(job)
	if err != nil {
		return nil, err
	}
	plan, err := api.GetInitPlan(ctx, job.DB, target)
	if err != nil {
		return nil, err
	}
	if plan == nil || plan.Phase != api.StatePreparing {
		return map[string]any{"skipped": "the init is no longer preparing"}, nil
	}
	log = log.With("node", target, "source", plan.Source, "job", job.ID)
	res, err := subscribe(ctx, job, plan, log)
	if err != nil && ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ferr := api.InitFailed(fctx, job.DB, target, err.Error()); ferr != nil {
			log.Error("could not record the init failure", "event", "init.fail_record_failed", "error", ferr.Error())
		}
	}
	return res, err
}

// subscribe performs the PREPARING steps; each is idempotent so a retried job resumes.
func subscribe(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
	src, err := pgx.Connect(ctx, plan.SourceConninfo)
	if err != nil {
		return nil, fmt.Errorf("connect to source node %s: %w", plan.Source, dbconn.RedactError(err, plan.SourceConninfo))
	}
	defer src.Close(context.Background())

	// Leftovers of a failed attempt: its subscription (DROP also drops its slots on the source).
	if exists, err := api.SubscriptionExists(ctx, job.DB, plan.Subscription); err != nil {
		return nil, err
	} else if exists {
		if err := api.DropSubscription(ctx, job.DB, plan.Subscription); err != nil {
			return nil, fmt.Errorf("the subscription left by a previous attempt: %w", err)
		}
		log.Info("dropped the subscription of a previous attempt", "event", "init.leftover_dropped", "subscription", plan.Subscription)
	}
	if err := dropSlots(ctx, src, plan, log); err != nil {
		return nil, err
	}

	created, err := ensurePublication(ctx, src, plan)
	if err != nil {
		return nil, err
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

// ensurePublication creates the init's publication for exactly its tables, or makes an
// existing one of that name publish exactly them; it reports whether it created it.
func ensurePublication(ctx context.Context, src *pgx.Conn, plan *api.InitPlan) (bool, error) {
	exists, err := api.PublicationExists(ctx, src, plan.Publication)
	if err != nil {
		return false, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	if exists {
		err = api.SetPublicationTables(ctx, src, plan.Publication, plan.Tables)
	} else {
		err = api.CreatePublication(ctx, src, plan.Publication, plan.Tables)
	}
	if err != nil {
		return false, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	return !exists, nil
}
