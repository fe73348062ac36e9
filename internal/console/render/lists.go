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

// ConflictCells are the rows of one subscription: one per conflict type, then the total; a
// server without counters (before PostgreSQL 18) gets one "n/a" row.
func ConflictCells(c model.ConflictRow) [][]Cell {
	if c.Counts == nil {
		return [][]Cell{{{Text: c.Node, Bold: true}, {Text: c.Subscription},
			{Text: fmt.Sprintf("n/a: the counters need PostgreSQL 18 (server_version_num %d)", c.ServerVersion), Color: ColorMuted},
			ConflictCell(nil)}}
	}
	var out [][]Cell
	var total int64
	for i, typ := range api.ConflictTypes {
		n := c.Counts[i]
		total += n
		out = append(out, []Cell{{Text: c.Node, Bold: true}, {Text: c.Subscription}, {Text: "confl_" + typ}, ConflictCell(&n)})
	}
	tc := ConflictCell(&total)
	tc.Bold = true
	return append(out, []Cell{{Text: c.Node, Bold: true}, {Text: c.Subscription}, {Text: "total", Bold: true}, tc})
}

// ConflictNote explains what the counters mean; on PostgreSQL 18 rows first copied by a
// table-sync worker carry no origin, so every later update of them from the source counts
// as update_origin_differs.
const ConflictNote = "Counters of pg_stat_subscription_stats on the subscriber (PostgreSQL 18). " +
	"Rows copied by the initial table sync make later updates count as confl_update_origin_differs: " +
	"those are expected after an init, the other types are not."
