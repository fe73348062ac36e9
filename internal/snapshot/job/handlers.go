package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/steepdb/steep_repl/internal/runner"
)

// Handlers returns the snapshot job handlers, for the sidecar's runner.
func Handlers(log *slog.Logger) map[string]runner.Handler {
	return map[string]runner.Handler{
		"snapshot.generate": func(ctx context.Context, job *runner.Job) (map[string]any, error) { return generate(ctx, job, log) },
		"snapshot.apply":    func(ctx context.Context, job *runner.Job) (map[string]any, error) { return apply(ctx, job, log) },
		"snapshot.init":     func(ctx context.Context, job *runner.Job) (map[string]any, error) { return initTwoPhase(ctx, job, log) },
		"snapshot.delete": func(ctx context.Context, job *runner.Job) (map[string]any, error) {
			return deleteSnapshot(ctx, job, log)
		},
		"snapshot.expire": func(ctx context.Context, job *runner.Job) (map[string]any, error) { return expireSlot(ctx, job, log) },
	}
}

func argString(job *runner.Job, key string) (string, error) {
	v, _ := job.Args[key].(string)
	if v == "" {
		return "", fmt.Errorf("job args lack %s", key)
	}
	return v, nil
}

func argInt(job *runner.Job, key string) (int64, error) {
	v, ok := job.Args[key].(float64)
	if !ok || v <= 0 {
		return 0, fmt.Errorf("job args lack %s", key)
	}
	return int64(v), nil
}

// finalAttempt reports whether err ends the job for good: it is not retryable, or this was
// the last attempt, or the job was cancelled.
func finalAttempt(ctx context.Context, job *runner.Job, err error) bool {
	if errors.Is(context.Cause(ctx), runner.ErrCancelRequested) {
		return true
	}
	if ctx.Err() != nil {
		return false // shutdown or lost lease: another attempt follows
	}
	if isRetryable(err) {
		return job.Attempt >= job.MaxAttempts
	}
	return true
}

// isRetryable tells whether runner.Retryable wrapped err (its type is private to runner).
func isRetryable(err error) bool {
	probe := runner.Retryable(errors.New(""))
	for e := err; e != nil; e = errors.Unwrap(e) {
		if fmt.Sprintf("%T", e) == fmt.Sprintf("%T", probe) {
			return true
		}
	}
	return false
}

// cleanupContext is for the steps after a job's context ended.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
