package runner

import (
	"context"
	"errors"

	"github.com/steepdb/steep_repl/internal/dbconn"
)

// Helpers for handlers deciding whether a failure is worth another attempt.

// Transient reports whether err is worth another attempt (dbconn.Transient: the connection
// broke or timed out, the server is shutting down, restarting or out of connections, or a
// serialization failure or deadlock ended the transaction).
func Transient(err error) bool { return dbconn.Transient(err) }

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
