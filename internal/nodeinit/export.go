package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

type exportArgs struct {
	node, slot, publication string
	expires, hold           time.Duration
}

func parseArgs(args map[string]any) (exportArgs, error) {
	var a exportArgs
	a.node, _ = args["node"].(string)
	a.slot, _ = args["slot"].(string)
	a.publication, _ = args["publication"].(string)
	exp, _ := args["expires_seconds"].(float64)
	hold, _ := args["hold_seconds"].(float64)
	a.expires, a.hold = time.Duration(exp*float64(time.Second)), time.Duration(hold*float64(time.Second))
	if a.node == "" || a.slot == "" || a.publication == "" || a.expires <= 0 || a.hold <= 0 {
		return a, fmt.Errorf("init.export job args incomplete: %v", args)
	}
	return a, nil
}

// export creates the slot with an exported snapshot and holds it until the job is cancelled
// (release_init_snapshot) or the hold ends. The job then succeeds: the slot stays.
func export(ctx context.Context, job *runner.Job, connString string, log *slog.Logger) (map[string]any, error) {
	a, err := parseArgs(job.Args)
	if err != nil {
		return nil, err
	}
	log = log.With("node", a.node, "slot", a.slot, "job", job.ID)
	conn, err := replicationConn(ctx, connString)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, a.slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, fmt.Errorf("create slot %s with an exported snapshot: %w", a.slot, err)
	}
	if err := api.InitExported(ctx, job.DB, a.node, a.slot, a.publication, res.ConsistentPoint, res.SnapshotName, a.expires, job.ID); err != nil {
		return nil, err
	}
	log.Info("slot created; holding its exported snapshot", "event", "init.snapshot_exported",
		"lsn", res.ConsistentPoint, "snapshot", res.SnapshotName, "hold", a.hold.String())
	held := time.NewTimer(a.hold)
	defer held.Stop()
	ended := "hold ended"
	select {
	case <-ctx.Done():
		ended = "released"
		if !errors.Is(context.Cause(ctx), runner.ErrCancelRequested) {
			ended = context.Cause(ctx).Error()
		}
	case <-held.C:
	}
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := api.InitSnapshotReleased(rctx, job.DB, a.slot); err != nil {
		log.Warn("could not record the snapshot's release", "event", "init.snapshot_release_failed", "error", err.Error())
	}
	log.Info("exported snapshot no longer held", "event", "init.snapshot_released", "why", ended)
	if errors.Is(context.Cause(ctx), runner.ErrCancelRequested) {
		// Release is the normal end: report success rather than a cancelled job.
		return map[string]any{"slot": a.slot, "lsn": res.ConsistentPoint, "snapshot": res.SnapshotName, "ended": ended}, nil
	}
	return map[string]any{"slot": a.slot, "lsn": res.ConsistentPoint, "snapshot": res.SnapshotName, "ended": ended}, ctx.Err()
}

// replicationConn opens a logical replication connection (replication=database) to the node.
func replicationConn(ctx context.Context, connString string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "steep-repl init.export"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	return conn, nil
}
