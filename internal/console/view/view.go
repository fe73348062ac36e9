package view

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/console/render"
	"github.com/steepdb/steep_repl/internal/console/ui"
)

// Actions are what the screens ask of the model. SetFocus must not block (key handlers call
// it); CancelInit does I/O and is called from a goroutine of its own.
type Actions interface {
	SetFocus(node string)
	CancelInit(ctx context.Context, node string) (int64, error)
	// GenerateSnapshot and CancelJob do I/O too: endpoint is a row's NodeRow.Endpoint, node
	// the node that records the job.
	GenerateSnapshot(ctx context.Context, endpoint, path, compression string) (string, error)
	CancelJob(ctx context.Context, node string, job int64) (string, error)
}

// Overlay page names.
const (
	pageNodes     = "nodes"
	pageDetail    = "detail"
	pageSnapshots = "snapshots"
	pageSnapshot  = "snapshot"
	pageConflicts = "conflicts"
	pageEvents    = "events"
	pageHelp      = "help"
	pageDuties    = "duties"
	pageConfirm   = "confirm"
	pageGenerate  = "generate"
)

// messageTTL is how long an action's feedback stays in the status line.
const messageTTL = 15 * time.Second

// View is the console's screens: the nodes view (home) and its overlays. Build it with New;
// every method runs in the UI goroutine (Apply through app.QueueUpdateDraw).
type View struct {
	ctx     context.Context
	app     *tview.Application
	actions Actions
	now     func() time.Time

	pages   *tview.Pages
	header  *tview.TextView
	nodes   *tview.Table
	status  *tview.TextView
	helpBar *tview.TextView

	detail      *tview.Flex
	detailText  *tview.TextView
	detailTable *tview.Table
	events      *tview.Table
	conflicts   *tview.Flex
	conflTable  *tview.Table
	snapshots   *tview.Flex
	snapList    *tview.Table
	snapNote    *tview.TextView
	snapshot    *tview.Flex
	snapHead    *tview.TextView
	snapGen     *tview.TextView
	snapApp     *tview.TextView
	duties      *tview.Table
	help        *tview.TextView
	confirm     *ui.Confirm
	form        *ui.SnapshotForm
	// generating is true while the form's generate_snapshot call runs.
	generating bool

	keys     ui.KeyTable
	state    model.State
	overlay  string
	selected string
	// snapSel is the snapshot selected in the list, snapKey the one whose progress is shown.
	snapSel, snapKey string
	message          render.Line
	msgAt            time.Time
}

// New builds the screens. ctx bounds the actions the view starts (cancel).
func New(ctx context.Context, app *tview.Application, actions Actions) *View {
	v := &View{ctx: ctx, app: app, actions: actions, now: time.Now, pages: tview.NewPages()}
	v.keys = v.keyTable()

	v.header = tview.NewTextView().SetDynamicColors(true)
	v.nodes = tview.NewTable().SetFixed(1, 1).SetSelectable(true, false).SetSeparator(' ')
	v.nodes.SetBorder(true).SetTitle(" Nodes ").SetTitleAlign(tview.AlignLeft)
	v.nodes.SetSelectionChangedFunc(func(row, _ int) { v.selectRow(row) })
	v.status = tview.NewTextView().SetDynamicColors(true).SetWrap(false)
	v.helpBar = tview.NewTextView().SetDynamicColors(true).SetText(ui.Tagged(render.HelpBar(v.keys.Hints())))
	home := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(v.header, 1, 0, false).
		AddItem(v.nodes, 0, 1, true).
		AddItem(v.status, 1, 0, false).
		AddItem(v.helpBar, 1, 0, false)
	v.pages.AddPage(pageNodes, home, true, true)

	v.detailText = tview.NewTextView().SetDynamicColors(true)
	v.detailTable = tview.NewTable().SetFixed(1, 0).SetSeparator(' ').SetSelectable(true, false)
	v.detail = tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(v.detailText, 7, 0, false).
		AddItem(v.detailTable, 0, 1, true)
	v.addOverlay(pageDetail, v.detail, " Detail ", -6, -4)

	v.events = tview.NewTable().SetFixed(1, 0).SetSeparator(' ').SetSelectable(true, false)
	v.addOverlay(pageEvents, v.events, " Recent events (newest first, every connected node's log) ", -6, -4)

	v.conflTable = tview.NewTable().SetFixed(1, 0).SetSeparator(' ').SetSelectable(true, false)
	note := tview.NewTextView().SetWordWrap(true).SetText(render.ConflictNote).SetTextColor(render.ColorMuted)
	v.conflicts = tview.NewFlex().SetDirection(tview.FlexRow).AddItem(v.conflTable, 0, 1, true).AddItem(note, 3, 0, false)
	v.addOverlay(pageConflicts, v.conflicts, " Subscription conflicts per type ", -6, -4)

	v.snapList = tview.NewTable().SetFixed(1, 0).SetSeparator(' ').SetSelectable(true, false)
	v.snapList.SetSelectionChangedFunc(func(row, _ int) {
		if key, _ := v.snapList.GetCell(row, 0).GetReference().(string); key != "" {
			v.snapSel = key
		}
	})
	v.snapList.SetSelectedFunc(func(row, _ int) { v.openSnapshot(row) })
	v.snapNote = tview.NewTextView().SetDynamicColors(true)
	v.snapshots = tview.NewFlex().SetDirection(tview.FlexRow).AddItem(v.snapList, 0, 1, true).AddItem(v.snapNote, 0, 0, false)
	v.addOverlay(pageSnapshots, v.snapshots, " Snapshots, newest first (Enter: progress) ", -6, -4)

	v.snapHead = tview.NewTextView().SetDynamicColors(true)
	v.snapGen = tview.NewTextView().SetDynamicColors(true)
	v.snapApp = tview.NewTextView().SetDynamicColors(true)
	sides := tview.NewFlex().
		AddItem(v.snapGen, 0, 1, false).
		AddItem(tview.NewBox(), 2, 0, false).
		AddItem(v.snapApp, 0, 1, true)
	v.snapshot = tview.NewFlex().SetDirection(tview.FlexRow).AddItem(v.snapHead, 3, 0, false).AddItem(sides, 0, 1, true)
	v.addOverlay(pageSnapshot, v.snapshot, " Snapshot progress: generation | application (Esc: back to the list) ", -6, -4)

	v.duties = tview.NewTable().SetFixed(1, 0).SetSeparator(' ').SetSelectable(true, false)
	v.addOverlay(pageDuties, v.duties, " Supervisor duties of tick(), failing first (steep_repl.supervisor_duties) ", -6, -4)

	hints := render.HelpLines(v.keys.Hints(), [][2]string{
		{"↑ ↓", "select a node (j and k too); in an overlay, scroll its list"},
		{"Esc", "close the overlay (its key again does too); from a snapshot's progress, back to the list"},
		{"Enter", "in the snapshots list: the snapshot's progress, generation and application side by side"},
		{"", "in the snapshot form (G): generate; Tab moves between the directory, the compression and the buttons"},
	})
	v.help = tview.NewTextView().SetDynamicColors(true).SetText(ui.TaggedLines(hints))
	v.addOverlay(pageHelp, v.help, " Help ", 130, len(hints)+2)

	v.Apply(model.State{At: v.now(), Listening: true})
	return v
}

