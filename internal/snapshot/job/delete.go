package job

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// deleteSnapshot runs snapshot.delete: wait for a cancelled generation to stop, remove the
// files, drop the slot unless a subscriber uses it, drop the publication unless a copy of the
// slot (a subscriber's) remains.
func deleteSnapshot(ctx context.Context, job *runner.Job, root *snapshot.Root, log *slog.Logger) (map[string]any, error) {
	id, s, err := jobSnapshot(ctx, job)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return map[string]any{"skipped": "no such snapshot"}, nil
	}
	log = log.With("snapshot_id", id, "job", job.ID)
	if s.JobID != nil {
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := api.JobState(ctx, job.DB, *s.JobID)
			if err != nil {
				return nil, classify(err)
			}
			if st != api.JobQueued && st != api.JobRunning {
				break
			}
			if time.Now().After(deadline) {
				return nil, runner.Retryable(fmt.Errorf("the generate job %d of snapshot %s is still running", *s.JobID, id))
			}
			select {
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	n, err := root.RemoveDir(s.Path)
	if err != nil {
		return nil, runner.Retryable(err)
	}
	res := map[string]any{"snapshot_id": id, "files_removed": n}
	dropped, err := dropSnapshotSlot(ctx, job, s, res, log)
	if err != nil {
		return nil, err
	}
	if err := api.SnapshotDeleted(ctx, job.DB, id, dropped); err != nil {
		return nil, classify(err)
	}
	_ = api.RecordEvent(ctx, job.DB, s.SourceNode, "snapshot.deleted", res)
	log.Info("snapshot deleted", "event", "snapshot.deleted", "files_removed", n, "slot_dropped", dropped)
	return res, nil
}

// expireSlot runs snapshot.expire: the snapshot's slot has been kept long enough; drop it
// (the files stay: they can still be applied without subscribing).
func expireSlot(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	id, s, err := jobSnapshot(ctx, job)
	if err != nil {
		return nil, err
	}
	if s == nil || s.SlotDroppedAt != nil || s.State == "deleted" {
		return map[string]any{"skipped": "the slot is already gone"}, nil
	}
	res := map[string]any{"snapshot_id": id}
	dropped, err := dropSnapshotSlot(ctx, job, s, res, log.With("snapshot_id", id, "job", job.ID))
	if err != nil {
		return nil, err
	}
	if dropped {
		if err := api.SnapshotSlotDropped(ctx, job.DB, id); err != nil {
			return nil, classify(err)
		}
		_ = api.RecordEvent(ctx, job.DB, s.SourceNode, "snapshot.slot_expired", res)
		log.Info("snapshot slot expired and dropped", "event", "snapshot.slot_expired", "snapshot_id", id, "slot", s.SlotName)
	}
	return res, nil
}

// dropSnapshotSlot drops the snapshot's slot when unused, the copies no target subscribed
// from, and its publication when no copy of the slot (a subscriber's) is left; it notes what it
// did in res.
func dropSnapshotSlot(ctx context.Context, job *runner.Job, s *api.SnapshotRow, res map[string]any, log *slog.Logger) (bool, error) {
	info, err := api.GetSlot(ctx, job.DB, s.SlotName)
	if err != nil {
		return false, classify(err)
	}
	dropped := !info.Exists
	switch {
	case info.Exists && info.Active:
		res["slot_kept"] = s.SlotName + " is in use"
		log.Warn("the snapshot's slot is in use; kept", "event", "snapshot.slot_kept", "slot", s.SlotName)
	case info.Exists:
		if err := api.DropSlot(ctx, job.DB, s.SlotName); err != nil && api.SQLState(err) != "42704" {
			return false, classify(err)
		}
		dropped = true
		res["slot_dropped"] = s.SlotName
	}
	if !s.Subscribable() {
		return dropped, nil
	}
	if err := dropOrphanCopies(ctx, job, s, res, log); err != nil {
		return dropped, err
	}
	copies, err := api.CountSlotsWithPrefix(ctx, job.DB, s.SlotName+"_")
	if err != nil {
		return dropped, classify(err)
	}
	if copies > 0 {
		res["publication_kept"] = fmt.Sprintf("%s: %d subscriber slot(s) use it", s.Publication, copies)
		return dropped, nil
	}
	if err := api.DropPublication(ctx, job.DB, s.Publication); err != nil {
		return dropped, classify(err)
	}
	res["publication_dropped"] = s.Publication
	return dropped, nil
}

// jobSnapshot reads the snapshot a job's snapshot_id argument names (nil when it is gone).
func jobSnapshot(ctx context.Context, job *runner.Job) (string, *api.SnapshotRow, error) {
	id, err := job.ArgString("snapshot_id")
	if err != nil {
		return "", nil, err
	}
	s, err := api.GetSnapshot(ctx, job.DB, id)
	if err != nil {
		return "", nil, classify(err)
	}
	return id, s, nil
}
