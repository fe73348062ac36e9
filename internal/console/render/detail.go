package render

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/progress"
)

// Line is a line of text made of colored segments.
type Line []Cell

// Plain is a line of one uncolored segment.
func Plain(s string) Line { return Line{{Text: s}} }

// SparkWidth is the number of cells of the throughput sparkline: one per second of 60 s.
const SparkWidth = 60

// DetailLines are the summary above the per-table list of the detail overlay.
func DetailLines(d *model.Detail, now time.Time) []Line {
	if d == nil {
		return []Line{Plain("no node selected")}
	}
	r := d.Row
	head := Line{{Text: d.Node + "  ", Bold: true}, StateCell(r.State, r.StateStale)}
	if r.Source != "" {
		head = append(head, Cell{Text: " from " + r.Source})
	}
	if !r.StateChangedAt.IsZero() {
		head = append(head, Cell{Text: fmt.Sprintf(" · since %s (%s ago)", r.StateChangedAt.Local().Format("15:04:05"),
			progress.Duration(now.Sub(r.StateChangedAt).Seconds())), Color: ColorMuted})
	}
	lines := []Line{head}
	if r.Link != model.LinkOK {
		return append(lines, Line{LinkCell(r.Link), {Text: " " + r.LinkReason}})
	}
	p := d.Progress
	if p == nil {
		lines = append(lines, Line{{Text: "no init progress recorded on " + d.Node, Color: ColorMuted}})
		if r.LastError != "" {
			lines = append(lines, Line{{Text: "last error: " + r.LastError, Color: ColorBad}})
		}
		return lines
	}
	phase := Line{{Text: "phase " + p.Phase, Color: StateColor(p.Phase), Bold: true}}
	if !p.StartedAt.IsZero() {
		phase = append(phase, Cell{Text: " · started " + p.StartedAt.Local().Format("15:04:05")})
	}
	if !p.UpdatedAt.IsZero() {
		phase = append(phase, Cell{Text: " · sampled " + progress.Duration(max(0, now.Sub(p.UpdatedAt).Seconds())) + " ago"})
	}
	lines = append(lines, phase,
		Line{{Text: ProgressText(p.Percent, 40), Color: StateColor(p.State)},
			{Text: fmt.Sprintf("   tables %d/%d · rows %s / %s · %s / %s", p.TablesDone, p.TablesTotal,
				progress.Count(float64(p.RowsDone)), progress.Count(float64(p.RowsTotal)),
				progress.Bytes(p.BytesDone), progress.Bytes(p.BytesTotal))}},
		Line{{Text: fmt.Sprintf("rows/s %s · bytes/s %s · ETA %s · parallel workers %d · lag %s",
			RowsPerSec(p.RowsPerSec), rate(p.BytesPerSec), ETA(p.ETASeconds), p.ParallelWorkers, Lag(r.LagBytes))}},
	)
	tp := Throughput(d.Samples, 60*time.Second, SparkWidth)
	peak := 0.0
	for _, v := range tp {
		if !math.IsNaN(v) {
			peak = max(peak, v)
		}
	}
	if tp == nil {
		lines = append(lines, Line{{Text: "throughput, last 60 s: no samples yet", Color: ColorMuted}})
	} else {
		lines = append(lines, Line{{Text: "throughput, last 60 s │"}, {Text: Sparkline(tp, SparkWidth), Color: ColorOK},
			{Text: "│ peak " + progress.Rate(peak)}})
	}
	if p.StalledSince != nil {
		lines = append(lines, Line{{Text: "stalled for " + progress.Duration(now.Sub(*p.StalledSince).Seconds()),
			Color: ColorWarn, Bold: true}})
	}
	if p.Message != nil && *p.Message != "" {
		c := ColorWarn
		if r.State == api.StateFailed {
			c = ColorBad
		}
		lines = append(lines, Line{{Text: *p.Message, Color: c}})
	}
	return lines
}

func rate(v *float64) string {
	if v == nil {
		return progress.Unknown
	}
	return progress.Rate(*v)
}

// TableColumns are the titles of the detail overlay's per-table list.
var TableColumns = []string{"", "TABLE", "SYNC", "PROGRESS", "ROWS", "SOURCE ROWS", "SOURCE SIZE"}

// TableHeaderCells are the per-table list's column titles.
func TableHeaderCells() []Cell {
	out := make([]Cell, len(TableColumns))
	for i, t := range TableColumns {
		out[i] = Cell{Text: t, Color: ColorHeader, Bold: true}
		if i >= 4 {
			out[i].Align = Right
		}
	}
	return out
}

var syncOrder = map[string]int{"copying": 0, "pending": 1, "synced": 2, "ready": 3}

// SortTables orders tables being copied first, then pending, synced and ready ones, by name.
func SortTables(tables []api.InitTable) []api.InitTable {
	out := slices.Clone(tables)
	slices.SortStableFunc(out, func(a, b api.InitTable) int {
		if c := cmp.Compare(syncOrder[a.SyncState], syncOrder[b.SyncState]); c != 0 {
			return c
		}
		return cmp.Compare(a.Schema+"."+a.Table, b.Schema+"."+b.Table)
	})
	return out
}

// TableCells are one table's cells; a current table (being copied now) is highlighted.
func TableCells(t api.InitTable, current bool) []Cell {
	name := t.Schema + "." + t.Table
	if t.IsLarge {
		name += " (large)"
	}
	c := ColorMuted
	switch t.SyncState {
	case "copying":
		c = ColorCurrent
	case "synced", "ready":
		c = ColorOK
	}
	marker := Cell{}
	nameCell := Cell{Text: name}
	if current {
		marker = Cell{Text: "▶", Color: ColorCurrent, Bold: true}
		nameCell = Cell{Text: name, Color: ColorCurrent, Bold: true}
	}
	return []Cell{marker, nameCell, {Text: t.StateText(), Color: c},
		{Text: ProgressText(100*t.Fraction, 20), Color: c},
		{Text: progress.Count(float64(t.RowsCopied)), Align: Right},
		{Text: progress.Estimate(t.SourceRows), Align: Right},
		{Text: progress.Bytes(t.SourceBytes), Align: Right}}
}
