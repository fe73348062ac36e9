package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/steepdb/steep_repl/internal/api"
)

// SnapshotSubscription is what subscribing a node from a snapshot needs: the manifest's
// source, slot, publication and LSN, and the apply that loaded it.
type SnapshotSubscription struct {
	ApplyID     int64  // the apply of the snapshot, recorded with the subscription
	Source      string // the node the snapshot was generated on
	Slot        string // the snapshot's slot on the source
	Publication string // the snapshot's publication on the source
	LSN         string // the snapshot's consistent LSN
}

// SubscribeFromSnapshot makes the node db reaches a subscriber of s.Source from exactly
// s.LSN: a copy of the snapshot's slot on the source (same confirmed_flush_lsn, so the
// snapshot's own slot stays for other targets), a disabled copy_data = false subscription on
// it, its replication origin advanced to the LSN, then enabled; the node goes to CATCHING_UP
// and tick() takes it to SYNCHRONIZED. Every step is idempotent so a retried job resumes. It
// returns the subscription's name.
func SubscribeFromSnapshot(ctx context.Context, db api.DB, s SnapshotSubscription, log *slog.Logger) (string, error) {
	target, err := api.LocalNode(ctx, db)
	if err != nil || target == "" {
		return "", fmt.Errorf("subscribe: this database is not registered as a node (%v)", err)
	}
	conninfo, err := api.NodeConninfo(ctx, db, s.Source)
	if err != nil {
		return "", fmt.Errorf("subscribe: source node %s: %w", s.Source, err)
	}
	_, sub, _, err := api.InitNames(ctx, db, target, s.Source)
	if err != nil {
		return "", err
	}
	slot := s.Slot + "_" + target
	err = subscribeAt(ctx, db, api.Subscription{Name: sub, Conninfo: conninfo, Publication: s.Publication, Slot: slot},
		s.LSN, "snapshot", func() error { return copySnapshotSlot(ctx, s, conninfo, slot, log) }, log)
	if err != nil {
		return "", err
	}
	if err := api.SnapshotSubscribed(ctx, db, s.ApplyID, sub, slot, s.Publication); err != nil {
		return "", err
	}
	return sub, nil
}

// copySnapshotSlot makes slot on the source a copy of the snapshot's slot, unless an unused
// one at the snapshot's LSN is already there (an earlier attempt).
func copySnapshotSlot(ctx context.Context, s SnapshotSubscription, conninfo, slot string, log *slog.Logger) error {
	src, err := connectSource(ctx, s.Source, conninfo)
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	have, err := api.GetSlot(ctx, src, slot)
	if err != nil {
		return err
	}
	if have.Exists {
		if !have.Active && have.ConfirmedFlush != nil && *have.ConfirmedFlush == s.LSN {
			return nil
		}
		if have.Active {
			return fmt.Errorf("slot %s on source node %s is in use by another subscriber", slot, s.Source)
		}
		if err := api.DropSlot(ctx, src, slot); err != nil {
			return err
		}
	}
	tmpl, err := api.GetSlot(ctx, src, s.Slot)
	if err != nil {
		return err
	}
	if !tmpl.Exists {
		return errors.New("the snapshot's slot " + s.Slot + " is gone from source node " + s.Source +
			" (expired or deleted): the data is loaded, but subscribing from the snapshot's LSN is no longer possible; generate a new snapshot")
	}
	if err := api.CopySlot(ctx, src, s.Slot, slot); err != nil {
		return err
	}
	log.Info("copied the snapshot's slot on the source", "event", "snapshot.slot_copied", "from", s.Slot, "slot", slot)
	return nil
}

// CheckSnapshotSlot checks, before a snapshot is loaded to be subscribed from, that
// subscribing will be possible: source is registered on the node db reaches, reachable, and
// still has the snapshot's slot (or this target's copy of it), so an expired slot fails in
// seconds rather than after the load.
func CheckSnapshotSlot(ctx context.Context, db api.DB, source, slot string) error {
	target, err := api.LocalNode(ctx, db)
	if err != nil || target == "" {
		return fmt.Errorf("subscribe: this database is not registered as a node (%v)", err)
	}
	conninfo, err := api.NodeConninfo(ctx, db, source)
	if err != nil {
		return fmt.Errorf("subscribe: source node %s: %w", source, err)
	}
	src, err := connectSource(ctx, source, conninfo)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer src.Close(context.Background())
	for _, name := range []string{slot + "_" + target, slot} {
		info, err := api.GetSlot(ctx, src, name)
		if err != nil {
			return err
		}
		if info.Exists {
			return nil
		}
	}
	return errors.New("the snapshot's slot " + slot + " is gone from source node " + source +
		" (expired or deleted): subscribing from the snapshot's LSN is no longer possible; apply without subscribe, or generate a new snapshot")
}

// subscribeAt makes sub (copy_data = false, on an existing slot) a subscription that starts at
// lsn: created disabled (after prepare, which readies its slot), its replication origin advanced
// to lsn, then enabled. A step already done (an earlier attempt's) is skipped. Events are
// <prefix>.subscription_created and <prefix>.subscribed.
func subscribeAt(ctx context.Context, db api.DB, sub api.Subscription, lsn, prefix string, prepare func() error, log *slog.Logger) error {
	oid, enabled, err := api.SubscriptionState(ctx, db, sub.Name)
	if err != nil {
		return err
	}
	if oid == 0 {
		if prepare != nil {
			if err := prepare(); err != nil {
				return err
			}
		}
		sub.CopyData, sub.CreateSlot, sub.Disabled = false, false, true
		if err := api.CreateSubscription(ctx, db, sub); err != nil {
			return err
		}
		if oid, enabled, err = api.SubscriptionState(ctx, db, sub.Name); err != nil {
			return err
		}
		log.Info("subscription created (disabled)", "event", prefix+".subscription_created", "subscription", sub.Name, "slot", sub.Slot)
	}
	if !enabled {
		if err := api.AdvanceOrigin(ctx, db, oid, lsn); err != nil {
			return err
		}
		if err := api.EnableSubscription(ctx, db, sub.Name); err != nil {
			return err
		}
		log.Info("subscription enabled at the slot's LSN", "event", prefix+".subscribed", "subscription", sub.Name, "lsn", lsn)
	}
	return nil
}
