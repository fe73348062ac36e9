package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// The steps of a fast init (start_init method fast, job init.fast).

// FastCopying empties what an earlier attempt of node's fast init copied and moves it to COPYING.
func FastCopying(ctx context.Context, db DB, node string) error {
	return execStep(ctx, db, "fast init of "+node+": start copying", qFastCopying, node)
}

// FastReset empties what node's fast init copied and resets its per-table progress.
func FastReset(ctx context.Context, db DB, node string) error {
	return execStep(ctx, db, "fast init of "+node+": empty the tables", qFastReset, node)
}

// FastDropObjects records and drops the secondary indexes and unique, exclusion and foreign-key
// constraints of node's init tables; it returns how many it dropped.
func FastDropObjects(ctx context.Context, db DB, node string) (int, error) {
	return scalar[int](ctx, db, "fast init of "+node+": drop indexes and constraints", qFastDropObjects, node)
}

// FastObject is an index or constraint a fast init dropped and will re-create.
type FastObject struct {
	ID         int64
	ForeignKey bool
	// Stage orders the re-creation within foreign keys and the others: a partition's index
	// (stage 0) before the partitioned index that attaches it (100 - its level).
	Stage int
}

// FastObjects lists what node's fast init dropped, in the order to re-create it: the others
// before the foreign keys, each by stage, then as recorded.
func FastObjects(ctx context.Context, db DB, node string) ([]FastObject, error) {
	rows, err := db.Query(ctx, q(qFastObjects), node)
	if err != nil {
		return nil, fmt.Errorf("fast init of %s: list dropped objects: %w", node, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FastObject])
	if err != nil {
		return nil, fmt.Errorf("fast init of %s: list dropped objects: %w", node, err)
	}
	return out, nil
}

// FastRestoreObject re-creates one dropped object as its table's owner; false: another
// session did already.
func FastRestoreObject(ctx context.Context, db DB, id int64) (bool, error) {
	return scalar[bool](ctx, db, fmt.Sprintf("re-create dropped object %d", id), qFastRestoreObject, id)
}

// FastChunkDone records one copied chunk of schema.table (inside the chunk's transaction).
func FastChunkDone(ctx context.Context, db DB, node, schema, table string, rows, bytes int64, chunks int) error {
	return execStep(ctx, db, fmt.Sprintf("record a chunk of %s", Identifier(schema, table)), qFastChunkDone,
		node, schema, table, rows, bytes, chunks)
}

// FastMessage sets init_progress.message of node's init.
func FastMessage(ctx context.Context, db DB, node, message string) error {
	return execStep(ctx, db, "fast init of "+node+": record message", qFastMessage, node, message)
}

// FastSplitThreshold is the size in bytes above which node's fast init splits a table.
func FastSplitThreshold(ctx context.Context, db DB, node string) (int64, error) {
	return scalar[int64](ctx, db, "fast init of "+node+": split_threshold", qFastSplitThreshold, node)
}

// FastTable is one table of a fast init as the target has it: its owner, the columns COPY
// fills with their types (format_type), whether every one of those types has binary I/O, and
// whether it is copied in COPY's binary format (decided against the source: BinaryCopy).
type FastTable struct {
	Schema, Name, Owner string
	Columns             []string
	Types               []string
	BinaryIO            bool
	Binary              bool
}

// SourceColumns is a table's columns on the source: name -> format_type, and whether every
// type has binary I/O.
type SourceColumns struct {
	Schema, Name string
	Columns      []string
	Types        []string
	BinaryIO     bool
}

