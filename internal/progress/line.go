package progress

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// BarWidth is the number of cells of the bar in Line.
const BarWidth = 16

// MaxDetailTables is how many current tables Detail names before "+N more".
const MaxDetailTables = 3

// ANSI colors of the state in Line.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// Snapshot is one sample of the progress of a node init (package api's InitProgress as
// the display needs it) or of a snapshot job (api's SnapshotProgress: Phase generation or
// application, a Step, no State and no rows/s). Nil pointers are values the server does
// not know yet.
type Snapshot struct {
	Time          time.Time // when the sample was taken (the "now" of durations)
	Node, Source  string
	State         string // the node's init state, lowercase: preparing, copying, catching_up, synchronized, failed...
	Phase         string // the init's own phase (init_progress.phase), or a snapshot job's
	Step          string // what the phase is doing (snapshot jobs: "writing", "loading"...); "" for none
	Percent       float64
	TablesTotal   int
	TablesDone    int
	CurrentTables []string // tables being copied now, "schema.table"
	LargeTables   []string // tables the server counts as large, "schema.table"
	BytesTotal    int64
	BytesDone     int64
	RowsTotal     int64
	RowsDone      int64
	RowsPerSec    *float64
	BytesPerSec   *float64
	NoRowsRate    bool // no rows/s is measured (snapshot jobs): Line leaves that field out
	ETASeconds    *float64
	LagBytes      *int64     // replication slot lag on the source while catching up
	StalledSince  *time.Time // set while no progress is being made
	StartedAt     time.Time
	UpdatedAt     time.Time // when the server last sampled the init
	Message       string    // failure reason or note; "" for none
}

// state returns the state to show: the node's, else the init's phase.
func (p Snapshot) state() string {
	if p.State != "" {
		return strings.ToLower(p.State)
	}
	return strings.ToLower(p.Phase)
}

// StateColor returns the ANSI color of an init state: green for synchronized, yellow
// for an init under way (preparing, copying, catching_up) and for a snapshot job's phase
// (generation, application), red for failed, "" otherwise.
func StateColor(state string) string {
	switch strings.ToLower(state) {
	case "synchronized":
		return ansiGreen
	case "preparing", "copying", "catching_up", "generation", "application":
		return ansiYellow
	case "failed":
		return ansiRed
	}
	return ""
}

// Line is the one-line status of p, fields separated by " | ":
//
//	[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | 52.1k rows/s | ETA 2m48s | COPYING 3/11 tables
//
// followed by "lag 12 MB" when the lag is known and "stalled 1m20s" while stalled. With
// color the state is wrapped in ANSI color codes (see StateColor). A snapshot job's line
// has its step after the phase and no rows/s (NoRowsRate):
//
//	[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | ETA 2m48s | GENERATION writing 3/11 tables
func Line(p Snapshot, color bool) string {
	state := Escape(strings.ToUpper(p.state()))
	if c := StateColor(state); color && c != "" {
		state = c + state + ansiReset
	}
	if p.Step != "" {
		state += " " + Escape(p.Step)
	}
	eta := Unknown
	if p.ETASeconds != nil {
		eta = Duration(*p.ETASeconds)
	}
	parts := []string{
		fmt.Sprintf("%s %.1f%%", Bar(p.Percent, BarWidth), clampPercent(p.Percent)),
		Bytes(p.BytesDone) + " / " + Bytes(p.BytesTotal),
		rateOr(p.BytesPerSec, Rate, Unknown+" B/s"),
	}
	if !p.NoRowsRate {
		parts = append(parts, rateOr(p.RowsPerSec, Rows, Unknown+" rows/s"))
	}
	parts = append(parts,
		"ETA "+eta,
		fmt.Sprintf("%s %d/%d tables", state, p.TablesDone, p.TablesTotal),
	)
	if p.LagBytes != nil {
		parts = append(parts, "lag "+Bytes(*p.LagBytes))
	}
	if p.StalledSince != nil {
		parts = append(parts, "stalled "+Duration(p.Time.Sub(*p.StalledSince).Seconds()))
	}
	return strings.Join(parts, " | ")
}

func rateOr(v *float64, f func(float64) string, unknown string) string {
	if v == nil || !known(*v) {
		return unknown
	}
	return f(*v)
}

