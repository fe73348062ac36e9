package render

import (
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func sp[T any](v T) *T { return &v }

// runningSnapshot is snap_a generating on node_a (42.3%) while node_b applies it (12.5%,
// one checksum failed, 12 tuples skipped).
func runningSnapshot() model.SnapshotRow {
	return model.SnapshotRow{Key: "snap_a", ID: "snap_a", Source: "node_a", CreatedAt: now.Add(-time.Minute),
		Generation: &model.SnapshotSide{Node: "node_a",
			Info: api.SnapshotInfo{ID: sp("snap_a"), Role: "generated", State: "generating", Path: "/srv/snap/a",
				Compression: sp("zstd"), LSN: sp("0/3000060"), JobID: sp(int64(5)), BytesRaw: sp(int64(400_000)),
				BytesCompressed: sp(int64(125_000))},
			Progress: &api.SnapshotProgress{JobID: 5, Phase: "generation", Step: "writing", Percent: 42.3,
				BytesDone: 169_200, BytesTotal: 400_000, RowsDone: 6200, RowsTotal: 15000, TablesDone: 3, TablesTotal: 11,
				ThroughputBytesS: sp(40_000.0), ETASeconds: sp(6.0), CurrentTable: sp("public.track, public.invoice"),
				CompressionRatio: sp(3.2), UpdatedAt: now.Add(-time.Second)}},
		Applications: []model.SnapshotSide{{Node: "node_b",
			Info: api.SnapshotInfo{ID: sp("snap_a"), Role: "applied", State: "applying", Path: "/srv/snap/a", JobID: sp(int64(9))},
			Progress: &api.SnapshotProgress{JobID: 9, Phase: "application", Step: "loading", Percent: 12.5,
				TablesDone: 4, TablesTotal: 11, CompressionRatio: sp(2.9), ChecksumsVerified: 4, ChecksumsFailed: 1,
				TuplesSkipped: 12, CurrentTable: sp("public.album")}}},
	}
}

func lineWith(t *testing.T, lines []Line, text string) Line {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l.Text(), text) {
			return l
		}
	}
	var all []string
	for _, l := range lines {
		all = append(all, l.Text())
	}
	t.Fatalf("no line with %q in:\n%s", text, strings.Join(all, "\n"))
	return nil
}

func cellAfter(l Line, text string) Cell {
	for i, c := range l {
		if c.Text == text && i+1 < len(l) {
			return l[i+1]
		}
	}
	return Cell{}
}

func TestSnapshotSidesShowProgressChecksumsCompressionAndSkippedTuples(t *testing.T) {
	r := runningSnapshot()
	gen := GenerationLines(&r, now)
	if got := gen[0].Text(); got != "GENERATION on node_a" {
		t.Errorf("generation title %q", got)
	}
	for _, want := range []string{"GENERATING · phase generation · step writing · job 5",
		"[████████████░░░░░░░░░░░░░░░░░░]  42.3%", "bytes 169 kB / 400 kB · rows 6.2k / 15.0k · tables 3/11",
		"throughput 40.0 kB/s · ETA 6s · updated 1s ago", "current public.track, public.invoice",
		"compression ratio 3.2x", "checksums: SHA-256 written for 3/11 tables"} {
		lineWith(t, gen, want)
	}
	if c := lineWith(t, gen, "GENERATING")[0]; c.Color != tcell.ColorYellow {
		t.Errorf("generating drawn in %v", c.Color)
	}

	app := ApplicationLines(&r, now)
	if got := app[0].Text(); got != "APPLICATION to node_b" {
		t.Errorf("application title %q", got)
	}
	lineWith(t, app, "[███░░░░░░░░░░░░░░░░░░░░░░░░░░░]  12.5%")
	lineWith(t, app, "compression ratio 2.9x")
	checks := lineWith(t, app, "checksums verified 4 · failed 1")
	if c := cellAfter(checks, " · failed "); c.Text != "1" || c.Color != tcell.ColorRed || !c.Bold {
		t.Errorf("failed checksums drawn as %+v, want a bold red 1", c)
	}
	if c := cellAfter(checks, "checksums verified "); c.Color != ColorOK {
		t.Errorf("verified checksums drawn in %v", c.Color)
	}
	if c := cellAfter(lineWith(t, app, "tuples skipped 12"), "tuples skipped "); c.Color != ColorWarn {
		t.Errorf("skipped tuples drawn in %v", c.Color)
	}

	r.Applications[0].Progress.ChecksumsFailed, r.Applications[0].Progress.TuplesSkipped = 0, 0
	app = ApplicationLines(&r, now)
	if c := cellAfter(lineWith(t, app, "failed 0"), " · failed "); c.Color != ColorOK {
		t.Errorf("no failed checksum drawn in %v", c.Color)
	}
}

