package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
)

func TestTransientAndClassify(t *testing.T) {
	if !Transient(&pgconn.PgError{Code: "57P01"}) || !Transient(io.ErrUnexpectedEOF) || Transient(&pgconn.PgError{Code: "22P02"}) {
		t.Fatal("transient classification")
	}
	if !Transient(fmt.Errorf("copy: %w", &pgconn.PgError{Code: "08006"})) || Transient(nil) {
		t.Fatal("a wrapped connection failure is transient, nil is not")
	}
	if !IsRetryable(Classify(&pgconn.PgError{Code: "08006"})) || IsRetryable(Classify(errors.New("checksum mismatch"))) {
		t.Fatal("classify")
	}
	if !IsRetryable(fmt.Errorf("step: %w", Retryable(errors.New("x")))) || IsRetryable(errors.New("x")) {
		t.Fatal("IsRetryable")
	}
}

func TestFinalAttempt(t *testing.T) {
	job := &Job{ClaimedJob: api.ClaimedJob{Attempt: 1, MaxAttempts: 3}}
	ctx := context.Background()
	if !FinalAttempt(ctx, job, errors.New("bad input")) || FinalAttempt(ctx, job, Retryable(errors.New("later"))) {
		t.Fatal("a plain error is final, a retryable one is not while attempts remain")
	}
	last := &Job{ClaimedJob: api.ClaimedJob{Attempt: 3, MaxAttempts: 3}}
	if !FinalAttempt(ctx, last, Retryable(errors.New("later"))) {
		t.Fatal("the last attempt is final")
	}
	cctx, cancel := context.WithCancelCause(ctx)
	cancel(ErrCancelRequested)
	if !FinalAttempt(cctx, job, Retryable(errors.New("x"))) {
		t.Fatal("a cancelled job is final")
	}
	sctx, stop := context.WithCancelCause(ctx)
	stop(ErrShutdown)
	if FinalAttempt(sctx, job, errors.New("x")) {
		t.Fatal("a shutdown is not final")
	}
}
