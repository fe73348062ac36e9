package ui

import (
	"unicode"

	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/console/render"
)

// Key is one entry of the key table: the key, what the help bar and help page say about it,
// whether its action changes something, and the action.
type Key struct {
	// Rune is the key; a letter matches in either case ('D' and 'd').
	Rune rune
	// Label is the help bar's word, Help the help page's sentence.
	Label, Help string
	// Dangerous actions change the cluster; they ask for confirmation first.
	Dangerous bool
	// Action runs in the UI goroutine: it may touch widgets, never block on I/O, and never
	// queue an update (tview would deadlock).
	Action func()
}

// KeyTable is the one list of keys: it drives both the bindings (Handle) and the help bar
// and help page (Hints).
type KeyTable []Key

// Lookup returns the entry for a key event, nil when none.
func (t KeyTable) Lookup(ev *tcell.EventKey) *Key {
	if ev.Key() != tcell.KeyRune {
		return nil
	}
	r := ev.Rune()
	for i := range t {
		k := &t[i]
		if k.Rune == r || unicode.IsLetter(k.Rune) && unicode.ToUpper(k.Rune) == unicode.ToUpper(r) {
			return k
		}
	}
	return nil
}

// Handle runs the action bound to ev and reports whether there was one.
func (t KeyTable) Handle(ev *tcell.EventKey) bool {
	k := t.Lookup(ev)
	if k == nil || k.Action == nil {
		return false
	}
	k.Action()
	return true
}

// Hints lists the keys for the help bar and help page, in table order.
func (t KeyTable) Hints() []render.KeyHint {
	out := make([]render.KeyHint, len(t))
	for i, k := range t {
		out[i] = render.KeyHint{Key: string(k.Rune), Label: k.Label, Help: k.Help, Dangerous: k.Dangerous}
	}
	return out
}
