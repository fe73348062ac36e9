package ui

import (
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/console/render"
)

func TestKeyTableBindsLettersInEitherCase(t *testing.T) {
	var ran []string
	kt := KeyTable{
		{Rune: 'D', Label: "detail", Action: func() { ran = append(ran, "D") }},
		{Rune: '?', Label: "help", Action: func() { ran = append(ran, "?") }},
		{Rune: 'q', Label: "quit", Action: func() { ran = append(ran, "q") }},
		{Rune: 'C', Label: "cancel", Dangerous: true},
	}
	for _, r := range []rune{'D', 'd', '?', 'Q', 'x'} {
		kt.Handle(tcell.NewEventKey(tcell.KeyRune, r, tcell.ModNone))
	}
	if strings.Join(ran, "") != "DD?q" {
		t.Errorf("ran %v", ran)
	}
	if kt.Handle(tcell.NewEventKey(tcell.KeyEnter, 0, tcell.ModNone)) {
		t.Error("Enter is not in the table")
	}
	if kt.Handle(tcell.NewEventKey(tcell.KeyRune, 'C', tcell.ModNone)) {
		t.Error("an entry without action handled the key")
	}
	h := kt.Hints()
	if len(h) != 4 || h[0].Key != "D" || !h[3].Dangerous || h[2].Label != "quit" {
		t.Errorf("hints %+v", h)
	}
}

func TestTaggedEscapesTextAndColorsSegments(t *testing.T) {
	got := Tagged(render.Line{{Text: "a[b]"}, {Text: "X", Color: tcell.ColorRed, Bold: true}, {Text: "y", Dim: true}})
	if got != "a[b[][red::b]X[-::-][-::d]y[-::-]" {
		t.Errorf("Tagged = %q", got)
	}
}

func TestWidgetsNeverPassAControlCharacterToTheTerminal(t *testing.T) {
	hostile := "a\x1b]0;owned\x07b\u009b2Jc\nd"
	if got := Tagged(render.Line{{Text: hostile}, {Text: hostile, Color: tcell.ColorRed}}); got != `a\x1b]0;owned\x07b\u009b2Jc d[red::-]a\x1b]0;owned\x07b\u009b2Jc d[-::-]` {
		t.Errorf("Tagged = %q", got)
	}
	if got := TableCell(render.Cell{Text: hostile}, nil).Text; got != `a\x1b]0;owned\x07b\u009b2Jc d` {
		t.Errorf("TableCell text = %q", got)
	}
}
