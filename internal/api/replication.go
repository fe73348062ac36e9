package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/steepdb/steep_repl/internal/dbconn"
)

// Publications and subscriptions: DDL the sidecar runs outside a transaction block (CREATE
// SUBSCRIPTION that creates its slot cannot run inside one), built here from names quoted by
// Identifier and literals quoted by quoteLiteral.

// TableName is a schema-qualified table name (unquoted).
type TableName struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
}

// String is schema.table, unquoted (for messages).
func (t TableName) String() string { return t.Schema + "." + t.Table }

func tableList(tables []TableName) (string, error) {
	if len(tables) == 0 {
		return "", errors.New("no tables to publish")
	}
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = Identifier(t.Schema, t.Table)
	}
	return strings.Join(quoted, ", "), nil
}

// CreatePublication creates publication name FOR TABLE tables.
func CreatePublication(ctx context.Context, db DB, name string, tables []TableName) error {
	list, err := tableList(tables)
	if err == nil {
		_, err = db.Exec(ctx, "CREATE PUBLICATION "+Identifier(name)+" FOR TABLE "+list)
	}
	if err != nil {
		return fmt.Errorf("create publication %s: %w", name, err)
	}
	return nil
}

// SetPublicationTables makes publication name publish exactly tables.
func SetPublicationTables(ctx context.Context, db DB, name string, tables []TableName) error {
	list, err := tableList(tables)
	if err == nil {
		_, err = db.Exec(ctx, "ALTER PUBLICATION "+Identifier(name)+" SET TABLE "+list)
	}
	if err != nil {
		return fmt.Errorf("set the tables of publication %s: %w", name, err)
	}
	return nil
}

// DropPublication drops publication name when it exists.
func DropPublication(ctx context.Context, db DB, name string) error {
	if _, err := db.Exec(ctx, "DROP PUBLICATION IF EXISTS "+Identifier(name)); err != nil {
		return fmt.Errorf("drop publication %s: %w", name, err)
	}
	return nil
}

// Subscription is a subscription to create. Its origin is always none: links between nodes
// may be bidirectional, and a change must not come back to the node it came from.
type Subscription struct {
	Name, Publication, Slot string
	// Conninfo reaches the publisher; it may hold a password and never shows in an error.
	Conninfo string
	// CopyData copies the tables' contents first (automatic init); false starts at the slot.
	CopyData bool
	// CreateSlot creates Slot on the publisher; false uses an existing slot.
	CreateSlot bool
	// Disabled creates it disabled, so its origin can be advanced before EnableSubscription.
	Disabled bool
}

// ParallelStreamingMinMajor is the first major whose subscriptions take streaming = parallel:
// a large transaction is applied by a parallel worker while it arrives, not spooled to disk and
// applied at its commit (17's default is off; 16 and 17 need it said).
const ParallelStreamingMinMajor = 16

// createSubscriptionSQL is s's statement for a subscriber whose major version is major.
func createSubscriptionSQL(s Subscription, major int) string {
	streaming := ""
	if major >= ParallelStreamingMinMajor {
		streaming = ", streaming = parallel"
	}
	return fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (copy_data = %t, create_slot = %t, slot_name = %s, enabled = %t, origin = none%s)",
		Identifier(s.Name), quoteLiteral(s.Conninfo), Identifier(s.Publication), s.CopyData, s.CreateSlot,
		quoteLiteral(s.Slot), !s.Disabled, streaming)
}

// CreateSubscription creates subscription s on db, with the streaming its server supports.
func CreateSubscription(ctx context.Context, db DB, s Subscription) error {
	major, err := ServerMajor(ctx, db)
	if err == nil {
		_, err = db.Exec(ctx, createSubscriptionSQL(s, major))
	}
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", s.Name, dbconn.RedactError(err, s.Conninfo))
	}
	return nil
}

// EnableSubscription enables subscription name.
func EnableSubscription(ctx context.Context, db DB, name string) error {
	if _, err := db.Exec(ctx, "ALTER SUBSCRIPTION "+Identifier(name)+" ENABLE"); err != nil {
		return fmt.Errorf("enable subscription %s: %w", name, err)
	}
	return nil
}

// DropSubscription drops subscription name when it exists, and with it its slot on the
// publisher (which must then be reachable: see DetachSubscription).
func DropSubscription(ctx context.Context, db DB, name string) error {
	if _, err := db.Exec(ctx, "DROP SUBSCRIPTION IF EXISTS "+Identifier(name)); err != nil {
		return fmt.Errorf("drop subscription %s: %w", name, err)
	}
	return nil
}

// DetachSubscription disables subscription name and forgets its slot, so it can be dropped
// while the publisher is unreachable (the slot is left there to drop by hand).
func DetachSubscription(ctx context.Context, db DB, name string) error {
	for _, stmt := range []string{"ALTER SUBSCRIPTION " + Identifier(name) + " DISABLE",
		"ALTER SUBSCRIPTION " + Identifier(name) + " SET (slot_name = NONE)"} {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("detach subscription %s: %w", name, err)
		}
	}
	return nil
}
