package job

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/nodeinit"
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

// createSlot creates a logical (pgoutput) slot on the node the pool reaches over a replication
// connection and exports its snapshot (nodeinit.CreateExportedSlot); the connection must stay
// open while workers import it.
func createSlot(ctx context.Context, pool *pgxpool.Pool, slot string, temporary bool) (*nodeinit.ExportedSlot, error) {
	return nodeinit.CreateExportedSlot(ctx, &pool.Config().ConnConfig.Config, slot, "steep-repl snapshot slot", temporary)
}

// importSnapshot starts the read-only repeatable-read transaction that sees the exported snapshot.
func importSnapshot(ctx context.Context, conn *pgx.Conn, name string) error {
	return api.ImportSnapshot(ctx, conn, name)
}

// transient reports whether err is worth another attempt (runner.Transient).
func transient(err error) bool { return runner.Transient(err) }

// classify wraps a transient error as retryable for the runner (runner.Classify).
func classify(err error) error { return runner.Classify(err) }
