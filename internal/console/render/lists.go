package render

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
)

// EventColumns are the titles of the events view.
var EventColumns = []string{"TIME", "LOG", "NODE", "EVENT", "CHANGE", "DETAIL"}

// Titles are column titles as header cells.
func Titles(titles []string) []Cell {
	out := make([]Cell, len(titles))
	for i, t := range titles {
		out[i] = Cell{Text: t, Color: ColorHeader, Bold: true}
	}
	return out
}

// EventCells are one event's cells: the state change colored by its new state, the reason
// (or the details as compact JSON) last.
func EventCells(e model.EventRow) []Cell {
	change := Cell{}
	if e.ToState != nil {
		from := "-"
		if e.FromState != nil {
			from = StateText(*e.FromState)
		}
		change = Cell{Text: from + " → " + StateText(*e.ToState), Color: StateColor(*e.ToState)}
	}
	detail := ""
	if r, ok := e.Detail["reason"].(string); ok {
		detail = r
	} else if len(e.Detail) > 0 {
		b, _ := json.Marshal(e.Detail)
		detail = string(b)
	}
	if len(detail) > 100 {
		detail = detail[:97] + "..."
	}
	node := ""
	if e.Node != nil {
		node = *e.Node
	}
	color := ColorMuted
	if strings.HasSuffix(e.Event.Event, "failed") || strings.HasSuffix(e.Event.Event, "stalled") {
		color = ColorBad
	}
	return []Cell{{Text: e.At.Local().Format("15:04:05.000")}, {Text: e.Log, Color: ColorMuted}, {Text: node, Bold: true},
		{Text: e.Event.Event}, change, {Text: detail, Color: color}}
}

// ConflictColumns are the titles of the conflicts view.
var ConflictColumns = []string{"NODE", "SUBSCRIPTION", "CONFLICT TYPE", "COUNT"}

// ConflictCells are the rows of one subscription: one per data-conflict type, their total
// (what the nodes view's CONFL column shows), then the origin_differs types, gray and marked
// as not data conflicts (see OriginDiffersNote); a server without counters (before
// PostgreSQL 18) gets one "n/a" row.
func ConflictCells(c model.ConflictRow) [][]Cell {
	if c.Counts == nil {
		return [][]Cell{{{Text: c.Node, Bold: true}, {Text: c.Subscription},
			{Text: fmt.Sprintf("n/a: the counters need PostgreSQL 18 (server_version_num %d)", c.ServerVersion), Color: ColorMuted},
			ConflictCell(nil)}}
	}
	var data, origin [][]Cell
	for i, typ := range api.ConflictTypes {
		if i >= len(c.Counts) {
			break
		}
		n := c.Counts[i]
		if api.IsDataConflict(typ) {
			data = append(data, []Cell{{Text: c.Node, Bold: true}, {Text: c.Subscription}, {Text: "confl_" + typ}, ConflictCell(&n)})
			continue
		}
		origin = append(origin, []Cell{{Text: c.Node, Bold: true}, {Text: c.Subscription},
			{Text: "confl_" + typ + " (not a data conflict)", Color: ColorMuted},
			{Text: fmt.Sprint(n), Color: ColorMuted, Align: Right}})
	}
	total := api.DataConflicts(c.Counts)
	tc := ConflictCell(&total)
	tc.Bold = true
	out := append(data, []Cell{{Text: c.Node, Bold: true}, {Text: c.Subscription}, {Text: "total of data conflicts", Bold: true}, tc})
	return append(out, origin...)
}

// OriginDiffersNote is the one-line explanation of why origin_differs is not a data conflict.
const OriginDiffersNote = "origin_differs is not a data conflict: PostgreSQL 18 counts it for every row the initial " +
	"table sync copied that the source then changes."

// ConflictNote explains the conflicts view: what the counters are, what the nodes view
// shows, and OriginDiffersNote.
const ConflictNote = "Counters of pg_stat_subscription_stats on the subscriber (PostgreSQL 18); " +
	"the nodes view's CONFL column is the total of data conflicts.\n" + OriginDiffersNote
