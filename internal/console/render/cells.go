package render

import (
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/progress"
)

// Align is a cell's horizontal alignment.
type Align int

// Alignments.
const (
	Left Align = iota
	Right
)

// Cell is one table cell: text and how to draw it. Color tcell.ColorDefault is the
// terminal's own foreground.
type Cell struct {
	Text  string
	Color tcell.Color
	Bold  bool
	Dim   bool
	Align Align
}

// BarWidth is the number of cells of a progress bar in the nodes view.
const BarWidth = 20

// Colors of the console.
var (
	ColorOK      = tcell.ColorLime
	ColorWarn    = tcell.ColorYellow
	ColorBad     = tcell.ColorRed
	ColorMuted   = tcell.ColorGray
	ColorHeader  = tcell.ColorAqua
	ColorCurrent = tcell.ColorYellow
)

var stateColors = map[string]tcell.Color{
	api.StateUninitialized:  tcell.ColorGray,
	api.StatePreparing:      tcell.ColorAqua,
	api.StateCopying:        tcell.ColorYellow,
	api.StateCatchingUp:     tcell.ColorBlue,
	api.StateSynchronized:   tcell.ColorLime,
	api.StateReinitializing: tcell.ColorFuchsia,
	api.StateDiverged:       tcell.ColorOrange,
	api.StateFailed:         tcell.ColorRed,
}

// StateColor is the color of an init state (lowercase): gray uninitialized, aqua preparing,
// yellow copying, blue catching up, green synchronized, fuchsia reinitializing, orange
// diverged, red failed; the default color for anything else.
func StateColor(state string) tcell.Color {
	if c, ok := stateColors[state]; ok {
		return c
	}
	return tcell.ColorDefault
}

// StateText is an init state as shown: uppercase, "?" when unknown.
func StateText(state string) string {
	if state == "" {
		return "?"
	}
	return strings.ToUpper(state)
}

// StateCell draws a state in its color, bold when it needs attention (failed, diverged);
// a stale state (not read live from the node) is dimmed.
func StateCell(state string, stale bool) Cell {
	return Cell{Text: StateText(state), Color: StateColor(state), Dim: stale,
		Bold: state == api.StateFailed || state == api.StateDiverged}
}

// LinkCell draws a node's link: "ok" green, "UNREACHABLE" red, "connecting"/"not connected"
// gray, "ERROR" red.
func LinkCell(l model.Link) Cell {
	switch l {
	case model.LinkOK:
		return Cell{Text: "ok", Color: ColorOK}
	case model.LinkUnreachable:
		return Cell{Text: "UNREACHABLE", Color: ColorBad, Bold: true}
	case model.LinkError:
		return Cell{Text: "ERROR", Color: ColorBad, Bold: true}
	}
	return Cell{Text: l.String(), Color: ColorMuted}
}

// ProgressText is a bar of width cells and the percent: "[████░░░░] 42.3%".
func ProgressText(percent float64, width int) string {
	return fmt.Sprintf("%s %5.1f%%", progress.Bar(percent, width), clamp(percent))
}

func clamp(p float64) float64 {
	return max(0, min(100, p))
}

// ProgressCell draws an init's progress; empty without one.
func ProgressCell(p *api.InitProgress) Cell {
	if p == nil {
		return Cell{}
	}
	return Cell{Text: ProgressText(p.Percent, BarWidth), Color: StateColor(p.State)}
}

// RowsPerSec formats a copy rate without unit ("52.1k"); "--" when unknown.
func RowsPerSec(v *float64) string {
	if v == nil {
		return progress.Unknown
	}
	return progress.Count(*v)
}

// ETA formats seconds left ("2m48s"); "--" when unknown.
func ETA(v *float64) string {
	if v == nil {
		return progress.Unknown
	}
	return progress.Duration(*v)
}

// Lag formats an apply lag in bytes ("12 MB"); "--" when unknown.
func Lag(v *int64) string {
	if v == nil {
		return progress.Unknown
	}
	return progress.Bytes(*v)
}

// ConflictColor is green for 0, yellow for 1 to 10, red above 10.
func ConflictColor(n int64) tcell.Color {
	switch {
	case n <= 0:
		return ColorOK
	case n <= 10:
		return ColorWarn
	}
	return ColorBad
}

