package nodeinit

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

// ExportedSlot is a logical slot just created with its snapshot exported: the snapshot lives
// as long as Conn stays open and runs no other command.
type ExportedSlot struct {
	Conn     *pgconn.PgConn // the replication connection that holds the exported snapshot
	LSN      string         // the slot's consistent point
	Snapshot string         // the exported snapshot's name, for SET TRANSACTION SNAPSHOT
}

// CreateExportedSlot creates logical (pgoutput) slot over a replication connection opened with
// cfg (replication=database is set on a copy) and exports its snapshot; the caller closes Conn
// once every worker has imported the snapshot and finished reading.
func CreateExportedSlot(ctx context.Context, cfg *pgconn.Config, slot, app string, temporary bool) (*ExportedSlot, error) {
	cfg = cfg.Copy()
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, runner.Retryable(fmt.Errorf("open replication connection: %w", err))
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, api.Identifier(slot), "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: temporary, Mode: pglogrepl.LogicalReplication,
			SnapshotAction: "(SNAPSHOT 'export')"})
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("create replication slot %s: %w", slot, err)
	}
	return &ExportedSlot{Conn: conn, LSN: res.ConsistentPoint, Snapshot: res.SnapshotName}, nil
}
