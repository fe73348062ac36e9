package api

import (
	"context"
	"fmt"
)

// Replication-catalog calls the sidecar makes on either node.

// SubscriptionExists reports whether a subscription of that name exists in this database.
func SubscriptionExists(ctx context.Context, db DB, name string) (bool, error) {
	return queryBool(ctx, db, qSubscriptionExists, name)
}

// PublicationExists reports whether a publication of that name exists in this database.
func PublicationExists(ctx context.Context, db DB, name string) (bool, error) {
	return queryBool(ctx, db, qPublicationExists, name)
}

func queryBool(ctx context.Context, db DB, id query, args ...any) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, q(id), args...).Scan(&ok); err != nil {
		return false, fmt.Errorf("%s: %w", id, err)
	}
	return ok, nil
}

// SetSyncWorkers makes max_sync_workers_per_subscription n server-wide (ALTER SYSTEM + reload)
// when it differs, capped so the apply worker keeps a slot under max_logical_replication_workers.
// It returns the value in force.
func SetSyncWorkers(ctx context.Context, db DB, n int) (int, error) {
	var current, maxWorkers int
	if err := db.QueryRow(ctx, q(qSyncWorkerSettings)).Scan(&current, &maxWorkers); err != nil {
		return 0, fmt.Errorf("read sync worker settings: %w", err)
	}
	if n > maxWorkers-1 {
		n = maxWorkers - 1
	}
	if n < 1 {
		n = 1
	}
	if n == current {
		return n, nil
	}
	// ALTER SYSTEM takes no parameter; n is an integer.
	if _, err := db.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET max_sync_workers_per_subscription = %d", n)); err != nil {
		return 0, fmt.Errorf("set sync workers: %w", err)
	}
	if _, err := db.Exec(ctx, q(qReloadConf)); err != nil {
		return 0, fmt.Errorf("reload configuration: %w", err)
	}
	return n, nil
}

// Slot is a replication slot on a source.
type Slot struct {
	Name   string
	Active bool
}

// InitSlots returns the slot named name and the table-sync slots of subscription subOID on the source.
func InitSlots(ctx context.Context, db DB, name string, subOID *uint32) ([]Slot, error) {
	rows, err := db.Query(ctx, q(qSourceSlots), name, subOID)
	if err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	defer rows.Close()
	var out []Slot
	for rows.Next() {
		var s Slot
		if err := rows.Scan(&s.Name, &s.Active); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DropSlot drops a replication slot on the node db is connected to.
func DropSlot(ctx context.Context, db DB, name string) error {
	if _, err := db.Exec(ctx, q(qDropSlot), name); err != nil {
		return fmt.Errorf("drop slot %s: %w", name, err)
	}
	return nil
}

// ActiveInitStartJobs counts the jobs filling node (init.start, snapshot.init, snapshot.apply) still queued or running.
func ActiveInitStartJobs(ctx context.Context, db DB, node string) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, q(qActiveInitStartJobs), node).Scan(&n); err != nil {
		return 0, fmt.Errorf("count init jobs of %s: %w", node, err)
	}
	return n, nil
}
