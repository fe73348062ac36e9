package ui

import (
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/console/render"
	"github.com/steepdb/steep_repl/internal/progress"
)

// SelectedBackground is the background of the selected row; the text keeps its color.
var SelectedBackground = tcell.ColorDarkSlateGray

// Style is a cell's tcell style.
func Style(c render.Cell) tcell.Style {
	s := tcell.StyleDefault.Foreground(c.Color).Bold(c.Bold).Dim(c.Dim)
	return s
}

// TableCell makes a tview cell of a rendered cell; ref is kept as the cell's reference.
func TableCell(c render.Cell, ref any) *tview.TableCell {
	tc := tview.NewTableCell(tview.Escape(render.Clean(c.Text))).SetStyle(Style(c)).SetReference(ref)
	fg := c.Color
	if fg == tcell.ColorDefault {
		fg = tcell.ColorWhite
	}
	tc.SetSelectedStyle(tcell.StyleDefault.Foreground(fg).Background(SelectedBackground).Bold(c.Bold))
	if c.Align == render.Right {
		tc.SetAlign(tview.AlignRight)
	}
	return tc
}

// FillTable replaces a table's contents: a fixed header row, then rows; refs[i] (when given)
// is the reference of every cell of row i, so a selection can be kept across refreshes.
func FillTable(t *tview.Table, header []render.Cell, rows [][]render.Cell, refs []any) {
	t.Clear()
	for col, c := range header {
		t.SetCell(0, col, TableCell(c, nil).SetSelectable(false))
	}
	for i, row := range rows {
		var ref any
		if i < len(refs) {
			ref = refs[i]
		}
		for col, c := range row {
			t.SetCell(i+1, col, TableCell(c, ref))
		}
	}
}

// Tagged is a line as tview text with color tags; the text itself is cleaned (render.Clean)
// and escaped.
func Tagged(l render.Line) string {
	var b strings.Builder
	for _, c := range l {
		text := tview.Escape(render.Clean(c.Text))
		if c.Color == tcell.ColorDefault && !c.Bold && !c.Dim {
			b.WriteString(text)
			continue
		}
		fg := "-"
		if c.Color != tcell.ColorDefault {
			fg = c.Color.String()
		}
		attrs := ""
		if c.Bold {
			attrs += "b"
		}
		if c.Dim {
			attrs += "d"
		}
		if attrs == "" {
			attrs = "-"
		}
		b.WriteString("[" + fg + "::" + attrs + "]" + text + "[-::-]")
	}
	return b.String()
}

// TaggedLines joins lines as tview text.
func TaggedLines(ls []render.Line) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = Tagged(l)
	}
	return strings.Join(parts, "\n")
}

// Centered places p in the middle of the screen, width x height cells at most (a size
// of 0 or less takes the screen's size minus -size cells).
func Centered(p tview.Primitive, width, height int) tview.Primitive {
	return &centered{Primitive: p, width: width, height: height}
}

type centered struct {
	tview.Primitive
	width, height int
}

// Draw sizes the wrapped primitive to the screen, then draws it.
func (c *centered) Draw(screen tcell.Screen) {
	sw, sh := screen.Size()
	w, h := fit(c.width, sw), fit(c.height, sh)
	c.Primitive.SetRect((sw-w)/2, (sh-h)/2, w, h)
	c.Primitive.Draw(screen)
}

func fit(size, screen int) int {
	if size <= 0 {
		size = screen + size
	}
	return max(1, min(size, screen))
}

// Confirm is a yes/no question whose safe answer is the default: Enter on the focused
// button, y or n, Esc for no.
type Confirm struct {
	*tview.Modal
	yes, no func()
}

// NewConfirm asks text with the buttons yesLabel and noLabel (focused); onYes or onNo runs
// in the UI goroutine after the answer.
func NewConfirm(text, yesLabel, noLabel string, onYes, onNo func()) *Confirm {
	c := &Confirm{Modal: tview.NewModal(), yes: onYes, no: onNo}
	c.SetText(progress.Text(text)).AddButtons([]string{yesLabel, noLabel}).SetFocus(1)
	c.SetBackgroundColor(tcell.ColorDarkRed)
	c.SetDoneFunc(func(i int, _ string) {
		if i == 0 {
			c.yes()
		} else {
			c.no()
		}
	})
	return c
}

// Answer handles the y and n keys (either case); other keys go to the buttons.
func (c *Confirm) Answer(ev *tcell.EventKey) bool {
	if ev.Key() != tcell.KeyRune {
		return false
	}
	switch ev.Rune() {
	case 'y', 'Y':
		c.yes()
		return true
	case 'n', 'N':
		c.no()
		return true
	}
	return false
}
