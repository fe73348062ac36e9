package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/runner"
)

// cancel runs init.cancel: wait for init.start to stop, drop the subscription (and with it
// its slots on the source), any slot left behind, the publication if this init created it,
// then let SQL truncate the tables and reset the state.
func cancel(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	res, err := cancelSteps(ctx, job, log)
	if err != nil {
		// A cancel must end in UNINITIALIZED: every failure is worth another attempt.
		return nil, runner.Retryable(err)
	}
	return res, nil
}

func cancelSteps(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	target, err := targetOf(job)
	if err != nil {
		return nil, err
	}
	log = log.With("node", target, "job", job.ID)
	if err := waitForStartJobs(ctx, job, target); err != nil {
		return nil, err
	}
	detail := map[string]any{}
	plan, err := api.GetInitPlan(ctx, job.DB, target)
	if err != nil {
		return nil, err
	}
	if plan != nil && plan.Reinit != nil && plan.Phase == api.StateReinitializing {
		return cancelReinit(ctx, job, plan, log)
	}
	if plan != nil {
		if err := teardown(ctx, job, plan, detail, log); err != nil {
			return nil, err
		}
	}
	if err := api.InitCancelled(ctx, job.DB, target, detail); err != nil {
		return nil, err
	}
	log.Info("init cancelled", "event", "init.cancelled", "detail", detail)
	return detail, nil
}

func waitForStartJobs(ctx context.Context, job *runner.Job, target string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := api.ActiveInitStartJobs(ctx, job.DB, target)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the init.start job of %s is still running", target)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func teardown(ctx context.Context, job *runner.Job, plan *api.InitPlan, detail map[string]any, log *slog.Logger) error {
	src, srcErr := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if srcErr == nil {
		defer src.Close(context.Background())
	}
	if err := cancelMerge(ctx, job, plan, src, detail, log); err != nil { // a merge's own links; nothing otherwise
		return err
	}
	exists, err := api.SubscriptionExists(ctx, job.DB, plan.Subscription)
	if err != nil {
		return err
	}
	if exists {
		if err := api.DropSubscription(ctx, job.DB, plan.Subscription); err != nil {
			// The source is unreachable: detach the slot so the subscription can go, and say
			// which slots are left on the source (they hold WAL there until dropped).
			log.Warn("could not drop the subscription with its slot; detaching it", "event", "init.detach_subscription",
				"error", dbconn.RedactError(err, plan.SourceConninfo).Error())
			if derr := api.DetachSubscription(ctx, job.DB, plan.Subscription); derr != nil {
				return derr
			}
			if derr := api.DropSubscription(ctx, job.DB, plan.Subscription); derr != nil {
				return derr
			}
		}
		detail["subscription_dropped"] = plan.Subscription
	}
	if srcErr != nil {
		detail["source_cleanup_pending"] = fmt.Sprintf("source node %s unreachable (%s): drop slot %s (and any pg_%%_sync_%% slot of it) and publication %s there by hand",
			plan.Source, errors.Unwrap(srcErr).Error(), plan.SlotName, plan.Publication)
		return nil
	}
	if err := dropInitSlots(ctx, src, plan, log); err != nil {
		return err
	}
	if plan.PublicationCreated {
		if err := api.DropPublication(ctx, src, plan.Publication); err != nil {
			return fmt.Errorf("on source node %s: %w", plan.Source, err)
		}
		detail["publication_dropped"] = plan.Publication
	}
	return nil
}
