package nodeinit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

func TestBackoffDoublesUpToItsCap(t *testing.T) {
	pol := retryPolicy{First: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	for n := 1; n <= 5; n++ {
		got = append(got, backoff(pol, n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff after failures 1..5 = %v, want %v", got, want)
		}
	}
}

func TestPolicyTakesThePlansSourceTimeout(t *testing.T) {
	if p := policyFor(&api.InitPlan{SourceTimeout: 5}); p.Timeout != 5*time.Second {
		t.Fatalf("source_timeout 5: %s", p.Timeout)
	}
	if p := policyFor(&api.InitPlan{}); p.Timeout != defaultSourceTimeout {
		t.Fatalf("no source_timeout: %s, want the default", p.Timeout)
	}
}

// A job resumed by another sidecar reads its retries back from the checkpoint, as it comes back
// from the database (JSON).
func TestRetryStateSurvivesTheCheckpoint(t *testing.T) {
	first := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	raw, err := json.Marshal(retryState{FirstFailure: first, Attempts: 3}.checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	var cp map[string]any
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatal(err)
	}
	got := retryStateOf(&runner.Job{ClaimedJob: api.ClaimedJob{Checkpoint: cp}})
	if !got.FirstFailure.Equal(first) || got.Attempts != 3 {
		t.Fatalf("retry state after the checkpoint: %+v", got)
	}
	if s := retryStateOf(&runner.Job{}); s.Attempts != 0 || !s.FirstFailure.IsZero() {
		t.Fatalf("a job without a checkpoint: %+v", s)
	}
}

func TestGaveUpErrorSaysTheAttemptsAndKeepsTheCause(t *testing.T) {
	cause := errors.New("connect to source node node_a: connection refused")
	err := &GaveUpError{Err: cause, Attempts: 4, Elapsed: 5200 * time.Millisecond, Timeout: 5 * time.Second}
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "failed 4 attempts over 5s; source_timeout 5s") ||
		!strings.HasPrefix(err.Error(), cause.Error()) {
		t.Fatalf("GaveUpError: %q", err)
	}
}
