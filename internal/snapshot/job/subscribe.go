package job

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
)

// subscribe makes this node a subscriber from exactly the snapshot's LSN: a copy of the
// snapshot's slot on the source (same confirmed_flush_lsn, so the snapshot's own slot stays
// for other targets), a disabled copy_data = false subscription on it, its replication
// origin advanced to the manifest LSN, then enabled; the node goes to CATCHING_UP and tick()
// takes it to SYNCHRONIZED. Every step is idempotent so a retried job resumes.
func (ap *application) subscribe(ctx context.Context) (string, error) {
	m := ap.m
	target, err := api.LocalNode(ctx, ap.pool)
	if err != nil || target == "" {
		return "", fmt.Errorf("subscribe: this database is not registered as a node (%v)", err)
	}
	conninfo, err := api.NodeConninfo(ctx, ap.pool, m.SourceNode)
	if err != nil {
		return "", fmt.Errorf("subscribe: source node %s: %w", m.SourceNode, err)
	}
	_, sub, _, err := api.InitNames(ctx, ap.pool, target, m.SourceNode)
	if err != nil {
		return "", classify(err)
	}
	slot := m.SlotName + "_" + target
	oid, enabled, err := api.SubscriptionState(ctx, ap.pool, sub)
	if err != nil {
		return "", classify(err)
	}
	if oid == 0 {
		if err := ap.copySlot(ctx, conninfo, slot); err != nil {
			return "", err
		}
		if err := api.CreateSubscription(ctx, ap.pool, api.Subscription{Name: sub, Conninfo: conninfo,
			Publication: m.Publication, Slot: slot, Disabled: true}); err != nil {
			return "", classify(err)
		}
		if oid, enabled, err = api.SubscriptionState(ctx, ap.pool, sub); err != nil {
			return "", classify(err)
		}
		ap.log.Info("subscription created (disabled)", "event", "snapshot.subscription_created", "subscription", sub, "slot", slot)
	}
	if !enabled {
		if err := api.AdvanceOrigin(ctx, ap.pool, oid, m.LSN); err != nil {
			return "", classify(err)
		}
		if err := api.EnableSubscription(ctx, ap.pool, sub); err != nil {
			return "", classify(err)
		}
		ap.log.Info("subscription enabled at the snapshot's LSN", "event", "snapshot.subscribed", "subscription", sub, "lsn", m.LSN)
	}
	if err := api.SnapshotSubscribed(ctx, ap.pool, ap.a.ID, sub, slot, m.Publication); err != nil {
		return "", classify(err)
	}
	return sub, nil
}

// copySlot makes slot on the source a copy of the snapshot's slot, unless an unused one at
// the snapshot's LSN is already there (an earlier attempt).
func (ap *application) copySlot(ctx context.Context, conninfo, slot string) error {
	src, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		return classify(dbconn.RedactError(fmt.Errorf("connect to source node %s: %w", ap.m.SourceNode, err), conninfo))
	}
	defer src.Close(context.Background())
	have, err := api.GetSlot(ctx, src, slot)
	if err != nil {
		return classify(err)
	}
	if have.Exists {
		if !have.Active && have.ConfirmedFlush != nil && *have.ConfirmedFlush == ap.m.LSN {
			return nil
		}
		if have.Active {
			return fmt.Errorf("slot %s on source node %s is in use by another subscriber", slot, ap.m.SourceNode)
		}
		if err := api.DropSlot(ctx, src, slot); err != nil {
			return classify(err)
		}
	}
	tmpl, err := api.GetSlot(ctx, src, ap.m.SlotName)
	if err != nil {
		return classify(err)
	}
	if !tmpl.Exists {
		return errors.New("the snapshot's slot " + ap.m.SlotName + " is gone from source node " + ap.m.SourceNode +
			" (expired or deleted): the data is loaded, but subscribing from the snapshot's LSN is no longer possible; generate a new snapshot")
	}
	if err := api.CopySlot(ctx, src, ap.m.SlotName, slot); err != nil {
		return classify(err)
	}
	ap.log.Info("copied the snapshot's slot on the source", "event", "snapshot.slot_copied", "from", ap.m.SlotName, "slot", slot)
	return nil
}

// preflight checks, before any table is loaded, that subscribing will be possible: the
// source node is registered here, reachable, and still has the snapshot's slot (or this
// target's copy of it), so an expired slot fails in seconds rather than after the load.
func (ap *application) preflight(ctx context.Context) error {
	target, err := api.LocalNode(ctx, ap.pool)
	if err != nil || target == "" {
		return fmt.Errorf("subscribe: this database is not registered as a node (%v)", err)
	}
	conninfo, err := api.NodeConninfo(ctx, ap.pool, ap.m.SourceNode)
	if err != nil {
		return fmt.Errorf("subscribe: source node %s: %w", ap.m.SourceNode, err)
	}
	src, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		return classify(dbconn.RedactError(fmt.Errorf("subscribe: connect to source node %s: %w", ap.m.SourceNode, err), conninfo))
	}
	defer src.Close(context.Background())
	for _, name := range []string{ap.m.SlotName + "_" + target, ap.m.SlotName} {
		info, err := api.GetSlot(ctx, src, name)
		if err != nil {
			return classify(err)
		}
		if info.Exists {
			return nil
		}
	}
	return errors.New("the snapshot's slot " + ap.m.SlotName + " is gone from source node " + ap.m.SourceNode +
		" (expired or deleted): subscribing from the snapshot's LSN is no longer possible; apply without subscribe, or generate a new snapshot")
}
