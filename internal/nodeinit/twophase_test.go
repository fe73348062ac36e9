package nodeinit

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

func TestGenerateOptionsFromTheStoredObject(t *testing.T) {
	o := generateOptions(map[string]any{"compression": "lz4", "parallel": 3.0, "tables": []any{"a", "b"}, "schemas": nil,
		"slot_expiry": 600.0})
	if o.Compression != "lz4" || o.Parallel != 3 || len(o.Tables) != 2 || o.Schemas != nil || o.SlotExpiry != 600 {
		t.Fatalf("%+v", o)
	}
}

type noSnapshots struct{}

func (noSnapshots) MirrorGeneration(context.Context, *runner.Job, *slog.Logger) (Mirror, func()) {
	return nil, func() {}
}

func (noSnapshots) Apply(context.Context, *runner.Job, *api.ApplyRow, *slog.Logger) (map[string]any, error) {
	return nil, nil
}

func TestTwoPhaseInitIsAHandlerWhenTheSnapshotHalfIsGiven(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, ok := Handlers(Config{Log: log, Snapshots: noSnapshots{}})["snapshot.init"]; !ok {
		t.Fatal("snapshot.init missing")
	}
	if _, err := twoPhase(context.Background(), &runner.Job{ClaimedJob: api.ClaimedJob{Args: map[string]any{"source": "a"}}}, noSnapshots{}, log); err == nil {
		t.Fatal("a snapshot.init job without apply_id must fail")
	}
}