// Detail is the second line under Line: the failure reason, the tables being copied
// ("copying public.orders (large), public.items +2 more"), the server's note, or what
// the state means; "" when there is nothing to add.
func Detail(p Snapshot) string {
	switch state := p.state(); {
	case state == "failed":
		if p.Message != "" {
			return "failed: " + Escape(oneLine(p.Message))
		}
		return "failed"
	case len(p.CurrentTables) > 0:
		return "copying " + tableList(p.CurrentTables, p.LargeTables)
	case p.Message != "":
		return Escape(oneLine(p.Message))
	case state == "preparing":
		return "preparing: setting up the publication on " + Escape(p.Source) + " and the subscription on " + Escape(p.Node)
	case state == "catching_up":
		return "catching up: applying the changes made on " + Escape(p.Source) + " since the copy began"
	case state == "synchronized":
		return "synchronized: replicating from " + Escape(p.Source)
	}
	return ""
}

func tableList(tables, large []string) string {
	var b strings.Builder
	for i, t := range tables {
		if i == MaxDetailTables {
			fmt.Fprintf(&b, " +%d more", len(tables)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(Escape(t))
		if slices.Contains(large, t) {
			b.WriteString(" (large)")
		}
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Summary is the final result line of an init:
//
//	node_b SYNCHRONIZED from node_a: 11 tables, 1.2 MB, 15s
//	node_b FAILED from node_a after 3/11 tables, 400 MB, 1m02s: could not connect to node_a
//
// The duration runs from StartedAt to UpdatedAt (the server's last sample), or to Time
// when UpdatedAt is not set; it is left out when StartedAt is not set.
func Summary(p Snapshot) string {
	state := p.state()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s from %s", Escape(p.Node), Escape(strings.ToUpper(state)), Escape(p.Source))
	if state == "synchronized" {
		fmt.Fprintf(&b, ": %d tables, %s", p.TablesTotal, Bytes(p.BytesDone))
	} else {
		fmt.Fprintf(&b, " after %d/%d tables, %s", p.TablesDone, p.TablesTotal, Bytes(p.BytesDone))
	}
	if !p.StartedAt.IsZero() {
		end := p.UpdatedAt
		if end.IsZero() {
			end = p.Time
		}
		b.WriteString(", " + Duration(end.Sub(p.StartedAt).Seconds()))
	}
	if state != "synchronized" && p.Message != "" {
		b.WriteString(": " + Escape(oneLine(p.Message)))
	}
	return b.String()
}

// jsonSnapshot fixes the keys and their order of the NDJSON object.
type jsonSnapshot struct {
	Time             time.Time `json:"time"`
	Node             string    `json:"node"`
	State            string    `json:"state"`
	Phase            string    `json:"phase"`
	Percent          float64   `json:"percent"`
	TablesTotal      int       `json:"tables_total"`
	TablesDone       int       `json:"tables_done"`
	CurrentTables    []string  `json:"current_tables"`
	BytesDone        int64     `json:"bytes_done"`
	BytesTotal       int64     `json:"bytes_total"`
	RowsDone         int64     `json:"rows_done"`
	RowsPerSec       *float64  `json:"rows_per_sec"`
	ThroughputBytesS *float64  `json:"throughput_bytes_s"`
	ETAS             *float64  `json:"eta_s"`
	LagBytes         *int64    `json:"lag_bytes"`
	Message          *string   `json:"message"`
}

// JSON encodes p as one NDJSON object (no trailing newline) with the keys time (RFC 3339,
// UTC), node, state and phase (lowercase), percent (0-100), tables_total, tables_done,
// current_tables (an array, maybe empty), bytes_done, bytes_total, rows_done,
// rows_per_sec, throughput_bytes_s (bytes per second), eta_s (seconds), lag_bytes and
// message. Unknown values (nil, NaN, negative rates) and an empty message are null.
func JSON(p Snapshot) ([]byte, error) {
	j := jsonSnapshot{
		Time:             p.Time.UTC(),
		Node:             p.Node,
		State:            strings.ToLower(p.State),
		Phase:            strings.ToLower(p.Phase),
		Percent:          clampPercent(p.Percent),
		TablesTotal:      p.TablesTotal,
		TablesDone:       p.TablesDone,
		CurrentTables:    p.CurrentTables,
		BytesDone:        p.BytesDone,
		BytesTotal:       p.BytesTotal,
		RowsDone:         p.RowsDone,
		RowsPerSec:       knownOrNil(p.RowsPerSec),
		ThroughputBytesS: knownOrNil(p.BytesPerSec),
		ETAS:             knownOrNil(p.ETASeconds),
		LagBytes:         p.LagBytes,
	}
	if j.CurrentTables == nil {
		j.CurrentTables = []string{}
	}
	if p.Message != "" {
		j.Message = &p.Message
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode progress of %s: %w", p.Node, err)
	}
	return b, nil
}

func knownOrNil(v *float64) *float64 {
	if v == nil || !known(*v) {
		return nil
	}
	return v
}
