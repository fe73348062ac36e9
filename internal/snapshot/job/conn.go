package job

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

// connect opens a connection to the node the sidecar's pool reaches, named app.
func connect(ctx context.Context, pool *pgxpool.Pool, app string) (*pgx.Conn, error) {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, runner.Retryable(fmt.Errorf("connect (%s): %w", app, err))
	}
	return conn, nil
}

// slotResult is what creating the snapshot's slot gives.
type slotResult struct {
	conn     *pgconn.PgConn // the replication connection that holds the exported snapshot
	lsn      string
	snapshot string
}

// createSlot creates a logical (pgoutput) slot over a replication connection and exports its
// snapshot; the connection must stay open while workers import it.
func createSlot(ctx context.Context, pool *pgxpool.Pool, slot string, temporary bool) (*slotResult, error) {
	cfg := pool.Config().ConnConfig.Config.Copy()
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "steep-repl snapshot slot"
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
	return &slotResult{conn: conn, lsn: res.ConsistentPoint, snapshot: res.SnapshotName}, nil
}

// importSnapshot starts the read-only repeatable-read transaction that sees the exported snapshot.
func importSnapshot(ctx context.Context, conn *pgx.Conn, name string) error {
	return api.ImportSnapshot(ctx, conn, name)
}

// transient reports whether err is worth another attempt (runner.Transient).
func transient(err error) bool { return runner.Transient(err) }

// classify wraps a transient error as retryable for the runner (runner.Classify).
func classify(err error) error { return runner.Classify(err) }
