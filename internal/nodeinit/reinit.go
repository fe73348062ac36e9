package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

// reinit runs reinit.start (start_reinit): the tables in scope leave the node's publication on
// the source and the subscription (their changes stop being applied), are emptied here as their
// owners, then go back into the publication and the subscription is refreshed with copy_data,
// so table-sync workers copy them again and hand them to the apply worker at the right LSN.
// Every other table keeps replicating. tick() follows the copy to CATCHING_UP and SYNCHRONIZED.
// Each step is idempotent, so a retried job resumes; the last attempt's failure moves the node
// to FAILED, naming the tables.
func reinit(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	target, err := targetOf(job)
	if err != nil {
		return nil, err
	}
	plan, err := api.GetInitPlan(ctx, job.DB, target)
	if err != nil {
		return nil, err
	}
	if plan == nil || plan.Phase != api.StateReinitializing || plan.Reinit == nil {
		return map[string]any{"skipped": "the node is no longer reinitializing"}, nil
	}
	log = log.With("node", target, "source", plan.Source, "job", job.ID)
	res, err := reinitSteps(ctx, job, plan, log)
	if err != nil {
		err = runner.Classify(err)
	}
	// A cancel request leaves the node to init.cancel, which needs it REINITIALIZING.
	if err != nil && runner.FinalAttempt(ctx, job, err) && !errors.Is(context.Cause(ctx), runner.ErrCancelRequested) {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ferr := api.InitFailed(fctx, job.DB, target, "reinit: "+err.Error()); ferr != nil {
			log.Error("could not record the reinit failure", "event", "reinit.fail_record_failed", "error", ferr.Error())
		}
	}
	return res, err
}

func reinitSteps(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())
	if plan.Reinit.Full {
		return reinitFull(ctx, job, src, plan, log)
	}
	if !plan.Reinit.Truncated {
		if err := unpublish(ctx, src, plan, log); err != nil {
			return nil, err
		}
		if err := api.RefreshSubscription(ctx, job.DB, plan.Subscription, true); err != nil {
			return nil, err
		}
		if err := api.ReinitTruncate(ctx, job.DB, plan.Target); err != nil {
			return nil, err
		}
		log.Info("reinit tables out of the subscription and emptied", "event", "reinit.truncated", "tables", len(plan.Tables))
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	missing, err := unpublished(ctx, src, plan)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		if err := api.AlterPublicationAddTables(ctx, src, plan.Publication, missing); err != nil {
			return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
		}
	}
	workers, err := api.SetSyncWorkers(ctx, job.DB, plan.Parallel)
	if err != nil {
		return nil, err
	}
	if err := api.RefreshSubscription(ctx, job.DB, plan.Subscription, true); err != nil {
		return nil, err
	}
	if err := api.ReinitCopying(ctx, job.DB, plan.Target, workers); err != nil {
		return nil, err
	}
	log.Info("reinit tables subscribed again; copying", "event", "reinit.copying", "tables", len(plan.Tables), "parallel", workers)
	return map[string]any{"subscription": plan.Subscription, "publication": plan.Publication, "tables": len(plan.Tables), "parallel": workers}, nil
}

