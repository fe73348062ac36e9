package job

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

// Programs says where the sidecar finds PostgreSQL's client programs: pg_dump (generate takes
// the schema with it) and pg_restore (apply restores the schema with it).
type Programs struct {
	// BinDir is the directory holding pg_dump and pg_restore (steep-repl run --pg-bindir).
	// Empty: the PATH, else the directory `pg_config --bindir` names.
	BinDir string
}

// find returns the path of program name: in BinDir when set (and only there), else on the
// PATH, else in `pg_config --bindir`.
func (p Programs) find(name string) (string, error) {
	if p.BinDir != "" {
		path := filepath.Join(p.BinDir, name)
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			return "", fmt.Errorf("%s not found in --pg-bindir %s", name, p.BinDir)
		}
		return path, nil
	}
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	if cfg, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(cfg, "--bindir").Output(); err == nil {
			path := filepath.Join(strings.TrimSpace(string(out)), name)
			if _, err := os.Stat(path); err == nil {
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found: give steep-repl run --pg-bindir, or put it on the PATH or pg_config's --bindir", name)
}

// program finds name and checks its major is at least min (0: any), naming both versions
// when it is older. It returns the path and the version the program reports.
func (p Programs) program(ctx context.Context, name string, min int, minWhat string) (string, string, error) {
	path, err := p.find(name)
	if err != nil {
		return "", "", err
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", path, err)
	}
	version, major, err := parseProgramVersion(string(out))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	if major < min {
		return "", "", fmt.Errorf("%s is version %s, older than %s (major %d): use the %s of PostgreSQL %d or newer (steep-repl run --pg-bindir)",
			path, version, minWhat, min, name, min)
	}
	return path, version, nil
}

// parseProgramVersion reads "pg_dump (PostgreSQL) 18.6" (or "... 19devel", "... 18.6 (Debian
// 18.6-1)") and returns "18.6" and 18.
func parseProgramVersion(out string) (string, int, error) {
	fields := strings.Fields(out)
	for i, f := range fields {
		if f == "(PostgreSQL)" && i+1 < len(fields) {
			v := fields[i+1]
			end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
			if end < 0 {
				end = len(v)
			}
			major, err := strconv.Atoi(v[:end])
			if err != nil {
				break
			}
			return v, major, nil
		}
	}
	return "", 0, fmt.Errorf("unexpected --version output %q", strings.TrimSpace(out))
}

// libpqEnv is the environment that points a client program at the node cfg reaches, as the
// sidecar's own connection does: the password travels in PGPASSWORD (never on a command line,
// which other users of the host can read). Variables naming another connection are dropped
// from the sidecar's environment; the rest (PGSSLROOTCERT, PGPASSFILE, ...) are kept.
func libpqEnv(cfg *pgconn.Config, app string) []string {
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
		"PGDATABASE="+cfg.Database, "PGSSLMODE="+sslMode(cfg), "PGAPPNAME="+app, "PGCONNECT_TIMEOUT=30", "LC_ALL=C")
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	return env
}

// sslMode is the libpq sslmode equivalent to how pgconn connects with cfg.
func sslMode(cfg *pgconn.Config) string {
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

// dbnameArg is the -d argument naming database db alone: as a conninfo, so a name that holds
// "=" is not taken for one.
func dbnameArg(db string) string {
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
}

// namePattern quotes a name as a pg_dump pattern that matches exactly it.
func namePattern(schema, name string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	if name == "" {
		return q(schema)
	}
	return q(schema) + "." + q(name)
}

// maxProgramStderr bounds what is kept of a program's standard error for its error message.
const maxProgramStderr = 4000

// runProgram runs path with args in env, stdin and stdout as given, and fails with the end of
// its standard error (where pg_dump and pg_restore name the object they failed on), without
// any password of cfg.
func runProgram(ctx context.Context, cfg *pgconn.Config, path string, args, env []string, stdin io.Reader, stdout io.Writer, extra ...*os.File) error {
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
	if len(msg) > maxProgramStderr {
		msg = "..." + msg[len(msg)-maxProgramStderr:]
	}
	msg = dbconn.Redact(msg, "", cfg.Password)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%s failed (%v): %s", filepath.Base(path), exit, msg)
	}
	return fmt.Errorf("%s: %w", filepath.Base(path), err)
}
