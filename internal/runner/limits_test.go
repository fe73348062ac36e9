package runner

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestControlSlotsClaimOnlyTheControlKindsThatHaveHandlers(t *testing.T) {
	r, err := New(Config{Handlers: BuiltinHandlers()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.controlKinds, []string{"noop"}) || r.controlSlots() != 1 {
		t.Fatalf("control kinds %v, %d slot(s)", r.controlKinds, r.controlSlots())
	}
	r, _ = New(Config{Handlers: map[string]Handler{"sleep": sleep}})
	if r.controlSlots() != 0 {
		t.Fatalf("%d control slot(s) without a control kind", r.controlSlots())
	}
	r, _ = New(Config{Handlers: BuiltinHandlers(), ControlConcurrency: -1})
	if r.controlSlots() != 0 || len(r.controlKinds) != 0 {
		t.Fatalf("ControlConcurrency -1: %d control slot(s)", r.controlSlots())
	}
	r, _ = New(Config{Handlers: BuiltinHandlers(), ControlKinds: []string{"sleep"}, ControlConcurrency: 3})
	if !slices.Equal(r.controlKinds, []string{"sleep"}) || r.controlSlots() != 3 {
		t.Fatalf("custom control kinds %v, %d slot(s)", r.controlKinds, r.controlSlots())
	}
}

func TestTimeLimitsByKind(t *testing.T) {
	r, err := New(Config{Handlers: BuiltinHandlers()})
	if err != nil {
		t.Fatal(err)
	}
	if r.timeLimit("sleep") != DefaultTimeLimit || r.timeLimit("noop") != DefaultControlTimeLimit {
		t.Fatalf("defaults: sleep %s, noop %s", r.timeLimit("sleep"), r.timeLimit("noop"))
	}
	r, _ = New(Config{Handlers: BuiltinHandlers(), TimeLimit: time.Hour,
		TimeLimits: map[string]time.Duration{"noop": 0, "sleep": 2 * time.Second}})
	if r.timeLimit("sleep") != 2*time.Second || r.timeLimit("noop") != 0 {
		t.Fatalf("overrides: sleep %s, noop %s", r.timeLimit("sleep"), r.timeLimit("noop"))
	}
	r, _ = New(Config{Handlers: BuiltinHandlers(), TimeLimit: -1})
	if r.timeLimit("sleep") != 0 {
		t.Fatalf("no limit: sleep %s", r.timeLimit("sleep"))
	}
	if _, err := New(Config{Handlers: BuiltinHandlers(), TimeLimits: map[string]time.Duration{"nope": time.Second}}); err == nil {
		t.Fatal("a time limit for a kind without a handler was accepted")
	}
}

func TestTimeLimitErrorSaysWhichJobAndIsFinal(t *testing.T) {
	err := &TimeLimitError{Job: 7, Kind: "snapshot.generate", Limit: 72 * time.Hour}
	if err.Error() != "job 7 (snapshot.generate) exceeded its time limit of 72h" || !errors.Is(err, ErrTimeLimit) ||
		errors.Is(err, ErrCancelRequested) {
		t.Fatalf("%v", err)
	}
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", 90 * time.Second: "1m30s", 1500 * time.Millisecond: "1.5s",
		2*time.Hour + 30*time.Minute: "2h30m", 0: "none"} {
		if got := limitString(d); got != want {
			t.Errorf("limitString(%s) = %q, want %q", d, got, want)
		}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(err)
	job := &Job{}
	job.Attempt, job.MaxAttempts = 1, 3
	if !FinalAttempt(ctx, job, Retryable(context.Canceled)) {
		t.Fatal("an attempt stopped by its time limit is not final")
	}
}
