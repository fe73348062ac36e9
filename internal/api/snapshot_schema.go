package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SnapshotDumpExclusions lists the tables of schemas that are not among relids (the tables a
// snapshot covers) nor partitioned ancestors of them: what pg_dump leaves out of the schema.
func SnapshotDumpExclusions(ctx context.Context, db DB, schemas []string, relids []int64) ([]TableName, error) {
	return tableNames(ctx, db, "tables out of the snapshot's scope", qSnapshotDumpExclusions, schemas, relids)
}

// SnapshotMatViews lists the populated materialized views of schemas.
func SnapshotMatViews(ctx context.Context, db DB, schemas []string) ([]TableName, error) {
	return tableNames(ctx, db, "materialized views", qSnapshotMatViews, schemas)
}

func tableNames(ctx context.Context, db DB, what string, id query, args ...any) ([]TableName, error) {
	rows, err := db.Query(ctx, q(id), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableName, error) {
		var t TableName
		err := r.Scan(&t.Schema, &t.Table)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// ApplyEventRecorded reports whether event was recorded for apply id (a schema step an
// earlier attempt of the apply finished).
func ApplyEventRecorded(ctx context.Context, db DB, id int64, event string) (bool, error) {
	return scalar[bool](ctx, db, fmt.Sprintf("events of apply %d", id), qApplyEventRecorded, id, event)
}

// RefreshMatView refreshes materialized view schema.name.
func RefreshMatView(ctx context.Context, db DB, schema, name string) error {
	if _, err := db.Exec(ctx, "REFRESH MATERIALIZED VIEW "+Identifier(schema, name)); err != nil {
		return fmt.Errorf("refresh materialized view %s: %w", Identifier(schema, name), err)
	}
	return nil
}

// ExistingSchemas returns which of schemas exist.
func ExistingSchemas(ctx context.Context, db DB, schemas []string) ([]string, error) {
	rows, err := db.Query(ctx, q(qExistingSchemas), schemas)
	if err != nil {
		return nil, fmt.Errorf("existing schemas: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("existing schemas: %w", err)
	}
	return out, nil
}

// ApplyHalfRestored returns the latest apply of snapshot id on this node that restored the
// schema's pre-data section but not its post-data, or 0.
func ApplyHalfRestored(ctx context.Context, db DB, snapshotID string) (int64, error) {
	v, err := scalar[*int64](ctx, db, "half-restored applies of snapshot "+snapshotID, qApplyHalfRestored, snapshotID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, err
	case v == nil:
		return 0, nil
	}
	return *v, nil
}
