package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/tests/harness"
)

// sidecarBin is the steep-repl binary built once for the whole test run.
var sidecarBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "steep-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sidecarBin = filepath.Join(dir, "steep-repl")
	build := exec.Command("go", "build", "-o", sidecarBin, "./sidecar")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build steep-repl: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	harness.RemoveTemplate()
	os.Exit(code)
}

func repoRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// fastSupervisor makes tick() run often so tests do not wait for the default naptime.
var fastSupervisor = map[string]string{"steep_repl.naptime": "200ms"}

// idleSupervisor keeps the supervisor from ticking during a test that drives tick() by hand.
var idleSupervisor = map[string]string{"steep_repl.naptime": "1h"}

// setupNode starts one cluster with the extension installed and itself registered as node_a.
func setupNode(t testing.TB) *harness.Node {
	t.Helper()
	return setupNodeWith(t, fastSupervisor)
}

// setupNodeWith is setupNode with other server settings.
func setupNodeWith(t testing.TB, settings map[string]string) *harness.Node {
	t.Helper()
	opts := harness.DefaultOptions()
	opts.Settings = settings
	n := harness.Start(t, opts)
	failOnTickErrors(t, n)
	n.Exec(t, "", "CREATE EXTENSION steep_repl CASCADE")
	n.Exec(t, "", "SELECT steep_repl.register_node('node_a', $1, true)", libpqConninfo(n))
	return n
}

// tickErrorsExpected lists tests that break tick() on purpose.
var tickErrorsExpected sync.Map

// failOnTickErrors makes a test fail when the supervisor logged a failing tick(): tick()'s
// errors are survived by design, so without this check they would go unnoticed.
func failOnTickErrors(t testing.TB, n *harness.Node) {
	t.Cleanup(func() {
		if _, ok := tickErrorsExpected.Load(t.Name()); ok {
			return
		}
		if n.LogContains("steep_repl supervisor: tick failed") {
			t.Errorf("the supervisor's tick() failed on %s; see the server log", n.Name)
		}
	})
}

// libpqConninfo is how other nodes (and the server's own subscription workers) reach n.
func libpqConninfo(n *harness.Node) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=postgres", n.Port)
}

// sqlState runs sql on n and returns the SQLSTATE of its error ("" when it succeeded).
func sqlState(t testing.TB, n *harness.Node, sql string, args ...any) (string, *pgconn.PgError) {
	t.Helper()
	return execState(t, n.Pool(t, ""), sql, args...)
}

// execState runs sql on pool and returns the SQLSTATE of its error ("" when it succeeded).
func execState(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) (string, *pgconn.PgError) {
	t.Helper()
	_, err := pool.Exec(context.Background(), sql, args...)
	if err == nil {
		return "", nil
	}
	var pgErr *pgconn.PgError
	if !asPgError(err, &pgErr) {
		t.Fatalf("%s: not a PostgreSQL error: %v", sql, err)
	}
	return pgErr.Code, pgErr
}

func asPgError(err error, target **pgconn.PgError) bool {
	for err != nil {
		if e, ok := err.(*pgconn.PgError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// execAs runs sql on n's postgres database as role (a LOGIN role trusted like postgres).
func execAs(t testing.TB, n *harness.Node, role, sql string) error {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), strings.Replace(n.ConnString(""), "postgres@", role+"@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), sql)
	return err
}

// sidecar is a running `steep-repl run` process.
type sidecar struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startSidecar runs `steep-repl run --db <node> --worker name args...`; cleanup kills it and,
// when the test failed, prints its log.
func startSidecar(t testing.TB, n *harness.Node, name string, args ...string) *sidecar {
	t.Helper()
	bindir, err := harness.BinDir()
	if err != nil {
		t.Fatalf("start sidecar %s: %v", name, err)
	}
	all := append([]string{"run", "--db", n.ConnString(""), "--worker", name, "--poll", "500ms", "--pg-bindir", bindir}, args...)
	s := &sidecar{name: name, cmd: exec.Command(sidecarBin, all...), out: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sidecar %s: %v", name, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.signal(syscall.SIGKILL)
		<-s.done
		if t.Failed() {
			t.Logf("sidecar %s log:\n%s", name, s.out.String())
		}
	})
	return s
}

func (s *sidecar) signal(sig syscall.Signal) {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(sig)
	}
}

// kill is SIGKILL: the sidecar gets no chance to release anything.
func (s *sidecar) kill() {
	s.signal(syscall.SIGKILL)
	<-s.done
}

// stop is SIGTERM and waits for the exit (at most timeout).
func (s *sidecar) stop(t testing.TB, timeout time.Duration) int {
	t.Helper()
	s.signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(timeout):
		t.Fatalf("sidecar %s did not exit within %s of SIGTERM", s.name, timeout)
	}
	return s.cmd.ProcessState.ExitCode()
}

// awaitEvents waits until the sidecar has logged at least n records of event name and returns
// them all: a job's final log line is written after the row is finished, so a test that saw the
// row change may look at the log a moment too soon.
func (s *sidecar) awaitEvents(t testing.TB, name string, n int, timeout time.Duration) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := s.events(name)
		if len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// events returns the sidecar's JSON log records whose "event" is name.
func (s *sidecar) events(name string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.out.String()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["event"] == name {
			out = append(out, rec)
		}
	}
	return out
}
