package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Job states, as stored in steep_repl.jobs.state.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Outcomes a worker reports with FinishJob.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
	// OutcomeRetry requeues the job with backoff while attempts remain, else fails it.
	OutcomeRetry = "retry"
)

// ClaimedJob is what a worker gets from ClaimJob.
type ClaimedJob struct {
	ID          int64
	Kind        string
	Args        map[string]any
	Node        *string
	Attempt     int
	MaxAttempts int
	Checkpoint  map[string]any
}

// Job is a row of steep_repl.jobs as shown to people.
type Job struct {
	ID                int64
	Kind              string
	Args              map[string]any
	Node              *string
	State             string
	Attempt           int
	MaxAttempts       int
	CreatedAt         time.Time
	ScheduledAt       time.Time
	AttemptedAt       *time.Time
	FinalizedAt       *time.Time
	LeaseOwner        *string
	LeaseExpiresAt    *time.Time
	CancelRequestedAt *time.Time
	Result            map[string]any
	Error             *string
}

// EnqueueJob queues a job (NOTIFY steep_repl_jobs) and returns its id. node "" is NULL;
// maxAttempts 0 takes the extension's default (3).
func EnqueueJob(ctx context.Context, db DB, kind string, args map[string]any, node string, maxAttempts int) (int64, error) {
	if args == nil {
		args = map[string]any{}
	}
	a, err := jsonArg(args)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s job: encode args: %w", kind, err)
	}
	var n *string
	if node != "" {
		n = &node
	}
	ma := 3
	if maxAttempts > 0 {
		ma = maxAttempts
	}
	var id int64
	if err := db.QueryRow(ctx, q(qEnqueueJob), kind, a, n, ma).Scan(&id); err != nil {
		return 0, fmt.Errorf("enqueue %s job: %w", kind, err)
	}
	return id, nil
}

// ClaimJob claims the next ready job of one of kinds for worker under lease; nil when none is ready.
func ClaimJob(ctx context.Context, db DB, worker string, kinds []string, lease time.Duration) (*ClaimedJob, error) {
	var j ClaimedJob
	err := db.QueryRow(ctx, q(qClaimJob), worker, kinds, intervalArg(lease)).Scan(
		&j.ID, &j.Kind, &j.Args, &j.Node, &j.Attempt, &j.MaxAttempts, &j.Checkpoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim job: %w", err)
	}
	return &j, nil
}

// HeartbeatJob extends the lease (saving checkpoint when not nil) and reports whether a cancel was requested.
// A SQLSTATE 55000 error means the worker lost the lease and must stop.
func HeartbeatJob(ctx context.Context, db DB, id int64, worker string, lease time.Duration, checkpoint map[string]any) (bool, error) {
	cp, err := jsonArg(checkpoint)
	if err != nil {
		return false, fmt.Errorf("heartbeat job %d: encode checkpoint: %w", id, err)
	}
	var cancel bool
	if err := db.QueryRow(ctx, q(qHeartbeatJob), id, worker, intervalArg(lease), cp).Scan(&cancel); err != nil {
		return false, fmt.Errorf("heartbeat job %d: %w", id, err)
	}
	return cancel, nil
}

// FinishJob ends the worker's attempt with an outcome and returns the job's new state.
func FinishJob(ctx context.Context, db DB, id int64, worker, outcome string, result map[string]any, errText string) (string, error) {
	res, err := jsonArg(result)
	if err != nil {
		return "", fmt.Errorf("finish job %d: encode result: %w", id, err)
	}
	var e *string
	if errText != "" {
		e = &errText
	}
	var state string
	if err := db.QueryRow(ctx, q(qFinishJob), id, worker, outcome, res, e).Scan(&state); err != nil {
		return "", fmt.Errorf("finish job %d as %s: %w", id, outcome, err)
	}
	return state, nil
}

// CancelJob cancels a queued job or asks a running job's worker to stop; returns the state after the call.
func CancelJob(ctx context.Context, db DB, id int64) (string, error) {
	var state string
	if err := db.QueryRow(ctx, q(qCancelJob), id).Scan(&state); err != nil {
		return "", fmt.Errorf("cancel job %d: %w", id, err)
	}
	return state, nil
}

func scanJob(row pgx.Row) (Job, error) {
	var j Job
	err := row.Scan(&j.ID, &j.Kind, &j.Args, &j.Node, &j.State, &j.Attempt, &j.MaxAttempts, &j.CreatedAt,
		&j.ScheduledAt, &j.AttemptedAt, &j.FinalizedAt, &j.LeaseOwner, &j.LeaseExpiresAt,
		&j.CancelRequestedAt, &j.Result, &j.Error)
	return j, err
}

// GetJob returns one job. A job that does not exist is reported as the SQL API reports it
// (steep_repl.cancel_job): a *pgconn.PgError with SQLSTATE 42704 (undefined_object) and the
// message "job N does not exist".
func GetJob(ctx context.Context, db DB, id int64) (Job, error) {
	j, err := scanJob(db.QueryRow(ctx, q(qGetJob), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, &pgconn.PgError{Severity: "ERROR", Code: "42704", Message: fmt.Sprintf("job %d does not exist", id)}
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %d: %w", id, err)
	}
	return j, nil
}

// ListJobs returns the newest jobs, optionally only those in state ("" for all).
func ListJobs(ctx context.Context, db DB, state string, limit int) ([]Job, error) {
	var s *string
	if state != "" {
		s = &state
	}
	rows, err := db.Query(ctx, q(qListJobs), s, limit)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Job, error) { return scanJob(row) })
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// intervalArg renders a duration as an interval literal (pgx has no time.Duration encoder).
func intervalArg(d time.Duration) string {
	return fmt.Sprintf("%d microseconds", d.Microseconds())
}

// ReleaseJob hands a running job back to the queue without counting the attempt (worker shutdown).
func ReleaseJob(ctx context.Context, db DB, id int64, worker string) error {
	if _, err := db.Exec(ctx, q(qReleaseJob), id, worker); err != nil {
		return fmt.Errorf("release job %d: %w", id, err)
	}
	return nil
}

// ListenJobs makes conn receive the notifications enqueue_job sends (LISTEN steep_repl_jobs);
// they only wake the runner, which polls as well.
func ListenJobs(ctx context.Context, conn DB) error {
	if _, err := conn.Exec(ctx, q(qListenJobs)); err != nil {
		return fmt.Errorf("listen for jobs: %w", err)
	}
	return nil
}
