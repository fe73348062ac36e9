package job

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

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

// transient reports whether err is worth another attempt: the connection broke, the server
// is shutting down or restarting, or the client timed out.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	state := api.SQLState(err)
	if strings.HasPrefix(state, "08") || state == "57P01" || state == "57P02" || state == "57P03" || state == "40001" || state == "40P01" {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// Not a server error: the connection died under us (EOF, reset, closed).
		s := err.Error()
		return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset") || strings.Contains(s, "closed") ||
			strings.Contains(s, "broken pipe")
	}
	return false
}

// classify wraps a transient error as retryable for the runner.
func classify(err error) error {
	if transient(err) {
		return runner.Retryable(err)
	}
	return err
}
