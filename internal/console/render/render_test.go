package render

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
)

func TestEveryStateHasItsTextAndOwnColor(t *testing.T) {
	want := map[string]tcell.Color{
		"uninitialized": tcell.ColorGray, "preparing": tcell.ColorAqua, "copying": tcell.ColorYellow,
		"catching_up": tcell.ColorBlue, "synchronized": tcell.ColorLime, "reinitializing": tcell.ColorFuchsia,
		"diverged": tcell.ColorOrange, "failed": tcell.ColorRed,
	}
	if len(api.States) != 8 {
		t.Fatalf("%d states, want the eight of the state machine", len(api.States))
	}
	seen := map[tcell.Color]string{}
	for _, st := range api.States {
		c := StateCell(st, false)
		if c.Text != strings.ToUpper(st) || c.Color != want[st] {
			t.Errorf("state %s renders as %q in %v, want %q in %v", st, c.Text, c.Color, strings.ToUpper(st), want[st])
		}
		if other, dup := seen[c.Color]; dup {
			t.Errorf("%s and %s share a color", st, other)
		}
		seen[c.Color] = st
		if c.Dim || !StateCell(st, true).Dim {
			t.Errorf("state %s: only a stale state is dimmed", st)
		}
	}
	if !StateCell("failed", false).Bold || !StateCell("diverged", false).Bold || StateCell("copying", false).Bold {
		t.Error("failed and diverged (only) are bold")
	}
	if StateText("") != "?" || StateColor("bogus") != tcell.ColorDefault {
		t.Error("an unknown state is ? in the default color")
	}
}

func TestProgressBarPercentAndETA(t *testing.T) {
	cases := map[float64]string{
		0:     "[░░░░░░░░░░░░░░░░░░░░]   0.0%",
		42.3:  "[████████░░░░░░░░░░░░]  42.3%",
		99.99: "[███████████████████░] 100.0%",
		100:   "[████████████████████] 100.0%",
		-3:    "[░░░░░░░░░░░░░░░░░░░░]   0.0%",
		250:   "[████████████████████] 100.0%",
	}
	for p, want := range cases {
		if got := ProgressText(p, BarWidth); got != want {
			t.Errorf("ProgressText(%v) = %q, want %q", p, got, want)
		}
	}
	f := func(v float64) *float64 { return &v }
	if ETA(nil) != "--" || ETA(f(168)) != "2m48s" || ETA(f(42)) != "42s" || ETA(f(3725)) != "1h02m" {
		t.Errorf("ETA: %q %q %q %q", ETA(nil), ETA(f(168)), ETA(f(42)), ETA(f(3725)))
	}
	if RowsPerSec(f(52100)) != "52.1k" || RowsPerSec(nil) != "--" {
		t.Errorf("rows/s: %q", RowsPerSec(f(52100)))
	}
	lag := int64(12_000_000)
	if Lag(&lag) != "12.0 MB" || Lag(nil) != "--" {
		t.Errorf("lag: %q", Lag(&lag))
	}
	p := &api.InitProgress{State: "copying", Percent: 42.3}
	if c := ProgressCell(p); c.Color != tcell.ColorYellow || !strings.HasSuffix(c.Text, "42.3%") {
		t.Errorf("progress cell %+v", c)
	}
	if ProgressCell(nil).Text != "" {
		t.Error("no progress, no bar")
	}
}

func TestConflictColorThresholds(t *testing.T) {
	cases := []struct {
		n    int64
		want tcell.Color
	}{{0, tcell.ColorLime}, {1, tcell.ColorYellow}, {10, tcell.ColorYellow}, {11, tcell.ColorRed}, {5000, tcell.ColorRed}}
	for _, c := range cases {
		cell := ConflictCell(&c.n)
		if cell.Color != c.want || cell.Text != itoa(c.n) {
			t.Errorf("%d conflicts render as %q in %v, want %v", c.n, cell.Text, cell.Color, c.want)
		}
	}
	if c := ConflictCell(nil); c.Text != "n/a" || c.Color != tcell.ColorGray {
		t.Errorf("no counters (before PostgreSQL 18) render as %+v", c)
	}
}

func itoa(n int64) string {
	return strconv.FormatInt(n, 10)
}

