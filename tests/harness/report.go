package harness

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Report is the result of Compare: one entry per table found on either side,
// sorted by schema and table.
type Report struct {
	// Tables holds every compared table, equal or not.
	Tables []TableReport
}

// TableReport is the comparison of one table.
//
// A table with a primary key (the same on both sides) is compared row by row
// by key: Changed counts keys whose row differs, MissingInB keys only in A,
// ExtraInB keys only in B. A table without one is compared as a multiset of
// whole rows: each distinct row is counted on both sides and a difference in
// counts adds to MissingInB (more copies in A) or ExtraInB (more in B); Changed
// stays 0, since a changed row is one missing plus one extra row.
type TableReport struct {
	// Schema and Table name the table, unquoted.
	Schema, Table string
	// RowsA and RowsB are the row counts read on each side.
	RowsA, RowsB int64
	// Changed counts primary keys present on both sides with different rows.
	Changed int64
	// MissingInB counts rows of A that B lacks.
	MissingInB int64
	// ExtraInB counts rows of B that A lacks.
	ExtraInB int64
	// Examples describes up to 5 differing keys (or rows, without a primary
	// key), e.g. "changed (42)".
	Examples []string
	// OnlyInA and OnlyInB mark a table that exists on one side only.
	OnlyInA, OnlyInB bool
	// ByKey reports whether rows were matched by primary key.
	ByKey bool
	// SchemaDiff describes column or primary key differences between the
	// sides ("" if none); the rows were then compared on the common columns.
	SchemaDiff string
}

// maxExamples caps TableReport.Examples.
const maxExamples = 5

// Equal reports whether the table has the same rows and columns on both sides.
func (tr *TableReport) Equal() bool {
	return !tr.OnlyInA && !tr.OnlyInB && tr.SchemaDiff == "" &&
		tr.Changed == 0 && tr.MissingInB == 0 && tr.ExtraInB == 0
}

// Name returns the table's qualified name, unquoted.
func (tr *TableReport) Name() string {
	return tr.Schema + "." + tr.Table
}

