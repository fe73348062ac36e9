package render

import (
	"fmt"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/progress"
)

// NoSnapshotSupport is what is said of a node whose extension predates snapshots.
const NoSnapshotSupport = "no snapshot support on this node"

// SnapshotBarWidth is the number of cells of a side's progress bar in the progress overlay.
const SnapshotBarWidth = 30

var snapshotStateColors = map[string]tcell.Color{
	"queued":     tcell.ColorAqua,
	"generating": tcell.ColorYellow,
	"applying":   tcell.ColorYellow,
	"complete":   tcell.ColorLime,
	"failed":     tcell.ColorRed,
	"cancelled":  tcell.ColorGray,
	"deleting":   tcell.ColorGray,
	"deleted":    tcell.ColorGray,
}

// SnapshotStateColor is the color of a snapshot side's state: aqua queued, yellow
// generating or applying, green complete, red failed, gray cancelled, deleting or deleted.
func SnapshotStateColor(state string) tcell.Color {
	if c, ok := snapshotStateColors[state]; ok {
		return c
	}
	return tcell.ColorDefault
}

// SnapshotStateCell draws a side's state uppercase in its color, bold when failed; a stale
// one (its node is unreachable) is dimmed.
func SnapshotStateCell(state string, stale bool) Cell {
	return Cell{Text: StateText(state), Color: SnapshotStateColor(state), Bold: state == "failed", Dim: stale}
}

// sidePercent is the percent of a side's own work: a generation's, or an application's once
// it loads (a two_phase init's application first mirrors the source's generation); nil
// when its progress is not known. A complete side is at 100.
func sidePercent(s model.SnapshotSide) *float64 {
	if s.Info.State == "complete" {
		v := 100.0
		return &v
	}
	if p := s.Progress; p != nil && (p.Phase == "generation") == s.Generated() {
		v := p.Percent
		return &v
	}
	return nil
}

// SnapshotMarkCell is a node's SNAP column: "GEN 42%" while a snapshot is generated on it,
// "APPLY 7%" while one is applied to it (without percent until known), "+N" for more at
// once; "n/a" in gray when the node's extension has no snapshot support; empty otherwise.
func SnapshotMarkCell(r model.NodeRow) Cell {
	switch {
	case r.Link != model.LinkOK:
		return Cell{}
	case r.SnapshotsUnsupported:
		return Cell{Text: "n/a", Color: ColorMuted}
	case len(r.Snapshots) == 0:
		return Cell{}
	}
	s := r.Snapshots[0]
	text := "APPLY"
	if s.Generated() {
		text = "GEN"
	}
	if p := sidePercent(s); p != nil {
		text += fmt.Sprintf(" %.0f%%", clamp(*p))
	}
	if n := len(r.Snapshots) - 1; n > 0 {
		text += fmt.Sprintf(" +%d", n)
	}
	return Cell{Text: text, Color: ColorWarn, Bold: true}
}

// SnapshotColumns are the titles of the snapshots list.
var SnapshotColumns = []string{"SNAPSHOT", "SOURCE", "GENERATION", "APPLIED TO", "SIZE", "CREATED"}

// SnapshotCells are one snapshot's cells in the snapshots list: its generation's state (and
// percent while under way), each application's target, state and percent, the size
// generated (raw → compressed) and when it was requested.
func SnapshotCells(r model.SnapshotRow) []Cell {
	id := Cell{Text: r.ID, Bold: true}
	if r.ID == "" {
		id = Cell{Text: "(" + r.Key + ", manifest not read yet)", Color: ColorMuted}
	}
	source := r.Source
	if source == "" {
		source = "?"
	}
	gen := Cell{Text: "not read", Color: ColorMuted}
	if g := r.Generation; g != nil {
		gen = SnapshotStateCell(g.Info.State, g.Stale)
		if p := sidePercent(*g); p != nil && g.Active() {
			gen.Text += " " + ProgressText(*p, 10)
		}
	}
	applied := Cell{Text: "-", Color: ColorMuted}
	if len(r.Applications) > 0 {
		parts := make([]string, len(r.Applications))
		for i, a := range r.Applications {
			parts[i] = a.Node + " " + StateText(a.Info.State)
			if p := sidePercent(a); p != nil && a.Active() {
				parts[i] += fmt.Sprintf(" %.1f%%", clamp(*p))
			}
		}
		first := r.Applications[0]
		applied = Cell{Text: strings.Join(parts, ", "), Color: SnapshotStateColor(first.Info.State), Dim: first.Stale}
	}
	size := Cell{Text: progress.Unknown}
	if g := r.Generation; g != nil && g.Info.BytesRaw != nil {
		size.Text = progress.Bytes(*g.Info.BytesRaw)
		if g.Info.BytesCompressed != nil {
			size.Text += " → " + progress.Bytes(*g.Info.BytesCompressed)
		}
	}
	created := Cell{Text: progress.Unknown, Color: ColorMuted}
	if !r.CreatedAt.IsZero() {
		created.Text = r.CreatedAt.Local().Format("2006-01-02 15:04:05")
	}
	return []Cell{id, {Text: source}, gen, applied, size, created}
}

