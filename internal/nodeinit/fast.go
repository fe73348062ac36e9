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

// fastAttemptBound bounds one attempt of a fast init: it copies the whole database, so the
// automatic init's 90 s bound of a peer that does not answer would cut it short.
const fastAttemptBound = 7 * 24 * time.Hour

// fast runs init.fast, start_init's method fast, on the target. Each attempt starts over with
// a new slot and snapshot (what an earlier one copied is emptied): a killed sidecar's exported
// snapshot died with it. A transient failure of the source is retried as for init.start; a
// final failure re-creates the dropped indexes and constraints and moves the node to FAILED. A
// cancel leaves them to init.cancel, which rebuilds them on the emptied tables.
func fast(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	return runInit(ctx, job, initMethod{phases: []string{api.StatePreparing, api.StateCopying}, attempt: fastAttemptBound,
		step: fastAttempt, failed: restoreAfterFailure}, log)
}

// restoreAfterFailure empties what a failed fast init copied (a snapshot's half, useless without
// it, on which its foreign keys could not be validated) and re-creates what it dropped, before
// the node goes to FAILED.
func restoreAfterFailure(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) {
	if err := api.FastReset(ctx, job.DB, plan.Target); err != nil {
		log.Error("could not empty the tables of the failed init", "event", "init.fast_reset_failed", "error", err.Error())
	}
	if n, err := restoreObjects(ctx, job.DB, plan.Target, plan.Parallel, log); err != nil {
		log.Error("could not re-create the dropped indexes and constraints", "event", "init.fast_restore_failed", "error", err.Error())
	} else if n > 0 {
		log.Info("indexes and constraints re-created after the failure", "event", "init.fast_restored", "objects", n)
	}
}

// fastAttempt is one attempt: leftovers dropped, tables emptied and stripped of their indexes,
// the publication, the slot with its exported snapshot, the parallel copy, the indexes back, the
// subscription from the slot's LSN.
func fastAttempt(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
	started := time.Now()
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())
	if err := dropLeftovers(ctx, job.DB, src, plan, log); err != nil {
		return nil, err
	}
	if plan.Phase == api.StateCopying {
		// An earlier attempt (a killed sidecar, a lost source session) was copying: its exported
		// snapshot died with its session, so what it copied is emptied and the copy starts over.
		log.Warn("the previous attempt's snapshot is gone: starting over", "event", "init.fast_restarted")
		if err := api.RecordEvent(ctx, job.DB, plan.Target, "init.fast_restarted", map[string]any{"job": job.ID, "attempt": job.Attempt,
			"reason": "the exported snapshot of the previous attempt is gone with its session: tables emptied, new slot"}); err != nil {
			return nil, err
		}
	}
	if err := api.FastCopying(ctx, job.DB, plan.Target); err != nil {
		return nil, err
	}
	dropped, err := api.FastDropObjects(ctx, job.DB, plan.Target)
	if err != nil {
		return nil, err
	}
	log.Info("indexes and constraints dropped for the load", "event", "init.fast_objects_dropped", "objects", dropped)
	created, err := EnsurePublication(ctx, src, plan.Publication, plan.Tables)
	if err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	pubCreated := created || plan.PublicationCreated
	cfg, err := dbconn.PeerConfig(plan.SourceConninfo, "steep-repl fast init slot")
	if err != nil {
		return nil, fmt.Errorf("source node %s: %w", plan.Source, err)
	}
	slot, err := CreateExportedSlot(ctx, &cfg.Config, plan.SlotName, "steep-repl fast init slot", false)
	if err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, dbconn.RedactError(err, plan.SourceConninfo))
	}
	log.Info("slot created; snapshot exported", "event", "init.fast_slot_created", "slot", plan.SlotName, "lsn", slot.LSN)
	sub := api.Subscription{Name: plan.Subscription, Conninfo: plan.SourceConninfo, Publication: plan.Publication, Slot: plan.SlotName}
	origin, err := createDisabledSubscription(ctx, job.DB, sub, log)
	if err != nil {
		slot.Conn.Close(context.Background())
		return nil, err
	}
	copied, err := copyAll(ctx, job, plan, src, slot.Snapshot, origin, log)
	slot.Conn.Close(context.Background()) // the snapshot is no longer needed
	if err != nil {
		return nil, err
	}
	n, err := indexStep(ctx, job, plan, log)
	if err != nil {
		return nil, err
	}
	// The subscription exists, disabled: its origin, which the copied rows carry but whose
	// progress they did not move, goes to the slot's consistent point, then it is enabled.
	err = subscribeAt(ctx, job.DB, sub, slot.LSN, "init.fast", nil, log)
	if err != nil {
		return nil, err
	}
	_ = api.FastMessage(ctx, job.DB, plan.Target, "")
	if err := api.InitSubscribed(ctx, job.DB, plan.Target, pubCreated, plan.Parallel); err != nil {
		return nil, err
	}
	log.Info("fast init copied; catching up", "event", "init.fast_copied", "rows", copied.rows, "bytes", copied.bytes,
		"chunks", copied.chunks, "seconds", fmt.Sprintf("%.2f", time.Since(started).Seconds()))
	return map[string]any{"subscription": plan.Subscription, "lsn": slot.LSN, "rows": copied.rows, "bytes": copied.bytes,
		"chunks": copied.chunks, "indexes_restored": n}, nil
}

// indexStep is the indexing step: what was dropped for the load is re-created, its progress
// (objects done, weighted by their tables' bytes) in init_fast_indexing and the init's message.
func indexStep(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (int, error) {
	started := time.Now()
	total, err := api.FastIndexingStart(ctx, job.DB, plan.Target)
	if err != nil {
		return 0, err
	}
	settings, err := api.FastIndexSettings(ctx, job.DB, plan.Target)
	if err != nil {
		return 0, err
	}
	log.Info("indexing", "event", "init.fast_indexing", "objects", total, "maintenance_work_mem", settings.MaintenanceWorkMem,
		"max_parallel_maintenance_workers", settings.MaxParallelMaintenanceWorkers, "sessions", plan.Parallel)
	n, err := restoreObjects(ctx, job.DB, plan.Target, plan.Parallel, log)
	if err != nil {
		return n, err
	}
	log.Info("indexes and constraints re-created", "event", "init.fast_indexed", "objects", n,
		"seconds", fmt.Sprintf("%.2f", time.Since(started).Seconds()))
	return n, nil
}

// createDisabledSubscription creates the init's subscription on its slot, disabled, before
// the copy: the chunks commit under its replication origin, so the apply worker later sees the
// copied rows as its own (on 18, updating them is no update_origin_differs conflict). It
// returns the origin's name.
func createDisabledSubscription(ctx context.Context, db api.DB, sub api.Subscription, log *slog.Logger) (string, error) {
	sub.CopyData, sub.CreateSlot, sub.Disabled = false, false, true
	if err := api.CreateSubscription(ctx, db, sub); err != nil {
		return "", err
	}
	oid, _, err := api.SubscriptionState(ctx, db, sub.Name)
	if err != nil {
		return "", err
	}
	log.Info("subscription created (disabled)", "event", "init.fast.subscription_created", "subscription", sub.Name, "slot", sub.Slot)
	return fmt.Sprintf("pg_%d", oid), nil
}

// errNoTables is a plan with nothing to copy (start_init refuses one).
var errNoTables = errors.New("the fast init has no tables")
