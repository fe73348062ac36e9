package dbconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestTransientSortsNetworkAndServerFailures(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &netSyscallError{syscall.ECONNREFUSED}}
	for _, err := range []error{
		refused,
		fmt.Errorf("connect to source node a: %w", refused),
		fmt.Errorf("copy: %w", syscall.ECONNRESET),
		io.ErrUnexpectedEOF,
		context.DeadlineExceeded,
		&pgconn.PgError{Code: "08006"},
		&pgconn.PgError{Code: "08001"},
		&pgconn.PgError{Code: "57P01"},
		&pgconn.PgError{Code: "57P02"},
		&pgconn.PgError{Code: "57P03"},
		&pgconn.PgError{Code: "53300"},
		&pgconn.PgError{Code: "40001"},
		errors.New("conn closed"),
	} {
		if !Transient(err) {
			t.Errorf("Transient(%v) = false, want true", err)
		}
	}
	for _, err := range []error{
		nil,
		&pgconn.PgError{Code: "42P01"},
		fmt.Errorf("on source node a: %w", &pgconn.PgError{Code: "42P01"}),
		&pgconn.PgError{Code: "42501"},
		&pgconn.PgError{Code: "22023"},
		&pgconn.PgError{Code: "28P01"},
		errors.New("checksum mismatch"),
	} {
		if Transient(err) {
			t.Errorf("Transient(%v) = true, want false", err)
		}
	}
}

// netSyscallError stands in for os.SyscallError in a dial error.
type netSyscallError struct{ errno syscall.Errno }

func (e *netSyscallError) Error() string { return "connect: " + e.errno.Error() }
func (e *netSyscallError) Unwrap() error { return e.errno }