func TestNodeCellsFollowTheColumns(t *testing.T) {
	rate, eta := 52100.0, 168.0
	conf := int64(3)
	row := model.NodeRow{Name: "node_b", Addr: "10.0.0.2:5432", Role: "local", Link: model.LinkOK, State: "copying",
		Progress: &api.InitProgress{State: "copying", Percent: 42.3, RowsPerSec: &rate, ETASeconds: &eta}, Conflicts: &conf}
	cells := NodeCells(row)
	if len(cells) != len(NodeColumns) || len(HeaderCells()) != len(NodeColumns) {
		t.Fatalf("%d cells, %d columns", len(cells), len(NodeColumns))
	}
	got := []string{}
	for _, c := range cells {
		got = append(got, c.Text)
	}
	want := "node_b|10.0.0.2:5432|local|ok|COPYING|[████████░░░░░░░░░░░░]  42.3%|52.1k|2m48s|--|3|"
	if strings.Join(got, "|") != want {
		t.Errorf("cells\n got %s\nwant %s", strings.Join(got, "|"), want)
	}

	down := NodeCells(model.NodeRow{Name: "node_a", Link: model.LinkUnreachable, State: "synchronized", StateStale: true})
	if down[3].Text != "UNREACHABLE" || down[3].Color != tcell.ColorRed || !down[4].Dim || down[9].Text != "--" {
		t.Errorf("unreachable row: link %+v state %+v conflicts %+v", down[3], down[4], down[9])
	}
	if nc := NodeCells(model.NodeRow{Name: "x", Link: model.LinkNotConnected}); nc[3].Text != "not connected" || nc[1].Text != "?" {
		t.Errorf("not connected row: %+v", nc)
	}
}

// TestNodesViewIsNotRedAfterACleanInit: after a clean init on PostgreSQL 18 the source's
// updates and deletes of the rows the table sync copied count as update_origin_differs and
// delete_origin_differs; the nodes view's CONFL column counts data conflicts only, so it is a
// green 0, while the conflicts overlay still lists the origin_differs counts (gray).
func TestNodesViewIsNotRedAfterACleanInit(t *testing.T) {
	pg18 := api.ServerInfo{VersionNum: 180004, HasExtension: true, CanReadConninfo: true}
	slot, source := "sr_node_a_node_b", "node_a"
	readings := []model.Reading{
		{Key: "b:5432/postgres", Addr: "b:5432", Seed: true, Link: model.LinkOK, LocalNode: "node_b", Server: pg18,
			Registry: []api.Node{{Name: "node_a", InitState: "uninitialized"},
				{Name: "node_b", IsLocal: true, InitState: "synchronized", InitSource: &source}},
			Subs: []api.SubscriptionStats{{Name: slot, SlotName: &slot, Enabled: true,
				Conflicts: []int64{0, 1200, 0, 0, 35, 0, 0}}}},
		{Key: "a:5432/postgres", Addr: "a:5432", Link: model.LinkOK, LocalNode: "node_a", Server: pg18,
			Registry: []api.Node{{Name: "node_a", IsLocal: true, InitState: "uninitialized"},
				{Name: "node_b", InitState: "synchronized"}},
			Slots: map[string]int64{slot: 0}},
	}
	st := model.Merge(readings, "", true, time.Now())
	col := slices.Index(NodeColumns, "CONFL")
	for _, row := range st.Nodes {
		c := NodeCells(row)[col]
		if c.Text != "0" || c.Color != ColorOK {
			t.Errorf("%s's CONFL after a clean init is %q in %v, want a green 0", row.Name, c.Text, c.Color)
		}
	}
	if len(st.Conflicts) != 1 {
		t.Fatalf("conflict rows %+v", st.Conflicts)
	}
	var overlay []string
	for _, r := range ConflictCells(st.Conflicts[0]) {
		if r[3].Color == ColorBad || r[3].Color == ColorWarn {
			t.Errorf("%s is drawn as a conflict: %q in %v", r[2].Text, r[3].Text, r[3].Color)
		}
		overlay = append(overlay, r[2].Text+"="+r[3].Text)
	}
	for _, want := range []string{"total of data conflicts=0", "confl_update_origin_differs (not a data conflict)=1200",
		"confl_delete_origin_differs (not a data conflict)=35"} {
		if !slices.Contains(overlay, want) {
			t.Errorf("the conflicts overlay has no %q: %v", want, overlay)
		}
	}

	// A data conflict still turns the column yellow, then red.
	readings[0].Subs[0].Conflicts = []int64{0, 1200, 0, 11, 35, 0, 0}
	st = model.Merge(readings, "", true, time.Now())
	for _, row := range st.Nodes {
		if c := NodeCells(row)[col]; row.Name == "node_b" && (c.Text != "11" || c.Color != ColorBad) {
			t.Errorf("11 update_missing conflicts render as %q in %v, want a red 11", c.Text, c.Color)
		}
	}
	// PostgreSQL 17 has no counters: n/a, never a number.
	readings[0].Server.VersionNum, readings[0].Subs[0].Conflicts = 170005, nil
	st = model.Merge(readings, "", true, time.Now())
	for _, row := range st.Nodes {
		if c := NodeCells(row)[col]; row.Name == "node_b" && c.Text != "n/a" {
			t.Errorf("a PostgreSQL 17 node's CONFL is %q, want n/a", c.Text)
		}
	}
}

