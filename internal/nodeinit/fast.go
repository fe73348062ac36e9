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

// fastAttemptBound bounds one attempt of a fast init: it copies the whole database, so the
// automatic init's 90 s bound of a peer that does not answer would cut it short.
const fastAttemptBound = 7 * 24 * time.Hour

// fast runs init.fast, start_init's method fast, on the target. Each attempt starts over with
// a new slot and snapshot (what an earlier one copied is emptied): a killed sidecar's exported
// snapshot died with it. A transient failure of the source is retried as for init.start; a
// final failure re-creates the dropped indexes and constraints and moves the node to FAILED. A
// cancel leaves them to init.cancel, which rebuilds them on the emptied tables.
func fast(ctx context.Context, job *runner.Job, holderIdle time.Duration, log *slog.Logger) (map[string]any, error) {
	step := func(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
		return fastAttempt(ctx, job, plan, holderIdle, log)
	}
	return runInit(ctx, job, initMethod{phases: []string{api.StatePreparing, api.StateCopying}, attempt: fastAttemptBound,
		step: step, failed: restoreAfterFailure}, log)
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

// fastAttempt is one attempt: when the previous attempt's copy is in (killed while indexing),
// the indexing step resumed; else a resumed copy of what is missing when the previous attempt's
// snapshot holder lives, or leftovers dropped, tables emptied and stripped of their indexes,
// the publication, the slot with its exported snapshot (held by steep-repl hold-snapshot), the
// subscription created disabled, and the parallel copy. Then the indexes back, the
// subscription enabled from the slot's LSN.
func fastAttempt(ctx context.Context, job *runner.Job, plan *api.InitPlan, holderIdle time.Duration, log *slog.Logger) (map[string]any, error) {
	started := time.Now()
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())
	sub := api.Subscription{Name: plan.Subscription, Conninfo: plan.SourceConninfo, Publication: plan.Publication, Slot: plan.SlotName}
	ld, err := resumeIndexing(ctx, job, plan, sub, log)
	if err != nil {
		return nil, err
	}
	if ld.lsn == "" {
		if ld, err = loadTables(ctx, job, plan, src, sub, holderIdle, log); err != nil {
			return nil, err
		}
	}
	created, err := EnsurePublication(ctx, src, plan.Publication, plan.Tables)
	if err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	n, err := indexStep(ctx, job, plan, ld.objects, log)
	if err != nil {
		return nil, err
	}
	// The subscription exists, disabled: its origin, which the copied rows carry but whose
	// progress they did not move, goes to the slot's consistent point, then it is enabled.
	err = subscribeAt(ctx, job.DB, sub, ld.lsn, "init.fast", nil, log)
	if err != nil {
		return nil, err
	}
	_ = api.FastMessage(ctx, job.DB, plan.Target, "")
	if err := api.InitSubscribed(ctx, job.DB, plan.Target, created || plan.PublicationCreated, plan.Parallel); err != nil {
		return nil, err
	}
	log.Info("fast init copied; catching up", "event", "init.fast_copied", "rows", ld.copied.rows, "bytes", ld.copied.bytes,
		"chunks", ld.copied.chunks, "seconds", fmt.Sprintf("%.2f", time.Since(started).Seconds()))
	return map[string]any{"subscription": plan.Subscription, "lsn": ld.lsn, "resumed": ld.resumed != "", "resumed_at": ld.resumed,
		"rows": ld.copied.rows, "bytes": ld.copied.bytes, "chunks": ld.copied.chunks, "indexes_restored": n}, nil
}

// loaded is a copy that is in: the slot's consistent LSN its subscription starts from, how
// this attempt got it (resumed: "" copied from scratch, "copy" resumed, "indexing" copied by
// an earlier attempt, "subscribed" copied, indexed and subscribed by one), what it copied, and
// how many objects are left to re-create.
type loaded struct {
	lsn, resumed string
	copied       copied
	objects      int
}