// reinitFull runs a full reinit as a new automatic init with the node's last options: the
// subscription is dropped (DROP SUBSCRIPTION drops its slot on the source), the tables are
// emptied as their owners, the publication is made to hold them and a new subscription with
// copy_data copies them all; tick() follows it like a partial reinit. A retried job resumes:
// once the tables are emptied the old subscription is gone, so one that exists is this
// reinit's own (a sidecar killed after creating it) and is kept.
func reinitFull(ctx context.Context, job *runner.Job, src *pgx.Conn, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
	if !plan.Reinit.Truncated {
		if err := api.DropSubscription(ctx, job.DB, plan.Subscription); err != nil {
			return nil, err
		}
		if err := dropInitSlots(ctx, src, plan, log); err != nil {
			return nil, err
		}
		if err := api.ReinitTruncate(ctx, job.DB, plan.Target); err != nil {
			return nil, err
		}
		log.Info("full reinit: subscription dropped and tables emptied", "event", "reinit.truncated",
			"subscription", plan.Subscription, "tables", len(plan.Tables))
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if _, err := EnsurePublication(ctx, src, plan.Publication, plan.Tables); err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	workers, err := api.SetSyncWorkers(ctx, job.DB, plan.Parallel)
	if err != nil {
		return nil, err
	}
	exists, err := api.SubscriptionExists(ctx, job.DB, plan.Subscription)
	if err != nil {
		return nil, err
	}
	if !exists {
		// A slot left by a create that failed half-way would make the new one collide.
		if err := dropInitSlots(ctx, src, plan, log); err != nil {
			return nil, err
		}
		if err := api.CreateSubscription(ctx, job.DB, api.Subscription{Name: plan.Subscription, Conninfo: plan.SourceConninfo,
			Publication: plan.Publication, Slot: plan.SlotName, CopyData: true, CreateSlot: true}); err != nil {
			return nil, err
		}
	}
	if err := api.ReinitCopying(ctx, job.DB, plan.Target, workers); err != nil {
		return nil, err
	}
	log.Info("full reinit: subscribed again; copying", "event", "reinit.copying", "subscription", plan.Subscription,
		"tables", len(plan.Tables), "parallel", workers)
	return map[string]any{"subscription": plan.Subscription, "publication": plan.Publication, "tables": len(plan.Tables),
		"parallel": workers, "full": true}, nil
}

// unpublish takes the plan's tables that are still in the publication out of it.
func unpublish(ctx context.Context, src *pgx.Conn, plan *api.InitPlan, log *slog.Logger) error {
	published, err := api.PublicationTables(ctx, src, plan.Publication)
	if err != nil {
		return fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	in := map[api.TableName]bool{}
	for _, t := range published {
		in[t] = true
	}
	var drop []api.TableName
	for _, t := range plan.Tables {
		if in[t] {
			drop = append(drop, t)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	if err := api.AlterPublicationDropTables(ctx, src, plan.Publication, drop); err != nil {
		return fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	log.Info("reinit tables out of the publication", "event", "reinit.unpublished", "publication", plan.Publication, "tables", len(drop))
	return nil
}

// unpublished returns the plan's tables the publication lacks.
func unpublished(ctx context.Context, src *pgx.Conn, plan *api.InitPlan) ([]api.TableName, error) {
	published, err := api.PublicationTables(ctx, src, plan.Publication)
	if err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	return missingTables(plan.Tables, published), nil
}

// missingTables returns the tables of want that have lacks.
func missingTables(want, have []api.TableName) []api.TableName {
	in := map[api.TableName]bool{}
	for _, t := range have {
		in[t] = true
	}
	var out []api.TableName
	for _, t := range want {
		if !in[t] {
			out = append(out, t)
		}
	}
	return out
}

// cancelReinit runs init.cancel for a reinit under way: its tables leave the publication and
// the subscription (the other tables keep replicating), SQL empties them and makes the node
// DIVERGED, naming them.
func cancelReinit(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())
	if err := unpublish(ctx, src, plan, log); err != nil {
		return nil, err
	}
	// A full reinit may have dropped the subscription already: nothing to refresh then.
	if exists, err := api.SubscriptionExists(ctx, job.DB, plan.Subscription); err != nil {
		return nil, err
	} else if exists {
		if err := api.RefreshSubscription(ctx, job.DB, plan.Subscription, true); err != nil {
			return nil, err
		}
	}
	detail := map[string]any{"unpublished": len(plan.Tables), "publication": plan.Publication}
	if err := api.ReinitCancelled(ctx, job.DB, plan.Target, detail); err != nil {
		return nil, err
	}
	log.Info("reinit cancelled", "event", "reinit.cancelled", "detail", detail)
	return detail, nil
}
