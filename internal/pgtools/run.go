package pgtools

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/dbconn"
)

// LibpqEnv is the environment that points a client program at the node cfg reaches, as a
// pgx connection with cfg does: the password travels in PGPASSWORD (never on a command line,
// which other users of the host can read). Variables naming another connection are dropped
// from this process's environment; the rest (PGSSLROOTCERT, PGPASSFILE, ...) are kept.
// Runtime parameters of cfg (search_path, statement_timeout, ...) are not passed on.
func LibpqEnv(cfg *pgconn.Config, app string) []string {
	drop := map[string]bool{"PGHOST": true, "PGHOSTADDR": true, "PGPORT": true, "PGUSER": true, "PGDATABASE": true,
		"PGPASSWORD": true, "PGSSLMODE": true, "PGAPPNAME": true, "PGSERVICE": true, "PGOPTIONS": true,
		"PGCONNECT_TIMEOUT": true, "PGTARGETSESSIONATTRS": true, "LC_MESSAGES": true, "LC_ALL": true}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	env = append(env, "PGHOST="+cfg.Host, "PGPORT="+strconv.Itoa(int(cfg.Port)), "PGUSER="+cfg.User,
		"PGDATABASE="+cfg.Database, "PGSSLMODE="+SSLMode(cfg), "PGAPPNAME="+app, "PGCONNECT_TIMEOUT=30", "LC_ALL=C")
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	return env
}

// SSLMode is the libpq sslmode equivalent to how pgconn connects with cfg.
func SSLMode(cfg *pgconn.Config) string {
	plainFallback, tlsFallback := false, false
	for _, f := range cfg.Fallbacks {
		if f.TLSConfig == nil {
			plainFallback = true
		} else {
			tlsFallback = true
		}
	}
	switch t := cfg.TLSConfig; {
	case t == nil && tlsFallback:
		return "allow"
	case t == nil:
		return "disable"
	case plainFallback:
		return "prefer"
	case insecure(t) && t.VerifyPeerCertificate == nil:
		return "require"
	case insecure(t):
		return "verify-ca"
	}
	return "verify-full"
}

func insecure(t *tls.Config) bool { return t.InsecureSkipVerify }

// maxStderr bounds what is kept of a program's standard error for its error message.
const maxStderr = 4000

// Run runs path with args in env, stdin and stdout as given (extra become file descriptors
// 3, 4, ...), and fails with the end of its standard error (where pg_dump and pg_restore name
// the object they failed on), without any password of cfg.
func Run(ctx context.Context, cfg *pgconn.Config, path string, args, env []string, stdin io.Reader, stdout io.Writer, extra ...*os.File) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = env, stdin, stdout, &stderr, extra
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > maxStderr {
		msg = "..." + msg[len(msg)-maxStderr:]
	}
	msg = dbconn.Redact(msg, "", cfg.Password)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%s failed (%v): %s", filepath.Base(path), exit, msg)
	}
	return fmt.Errorf("%s: %w", filepath.Base(path), err)
}