func TestStatusLineExplainsTheSelectedNode(t *testing.T) {
	msg := "source node node_a unreachable"
	cases := map[string]model.NodeRow{
		"node_a unreachable (retrying with backoff): dial tcp: connection refused": {Name: "node_a", Link: model.LinkUnreachable, LinkReason: "dial tcp: connection refused"},
		"node_b FAILED: boom":        {Name: "node_b", Link: model.LinkOK, State: "failed", LastError: "boom"},
		"node_b: " + msg:             {Name: "node_b", Link: model.LinkOK, State: "copying", Progress: &api.InitProgress{Message: &msg}},
		"node_b COPYING from node_a": {Name: "node_b", Link: model.LinkOK, State: "copying", Source: "node_a"},
		"node_c SYNCHRONIZED":        {Name: "node_c", Link: model.LinkOK, State: "synchronized"},
	}
	for want, row := range cases {
		if got := StatusLine(row); got != want {
			t.Errorf("StatusLine = %q, want %q", got, want)
		}
	}
}

func TestSparklineScalesToThePeak(t *testing.T) {
	if got := Sparkline([]float64{0, 1, 2, 4, 8}, 5); got != "▁▁▂▄█" {
		t.Errorf("Sparkline = %q", got)
	}
	if got := Sparkline([]float64{math.NaN(), 3}, 4); got != "   █" {
		t.Errorf("padding and unknown values: %q", got)
	}
	if got := Sparkline([]float64{0, 0}, 2); got != "▁▁" {
		t.Errorf("all zero: %q", got)
	}
	if got := Sparkline([]float64{1, 2, 3}, 2); len([]rune(got)) != 2 {
		t.Errorf("keeps the last width values: %q", got)
	}
}

func TestThroughputBucketsSamplesPerSecond(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var s []api.InitSample
	for i := range 11 { // 10 s at 1000 B/s, one sample a second
		s = append(s, api.InitSample{At: t0.Add(time.Duration(i) * time.Second), BytesDone: int64(i) * 1000})
	}
	got := Throughput(s, 60*time.Second, 60)
	if len(got) != 60 {
		t.Fatalf("%d buckets", len(got))
	}
	if !math.IsNaN(got[0]) || !math.IsNaN(got[49]) {
		t.Errorf("buckets before the first sample must be unknown: %v %v", got[0], got[49])
	}
	for k := 50; k < 60; k++ {
		if got[k] != 1000 {
			t.Errorf("bucket %d = %v, want 1000 B/s", k, got[k])
		}
	}
	if Throughput(s[:1], time.Minute, 60) != nil {
		t.Error("one sample has no rate")
	}
}

func TestHelpBarListsEveryKeyDangerousInRed(t *testing.T) {
	hints := []KeyHint{{Key: "D", Label: "detail"}, {Key: "C", Label: "cancel init", Dangerous: true}, {Key: "q", Label: "quit"}}
	bar := HelpBar(hints)
	if got := bar.Text(); got != "<D> detail  <C> cancel init  <q> quit" {
		t.Errorf("help bar %q", got)
	}
	for _, c := range bar {
		if c.Text == "<C>" && c.Color != tcell.ColorRed || c.Text == "<D>" && c.Color != ColorHeader {
			t.Errorf("key %s drawn in %v", c.Text, c.Color)
		}
	}
	help := HelpLines(hints, [][2]string{{"Esc", "close"}})
	if len(help) != 5 || !strings.Contains(help[2].Text(), "asks for confirmation") {
		t.Errorf("help page: %v", help)
	}
}