// FastSourceColumns reads the column types of tables on the source.
func FastSourceColumns(ctx context.Context, db DB, tables []FastTable) ([]SourceColumns, error) {
	schemas, names := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := db.Query(ctx, q(qFastSourceColumns), schemas, names)
	if err != nil {
		return nil, fmt.Errorf("column types on the source: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SourceColumns])
	if err != nil {
		return nil, fmt.Errorf("column types on the source: %w", err)
	}
	return out, nil
}

// BinaryCopy says whether t can be copied in COPY's binary format from a source whose columns
// are src: binary data is only read back by the same types, so every column the target fills
// must have the same type there, and every type binary I/O on both sides.
func BinaryCopy(t FastTable, src SourceColumns) bool {
	if !t.BinaryIO || !src.BinaryIO || len(t.Columns) != len(t.Types) || len(src.Columns) != len(src.Types) {
		return false
	}
	types := make(map[string]string, len(src.Columns))
	for i, c := range src.Columns {
		types[c] = src.Types[i]
	}
	for i, c := range t.Columns {
		if typ, ok := types[c]; !ok || typ != t.Types[i] {
			return false
		}
	}
	return true
}

// FastCopyFormat is the copy_format option of node's fast init: auto, binary or text.
func FastCopyFormat(ctx context.Context, db DB, node string) (string, error) {
	return scalar[string](ctx, db, "fast init of "+node+": copy_format", qFastCopyFormat, node)
}

// ServerMajor is the major version of db's server (18 of 18.4).
func ServerMajor(ctx context.Context, db DB) (int, error) {
	return scalar[int](ctx, db, "server version", qFastServerMajor)
}

// FastTargetTables lists node's init tables with their owners and insertable columns.
func FastTargetTables(ctx context.Context, db DB, node string) ([]FastTable, error) {
	rows, err := db.Query(ctx, q(qFastTargetTables), node)
	if err != nil {
		return nil, fmt.Errorf("fast init of %s: tables: %w", node, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FastTable])
	if err != nil {
		return nil, fmt.Errorf("fast init of %s: tables: %w", node, err)
	}
	return out, nil
}

// SourceBlocks is the size of a table's main fork on the source, in blocks of BlockSize bytes.
type SourceBlocks struct {
	Schema, Name      string
	Blocks, BlockSize int64
}

// FastSourceBlocks reads the current heap size of tables on the source (pg_relation_size, not
// a relpages that may be stale).
func FastSourceBlocks(ctx context.Context, db DB, tables []FastTable) ([]SourceBlocks, error) {
	schemas, names := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := db.Query(ctx, q(qFastSourceBlocks), schemas, names)
	if err != nil {
		return nil, fmt.Errorf("table sizes on the source: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SourceBlocks])
	if err != nil {
		return nil, fmt.Errorf("table sizes on the source: %w", err)
	}
	return out, nil
}

// SetStatementTimeout sets the session's statement_timeout (a fast init's source session: one
// chunk's COPY may take longer than a peer session's 60 s).
func SetStatementTimeout(ctx context.Context, db DB, d time.Duration) error {
	return execStep(ctx, db, "set statement_timeout", qFastChunkTimeout, fmt.Sprintf("%dms", d.Milliseconds()))
}

// CopyRangeOut streams the rows of schema.table whose ctid lies in blocks [from, to) (to < 0:
// to the end) from db, inside the snapshot its transaction imported, as COPY text (binary
// when t.Binary) into w.
func CopyRangeOut(ctx context.Context, conn *pgx.Conn, w io.Writer, t FastTable, from, to int64) (int64, error) {
	tag, err := conn.PgConn().CopyTo(ctx, w, copyRangeSQL(t, from, to))
	return tag.RowsAffected(), err
}

// CopyRangeIn loads what CopyRangeOut streamed into t's columns.
func CopyRangeIn(ctx context.Context, conn *pgx.Conn, r io.Reader, t FastTable) (int64, error) {
	tag, err := conn.PgConn().CopyFrom(ctx, r, fmt.Sprintf("COPY %s (%s) FROM STDIN%s", Identifier(t.Schema, t.Name),
		columnList(t.Columns), copyFormat(t)))
	return tag.RowsAffected(), err
}

func copyFormat(t FastTable) string {
	if t.Binary {
		return " (FORMAT binary)"
	}
	return ""
}

func copyRangeSQL(t FastTable, from, to int64) string {
	where := ""
	if from > 0 {
		where = fmt.Sprintf(" WHERE ctid OPERATOR(pg_catalog.>=) '(%d,0)'::pg_catalog.tid", from)
	}
	if to >= 0 {
		if where == "" {
			where = " WHERE"
		} else {
			where += " AND"
		}
		where += fmt.Sprintf(" ctid OPERATOR(pg_catalog.<) '(%d,0)'::pg_catalog.tid", to)
	}
	return fmt.Sprintf("COPY (SELECT %s FROM %s%s) TO STDOUT%s", columnList(t.Columns), Identifier(t.Schema, t.Name), where, copyFormat(t))
}

// AsTableOwner makes the rest of tx run as owner, as a subscription's apply does: its triggers,
// defaults and CHECKs run with the owner's rights, and (session_replication_role = replica)
// its ordinary triggers and foreign-key checks do not fire. It ends with the transaction;
// ResetRole ends it sooner.
func AsTableOwner(ctx context.Context, tx pgx.Tx, owner string) error {
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return fmt.Errorf("set session_replication_role: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+Identifier(owner)); err != nil {
		return fmt.Errorf("act as table owner %s: %w", owner, err)
	}
	return nil
}

// ResetRole returns tx to the session's own role.
func ResetRole(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "RESET ROLE"); err != nil {
		return fmt.Errorf("reset role: %w", err)
	}
	return nil
}

// FastOriginSetup makes db's session commit under replication origin origin (no origin LSN:
// the origin's progress does not move), until FastOriginReset.
func FastOriginSetup(ctx context.Context, db DB, origin string) error {
	return execStep(ctx, db, "set up replication origin "+origin, qFastOriginSetup, origin)
}

// FastOriginReset ends FastOriginSetup's replication origin of db's session.
func FastOriginReset(ctx context.Context, db DB) error {
	return execStep(ctx, db, "reset the replication origin", qFastOriginReset)
}

// IndexSettings are the settings of a session that rebuilds indexes and constraints.
type IndexSettings struct {
	MaintenanceWorkMem            string // a size, as SET takes it
	MaxParallelMaintenanceWorkers int
}

// DefaultIndexSettings are used when node has no init in progress (256MB, one extra worker).
var DefaultIndexSettings = IndexSettings{MaintenanceWorkMem: "256MB", MaxParallelMaintenanceWorkers: 1}

// FastIndexSettings reads the index build settings of node's init options (defaults: 256MB,
// half of parallel).
func FastIndexSettings(ctx context.Context, db DB, node string) (IndexSettings, error) {
	var s IndexSettings
	err := db.QueryRow(ctx, q(qFastIndexSettings), node).Scan(&s.MaintenanceWorkMem, &s.MaxParallelMaintenanceWorkers)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultIndexSettings, nil
	}
	if err != nil {
		return s, fmt.Errorf("fast init of %s: index build settings: %w", node, err)
	}
	return s, nil
}

// SetIndexSession gives db's session s, until ResetIndexSession.
func SetIndexSession(ctx context.Context, db DB, s IndexSettings) error {
	return execStep(ctx, db, fmt.Sprintf("set maintenance_work_mem %s, max_parallel_maintenance_workers %d",
		s.MaintenanceWorkMem, s.MaxParallelMaintenanceWorkers), qFastIndexSession, s.MaintenanceWorkMem, s.MaxParallelMaintenanceWorkers)
}

// ResetIndexSession returns SetIndexSession's settings to the session's defaults.
func ResetIndexSession(ctx context.Context, db DB) error {
	return execStep(ctx, db, "reset the index build settings", qFastIndexSessionReset)
}