// ConflictCell draws a conflict count in ConflictColor; nil (counters not available before
// PostgreSQL 18) is a gray "n/a".
func ConflictCell(n *int64) Cell {
	if n == nil {
		return Cell{Text: "n/a", Color: ColorMuted, Align: Right}
	}
	return Cell{Text: fmt.Sprint(*n), Color: ConflictColor(*n), Align: Right, Bold: *n > 10}
}

// NodeColumns are the titles of the nodes view's columns.
var NodeColumns = []string{"NODE", "HOST:PORT", "ROLE", "LINK", "STATE", "PROGRESS", "ROWS/S", "ETA", "LAG", "CONFL", "SNAP"}

// nodeColumnWidths are the nodes view's minimum column widths, so columns do not jump
// when a progress bar appears.
var nodeColumnWidths = []int{10, 21, 8, 11, 14, BarWidth + 9, 7, 7, 8, 5, 7}

// HeaderCells are the nodes view's column titles, padded to their minimum widths.
func HeaderCells() []Cell {
	out := make([]Cell, len(NodeColumns))
	for i, t := range NodeColumns {
		out[i] = Cell{Text: t, Color: ColorHeader, Bold: true}
		if t == "ROWS/S" || t == "ETA" || t == "LAG" || t == "CONFL" {
			out[i].Align = Right
		}
		out[i].Text = Pad(t, nodeColumnWidths[i], out[i].Align)
	}
	return out
}

// Pad widens s to width cells with spaces, on the right or, right-aligned, on the left.
func Pad(s string, width int, a Align) string {
	n := width - len([]rune(s))
	if n <= 0 {
		return s
	}
	if a == Right {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

// NodeCells are a node's cells, in the order of NodeColumns.
func NodeCells(r model.NodeRow) []Cell {
	var rate, eta *float64
	if r.Progress != nil {
		rate, eta = r.Progress.RowsPerSec, r.Progress.ETASeconds
	}
	addr := r.Addr
	if addr == "" {
		addr = "?"
	}
	conflicts := ConflictCell(r.Conflicts)
	if r.Link != model.LinkOK {
		conflicts = Cell{Text: progress.Unknown, Color: ColorMuted, Align: Right}
	}
	return []Cell{
		{Text: r.Name, Bold: true},
		{Text: addr},
		{Text: r.Role},
		LinkCell(r.Link),
		StateCell(r.State, r.StateStale),
		ProgressCell(r.Progress),
		{Text: RowsPerSec(rate), Align: Right},
		{Text: ETA(eta), Align: Right},
		{Text: Lag(r.LagBytes), Align: Right},
		conflicts,
		SnapshotMarkCell(r),
	}
}

// Header is the line above the nodes table.
func Header(s model.State) string {
	connected := 0
	for _, n := range s.Nodes {
		if n.Link == model.LinkOK {
			connected++
		}
	}
	mode := "LISTEN + poll"
	if !s.Listening {
		mode = "poll only"
	}
	return fmt.Sprintf("steep-console · %d node(s), %d connected · %s · %s", len(s.Nodes), connected, mode,
		s.At.Format("15:04:05"))
}

// StatusLine says what needs saying about the selected node: why it is not connected, its
// last error, or its init's message.
func StatusLine(r model.NodeRow) string {
	switch {
	case r.Link == model.LinkUnreachable:
		return fmt.Sprintf("%s unreachable (retrying with backoff): %s", r.Name, r.LinkReason)
	case r.Link != model.LinkOK && r.LinkReason != "":
		return fmt.Sprintf("%s %s: %s", r.Name, r.Link, r.LinkReason)
	case r.Link != model.LinkOK:
		return fmt.Sprintf("%s %s", r.Name, r.Link)
	case r.State == api.StateFailed && r.LastError != "":
		return fmt.Sprintf("%s FAILED: %s", r.Name, r.LastError)
	case r.Progress != nil && r.Progress.Message != nil && *r.Progress.Message != "":
		return fmt.Sprintf("%s: %s", r.Name, *r.Progress.Message)
	case r.Source != "":
		return fmt.Sprintf("%s %s from %s", r.Name, StateText(r.State), r.Source)
	}
	return fmt.Sprintf("%s %s", r.Name, StateText(r.State))
}
