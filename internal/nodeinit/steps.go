package nodeinit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
)

// The replication steps the ways of bringing a node in share.

// EnsurePublication makes publication name on the node db reaches publish exactly tables:
// it creates it, or sets the tables of one that already exists (an earlier attempt's). It
// reports whether it created it. A publication must exist before the slot a subscriber
// starts from: a change is decoded with the catalogs as of its LSN.
func EnsurePublication(ctx context.Context, db api.DB, name string, tables []api.TableName) (created bool, err error) {
	exists, err := api.PublicationExists(ctx, db, name)
	if err != nil {
		return false, err
	}
	if exists {
		return false, api.SetPublicationTables(ctx, db, name, tables)
	}
	return true, api.CreatePublication(ctx, db, name, tables)
}

// connectSource opens a pinned session to the source node of an init (dbconn.PeerConfig:
// search_path, statement timeout, keepalives, connect timeout); the error never shows conninfo.
func connectSource(ctx context.Context, source, conninfo string) (*pgx.Conn, error) {
	cfg, err := dbconn.PeerConfig(conninfo, "steep-repl init")
	if err != nil {
		return nil, fmt.Errorf("source node %s: %w", source, err)
	}
	src, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to source node %s: %w", source, dbconn.RedactError(err, conninfo))
	}
	return src, nil
}

// dropLeftovers drops what a failed attempt of an init left: its subscription (DROP also drops
// its slots on the source) and any slot of it still on the source.
func dropLeftovers(ctx context.Context, db api.DB, src *pgx.Conn, plan *api.InitPlan, log *slog.Logger) error {
	if exists, err := api.SubscriptionExists(ctx, db, plan.Subscription); err != nil {
		return err
	} else if exists {
		if err := api.DropSubscription(ctx, db, plan.Subscription); err != nil {
			return fmt.Errorf("the subscription left by a previous attempt: %w", err)
		}
		log.Info("dropped the subscription of a previous attempt", "event", "init.leftover_dropped", "subscription", plan.Subscription)
	}
	return dropInitSlots(ctx, src, plan, log)
}

// dropInitSlots drops an init's slot and its table-sync slots on the source, waiting a little
// for walsenders of a just-dropped subscription to let go of them.
func dropInitSlots(ctx context.Context, src *pgx.Conn, plan *api.InitPlan, log *slog.Logger) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		slots, err := api.InitSlots(ctx, src, plan.SlotName, plan.SubscriptionOID)
		if err != nil {
			return fmt.Errorf("on source node %s: %w", plan.Source, err)
		}
		busy := 0
		for _, s := range slots {
			if s.Active {
				busy++
				continue
			}
			if err := api.DropSlot(ctx, src, s.Name); err != nil && api.SQLState(err) != "42704" {
				return fmt.Errorf("on source node %s: %w", plan.Source, err)
			}
			log.Info("dropped slot on the source", "event", "init.slot_dropped", "slot", s.Name)
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("on source node %s: %d slot(s) of this init are still in use", plan.Source, busy)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(300 * time.Millisecond):
		}
	}
}