// SnapshotNotes are the lines under the snapshots list: nodes without snapshot support,
// nodes whose snapshots could not be read, and why the list is empty.
func SnapshotNotes(s model.Snapshots) []Line {
	var lines []Line
	for _, n := range s.Unsupported {
		lines = append(lines, Line{{Text: n + ": ", Bold: true},
			{Text: NoSnapshotSupport + " (its steep_repl extension predates snapshots)", Color: ColorMuted}})
	}
	for _, p := range s.Problems {
		lines = append(lines, Line{{Text: p, Color: ColorWarn}})
	}
	return lines
}

// EmptySnapshotsText says why the snapshots list is empty.
func EmptySnapshotsText(s model.Snapshots) string {
	if !s.Available && len(s.Unsupported) > 0 {
		return NoSnapshotSupport
	}
	if !s.Available {
		return "no node with snapshot support connected"
	}
	return "no snapshots generated on or applied to the connected nodes"
}

// SnapshotHeaderLines are the lines above the two sides of a snapshot's progress: its id,
// source, LSN, compression and directory.
func SnapshotHeaderLines(r *model.SnapshotRow) []Line {
	if r == nil {
		return []Line{{{Text: "this snapshot is no longer listed", Color: ColorMuted}}}
	}
	id := r.ID
	if id == "" {
		id = r.Key + " (the manifest, and so the snapshot's id, is not read yet)"
	}
	head := Line{{Text: id, Bold: true}}
	if r.Source != "" {
		head = append(head, Cell{Text: " · source " + r.Source})
	}
	var info *api.SnapshotInfo
	if r.Generation != nil {
		info = &r.Generation.Info
	} else if len(r.Applications) > 0 {
		info = &r.Applications[0].Info
	}
	if info == nil {
		return []Line{head}
	}
	var facts []string
	if info.LSN != nil {
		facts = append(facts, "LSN "+*info.LSN)
	}
	if info.Compression != nil {
		facts = append(facts, "compression "+*info.Compression)
	}
	if info.SlotName != nil {
		slot := "slot " + *info.SlotName
		switch {
		case info.SlotDropped != nil && *info.SlotDropped:
			slot += " (dropped)"
		case info.SlotExpiresAt != nil:
			slot += " until " + info.SlotExpiresAt.Local().Format("2006-01-02 15:04")
		}
		facts = append(facts, slot)
	}
	lines := []Line{head}
	if len(facts) > 0 {
		lines = append(lines, Line{{Text: strings.Join(facts, " · "), Color: ColorMuted}})
	}
	return append(lines, Line{{Text: "path " + info.Path, Color: ColorMuted}})
}

