package ui

import (
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/console/render"
)

// SnapshotForm asks for the directory and the compression of a new snapshot: a text above
// (what will happen), the fields and buttons, and a line below for the server's answer.
// Enter in the path field or on Generate submits; Esc (with the list of compressions
// closed) or Close cancels.
type SnapshotForm struct {
	*tview.Flex
	form   *tview.Form
	path   *tview.InputField
	comp   *tview.DropDown
	answer *tview.TextView
	submit func(path, compression string)
	cancel func()
}

// NewSnapshotForm builds the form: intro is the text above the fields, path the proposed
// directory, compressions the choices (the first is selected).
func NewSnapshotForm(intro []render.Line, path string, compressions []string,
	onSubmit func(path, compression string), onCancel func()) *SnapshotForm {
	f := &SnapshotForm{Flex: tview.NewFlex().SetDirection(tview.FlexRow), submit: onSubmit, cancel: onCancel}
	text := tview.NewTextView().SetDynamicColors(true).SetWordWrap(true).SetText(TaggedLines(intro))
	f.path = tview.NewInputField().SetLabel("Directory   ").SetText(path).SetFieldWidth(0).
		SetPlaceholder("an absolute directory on the node's host")
	f.comp = tview.NewDropDown().SetLabel("Compression ").SetOptions(compressions, nil).SetCurrentOption(0)
	f.form = tview.NewForm().AddFormItem(f.path).AddFormItem(f.comp).
		AddButton("Generate", f.Submit).AddButton("Close", onCancel)
	f.form.SetCancelFunc(onCancel)
	f.answer = tview.NewTextView().SetDynamicColors(true).SetWordWrap(true)
	f.AddItem(text, 0, 1, false).AddItem(f.form, 7, 0, true).AddItem(f.answer, 0, 1, false)
	return f
}

// Submit hands the fields to onSubmit.
func (f *SnapshotForm) Submit() {
	_, comp := f.comp.GetCurrentOption()
	f.submit(f.path.GetText(), comp)
}

// Say shows the answer below the fields (a refusal, or that the request is on its way).
func (f *SnapshotForm) Say(l render.Line) { f.answer.SetText(Tagged(l)) }

// HandleKey takes the form's own keys before its widgets: Enter in the path field submits,
// Esc cancels unless the list of compressions is open (Esc then closes the list).
func (f *SnapshotForm) HandleKey(ev *tcell.EventKey) bool {
	switch {
	case ev.Key() == tcell.KeyEnter && f.path.HasFocus():
		f.Submit()
		return true
	case ev.Key() == tcell.KeyEscape && !f.comp.IsOpen():
		f.cancel()
		return true
	}
	return false
}