// loadTables copies the tables: the chunks not committed when the previous attempt's holder
// lives, else everything from a new slot's snapshot. Once all are in, one transaction records
// the LSN, releases the holder (the snapshot is no longer needed) and starts the indexing step.
func loadTables(ctx context.Context, job *runner.Job, plan *api.InitPlan, src *pgx.Conn, sub api.Subscription,
	holderIdle time.Duration, log *slog.Logger) (loaded, error) {
	holder, origin, resumed, err := resumeCopy(ctx, job, plan, src, sub, log)
	if err != nil {
		return loaded{}, err
	}
	if !resumed {
		if holder, origin, err = freshCopy(ctx, job, plan, src, sub, holderIdle, log); err != nil {
			return loaded{}, err
		}
	}
	ld := loaded{lsn: holder.LSN}
	if resumed {
		ld.resumed = "copy"
	}
	started := time.Now()
	if ld.copied, err = copyAll(ctx, job, plan, src, holder.Snapshot, origin, log); err != nil {
		return loaded{}, err // the holder keeps the snapshot: a retried attempt resumes
	}
	log.Info("every chunk copied", "event", "init.fast_loaded", "rows", ld.copied.rows, "bytes", ld.copied.bytes,
		"chunks", ld.copied.chunks, "seconds", fmt.Sprintf("%.2f", time.Since(started).Seconds()))
	if ld.objects, err = api.FastLoaded(ctx, job.DB, plan.Target, holder.LSN); err != nil {
		return loaded{}, err
	}
	return ld, nil
}

// resumeIndexing finds whether the previous attempt's copy is in (it was cut short while
// re-creating indexes): the init is COPYING with the slot's LSN recorded and its subscription
// there, disabled. Then the attempt goes on re-creating only what is still recorded (each
// object is forgotten in the transaction that re-creates it), and records init.fast_indexing_resumed.
func resumeIndexing(ctx context.Context, job *runner.Job, plan *api.InitPlan, sub api.Subscription, log *slog.Logger) (loaded, error) {
	if plan.Phase != api.StateCopying {
		return loaded{}, nil
	}
	lsn, ok, err := api.FastLoadedLSN(ctx, job.DB, plan.Target)
	if err != nil || !ok {
		return loaded{}, err
	}
	oid, enabled, err := api.SubscriptionState(ctx, job.DB, sub.Name)
	if err != nil || oid == 0 {
		return loaded{}, err // not as the load left it: the copy starts over
	}
	left, err := api.FastObjects(ctx, job.DB, plan.Target)
	if err != nil {
		return loaded{}, err
	}
	if enabled {
		return resumeSubscribed(ctx, job, plan, lsn, len(left), log)
	}
	log.Info("the previous attempt's copy is in: resuming the indexing step", "event", "init.fast_indexing_resumed",
		"lsn", lsn, "objects_left", len(left))
	err = api.RecordEvent(ctx, job.DB, plan.Target, "init.fast_indexing_resumed", map[string]any{"job": job.ID, "attempt": job.Attempt,
		"lsn": lsn, "objects_left": len(left),
		"reason": "every chunk was copied before the previous attempt stopped: re-creating only the indexes and constraints not re-created yet"})
	if err != nil {
		return loaded{}, err
	}
	return loaded{lsn: lsn, resumed: "indexing", objects: len(left)}, nil
}

// resumeSubscribed is an attempt that finds the subscription enabled: the previous one had
// copied, re-created everything and subscribed at the slot's LSN (the origin is advanced
// before the subscription is enabled), and stopped before the init went CATCHING_UP. The
// subscription has been applying since; the attempt only records the step. With objects still
// to re-create, someone else enabled it: the copy starts over.
func resumeSubscribed(ctx context.Context, job *runner.Job, plan *api.InitPlan, lsn string, left int, log *slog.Logger) (loaded, error) {
	if left > 0 {
		return loaded{}, nil
	}
	log.Info("the previous attempt had subscribed: going on to catch up", "event", "init.fast_subscribe_resumed", "lsn", lsn)
	err := api.RecordEvent(ctx, job.DB, plan.Target, "init.fast_subscribe_resumed", map[string]any{"job": job.ID, "attempt": job.Attempt,
		"lsn": lsn, "reason": "the previous attempt copied, re-created every index and constraint and enabled the subscription before it stopped"})
	if err != nil {
		return loaded{}, err
	}
	return loaded{lsn: lsn, resumed: "subscribed"}, nil
}

