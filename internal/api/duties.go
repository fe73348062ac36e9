package api

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Duty is a row of steep_repl.supervisor_duties: the health of one duty of tick().
type Duty struct {
	Name string
	// Failures is how many times in a row the duty failed (0: healthy).
	Failures int
	// LastOK is the last run without error (nil: never since it was first recorded).
	LastOK *time.Time
	// LastError is the duty's last error (it stays after a recovery) and LastErrorAt its time.
	LastError   *string
	LastErrorAt *time.Time
	// NextTryAt is, while failing, until when the duty is skipped (its backoff).
	NextTryAt *time.Time
}

// Failing reports whether the duty's last run failed.
func (d Duty) Failing() bool { return d.Failures > 0 }

// ListSupervisorDuties returns every recorded duty of tick(), by name. The table exists from
// the extension version 1.1 on (ServerInfo.HasDuties).
func ListSupervisorDuties(ctx context.Context, db DB) ([]Duty, error) {
	rows, err := db.Query(ctx, q(qConsoleSupervisorDuties))
	if err != nil {
		return nil, fmt.Errorf("read supervisor duties: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Duty, error) {
		var d Duty
		err := row.Scan(&d.Name, &d.Failures, &d.LastOK, &d.LastError, &d.LastErrorAt, &d.NextTryAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read supervisor duties: %w", err)
	}
	return out, nil
}
