package job

import (
	"context"
	"log/slog"
	"strings"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/runner"
)

// dropOrphanCopies drops the copies of a snapshot's slot that no target ever subscribed from:
// an apply that failed (or a sidecar killed) after copying the slot leaves one, and it would
// hold the source's WAL for ever. A copy is an orphan only when it is idle, still at the
// snapshot's LSN (it never streamed), and its target (the name after <slot>_) answers that no
// subscription of its uses it; a copy whose target cannot be asked is kept and said so, since
// a subscriber that is down but subscribed looks the same from here.
func dropOrphanCopies(ctx context.Context, job *runner.Job, s *api.SnapshotRow, res map[string]any, log *slog.Logger) error {
	if s.LSN == nil {
		return nil
	}
	copies, err := api.SlotCopies(ctx, job.DB, s.SlotName)
	if err != nil {
		return classify(err)
	}
	var dropped, kept []string
	for _, c := range copies {
		if c.Active || c.ConfirmedFlush == nil || *c.ConfirmedFlush != *s.LSN {
			continue // streaming, or it streamed: a subscriber's
		}
		target := strings.TrimPrefix(c.Name, s.SlotName+"_")
		used, err := targetUsesSlot(ctx, job.DB, target, c.Name)
		if err != nil {
			kept = append(kept, c.Name)
			log.Warn("kept a copy of the snapshot's slot whose target could not be asked", "event", "snapshot.copy_kept",
				"slot", c.Name, "target", target, "error", err.Error())
			continue
		}
		if used {
			continue
		}
		if err := api.DropSlot(ctx, job.DB, c.Name); err != nil && api.SQLState(err) != "42704" {
			return classify(err)
		}
		dropped = append(dropped, c.Name)
		log.Info("dropped a copy of the snapshot's slot no subscription uses", "event", "snapshot.copy_dropped",
			"slot", c.Name, "target", target)
	}
	if len(dropped) > 0 {
		res["orphan_copies_dropped"] = dropped
	}
	if len(kept) > 0 {
		res["copies_kept_unverified"] = kept
	}
	return nil
}

// targetUsesSlot asks the target node (registered here) whether one of its subscriptions streams from slot.
func targetUsesSlot(ctx context.Context, db api.DB, target, slot string) (bool, error) {
	conninfo, err := api.NodeConninfo(ctx, db, target)
	if err != nil {
		return false, err
	}
	conn, err := dbconn.ConnectPeer(ctx, conninfo, "steep-repl snapshot")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	return api.SubscriptionUsesSlot(ctx, conn, slot)
}
