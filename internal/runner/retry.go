package runner

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Helpers for handlers deciding whether a failure is worth another attempt.

// Transient reports whether err is worth another attempt: the connection broke, the server
// is shutting down or restarting, the client timed out, or a serialization failure or
// deadlock ended the transaction.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// Not a server error: the connection died under us (EOF, reset, closed).
		s := err.Error()
		return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset") || strings.Contains(s, "closed") ||
			strings.Contains(s, "broken pipe")
	}
	state := pgErr.Code
	return strings.HasPrefix(state, "08") || state == "57P01" || state == "57P02" || state == "57P03" || state == "40001" || state == "40P01"
}

// Classify marks a transient error Retryable and returns any other as it is.
func Classify(err error) error {
	if Transient(err) {
		return Retryable(err)
	}
	return err
}

// IsRetryable reports whether err, or an error it wraps, was marked with Retryable.
func IsRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}

// FinalAttempt reports whether err ends job for good, so that its handler records the
// failure: the job was cancelled or ran past its time limit, err is not retryable, or this
// was its last attempt. A shutdown or a lost lease is not final: another attempt follows.
func FinalAttempt(ctx context.Context, job *Job, err error) bool {
	if cause := context.Cause(ctx); errors.Is(cause, ErrCancelRequested) || errors.Is(cause, ErrTimeLimit) {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	if IsRetryable(err) {
		return job.Attempt >= job.MaxAttempts
	}
	return true
}
