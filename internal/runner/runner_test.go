package runner

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffDoublesFrom100msUpTo10s(t *testing.T) {
	b := newBackoff()
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000}
	for i, w := range want {
		if got := b.next(); got != w*time.Millisecond {
			t.Fatalf("step %d: %s, want %s", i, got, w*time.Millisecond)
		}
	}
	b.reset()
	if got := b.next(); got != 100*time.Millisecond {
		t.Fatalf("after reset: %s", got)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("a runner without handlers was accepted")
	}
	if _, err := New(Config{Handlers: BuiltinHandlers(), Lease: 100 * time.Millisecond}); err == nil {
		t.Fatal("a 100ms lease was accepted")
	}
	r, err := New(Config{Handlers: BuiltinHandlers()})
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.Lease != 30*time.Second || r.cfg.PollInterval != 2*time.Second || r.cfg.Concurrency != 2 || r.cfg.Worker == "" {
		t.Fatalf("defaults: %+v", r.cfg)
	}
	if len(r.kinds) != 2 || r.kinds[0] != "noop" || r.kinds[1] != "sleep" {
		t.Fatalf("kinds %v", r.kinds)
	}
}

func TestSleepHandlerFailsRetryablyOrNotAndStopsOnCancel(t *testing.T) {
	job := &Job{}
	job.Args = map[string]any{"seconds": 0.0, "fail": "boom", "retry": true}
	_, err := sleep(context.Background(), job)
	var re retryable
	if !errors.As(err, &re) || err.Error() != "boom" {
		t.Fatalf("retryable failure: %v", err)
	}
	job.Args = map[string]any{"seconds": 0.0, "fail": "boom"}
	if _, err := sleep(context.Background(), job); errors.As(err, &re) || err == nil {
		t.Fatalf("plain failure: %v", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrCancelRequested)
	job.Args = map[string]any{"seconds": 60.0}
	if _, err := sleep(ctx, job); !errors.Is(err, ErrCancelRequested) {
		t.Fatalf("cancelled sleep: %v", err)
	}
}

func TestHandlerPanicBecomesAJobError(t *testing.T) {
	r, err := New(Config{Handlers: map[string]Handler{"boom": func(context.Context, *Job) (map[string]any, error) {
		panic("kaboom")
	}}})
	if err != nil {
		t.Fatal(err)
	}
	job := &Job{}
	job.Kind = "boom"
	if _, err := r.callHandler(context.Background(), job); err == nil || err.Error() != "handler panicked: kaboom" {
		t.Fatalf("panic: %v", err)
	}
}
