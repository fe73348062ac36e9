package job

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/runner"
)

// initPoll is how often snapshot.init reads the source's generation progress.
const initPoll = 500 * time.Millisecond

// initTwoPhase runs start_init's two_phase method on the target: it asks the source to
// generate a snapshot into the shared path (through the source's own sidecar, which does
// the I/O there), mirrors that progress here, then applies it and subscribes.
func initTwoPhase(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	id, err := argInt(job, "apply_id")
	if err != nil {
		return nil, err
	}
	source, err := argString(job, "source")
	if err != nil {
		return nil, err
	}
	a, err := api.GetApply(ctx, job.DB, id)
	if err != nil {
		return nil, classify(err)
	}
	if a == nil || a.State == "complete" || a.State == "cancelled" {
		return map[string]any{"skipped": "the init is no longer to be done"}, nil
	}
	log = log.With("apply_id", id, "job", job.ID, "source", source, "attempt", job.Attempt)
	tr := newTracker(job.DB, log, job.ID, "", "generation")
	stop := tr.run(ctx)
	err = generateOnSource(ctx, job, a, source, tr, log)
	if err != nil {
		stop()
		if finalAttempt(ctx, job, err) {
			cctx, cancel := cleanupContext()
			defer cancel()
			if rerr := api.ApplyFailed(cctx, job.DB, a.ID, "generate on "+source+": "+err.Error()); rerr != nil {
				log.Error("could not record the init's failure", "event", "snapshot.record_failed", "error", rerr.Error())
			}
		}
		return nil, err
	}
	stop()
	tr = newTracker(job.DB, log, job.ID, deref(a.SnapshotID), "application")
	stop = tr.run(ctx)
	defer stop()
	return runApply(ctx, job, a, tr, log)
}

// generateOnSource starts (or finds) the source's generation into a.Path and waits for it.
func generateOnSource(ctx context.Context, job *runner.Job, a *api.ApplyRow, source string, tr *tracker, log *slog.Logger) error {
	conninfo, err := api.NodeConninfo(ctx, job.DB, source)
	if err != nil {
		return err
	}
	src, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		return classify(dbconn.RedactError(fmt.Errorf("connect to source node %s: %w", source, err), conninfo))
	}
	defer src.Close(context.Background())
	snapID := deref(a.SnapshotID)
	if snapID == "" {
		if snapID, err = api.FindSnapshotByPath(ctx, src, a.Path); err != nil {
			return classify(err)
		}
	}
	if snapID == "" {
		opts := generateOptions(job.Args["generate_options"])
		if snapID, err = api.GenerateSnapshot(ctx, src, a.Path, opts); err != nil {
			return classify(err)
		}
		log.Info("snapshot generation queued on the source", "event", "snapshot.init_generate", "snapshot_id", snapID, "path", a.Path)
	}
	if a.SnapshotID == nil {
		if err := api.SetApplySnapshotID(ctx, job.DB, a.ID, snapID); err != nil {
			return classify(err)
		}
		a.SnapshotID = &snapID
	}
	tr.setSnapshotID(snapID)
	srcJob, err := api.SnapshotJobOf(ctx, src, snapID)
	if err != nil {
		return classify(err)
	}
	tr.step("generating", fmt.Sprintf("generating snapshot %s on %s", snapID, source))
	for {
		var state string
		list, err := api.ListSnapshots(ctx, src)
		if err != nil {
			return classify(err)
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
			tr.mirror(*p)
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
