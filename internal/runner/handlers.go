package runner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// BuiltinHandlers returns the job kinds every sidecar knows: "noop" (does nothing) and
// "sleep" (args: seconds, optional fail text and retry flag; used by tests and demos).
func BuiltinHandlers() map[string]Handler {
	return map[string]Handler{
		"noop":  noop,
		"sleep": sleep,
	}
}

func noop(ctx context.Context, job *Job) (map[string]any, error) {
	return map[string]any{"ok": true}, nil
}

func sleep(ctx context.Context, job *Job) (map[string]any, error) {
	secs, _ := job.Args["seconds"].(float64)
	if secs < 0 || secs > 86400 {
		return nil, fmt.Errorf("sleep: seconds must be between 0 and 86400, got %v", secs)
	}
	t := time.NewTimer(time.Duration(secs * float64(time.Second)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-t.C:
	}
	if msg, ok := job.Args["fail"].(string); ok && msg != "" {
		if retry, _ := job.Args["retry"].(bool); retry {
			return nil, Retryable(errors.New(msg))
		}
		return nil, errors.New(msg)
	}
	return map[string]any{"slept": secs}, nil
}

func toString(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return fmt.Sprint(v)
}
