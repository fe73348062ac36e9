package nodeinit

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

func TestHandlersCoverEveryWayToBringANodeIn(t *testing.T) {
	h := Handlers(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var kinds []string
	for k := range h {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	if want := []string{"init.cancel", "init.export", "init.fast", "init.merge", "init.start", "init.verify", "reinit.start"}; !slices.Equal(kinds, want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
}

func TestTargetOfRequiresTheTargetNode(t *testing.T) {
	if got, err := targetOf(&runner.Job{ClaimedJob: api.ClaimedJob{Args: map[string]any{"target": "node_b"}}}); err != nil || got != "node_b" {
		t.Fatalf("targetOf = %q, %v", got, err)
	}
	if _, err := targetOf(&runner.Job{ClaimedJob: api.ClaimedJob{Args: map[string]any{}}}); err == nil || !strings.Contains(err.Error(), "target") {
		t.Fatalf("targetOf without target: %v", err)
	}
}

func TestExportArgsAreCompleteOrRefused(t *testing.T) {
	a, err := parseArgs(map[string]any{"node": "node_b", "slot": "s", "publication": "p", "expires_seconds": 60.0, "hold_seconds": 1.5})
	if err != nil || a.node != "node_b" || a.slot != "s" || a.publication != "p" || a.expires != time.Minute || a.hold != 1500*time.Millisecond {
		t.Fatalf("parseArgs = %+v, %v", a, err)
	}
	for _, bad := range []map[string]any{
		{"slot": "s", "publication": "p", "expires_seconds": 60.0, "hold_seconds": 1.0},
		{"node": "n", "slot": "s", "publication": "p", "expires_seconds": 0.0, "hold_seconds": 1.0},
		{"node": "n", "slot": "s", "expires_seconds": 60.0, "hold_seconds": 1.0},
	} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("parseArgs(%v) must fail", bad)
		}
	}
}

func TestMissingTablesKeepsTheOrderOfWant(t *testing.T) {
	a, b, c := api.TableName{Schema: "public", Table: "a"}, api.TableName{Schema: "public", Table: "b"}, api.TableName{Schema: "s", Table: "a"}
	if got := missingTables([]api.TableName{c, a, b}, []api.TableName{a}); !slices.Equal(got, []api.TableName{c, b}) {
		t.Fatalf("missingTables = %v", got)
	}
	if got := missingTables([]api.TableName{a}, []api.TableName{a, b}); len(got) != 0 {
		t.Fatalf("missingTables = %v, want none", got)
	}
}