func TestSnapshotSidesTheConsoleDoesNotRead(t *testing.T) {
	r := model.SnapshotRow{Key: "node_b/job 3", Applications: []model.SnapshotSide{{Node: "node_b",
		Info: api.SnapshotInfo{Role: "applied", State: "queued", Path: "/x", JobID: sp(int64(3))}}}}
	lineWith(t, GenerationLines(&r, now), "recorded on the source node, which the console does not read")
	lineWith(t, ApplicationLines(&r, now), "no progress recorded yet (is the sidecar running on node_b?)")
	lineWith(t, SnapshotHeaderLines(&r), "node_b/job 3 (the manifest, and so the snapshot's id, is not read yet)")
	r = runningSnapshot()
	r.Applications = nil
	lineWith(t, ApplicationLines(&r, now), "not applied on any node the console reads")
	head := SnapshotHeaderLines(&r)
	if len(head) != 3 || head[0].Text() != "snap_a · source node_a" || head[1].Text() != "LSN 0/3000060 · compression zstd" ||
		head[2].Text() != "path /srv/snap/a" {
		t.Errorf("header %v", head)
	}
	failed := runningSnapshot().Generation
	failed.Info.State, failed.Info.Error = "failed", sp("disk full")
	if l := lineWith(t, SnapshotSideLines(failed, true, "", now), "error: disk full"); l[0].Color != ColorBad {
		t.Errorf("error drawn in %v", l[0].Color)
	}
	if c := SnapshotStateCell("failed", false); c.Color != tcell.ColorRed || !c.Bold || c.Text != "FAILED" {
		t.Errorf("failed state %+v", c)
	}
}

func TestSnapshotMarkAndListCells(t *testing.T) {
	r := runningSnapshot()
	row := model.NodeRow{Name: "node_a", Link: model.LinkOK, Snapshots: []model.SnapshotSide{*r.Generation}}
	if c := SnapshotMarkCell(row); c.Text != "GEN 42%" || c.Color != ColorWarn {
		t.Errorf("generating mark %+v", c)
	}
	row.Snapshots = append(row.Snapshots, r.Applications[0])
	if c := SnapshotMarkCell(row); c.Text != "GEN 42% +1" {
		t.Errorf("two marks %+v", c)
	}
	// A two_phase init's application mirrors the source's generation first: no percent of its own yet.
	mirror := r.Applications[0]
	mirror.Progress = &api.SnapshotProgress{Phase: "generation", Percent: 42.3}
	if c := SnapshotMarkCell(model.NodeRow{Link: model.LinkOK, Snapshots: []model.SnapshotSide{mirror}}); c.Text != "APPLY" {
		t.Errorf("waiting application mark %+v", c)
	}
	if c := SnapshotMarkCell(model.NodeRow{Link: model.LinkOK, SnapshotsUnsupported: true}); c.Text != "n/a" || c.Color != ColorMuted {
		t.Errorf("unsupported mark %+v", c)
	}
	if c := SnapshotMarkCell(model.NodeRow{Link: model.LinkUnreachable, SnapshotsUnsupported: true}); c.Text != "" {
		t.Errorf("unreachable mark %+v", c)
	}
	if cells := NodeCells(row); cells[len(cells)-1].Text != "GEN 42% +1" {
		t.Errorf("SNAP column %+v", cells[len(cells)-1])
	}

	cells := SnapshotCells(r)
	if len(cells) != len(SnapshotColumns) {
		t.Fatalf("%d cells for %d columns", len(cells), len(SnapshotColumns))
	}
	var got []string
	for _, c := range cells[:5] {
		got = append(got, c.Text)
	}
	want := "snap_a|node_a|GENERATING [████░░░░░░]  42.3%|node_b APPLYING 12.5%|400 kB → 125 kB"
	if strings.Join(got, "|") != want {
		t.Errorf("list cells\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
	if cells[2].Color != tcell.ColorYellow || cells[3].Color != tcell.ColorYellow {
		t.Errorf("states drawn in %v and %v", cells[2].Color, cells[3].Color)
	}
	r.Generation = nil
	if c := SnapshotCells(r)[2]; c.Text != "not read" || c.Color != ColorMuted {
		t.Errorf("unread generation %+v", c)
	}
}

func TestSnapshotNotesSayWhichNodesHaveNoSnapshotSupport(t *testing.T) {
	s := model.Snapshots{Unsupported: []string{"node_old"}}
	if EmptySnapshotsText(s) != NoSnapshotSupport {
		t.Errorf("empty text %q", EmptySnapshotsText(s))
	}
	notes := SnapshotNotes(s)
	if len(notes) != 1 || !strings.HasPrefix(notes[0].Text(), "node_old: no snapshot support on this node") {
		t.Errorf("notes %v", notes)
	}
	if got := EmptySnapshotsText(model.Snapshots{Available: true}); !strings.HasPrefix(got, "no snapshots") {
		t.Errorf("empty list with support %q", got)
	}
}