// resumeCopy decides whether an attempt that finds the init COPYING resumes: the previous
// attempt's snapshot holder is alive with an importable snapshot, and its plan and disabled
// subscription are there. Otherwise it releases a holder that is of no use and records
// init.fast_restarted; the caller starts over.
func resumeCopy(ctx context.Context, job *runner.Job, plan *api.InitPlan, src *pgx.Conn, sub api.Subscription,
	log *slog.Logger) (holder api.SnapshotHolder, origin string, resumed bool, err error) {
	if plan.Phase != api.StateCopying {
		return holder, "", false, nil
	}
	holder, ok, err := api.FastHolder(ctx, job.DB, plan.Target)
	if err != nil {
		return holder, "", false, err
	}
	oid, enabled, err := api.SubscriptionState(ctx, job.DB, sub.Name)
	if err != nil {
		return holder, "", false, err
	}
	planned, err := api.FastPlanned(ctx, job.DB, plan.Target)
	if err != nil {
		return holder, "", false, err
	}
	if ok && oid != 0 && !enabled && planned && holderAlive(ctx, src, holder) {
		log.Info("the previous attempt's snapshot is held: resuming at the first chunk not copied", "event", "init.fast_resumed",
			"pid", holder.PID, "snapshot", holder.Snapshot)
		err := api.RecordEvent(ctx, job.DB, plan.Target, "init.fast_resumed", map[string]any{"job": job.ID, "attempt": job.Attempt,
			"holder_pid": holder.PID, "reason": "the snapshot holder of the previous attempt lives: copying the chunks not committed"})
		return holder, fmt.Sprintf("pg_%d", oid), err == nil, err
	}
	if ok {
		if err := api.FastHolderRelease(ctx, job.DB, plan.Target); err != nil { // it exits, freeing the slot
			return holder, "", false, err
		}
	}
	// The snapshot is gone (its holder died or was never started): what was copied is emptied
	// and the copy starts over.
	log.Warn("the previous attempt's snapshot is gone: starting over", "event", "init.fast_restarted")
	err = api.RecordEvent(ctx, job.DB, plan.Target, "init.fast_restarted", map[string]any{"job": job.ID, "attempt": job.Attempt,
		"reason": "the exported snapshot of the previous attempt is gone with its holder: tables emptied, new slot"})
	return api.SnapshotHolder{}, "", false, err
}

// freshCopy sets up a copy from scratch: leftovers of an earlier attempt dropped, the tables
// emptied and stripped of their indexes and constraints, the publication, the slot and its
// snapshot (held by a new holder), the subscription created disabled.
func freshCopy(ctx context.Context, job *runner.Job, plan *api.InitPlan, src *pgx.Conn, sub api.Subscription,
	holderIdle time.Duration, log *slog.Logger) (api.SnapshotHolder, string, error) {
	if err := dropLeftovers(ctx, job.DB, src, plan, log); err != nil {
		return api.SnapshotHolder{}, "", err
	}
	if err := api.FastCopying(ctx, job.DB, plan.Target); err != nil {
		return api.SnapshotHolder{}, "", err
	}
	dropped, err := api.FastDropObjects(ctx, job.DB, plan.Target)
	if err != nil {
		return api.SnapshotHolder{}, "", err
	}
	log.Info("indexes and constraints dropped for the load", "event", "init.fast_objects_dropped", "objects", dropped)
	if _, err := EnsurePublication(ctx, src, plan.Publication, plan.Tables); err != nil {
		return api.SnapshotHolder{}, "", fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	holder, err := startHolder(ctx, job.DB, plan, holderIdle, log)
	if err != nil {
		return holder, "", err
	}
	log.Info("slot created; snapshot exported", "event", "init.fast_slot_created", "slot", plan.SlotName, "lsn", holder.LSN)
	origin, err := createDisabledSubscription(ctx, job.DB, sub, log)
	return holder, origin, err
}

// indexStep is the indexing step (begun by api.FastLoaded, total objects to re-create): what
// was dropped for the load is re-created, its progress (objects done, weighted by their tables'
// bytes) in init_fast_indexing and the init's message.
func indexStep(ctx context.Context, job *runner.Job, plan *api.InitPlan, total int, log *slog.Logger) (int, error) {
	started := time.Now()
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
