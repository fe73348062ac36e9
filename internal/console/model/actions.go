package model

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
)

// The console's actions: API calls on one node's database, each over a connection of its
// own (the poller's is busy listening), bounded by the connect and query timeouts. Their
// errors are one line for the status line, without a password; a refusal of the server
// says its message, SQLSTATE and hint.

// CancelInit calls steep_repl.cancel_init on node's own database and returns the cancel
// job's id (0: nothing to cancel).
func (m *Model) CancelInit(ctx context.Context, node string) (int64, error) {
	var id int64
	err := m.act(ctx, m.liveEndpoint(node), node, "cancel init of "+node, func(ctx context.Context, conn *pgx.Conn) (err error) {
		id, err = api.CancelInit(ctx, conn, node)
		return err
	})
	return id, err
}

// GenerateSnapshot calls steep_repl.generate_snapshot on the database of the endpoint
// (NodeRow.Endpoint) and returns the new snapshot's id.
func (m *Model) GenerateSnapshot(ctx context.Context, endpoint, path, compression string) (string, error) {
	m.mu.Lock()
	e := m.eps[endpoint]
	m.mu.Unlock()
	var id string
	err := m.act(ctx, e, endpoint, "generate snapshot", func(ctx context.Context, conn *pgx.Conn) (err error) {
		id, err = api.GenerateSnapshot(ctx, conn, path, api.SnapshotOptions{Compression: compression})
		return err
	})
	return id, err
}

// CancelJob calls steep_repl.cancel_job on node's own database (a snapshot's job runs on the
// node that records it) and returns the job's state after the call: cancelled when it was
// queued, running when its sidecar was asked to stop at its next heartbeat.
func (m *Model) CancelJob(ctx context.Context, node string, job int64) (string, error) {
	var state string
	err := m.act(ctx, m.liveEndpoint(node), node, fmt.Sprintf("cancel job %d on %s", job, node),
		func(ctx context.Context, conn *pgx.Conn) (err error) {
			state, err = api.CancelJob(ctx, conn, job)
			return err
		})
	return state, err
}

// liveEndpoint is node's endpoint (nil when the console has none).
func (m *Model) liveEndpoint(node string) *endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endpointOf(node)
}

// act runs call over a new connection to e (named who in errors) when e's link is ok or
// in error (a database the console reads but whose API refuses it still answers the call),
// then has e poll at once so the result shows.
func (m *Model) act(ctx context.Context, e *endpoint, who, what string, call func(context.Context, *pgx.Conn) error) error {
	link := LinkNotConnected
	if e != nil {
		m.mu.Lock()
		if r, ok := m.readings[e.key]; ok {
			link = r.Link
		}
		m.mu.Unlock()
	}
	if e == nil || link != LinkOK && link != LinkError {
		return fmt.Errorf("%s: the console is not connected to %s (%s)", what, who, link)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectTimeout+m.cfg.QueryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, e.cfg.Copy())
	if err != nil {
		return fmt.Errorf("%s: %s", what, e.reason(err))
	}
	defer conn.Close(context.Background())
	err = call(ctx, conn)
	e.poke()
	if err != nil {
		return errors.New(e.describe(err))
	}
	return nil
}

// describe is an action's error as the console shows it: for a refusal of the server its
// message, SQLSTATE and hint; one line, no password.
func (e *endpoint) describe(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return e.reason(err)
	}
	s := fmt.Sprintf("%s: %s (SQLSTATE %s)", pe.Severity, pe.Message, pe.Code)
	if pe.Detail != "" {
		s += " · " + pe.Detail
	}
	if pe.Hint != "" {
		s += " · hint: " + pe.Hint
	}
	return e.reason(errors.New(s))
}
