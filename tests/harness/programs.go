package harness

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ClientPrograms are PostgreSQL's client programs that `make setup` builds from Debian's source
// package of the server's major, next to the server's programs in .cache/pg<major>/bin (each
// loads its own libpq from ../lib-client by rpath). pg_createsubscriber exists from 17 on.
//
// pg_dumpall finds pg_dump in its own directory, as upstream's do. pg_createsubscriber runs
// pg_ctl and accepts only one of exactly its own version (e.g. 18.6), while the npm server's
// pg_ctl is another minor (18.4): it runs with the toolchain's server only once both are the
// same release.
var ClientPrograms = []string{
	"pg_dump", "pg_restore", "pg_dumpall", "pg_basebackup", "pg_receivewal", "pg_recvlogical",
	"pg_createsubscriber", "psql",
}

// BinDir is the bin directory of the installation the harness runs: the server's programs and
// the client programs of the same major (what a sidecar's --pg-bindir should name).
func BinDir() (string, error) {
	tc, err := getToolchain()
	if err != nil {
		return "", err
	}
	return filepath.Join(tc.home, "bin"), nil
}

// ClientBin returns the path of client program name (pg_dump, pg_restore, psql, pg_basebackup,
// ...) of the installation the harness runs; the test fails when it is missing.
func ClientBin(t testing.TB, name string) string {
	t.Helper()
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("client program %s not in %s (make setup builds it): %v", name, dir, err)
	}
	return path
}

// Client prepares client program name (pg_dump, pg_restore, psql, ...) of the installation to
// run as the test's own OS user, aimed at database db ("" = postgres) of the node: PGHOST
// (127.0.0.1), PGPORT, PGUSER (postgres), PGDATABASE and PGCONNECT_TIMEOUT are set; no other PG*
// variable nor the caller's locale is inherited (LC_ALL=C). Options on the command line win
// over the environment; pg_restore restores into a database only with -d (or --dbname), e.g.
// "-d", n.ConnString("app").
func (n *Node) Client(ctx context.Context, db, name string, args ...string) *exec.Cmd {
	cmd := n.tc.command(ctx, name, args...)
	cmd.Dir = "" // the test's working directory: relative paths mean what the test means
	cmd.SysProcAttr = nil
	cmd.Env = append(cmd.Env, n.clientEnv(db)...)
	return cmd
}

// ClientAsServerUser is Client run as the OS user that runs the node's server (as Command
// does): for pg_basebackup -D into a directory a server will then run, e.g. under n.BaseDir,
// which that user owns. Its working directory is /.
func (n *Node) ClientAsServerUser(ctx context.Context, db, name string, args ...string) *exec.Cmd {
	cmd := n.tc.command(ctx, name, args...)
	cmd.Env = append(cmd.Env, n.clientEnv(db)...)
	return cmd
}

func (n *Node) clientEnv(db string) []string {
	return []string{
		"PGHOST=127.0.0.1",
		"PGPORT=" + strconv.Itoa(n.Port),
		"PGUSER=postgres",
		"PGDATABASE=" + dbName(db),
		"PGCONNECT_TIMEOUT=10",
	}
}

// RunClient runs client program name as Client does, with a timeout, and returns its standard
// output; the test fails with the program's standard error when it exits non-zero.
func (n *Node) RunClient(t testing.TB, db, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := n.Client(ctx, db, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %s %s: %v after %s\n%s", n.Name, name, strings.Join(args, " "), err,
			time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr.String()))
	}
	return stdout.String()
}

// ClientVersion is what client program name says of its version ("18.6" of
// "pg_dump (PostgreSQL) 18.6").
func ClientVersion(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command(ClientBin(t, name), "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", name, err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 || fields[len(fields)-2] != "(PostgreSQL)" {
		t.Fatalf("%s --version: unexpected %q", name, out)
	}
	return fields[len(fields)-1]
}

// Major is the major version of a version string ("18" of "18.6" or "18beta1").
func Major(version string) string {
	end := strings.IndexFunc(version, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		return version
	}
	return version[:end]
}
