package api

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Statements the sidecar builds from names (utility statements and COPY take no parameters):
// every identifier is quoted by Identifier and every literal by quoteLiteral, here and
// nowhere else, and each statement is run by the verb that builds it. These verbs return the
// server's error as it is: their callers name the table in their own messages.

// Identifier quotes a schema-qualified or plain name for SQL ("public", "x" -> "public"."x").
func Identifier(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// quoteLiteral quotes s as a SQL string literal the way PostgreSQL's quote_literal (and
// format('%L')) does: quotes doubled, and with a backslash the E'...' form and the backslashes doubled, so
// the literal means s whatever standard_conforming_strings is.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

func columnList(columns []string) string {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = Identifier(c)
	}
	return strings.Join(quoted, ", ")
}

// CopyOut streams a table's columns in COPY text format into w and returns the rows copied.
func CopyOut(ctx context.Context, conn *pgx.Conn, w io.Writer, schema, table string, columns []string) (int64, error) {
	tag, err := conn.PgConn().CopyTo(ctx, w, copyToSQL(schema, table, columns))
	return tag.RowsAffected(), err
}

func copyToSQL(schema, table string, columns []string) string {
	return fmt.Sprintf("COPY %s (%s) TO STDOUT", Identifier(schema, table), columnList(columns))
}

// CopyIn loads a COPY text-format stream from r into a table's columns and returns the rows
// loaded. tolerance > 0 skips malformed rows (ON_ERROR ignore, PostgreSQL 17+) and, on 18+,
// fails past tolerance rows (REJECT_LIMIT); serverVersionNum says which the server has.
func CopyIn(ctx context.Context, conn *pgx.Conn, r io.Reader, schema, table string, columns []string, tolerance int64, serverVersionNum int) (int64, error) {
	tag, err := conn.PgConn().CopyFrom(ctx, r, copyFromSQL(schema, table, columns, tolerance, serverVersionNum))
	return tag.RowsAffected(), err
}

func copyFromSQL(schema, table string, columns []string, tolerance int64, serverVersionNum int) string {
	opts := ""
	switch {
	case tolerance > 0 && serverVersionNum >= 180000:
		opts = fmt.Sprintf(" WITH (ON_ERROR ignore, REJECT_LIMIT %d)", tolerance)
	case tolerance > 0 && serverVersionNum >= 170000:
		opts = " WITH (ON_ERROR ignore)"
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN%s", Identifier(schema, table), columnList(columns), opts)
}

// SequenceValue reads a sequence's last_value and is_called.
func SequenceValue(ctx context.Context, db DB, schema, name string) (last int64, called bool, err error) {
	err = db.QueryRow(ctx, "SELECT last_value, is_called FROM "+Identifier(schema, name)).Scan(&last, &called)
	return
}

// TableHasRows reports whether a table holds a row.
func TableHasRows(ctx context.Context, db DB, schema, table string) (bool, error) {
	var has bool
	err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+Identifier(schema, table)+")").Scan(&has)
	return has, err
}

// TruncateTable empties a table.
func TruncateTable(ctx context.Context, db DB, schema, table string) error {
	_, err := db.Exec(ctx, "TRUNCATE TABLE "+Identifier(schema, table))
	return err
}

// CreateSchema creates a schema when missing.
func CreateSchema(ctx context.Context, db DB, schema string) error {
	_, err := db.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+Identifier(schema))
	return err
}

// exportedSnapshot is the shape of a snapshot name pg_export_snapshot and
// CREATE_REPLICATION_SLOT return (e.g. 00000003-00000002-1).
var exportedSnapshot = regexp.MustCompile(`^[0-9A-F]+(-[0-9A-F]+)+$`)

// ImportSnapshot starts on db (one connection) the read-only repeatable-read transaction
// that sees exported snapshot name; EndSnapshot ends it. On failure no transaction is left open.
func ImportSnapshot(ctx context.Context, db DB, name string) error {
	// SET TRANSACTION SNAPSHOT is a utility statement: it takes no parameter, so the name is
	// checked and inlined.
	if !exportedSnapshot.MatchString(name) {
		return fmt.Errorf("invalid exported snapshot name %q", name)
	}
	if _, err := db.Exec(ctx, q(qSnapshotBegin)); err != nil {
		return fmt.Errorf("begin snapshot transaction: %w", err)
	}
	if _, err := db.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(name)); err != nil {
		_ = EndSnapshot(ctx, db)
		return fmt.Errorf("import snapshot %s: %w", name, err)
	}
	return nil
}

// EndSnapshot ends the read-only transaction ImportSnapshot began (it wrote nothing: ROLLBACK).
func EndSnapshot(ctx context.Context, db DB) error {
	_, err := db.Exec(ctx, q(qSnapshotEnd))
	return err
}
