package nodeinit

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/steepdb/steep_repl/internal/runner"
)

// Config is what the node-init job handlers need.
type Config struct {
	// ConnString reaches this node's database (init.export opens a replication connection
	// with it); "" is the libpq environment.
	ConnString string
	// Log receives the handlers' JSON events.
	Log *slog.Logger
	// Snapshots is the snapshot package's half of a two-phase init (snapshot.init); nil: the
	// handlers do not include snapshot.init.
	Snapshots Snapshots
	// HolderIdle is how long a fast init's snapshot holder outlives the init's last progress
	// (0: HolderIdle).
	HolderIdle time.Duration
}

// Handlers returns the job handlers of every way to bring a node in, for the sidecar's runner.
func Handlers(cfg Config) map[string]runner.Handler {
	log := cfg.Log
	holderIdle := cfg.HolderIdle
	if holderIdle <= 0 {
		holderIdle = HolderIdle
	}
	h := map[string]runner.Handler{
		"init.start":  func(ctx context.Context, job *runner.Job) (map[string]any, error) { return start(ctx, job, log) },
		"init.cancel": func(ctx context.Context, job *runner.Job) (map[string]any, error) { return cancel(ctx, job, log) },
		"init.fast": func(ctx context.Context, job *runner.Job) (map[string]any, error) {
			return fast(ctx, job, holderIdle, log)
		},
		"init.merge":   func(ctx context.Context, job *runner.Job) (map[string]any, error) { return merge(ctx, job, log) },
		"reinit.start": func(ctx context.Context, job *runner.Job) (map[string]any, error) { return reinit(ctx, job, log) },
		"init.verify":  func(ctx context.Context, job *runner.Job) (map[string]any, error) { return verify(ctx, job, log) },
		"init.export": func(ctx context.Context, job *runner.Job) (map[string]any, error) {
			return export(ctx, job, cfg.ConnString, log)
		},
	}
	if cfg.Snapshots != nil {
		h["snapshot.init"] = func(ctx context.Context, job *runner.Job) (map[string]any, error) {
			return twoPhase(ctx, job, cfg.Snapshots, log)
		}
	}
	return h
}

func targetOf(job *runner.Job) (string, error) {
	target, _ := job.Args["target"].(string)
	if target == "" {
		return "", errors.New("job args lack the target node")
	}
	return target, nil
}
