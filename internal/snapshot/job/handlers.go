package job

import (
	"context"
	"log/slog"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/nodeinit"
	"github.com/steepdb/steep_repl/internal/runner"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// Handlers returns the snapshot job handlers, for the sidecar's runner. Every snapshot
// directory they read, write or delete must be beneath root (nil or zero: no root, any
// absolute directory), and is resolved from it without following symlinks; progs finds
// pg_dump and pg_restore.
func Handlers(log *slog.Logger, root *snapshot.Root, progs Programs) map[string]runner.Handler {
	return map[string]runner.Handler{
		"snapshot.generate": func(ctx context.Context, job *runner.Job) (map[string]any, error) {
			return generate(ctx, job, root, progs, log)
		},
		"snapshot.apply": func(ctx context.Context, job *runner.Job) (map[string]any, error) {
			return apply(ctx, job, root, progs, log)
		},
		"snapshot.delete": func(ctx context.Context, job *runner.Job) (map[string]any, error) {
			return deleteSnapshot(ctx, job, root, log)
		},
		"snapshot.expire": func(ctx context.Context, job *runner.Job) (map[string]any, error) { return expireSlot(ctx, job, log) },
	}
}

// finalAttempt reports whether err ends the job for good (runner.FinalAttempt).
func finalAttempt(ctx context.Context, job *runner.Job, err error) bool {
	return runner.FinalAttempt(ctx, job, err)
}

// isRetryable tells whether runner.Retryable wrapped err.
func isRetryable(err error) bool { return runner.IsRetryable(err) }

// cleanupContext is for the steps after a job's context ended.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// TwoPhase is the snapshot half of a two-phase init (start_init's two_phase method), for
// package nodeinit, which runs the snapshot.init job; root and progs are as for Handlers.
func TwoPhase(root *snapshot.Root, progs Programs) nodeinit.Snapshots {
	return twoPhase{root: root, progs: progs}
}

type twoPhase struct {
	root  *snapshot.Root
	progs Programs
}

// MirrorGeneration shows the source's generation as the job's progress (phase generation).
func (t twoPhase) MirrorGeneration(ctx context.Context, job *runner.Job, log *slog.Logger) (nodeinit.Mirror, func()) {
	tr := newTracker(job.DB, log, job.ID, "", "generation")
	return mirror{tr}, tr.run(ctx)
}

// Apply applies the generated snapshot as the job's second phase (application).
func (t twoPhase) Apply(ctx context.Context, job *runner.Job, a *api.ApplyRow, log *slog.Logger) (map[string]any, error) {
	id := ""
	if a.SnapshotID != nil {
		id = *a.SnapshotID
	}
	tr := newTracker(job.DB, log, job.ID, id, "application")
	stop := tr.run(ctx)
	defer stop()
	return runApply(ctx, job, a, t.root, t.progs, tr, log)
}

// mirror is a tracker showing another job's progress.
type mirror struct{ t *tracker }

func (m mirror) Step(step, message string)   { m.t.step(step, message) }
func (m mirror) SetSnapshotID(id string)     { m.t.setSnapshotID(id) }
func (m mirror) Show(p api.SnapshotProgress) { m.t.mirror(p) }
