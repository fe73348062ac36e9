package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the calls need: a *pgx.Conn, a *pgxpool.Pool or a pgx.Tx.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Init states, as stored by the extension (lowercase; the list is the table steep_repl.init_states,
// and tests/state_test.go checks these names against it). The console shows them uppercase.
const (
	StateUninitialized  = "uninitialized"
	StatePreparing      = "preparing"
	StateCopying        = "copying"
	StateCatchingUp     = "catching_up"
	StateSynchronized   = "synchronized"
	StateReinitializing = "reinitializing"
	StateDiverged       = "diverged"
	StateFailed         = "failed"
)

// States lists every init state in lifecycle order.
var States = []string{StateUninitialized, StatePreparing, StateCopying, StateCatchingUp,
	StateSynchronized, StateReinitializing, StateDiverged, StateFailed}

// Node is a row of steep_repl.nodes without its conninfo (which may hold a password).
type Node struct {
	Name            string
	IsLocal         bool
	InitState       string
	InitSource      *string
	InitStartedAt   *time.Time
	InitCompletedAt *time.Time
	StateChangedAt  time.Time
	LastError       *string
}

// Event is a row of steep_repl.events.
type Event struct {
	ID        int64
	At        time.Time
	Node      *string
	Event     string
	FromState *string
	ToState   *string
	Detail    map[string]any
}

// RegisterNode calls steep_repl.register_node.
func RegisterNode(ctx context.Context, db DB, name, conninfo string, isLocal bool) error {
	if _, err := db.Exec(ctx, q(qRegisterNode), name, conninfo, isLocal); err != nil {
		return fmt.Errorf("register node %s: %w", name, err)
	}
	return nil
}

// UnregisterNode calls steep_repl.unregister_node.
func UnregisterNode(ctx context.Context, db DB, name string) error {
	if _, err := db.Exec(ctx, q(qUnregisterNode), name); err != nil {
		return fmt.Errorf("unregister node %s: %w", name, err)
	}
	return nil
}

// Transition calls steep_repl.transition and returns the new state.
func Transition(ctx context.Context, db DB, node, to, reason string) (string, error) {
	var state string
	var r *string
	if reason != "" {
		r = &reason
	}
	if err := db.QueryRow(ctx, q(qTransition), node, to, r).Scan(&state); err != nil {
		return "", fmt.Errorf("transition node %s to %s: %w", node, to, err)
	}
	return state, nil
}

// ListNodes returns every registered node.
func ListNodes(ctx context.Context, db DB) ([]Node, error) {
	rows, err := db.Query(ctx, q(qListNodes))
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Node, error) {
		var n Node
		err := row.Scan(&n.Name, &n.IsLocal, &n.InitState, &n.InitSource, &n.InitStartedAt,
			&n.InitCompletedAt, &n.StateChangedAt, &n.LastError)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes, nil
}

// RecentEvents returns the newest events, optionally of one node ("" for all).
func RecentEvents(ctx context.Context, db DB, node string, limit int) ([]Event, error) {
	var n *string
	if node != "" {
		n = &node
	}
	rows, err := db.Query(ctx, q(qRecentEvents), n, limit)
	if err != nil {
		return nil, fmt.Errorf("recent events: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.ID, &e.At, &e.Node, &e.Event, &e.FromState, &e.ToState, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("recent events: %w", err)
	}
	return events, nil
}

// Tick runs steep_repl.tick() once (what the supervisor does every naptime) and returns its summary.
func Tick(ctx context.Context, db DB) (map[string]any, error) {
	var out map[string]any
	if err := db.QueryRow(ctx, q(qTick)).Scan(&out); err != nil {
		return nil, fmt.Errorf("tick: %w", err)
	}
	return out, nil
}

// WakeSupervisor asks the supervisor to run tick() now; false when none runs.
func WakeSupervisor(ctx context.Context, db DB) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, q(qWakeSupervisor)).Scan(&ok); err != nil {
		return false, fmt.Errorf("wake supervisor: %w", err)
	}
	return ok, nil
}

// SQLState returns the SQLSTATE of a PostgreSQL error anywhere in err's chain, or "".
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// jsonArg encodes v for a jsonb parameter; nil stays SQL NULL.
func jsonArg(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}
