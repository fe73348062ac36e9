package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/runner"
)

// HolderDBEnv carries the target's connection string to steep-repl hold-snapshot (the
// environment, not the command line, which any local user can read).
const HolderDBEnv = "STEEP_REPL_HOLD_DB"

// holderPoll is how often the holder asks the target whether its snapshot is still wanted.
const holderPoll = 500 * time.Millisecond

// HoldSnapshot is steep-repl hold-snapshot: it creates node's fast init slot on the source
// with an exported snapshot, records itself (pid, snapshot, LSN) on the target (db), and holds
// the replication connection, idle so the snapshot stays importable, until its record is gone,
// the init is no longer preparing or copying, the target cannot be asked, or the init made no
// progress for idle (however long the copy runs while it progresses).
func HoldSnapshot(ctx context.Context, db *pgx.Conn, node string, idle time.Duration, log *slog.Logger) error {
	plan, err := api.GetInitPlan(ctx, db, node)
	if err != nil {
		return err
	}
	if plan == nil {
		return fmt.Errorf("node %s has no init in progress", node)
	}
	cfg, err := dbconn.PeerConfig(plan.SourceConninfo, "steep-repl fast init snapshot holder")
	if err != nil {
		return fmt.Errorf("source node %s: %w", plan.Source, err)
	}
	slot, err := CreateExportedSlot(ctx, &cfg.Config, plan.SlotName, "steep-repl fast init snapshot holder", false)
	if err != nil {
		return fmt.Errorf("on source node %s: %w", plan.Source, dbconn.RedactError(err, plan.SourceConninfo))
	}
	defer slot.Conn.Close(context.Background())
	pid := os.Getpid()
	if err := api.FastHolderRecord(ctx, db, node, api.SnapshotHolder{PID: pid, Slot: plan.SlotName, Snapshot: slot.Snapshot, LSN: slot.LSN}); err != nil {
		return err
	}
	log.Info("holding the snapshot", "event", "init.fast_holder_started", "node", node, "slot", plan.SlotName, "snapshot", slot.Snapshot, "lsn", slot.LSN, "pid", pid)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(holderPoll):
		}
		wanted, err := api.FastHolderWanted(ctx, db, node, pid, idle)
		if err != nil || !wanted {
			log.Info("snapshot let go", "event", "init.fast_holder_stopped", "node", node, "wanted", wanted, "error", errString(err))
			return nil
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// HolderIdle is how long, by default, the snapshot's holder waits for a fast init that makes no
// progress (a killed sidecar that is not restarted) before it lets the snapshot go.
const HolderIdle = time.Hour

// startHolder starts steep-repl hold-snapshot for plan's node in its own session (a killed
// sidecar does not take it along) and waits until it has recorded the snapshot.
func startHolder(ctx context.Context, db *pgxpool.Pool, plan *api.InitPlan, idle time.Duration, log *slog.Logger) (api.SnapshotHolder, error) {
	exe, err := os.Executable()
	if err != nil {
		return api.SnapshotHolder{}, fmt.Errorf("start the snapshot holder: %w", err)
	}
	cmd := exec.Command(exe, "hold-snapshot", "--node", plan.Target, "--idle", idle.String())
	cmd.Env = append(os.Environ(), HolderDBEnv+"="+db.Config().ConnConfig.ConnString())
	// No output: an inherited pipe of the sidecar's would keep whoever reads the sidecar's
	// output waiting after the sidecar died. Its state is its row in init_fast_holder.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return api.SnapshotHolder{}, fmt.Errorf("start the snapshot holder: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaped while this sidecar lives
	deadline := time.After(2 * time.Minute)
	for {
		h, ok, err := api.FastHolder(ctx, db, plan.Target)
		if err != nil {
			return h, err
		}
		if ok && h.PID == cmd.Process.Pid {
			log.Info("snapshot holder started", "event", "init.fast_holder", "pid", h.PID, "snapshot", h.Snapshot, "lsn", h.LSN)
			return h, nil
		}
		select {
		case err := <-exited:
			return h, runner.Retryable(fmt.Errorf("the snapshot holder exited before holding a snapshot: %v", err))
		case <-deadline:
			_ = cmd.Process.Kill()
			return h, runner.Retryable(errors.New("the snapshot holder did not record a snapshot within 2 minutes"))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return h, context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// holderAlive reports whether h still holds its snapshot: its process exists and the
// snapshot can be imported on the source.
func holderAlive(ctx context.Context, src *pgx.Conn, h api.SnapshotHolder) bool {
	if syscall.Kill(h.PID, 0) != nil {
		return false
	}
	if api.ImportSnapshot(ctx, src, h.Snapshot) != nil {
		return false
	}
	return api.EndSnapshot(ctx, src) == nil
}
