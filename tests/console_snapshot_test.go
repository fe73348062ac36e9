package tests

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// TestConsoleShowsASnapshotBeingGenerated runs bin/steep-console on node_a while a snapshot
// is generated there, slowed with max_rate (Chinook, about 400 kB of COPY text, at 2 x 10
// kB/s: some 20 s): node_a's row shows the SNAP marker, S lists the snapshot, Enter shows
// its progress with a growing percent and then COMPLETE, and q exits with status 0.
func TestConsoleShowsASnapshotBeingGenerated(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupSnapPair(t)
	c := startConsole(t, "--db", p.a.ConnString(""))
	c.waitScreen(30*time.Second, "both nodes connected, no snapshot", func(s string) bool {
		return strings.Contains(rowOf(s, "node_a"), " ok ") && strings.Contains(rowOf(s, "node_b"), " ok ") &&
			!strings.Contains(rowOf(s, "node_a"), "GEN")
	})

	id := harness.QueryOne[string](t, p.a, "", "SELECT steep_repl.generate_snapshot($1, $2)", p.dir,
		`{"parallel": 2, "max_rate": 10000}`)
	screen, _ := c.waitScreen(30*time.Second, "node_a's SNAP marker", func(s string) bool {
		return strings.Contains(rowOf(s, "node_a"), "GEN")
	})
	t.Logf("generating %s:\n%s", id, screen)
	if strings.Contains(rowOf(screen, "node_b"), "GEN") || strings.Contains(rowOf(screen, "node_b"), "APPLY") {
		t.Errorf("node_b is marked: %q", rowOf(screen, "node_b"))
	}

	c.keys("S")
	screen, _ = c.waitScreen(10*time.Second, "the snapshot listed as generating", func(s string) bool {
		return strings.Contains(lineWith(s, id), "GENERATING")
	})
	t.Logf("list:\n%s", screen)
	if !strings.Contains(lineWith(screen, id), "node_a") {
		t.Errorf("the snapshot's row does not name its source: %q", lineWith(screen, id))
	}

	c.keys("Enter") // the newest snapshot is selected
	screen, _ = c.waitScreen(10*time.Second, "its progress with a percent", func(s string) bool {
		return strings.Contains(s, "GENERATION on node_a") && generationPercent(s) > 0
	})
	first := generationPercent(screen)
	for _, want := range []string{id + " · source node_a", "compression zstd", "not applied on any node the console reads"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the progress lacks %q", want)
		}
	}
	screen, _ = c.waitScreen(30*time.Second, "the percent growing", func(s string) bool {
		return generationPercent(s) > first
	})
	t.Logf("progress, %.1f%% then %.1f%%:\n%s", first, generationPercent(screen), screen)
	if !strings.Contains(screen, "throughput ") || !strings.Contains(screen, "step writing") {
		t.Errorf("the progress lacks the throughput or the step:\n%s", screen)
	}

	screen, _ = c.waitScreen(90*time.Second, "the generation complete", func(s string) bool {
		return strings.Contains(s, "COMPLETE") && generationPercent(s) == 100
	})
	t.Logf("complete:\n%s", screen)
	if !strings.Contains(screen, "compression ratio ") || strings.Contains(screen, "compression ratio --") {
		t.Errorf("no compression ratio once complete:\n%s", screen)
	}
	c.keys("Escape") // back to the list
	c.waitScreen(5*time.Second, "the list", func(s string) bool { return strings.Contains(lineWith(s, id), "COMPLETE") })
	c.keys("Escape")
	c.waitScreen(10*time.Second, "node_a's marker gone", func(s string) bool {
		row := rowOf(s, "node_a")
		return strings.Contains(row, " ok ") && !strings.Contains(row, "GEN") && !strings.Contains(s, id)
	})

	c.keys("q")
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("steep-console exited with status %d, want 0", code)
	}
}

// generationPercent is the percent of the generation's bar in the snapshot progress overlay
// (the first bar below "GENERATION on": the generation is the left column), -1 when not on
// screen.
func generationPercent(screen string) float64 {
	lines := strings.Split(screen, "\n")
	for i, line := range lines {
		if !strings.Contains(line, "GENERATION on") {
			continue
		}
		for _, l := range lines[i+1:] {
			if m := barPercentRE.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				return v
			}
		}
	}
	return -1
}

var barPercentRE = regexp.MustCompile(`\[[█░]+\] +(\d+\.\d)%`)
