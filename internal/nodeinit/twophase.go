package nodeinit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

// initPoll is how often snapshot.init reads the source's generation progress.
const initPoll = 500 * time.Millisecond

// Snapshots is the snapshot package's half of a two-phase init: the job's progress row and
// the apply. It is passed in (Config.Snapshots) rather than imported, because that package
// uses this one's publication and subscription steps.
type Snapshots interface {
	// MirrorGeneration starts showing another job's progress (the source's generation) as
	// job's progress row, phase generation; stop ends it and writes the last state.
	MirrorGeneration(ctx context.Context, job *runner.Job, log *slog.Logger) (m Mirror, stop func())
	// Apply applies apply row a as job, phase application: it loads the snapshot, subscribes
	// from its LSN (SubscribeFromSnapshot) and records a final failure.
	Apply(ctx context.Context, job *runner.Job, a *api.ApplyRow, log *slog.Logger) (map[string]any, error)
}

// Mirror shows another job's snapshot progress as a job's own.
type Mirror interface {
	Step(step, message string)
	SetSnapshotID(id string)
	Show(p api.SnapshotProgress)
}

// twoPhase runs snapshot.init, start_init's two_phase method, on the target: it asks the
// source to generate a snapshot into the shared path (through the source's own sidecar, which
// does the I/O there), mirrors that progress here, then applies it and subscribes.
func twoPhase(ctx context.Context, job *runner.Job, snaps Snapshots, log *slog.Logger) (map[string]any, error) {
	id, err := job.ArgInt("apply_id")
	if err != nil {
		return nil, err
	}
	source, err := job.ArgString("source")
	if err != nil {
		return nil, err
	}
	a, err := api.GetApply(ctx, job.DB, id)
	if err != nil {
		return nil, runner.Classify(err)
	}
	if a == nil || a.State == "complete" || a.State == "cancelled" {
		return map[string]any{"skipped": "the init is no longer to be done"}, nil
	}
	log = log.With("apply_id", id, "job", job.ID, "source", source, "attempt", job.Attempt)
	m, stop := snaps.MirrorGeneration(ctx, job, log)
	err = generateOnSource(ctx, job, a, source, m, log)
	stop()
	if err != nil {
		if runner.FinalAttempt(ctx, job, err) {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if rerr := api.ApplyFailed(cctx, job.DB, a.ID, "generate on "+source+": "+err.Error()); rerr != nil {
				log.Error("could not record the init's failure", "event", "snapshot.record_failed", "error", rerr.Error())
			}
		}
		return nil, err
	}
	return snaps.Apply(ctx, job, a, log)
}

// generateOnSource starts (or finds) the source's generation into a.Path and waits for it.
func generateOnSource(ctx context.Context, job *runner.Job, a *api.ApplyRow, source string, m Mirror, log *slog.Logger) error {
	conninfo, err := api.NodeConninfo(ctx, job.DB, source)
	if err != nil {
		return err
	}
	src, err := connectSource(ctx, source, conninfo)
	if err != nil {
		return runner.Classify(err)
	}
	defer src.Close(context.Background())
	snapID := deref(a.SnapshotID)
	if snapID == "" {
		if snapID, err = api.FindSnapshotByPath(ctx, src, a.Path); err != nil {
			return runner.Classify(err)
		}
	}
	if snapID == "" {
		opts := generateOptions(job.Args["generate_options"])
		if snapID, err = api.GenerateSnapshot(ctx, src, a.Path, opts); err != nil {
			return runner.Classify(err)
		}
		log.Info("snapshot generation queued on the source", "event", "snapshot.init_generate", "snapshot_id", snapID, "path", a.Path)
	}
	if a.SnapshotID == nil {
		if err := api.SetApplySnapshotID(ctx, job.DB, a.ID, snapID); err != nil {
			return runner.Classify(err)
		}
		a.SnapshotID = &snapID
	}
	m.SetSnapshotID(snapID)
	srcJob, err := api.SnapshotJobOf(ctx, src, snapID)
	if err != nil {
		return runner.Classify(err)
	}
	m.Step("generating", fmt.Sprintf("generating snapshot %s on %s", snapID, source))
	for {
		var state string
		list, err := api.ListSnapshots(ctx, src)
		if err != nil {
			return runner.Classify(err)
		}
		for _, s := range list {
			if s.Role == "generated" && s.ID != nil && *s.ID == snapID {
				state = s.State
				if s.Error != nil {
					state += ": " + *s.Error
				}
			}
		}
		if p, err := api.GetSnapshotProgress(ctx, src, srcJob); err == nil && p != nil {
			m.Show(*p)
		}
		switch {
		case state == "complete":
			return nil
		case state == "" || state == "deleting" || state == "deleted" || len(state) >= 6 && (state[:6] == "failed" || state[:6] == "cancel"):
			return fmt.Errorf("snapshot %s on source node %s: %s", snapID, source, map[bool]string{true: "gone", false: state}[state == ""])
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(initPoll):
		}
	}
}

// generateOptions turns the normalized options start_init stored back into generate_snapshot's.
func generateOptions(v any) api.SnapshotOptions {
	m, _ := v.(map[string]any)
	var o api.SnapshotOptions
	o.Compression, _ = m["compression"].(string)
	if f, ok := m["parallel"].(float64); ok {
		o.Parallel = int(f)
	}
	if f, ok := m["slot_expiry"].(float64); ok {
		o.SlotExpiry = int64(f)
	}
	for key, dst := range map[string]*[]string{"tables": &o.Tables, "schemas": &o.Schemas} {
		if arr, ok := m[key].([]any); ok {
			for _, x := range arr {
				if s, ok := x.(string); ok {
					*dst = append(*dst, s)
				}
			}
		}
	}
	return o
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
