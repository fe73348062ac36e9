package dbconn

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether err is a failure that another attempt may not meet: the network
// or the peer went away for a while (connection refused, reset or timed out, a net.Error, a
// pgconn timeout, SQLSTATE class 08), the server is shutting down, restarting or out of
// connections (57P01, 57P02, 57P03, 53300), or a serialization failure or deadlock ended the
// transaction (40001, 40P01). Any other server error (a refusal by validation, 42P01 undefined
// table, 42501, 22023, ...) and any error of the program itself is permanent. It is the one
// place the sidecar decides this (runner.Transient and the init's retries use it).
func Transient(err error) bool {
	if err == nil {
		return false
	}
	// A server's answer decides, even inside a connect error (28P01 is not worth retrying).
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientState(pgErr.Code)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, errno) {
			return true
		}
	}
	// pgx reports a connection that died under a query as text only.
	s := err.Error()
	return strings.Contains(s, "conn closed") || strings.Contains(s, "connection reset") ||
		strings.Contains(s, "broken pipe") || strings.Contains(s, "unexpected EOF")
}

// transientState is Transient for a SQLSTATE.
func transientState(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300", "40001", "40P01":
		return true
	}
	return strings.HasPrefix(code, "08")
}
