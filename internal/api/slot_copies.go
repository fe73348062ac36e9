package api

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SlotCopy is a target's copy of a snapshot's slot (named <slot>_<target>) on the source.
type SlotCopy struct {
	Name           string
	Active         bool
	ConfirmedFlush *string
}

// SlotCopies lists the copies of slot on the node db is connected to.
func SlotCopies(ctx context.Context, db DB, slot string) ([]SlotCopy, error) {
	rows, err := db.Query(ctx, q(qSlotCopies), slot)
	if err != nil {
		return nil, fmt.Errorf("list the copies of slot %s: %w", slot, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SlotCopy])
	if err != nil {
		return nil, fmt.Errorf("list the copies of slot %s: %w", slot, err)
	}
	return out, nil
}

// SubscriptionUsesSlot reports whether a subscription of the node db is connected to streams
// from a slot of that name.
func SubscriptionUsesSlot(ctx context.Context, db DB, slot string) (bool, error) {
	var used bool
	if err := db.QueryRow(ctx, q(qSubscriptionUsesSlot), slot).Scan(&used); err != nil {
		return false, fmt.Errorf("look for a subscription using slot %s: %w", slot, err)
	}
	return used, nil
}