// String describes the table's comparison in one line.
func (tr *TableReport) String() string {
	switch {
	case tr.OnlyInA:
		return fmt.Sprintf("%s: only in A (%d rows)", tr.Name(), tr.RowsA)
	case tr.OnlyInB:
		return fmt.Sprintf("%s: only in B (%d rows)", tr.Name(), tr.RowsB)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: rows A=%d B=%d", tr.Name(), tr.RowsA, tr.RowsB)
	if !tr.ByKey {
		b.WriteString(" (no primary key: compared as multisets)")
	}
	if tr.Equal() {
		b.WriteString(", equal")
		return b.String()
	}
	fmt.Fprintf(&b, ", changed=%d missing_in_b=%d extra_in_b=%d", tr.Changed, tr.MissingInB, tr.ExtraInB)
	if tr.SchemaDiff != "" {
		fmt.Fprintf(&b, ", schema differs: %s", tr.SchemaDiff)
	}
	if len(tr.Examples) > 0 {
		fmt.Fprintf(&b, "; e.g. %s", strings.Join(tr.Examples, "; "))
	}
	return b.String()
}

func (tr *TableReport) example(what string, key rowKey, n int64) {
	if len(tr.Examples) >= maxExamples {
		return
	}
	if n > 1 {
		what += " x" + strconv.FormatInt(n, 10)
	}
	k := key.String()
	if len(k) > 120 {
		k = k[:120] + "..."
	}
	tr.Examples = append(tr.Examples, what+" "+k)
}

// Equal reports whether every table is equal on both sides.
func (r *Report) Equal() bool {
	for i := range r.Tables {
		if !r.Tables[i].Equal() {
			return false
		}
	}
	return true
}

// Table returns the report of schema.table, or nil if it was not compared.
func (r *Report) Table(schema, table string) *TableReport {
	for i := range r.Tables {
		if r.Tables[i].Schema == schema && r.Tables[i].Table == table {
			return &r.Tables[i]
		}
	}
	return nil
}

// String summarizes the report: a headline, then one line per differing table.
func (r *Report) String() string {
	var b strings.Builder
	var differ, rows int64
	for i := range r.Tables {
		if !r.Tables[i].Equal() {
			differ++
		}
		rows += r.Tables[i].RowsA
	}
	if differ == 0 {
		fmt.Fprintf(&b, "%d tables compared, all equal (%d rows)", len(r.Tables), rows)
		return b.String()
	}
	fmt.Fprintf(&b, "%d tables compared, %d differ:", len(r.Tables), differ)
	for i := range r.Tables {
		if !r.Tables[i].Equal() {
			b.WriteString("\n  " + r.Tables[i].String())
		}
	}
	return b.String()
}

// rowKey orders rows: ints when every key column is an integer (compared
// numerically, as SQL orders them), text otherwise (compared bytewise, as SQL
// orders text under COLLATE "C").
type rowKey struct {
	ints []int64
	text string
}

func (k rowKey) String() string {
	if k.ints == nil {
		return k.text
	}
	parts := make([]string, len(k.ints))
	for i, v := range k.ints {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return "(" + strings.Join(parts, ",") + ")"
}

func compareKeys(a, b rowKey) int {
	if a.ints != nil || b.ints != nil {
		return slices.Compare(a.ints, b.ints)
	}
	return cmp.Compare(a.text, b.text)
}

// record is one row read from one side: its key and the hash of the row.
type record struct {
	key  rowKey
	hash string
}

// rowSource yields the rows of one side in ascending key order.
type rowSource interface {
	next() (record, bool, error)
}

// group is a run of rows with the same key (a single row when keyed).
type group struct {
	record
	n int64
}

// grouper reads a rowSource, checks that its keys ascend (strictly when each
// key is unique) and, for multisets, folds equal keys into counts.
type grouper struct {
	src      rowSource
	side     string
	multiset bool
	ahead    record
	hasAhead bool
	last     *rowKey
}

func (g *grouper) read() (record, bool, error) {
	if g.hasAhead {
		g.hasAhead = false
		return g.ahead, true, nil
	}
	r, ok, err := g.src.next()
	if err != nil || !ok {
		return r, ok, err
	}
	if g.last != nil {
		c := compareKeys(*g.last, r.key)
		if c > 0 || (c == 0 && !g.multiset) {
			return r, false, fmt.Errorf("side %s: rows out of order: %s after %s", g.side, r.key, *g.last)
		}
	}
	g.last = &r.key
	return r, true, nil
}

func (g *grouper) next() (group, bool, error) {
	r, ok, err := g.read()
	if err != nil || !ok {
		return group{}, ok, err
	}
	cur := group{record: r, n: 1}
	for g.multiset {
		r, ok, err := g.read()
		if err != nil {
			return cur, false, err
		}
		if !ok {
			break
		}
		if compareKeys(r.key, cur.key) != 0 {
			g.ahead, g.hasAhead = r, true
			break
		}
		cur.n++
	}
	return cur, true, nil
}

// merge merge-joins the two ordered sides into tr. Keyed: one row per key,
// rows compared by hash. Multiset: the key is the whole row, counts compared.
func merge(a, b rowSource, multiset bool, tr *TableReport) error {
	ga := &grouper{src: a, side: "A", multiset: multiset}
	gb := &grouper{src: b, side: "B", multiset: multiset}
	ra, okA, err := ga.next()
	if err != nil {
		return err
	}
	rb, okB, err := gb.next()
	if err != nil {
		return err
	}
	for okA || okB {
		c := 0
		switch {
		case !okB:
			c = -1
		case !okA:
			c = 1
		default:
			c = compareKeys(ra.key, rb.key)
		}
		if c <= 0 {
			tr.RowsA += ra.n
		}
		if c >= 0 {
			tr.RowsB += rb.n
		}
		switch {
		case c < 0:
			tr.MissingInB += ra.n
			tr.example("missing in B", ra.key, ra.n)
		case c > 0:
			tr.ExtraInB += rb.n
			tr.example("extra in B", rb.key, rb.n)
		case multiset && ra.n > rb.n:
			tr.MissingInB += ra.n - rb.n
			tr.example("missing in B", ra.key, ra.n-rb.n)
		case multiset && ra.n < rb.n:
			tr.ExtraInB += rb.n - ra.n
			tr.example("extra in B", rb.key, rb.n-ra.n)
		case !multiset && ra.hash != rb.hash:
			tr.Changed++
			tr.example("changed", ra.key, 1)
		}
		if c <= 0 {
			if ra, okA, err = ga.next(); err != nil {
				return err
			}
		}
		if c >= 0 {
			if rb, okB, err = gb.next(); err != nil {
				return err
			}
		}
	}
	return nil
}