// SnapshotSideLines are one side of a snapshot's progress: its state, phase and step, the
// bar and percent, bytes, rows and tables, throughput and ETA, the tables being worked on,
// the compression ratio, the checksums (verified, and failed in red) and the tuples
// skipped, then its message or error. generation says which side this is, for the line
// shown when s is nil (a side the console does not read).
func SnapshotSideLines(s *model.SnapshotSide, generation bool, source string, now time.Time) []Line {
	if s == nil {
		if !generation {
			return []Line{{{Text: "APPLICATION", Color: ColorHeader, Bold: true}},
				{{Text: "not applied on any node the console reads", Color: ColorMuted}}}
		}
		where := "the source node"
		if source != "" {
			where = source
		}
		return []Line{{{Text: "GENERATION", Color: ColorHeader, Bold: true}},
			{{Text: "recorded on " + where + ", which the console does not read", Color: ColorMuted}}}
	}
	title := "APPLICATION to " + s.Node
	if s.Generated() {
		title = "GENERATION on " + s.Node
	}
	head := Line{{Text: title, Color: ColorHeader, Bold: true}}
	if s.Stale {
		head = append(head, Cell{Text: " (last seen: " + s.Node + " is not read now)", Color: ColorWarn})
	}
	lines := []Line{head}
	state := Line{SnapshotStateCell(s.Info.State, s.Stale)}
	p := s.Progress
	if p != nil {
		state = append(state, Cell{Text: " · phase " + p.Phase + " · step " + p.Step})
	}
	if s.Info.JobID != nil {
		state = append(state, Cell{Text: fmt.Sprintf(" · job %d", *s.Info.JobID), Color: ColorMuted})
	}
	lines = append(lines, state)
	if p == nil {
		lines = append(lines, Line{{Text: "no progress recorded yet (is the sidecar running on " + s.Node + "?)", Color: ColorMuted}})
		return append(lines, sideOutcome(s)...)
	}
	percent := p.Percent
	if v := sidePercent(*s); v != nil {
		percent = *v
	}
	if p.Phase == "generation" && !s.Generated() {
		lines = append(lines, Line{{Text: "waiting for the generation on the source (its progress):", Color: ColorMuted}})
	}
	lines = append(lines,
		Line{{Text: ProgressText(percent, SnapshotBarWidth), Color: SnapshotStateColor(s.Info.State), Dim: s.Stale}},
		Plain(fmt.Sprintf("bytes %s / %s · rows %s / %s · tables %d/%d", progress.Bytes(p.BytesDone),
			progress.Bytes(p.BytesTotal), progress.Count(float64(p.RowsDone)), progress.Count(float64(p.RowsTotal)),
			p.TablesDone, p.TablesTotal)),
		Plain("throughput "+rate(p.ThroughputBytesS)+" · ETA "+ETA(p.ETASeconds)+timing(p, now)),
	)
	if p.CurrentTable != nil && *p.CurrentTable != "" {
		lines = append(lines, Line{{Text: "current "}, {Text: *p.CurrentTable, Color: ColorCurrent, Bold: true}})
	}
	ratio := progress.Unknown
	if p.CompressionRatio != nil {
		ratio = fmt.Sprintf("%.1fx", *p.CompressionRatio)
	}
	lines = append(lines, Plain("compression ratio "+ratio))
	if s.Generated() {
		lines = append(lines, Line{{Text: fmt.Sprintf("checksums: SHA-256 written for %d/%d tables", p.TablesDone, p.TablesTotal)}})
	} else {
		failed := Cell{Text: fmt.Sprint(p.ChecksumsFailed), Color: ColorOK}
		if p.ChecksumsFailed > 0 {
			failed = Cell{Text: fmt.Sprint(p.ChecksumsFailed), Color: ColorBad, Bold: true}
		}
		lines = append(lines, Line{{Text: "checksums verified "}, {Text: fmt.Sprint(p.ChecksumsVerified), Color: ColorOK},
			{Text: " · failed "}, failed})
		skipped := Cell{Text: fmt.Sprint(p.TuplesSkipped)}
		if p.TuplesSkipped > 0 {
			skipped = Cell{Text: fmt.Sprint(p.TuplesSkipped), Color: ColorWarn, Bold: true}
		}
		lines = append(lines, Line{{Text: "tuples skipped "}, skipped})
	}
	if p.Message != nil && *p.Message != "" && s.Info.Error == nil {
		c := ColorMuted
		if p.Step == "restarting" || p.Step == "failed" {
			c = ColorWarn
		}
		lines = append(lines, Line{{Text: strings.Join(strings.Fields(*p.Message), " "), Color: c}})
	}
	return append(lines, sideOutcome(s)...)
}

// timing is " · started 15:04:05 · updated 1s ago" for a progress row.
func timing(p *api.SnapshotProgress, now time.Time) string {
	s := ""
	if !p.StartedAt.IsZero() {
		s += " · started " + p.StartedAt.Local().Format("15:04:05")
	}
	if !p.UpdatedAt.IsZero() {
		s += " · updated " + progress.Duration(max(0, now.Sub(p.UpdatedAt).Seconds())) + " ago"
	}
	return s
}

// sideOutcome is a finished side's completion time or error.
func sideOutcome(s *model.SnapshotSide) []Line {
	var lines []Line
	if s.Info.CompletedAt != nil && s.Info.State == "complete" {
		lines = append(lines, Line{{Text: "completed " + s.Info.CompletedAt.Local().Format("2006-01-02 15:04:05"), Color: ColorOK}})
	}
	if s.Info.Error != nil && *s.Info.Error != "" {
		lines = append(lines, Line{{Text: "error: " + strings.Join(strings.Fields(*s.Info.Error), " "), Color: ColorBad}})
	}
	return lines
}

// ApplicationLines are the application side of a snapshot's progress: every target the
// console reads, one block after the other.
func ApplicationLines(r *model.SnapshotRow, now time.Time) []Line {
	if r == nil || len(r.Applications) == 0 {
		return SnapshotSideLines(nil, false, "", now)
	}
	var lines []Line
	for i := range r.Applications {
		if i > 0 {
			lines = append(lines, Line{})
		}
		lines = append(lines, SnapshotSideLines(&r.Applications[i], false, r.Source, now)...)
	}
	return lines
}

// GenerationLines are the generation side of a snapshot's progress.
func GenerationLines(r *model.SnapshotRow, now time.Time) []Line {
	if r == nil {
		return SnapshotSideLines(nil, true, "", now)
	}
	return SnapshotSideLines(r.Generation, true, r.Source, now)
}