func (v *View) addOverlay(name string, p tview.Primitive, title string, width, height int) {
	v.pages.AddPage(name, ui.Centered(framed(p, title), width, height), true, false)
}

// framed is p in a titled border.
func framed(p tview.Primitive, title string) tview.Primitive {
	box := tview.NewFlex().AddItem(p, 0, 1, true)
	box.SetBorder(true).SetTitle(title).SetTitleAlign(tview.AlignLeft).SetBorderColor(render.ColorHeader)
	return box
}

// Root is the primitive to give app.SetRoot.
func (v *View) Root() tview.Primitive { return v.pages }

// Keys is the key table (bindings and help bar).
func (v *View) Keys() ui.KeyTable { return v.keys }

// Apply draws a new state (UI goroutine only).
func (v *View) Apply(s model.State) {
	v.state = s
	head := render.Line{{Text: render.Header(s), Color: render.ColorHeader, Bold: true}}
	v.header.SetText(ui.Tagged(append(head, render.DutyAlert(s, v.now())...)))
	rows := make([][]render.Cell, len(s.Nodes))
	refs := make([]any, len(s.Nodes))
	sel := -1
	for i, n := range s.Nodes {
		rows[i], refs[i] = render.NodeCells(n), n.Name
		if n.Name == v.selected {
			sel = i
		}
	}
	if sel < 0 { // nothing selected yet: the first node given with --db
		sel = max(0, slices.IndexFunc(s.Nodes, func(n model.NodeRow) bool { return strings.HasPrefix(n.Role, "local") }))
	}
	ui.FillTable(v.nodes, render.HeaderCells(), rows, refs)
	if len(rows) > 0 {
		v.nodes.Select(sel+1, 0)
	} else {
		v.nodes.SetCell(1, 0, ui.TableCell(render.Cell{Text: "connecting…", Color: render.ColorMuted}, nil))
	}
	v.refreshStatus()
	v.refreshOverlay()
}

// selectRow follows the nodes table's selection.
func (v *View) selectRow(row int) {
	cell := v.nodes.GetCell(row, 0)
	name, _ := cell.GetReference().(string)
	if name == "" || name == v.selected {
		return
	}
	v.selected = name
	if v.overlay == pageDetail {
		v.actions.SetFocus(name)
		v.refreshOverlay()
	}
	v.refreshStatus()
}

// selectedRow is the selected node's row, nil when there is none.
func (v *View) selectedRow() *model.NodeRow {
	for i := range v.state.Nodes {
		if v.state.Nodes[i].Name == v.selected {
			return &v.state.Nodes[i]
		}
	}
	return nil
}

func (v *View) refreshStatus() {
	if v.message != nil && v.now().Sub(v.msgAt) < messageTTL {
		v.status.SetText(ui.Tagged(v.message))
		return
	}
	v.message = nil
	if r := v.selectedRow(); r != nil {
		c := render.ColorMuted
		if r.Link != model.LinkOK || r.LastError != "" {
			c = render.ColorBad
		}
		v.status.SetText(ui.Tagged(render.Line{{Text: render.StatusLine(*r), Color: c}}))
		return
	}
	v.status.SetText("")
}

// say shows an action's feedback in the status line.
func (v *View) say(text string, color tcell.Color) {
	v.message, v.msgAt = render.Line{{Text: render.SafeText(text), Color: color, Bold: true}}, v.now()
	v.refreshStatus()
}