func TestEventAndConflictRows(t *testing.T) {
	from, to, node := "copying", "uninitialized", "node_b"
	e := model.EventRow{Log: "node_b", Event: api.Event{At: time.Now(), Node: &node, Event: "init.state_change",
		FromState: &from, ToState: &to, Detail: map[string]any{"reason": "cancel_init"}}}
	cells := EventCells(e)
	if cells[4].Text != "COPYING → UNINITIALIZED" || cells[4].Color != tcell.ColorGray || cells[5].Text != "cancel_init" {
		t.Errorf("event cells %+v", cells)
	}
	// insert_exists 0, update_origin_differs 12, update_exists 0, update_missing 1,
	// delete_origin_differs 3, delete_missing 0, multiple_unique_conflicts 0.
	rows := ConflictCells(model.ConflictRow{Node: "node_b", Subscription: "sr", Counts: []int64{0, 12, 0, 1, 3, 0, 0}})
	if len(rows) != len(api.ConflictTypes)+1 {
		t.Fatalf("%d conflict rows", len(rows))
	}
	var types []string
	for _, r := range rows {
		types = append(types, r[2].Text+"="+r[3].Text)
	}
	want := "confl_insert_exists=0|confl_update_exists=0|confl_update_missing=1|confl_delete_missing=0|" +
		"confl_multiple_unique_conflicts=0|total of data conflicts=1|" +
		"confl_update_origin_differs (not a data conflict)=12|confl_delete_origin_differs (not a data conflict)=3"
	if got := strings.Join(types, "|"); got != want {
		t.Errorf("conflict rows\n got %s\nwant %s", got, want)
	}
	if rows[2][3].Color != tcell.ColorYellow || rows[5][3].Color != tcell.ColorYellow || !rows[5][3].Bold ||
		rows[6][3].Color != tcell.ColorGray || rows[7][2].Color != tcell.ColorGray {
		t.Errorf("conflict colors: update_missing %v, total %+v, origin_differs %v %v", rows[2][3].Color, rows[5][3],
			rows[6][3].Color, rows[7][2].Color)
	}
	if strings.Contains(OriginDiffersNote, "\n") || !strings.Contains(ConflictNote, OriginDiffersNote) {
		t.Errorf("the origin_differs explanation is not one line of the note: %q", ConflictNote)
	}
	if na := ConflictCells(model.ConflictRow{Node: "n", Subscription: "s", ServerVersion: 170005}); len(na) != 1 || na[0][3].Text != "n/a" {
		t.Errorf("PostgreSQL 17 rows %+v", na)
	}
}

func TestDetailLinesSummarizeTheInit(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var samples []api.InitSample
	for i := range 30 {
		samples = append(samples, api.InitSample{At: now.Add(time.Duration(i-30) * time.Second), BytesDone: int64(i * i * 1000)})
	}
	bps, eta := 250000.0, 70.0
	d := &model.Detail{Node: "node_b", Row: model.NodeRow{Name: "node_b", Link: model.LinkOK, State: "copying", Source: "node_a"},
		Progress: &api.InitProgress{State: "copying", Phase: "copying", Percent: 50, TablesDone: 3, TablesTotal: 11,
			BytesPerSec: &bps, ETASeconds: &eta, ParallelWorkers: 4, UpdatedAt: now.Add(-time.Second)},
		Samples: samples}
	var text []string
	for _, l := range DetailLines(d, now) {
		text = append(text, l.Text())
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"node_b  COPYING from node_a", "tables 3/11", "bytes/s 250 kB/s", "ETA 1m10s",
		"parallel workers 4", "sampled 1s ago", "│ peak 57.0 kB/s"} {
		if !strings.Contains(all, want) {
			t.Errorf("detail lacks %q:\n%s", want, all)
		}
	}
	if !strings.Contains(all, "▁") || !strings.Contains(all, "█") {
		t.Errorf("no sparkline:\n%s", all)
	}
	down := DetailLines(&model.Detail{Node: "node_a", Row: model.NodeRow{Name: "node_a", Link: model.LinkUnreachable,
		LinkReason: "connection refused"}}, now)
	if got := down[len(down)-1].Text(); got != "UNREACHABLE connection refused" {
		t.Errorf("unreachable detail %q", got)
	}
}
