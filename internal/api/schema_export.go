package api

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SchemaExportTables returns the user tables of db within the filters (nil: no filter):
// tables as "schema.table", or "table" for public; schemas by name.
func SchemaExportTables(ctx context.Context, db DB, tables, schemas []string) ([]TableName, error) {
	rows, err := db.Query(ctx, q(qSchemaExportTables), tables, schemas)
	if err != nil {
		return nil, fmt.Errorf("tables to export: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TableName, error) {
		var t TableName
		err := row.Scan(&t.Schema, &t.Table)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("tables to export: %w", err)
	}
	return out, nil
}

// SchemaExportSchemas returns the user schemas of db within the schemas filter (nil: all).
func SchemaExportSchemas(ctx context.Context, db DB, schemas []string) ([]string, error) {
	rows, err := db.Query(ctx, q(qSchemaExportSchemas), schemas)
	if err != nil {
		return nil, fmt.Errorf("schemas to export: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("schemas to export: %w", err)
	}
	return out, nil
}
