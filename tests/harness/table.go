package harness

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// column is a table column's name and type (regtype text, e.g. "integer").
type column struct{ name, typ string }

// tableMeta is what Compare needs to know of one side's table.
type tableMeta struct {
	cols []column // in attnum order, dropped columns left out
	pk   []column // primary key columns in key order; nil without one
}

// tablePlan says how to read a table identically on both sides.
type tablePlan struct {
	cols       []string // columns hashed, in A's order, present on both sides
	key        []string // primary key columns; nil: compare as multisets
	intKey     bool     // every key column is an integer type on both sides
	schemaDiff string   // column or key differences, "" if none
}

var intTypes = []string{"smallint", "integer", "bigint"}

// planTable decides the columns and key used for a table from both sides'
// metadata; differences in columns, their types or the primary key are
// reported in schemaDiff and the rows compared on what the sides share.
func planTable(a, b tableMeta) tablePlan {
	var p tablePlan
	var diffs []string
	typesB := map[string]string{}
	for _, c := range b.cols {
		typesB[c.name] = c.typ
	}
	typesA := map[string]string{}
	var onlyA, onlyB []string
	for _, c := range a.cols {
		typesA[c.name] = c.typ
		typ, ok := typesB[c.name]
		switch {
		case !ok:
			onlyA = append(onlyA, c.name)
			continue
		case typ != c.typ:
			diffs = append(diffs, fmt.Sprintf("column %s is %s in A, %s in B", c.name, c.typ, typ))
		}
		p.cols = append(p.cols, c.name)
	}
	for _, c := range b.cols {
		if _, ok := typesA[c.name]; !ok {
			onlyB = append(onlyB, c.name)
		}
	}
	if len(onlyA) > 0 {
		diffs = append(diffs, "columns only in A: "+strings.Join(onlyA, ", "))
	}
	if len(onlyB) > 0 {
		diffs = append(diffs, "columns only in B: "+strings.Join(onlyB, ", "))
	}

	keyA, keyB := columnNames(a.pk), columnNames(b.pk)
	switch {
	case len(keyA) > 0 && slices.Equal(keyA, keyB):
		p.key = keyA
		p.intKey = true
		for i := range a.pk {
			if !slices.Contains(intTypes, a.pk[i].typ) || !slices.Contains(intTypes, b.pk[i].typ) {
				p.intKey = false
			}
		}
	case len(keyA) > 0 || len(keyB) > 0:
		diffs = append(diffs, fmt.Sprintf("primary key is (%s) in A, (%s) in B",
			strings.Join(keyA, ", "), strings.Join(keyB, ", ")))
	}
	p.schemaDiff = strings.Join(diffs, "; ")
	return p
}

func columnNames(cols []column) []string {
	if cols == nil {
		return nil
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return names
}

func quoteColumns(cols []string) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// query builds the SELECT that streams a table's rows for plan p, ordered the
// way compareKeys orders them: integer keys numerically, anything else as text
// under COLLATE "C" (byte order, as Go compares strings).
func (p tablePlan) query(table qualName) string {
	rowText := "ROW(" + quoteColumns(p.cols) + ")::text"
	from := " FROM " + table.quoted()
	switch {
	case p.key == nil:
		expr := "(" + rowText + `) COLLATE "C"`
		return "SELECT " + expr + from + " ORDER BY " + expr
	case p.intKey:
		var sel []string
		for _, k := range p.key {
			sel = append(sel, pgx.Identifier{k}.Sanitize()+"::int8")
		}
		return "SELECT " + strings.Join(sel, ", ") + ", md5(" + rowText + ")" + from +
			" ORDER BY " + quoteColumns(p.key)
	default:
		expr := "(ROW(" + quoteColumns(p.key) + `)::text) COLLATE "C"`
		return "SELECT " + expr + ", md5(" + rowText + ")" + from + " ORDER BY " + expr
	}
}

// compareTable streams the table from both sides and merge-joins the rows.
func compareTable(ctx context.Context, txA, txB pgx.Tx, name qualName, oidA, oidB uint32, tr *TableReport) error {
	metaA, err := readMeta(ctx, txA, oidA)
	if err != nil {
		return fmt.Errorf("side A: %w", err)
	}
	metaB, err := readMeta(ctx, txB, oidB)
	if err != nil {
		return fmt.Errorf("side B: %w", err)
	}
	p := planTable(metaA, metaB)
	tr.ByKey = p.key != nil
	tr.SchemaDiff = p.schemaDiff
	q := p.query(name)
	rowsA, err := txA.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("side A: %w\nSQL: %s", err, q)
	}
	defer rowsA.Close()
	rowsB, err := txB.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("side B: %w\nSQL: %s", err, q)
	}
	defer rowsB.Close()
	srcA := &sqlSource{rows: rowsA, plan: p}
	srcB := &sqlSource{rows: rowsB, plan: p}
	if err := merge(srcA, srcB, p.key == nil, tr); err != nil {
		return err
	}
	return nil
}

// readMeta reads a table's columns and primary key.
func readMeta(ctx context.Context, tx pgx.Tx, oid uint32) (tableMeta, error) {
	var m tableMeta
	var err error
	m.cols, err = queryColumns(ctx, tx, `SELECT a.attname, a.atttypid::pg_catalog.regtype::text
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, oid)
	if err != nil {
		return m, fmt.Errorf("read columns: %w", err)
	}
	m.pk, err = queryColumns(ctx, tx, `SELECT a.attname, a.atttypid::pg_catalog.regtype::text
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = $1 AND i.indisprimary
		ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum)`, oid)
	if err != nil {
		return m, fmt.Errorf("read primary key: %w", err)
	}
	return m, nil
}

func queryColumns(ctx context.Context, tx pgx.Tx, q string, oid uint32) ([]column, error) {
	rows, err := tx.Query(ctx, q, oid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// sqlSource adapts the rows of plan.query to rowSource.
type sqlSource struct {
	rows pgx.Rows
	plan tablePlan
}

func (s *sqlSource) next() (record, bool, error) {
	if !s.rows.Next() {
		return record{}, false, s.rows.Err()
	}
	var r record
	var err error
	switch {
	case s.plan.key == nil:
		err = s.rows.Scan(&r.key.text)
	case s.plan.intKey:
		r.key.ints = make([]int64, len(s.plan.key))
		dest := make([]any, 0, len(r.key.ints)+1)
		for i := range r.key.ints {
			dest = append(dest, &r.key.ints[i])
		}
		err = s.rows.Scan(append(dest, &r.hash)...)
	default:
		err = s.rows.Scan(&r.key.text, &r.hash)
	}
	if err != nil {
		return r, false, fmt.Errorf("read row: %w", err)
	}
	return r, true, nil
}
