package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Node is one running (or stopped) PostgreSQL cluster owned by a test.
type Node struct {
	// Name identifies the node in logs and directory names, e.g. "node_a".
	Name string
	// Port is the TCP port on 127.0.0.1; it stays the same across restarts.
	Port int
	// DataDir is the cluster's data directory.
	DataDir string
	// BaseDir is the short directory holding DataDir, the Unix socket and the
	// server log.
	BaseDir string
	// LogFile is the server log (pg_ctl -l).
	LogFile string

	tc *toolchain

	mu      sync.Mutex
	running bool
	pools   map[string]*pgxpool.Pool
}

// startTimeout bounds one pg_ctl invocation (pg_ctl itself waits up to 60 s).
const startTimeout = 90 * time.Second

// Start creates and starts one cluster; t.Cleanup stops it and removes its
// directories (kept when the test failed).
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	n, err := startNode(opts, opts.name())
	if n != nil {
		registerCleanup(t, n)
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	return n
}

// StartN creates and starts n clusters concurrently, named opts.Name+"_a",
// opts.Name+"_b", ...; t.Cleanup stops them.
func StartN(t testing.TB, n int, opts Options) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			nodes[i], errs[i] = startNode(opts, opts.name()+"_"+nodeSuffix(i))
		})
	}
	wg.Wait()
	for _, node := range nodes {
		if node != nil {
			registerCleanup(t, node)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%v", err)
	}
	return nodes
}

// nodeSuffix names the i-th node of StartN: a, b, ..., z, then 26, 27, ...
func nodeSuffix(i int) string {
	if i < 26 {
		return string(rune('a' + i))
	}
	return fmt.Sprint(i)
}

// startNode runs initdb and starts the server. It returns the node, once its
// directory exists, even on error, so the caller can keep it for inspection.
func startNode(opts Options, name string) (*Node, error) {
	tc, err := getToolchain()
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	if opts.Preload {
		if err := checkExtension(tc.home); err != nil {
			return nil, fmt.Errorf("start node %s: %w", name, err)
		}
	}
	dirName := name
	if len(dirName) > 24 {
		dirName = dirName[:24]
	}
	base, err := os.MkdirTemp("/tmp", "sr-"+dirName+"-")
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	n := &Node{
		Name:    name,
		DataDir: filepath.Join(base, "data"),
		BaseDir: base,
		LogFile: filepath.Join(base, "server.log"),
		tc:      tc,
		pools:   map[string]*pgxpool.Pool{},
	}
	if err := tc.chown(base); err != nil {
		return n, fmt.Errorf("start node %s: %w", name, err)
	}
	if err := n.initdb(); err != nil {
		return n, fmt.Errorf("start node %s: %w", name, err)
	}
	for attempt := 1; ; attempt++ {
		if n.Port, err = freePort(); err != nil {
			return n, fmt.Errorf("start node %s: %w", name, err)
		}
		if err := n.writeConf(opts); err != nil {
			return n, fmt.Errorf("start node %s: %w", name, err)
		}
		err = n.pgctlStart()
		if err == nil {
			return n, nil
		}
		if attempt == 5 || !isBindError(err) {
			return n, fmt.Errorf("start node %s: %w", name, err)
		}
	}
}

// checkExtension fails unless steep_repl.so is installed in home.
func checkExtension(home string) error {
	lib := filepath.Join(home, "lib", "postgresql", "steep_repl.so")
	if _, err := os.Stat(lib); err != nil {
		return fmt.Errorf("extension not installed: run make install-ext (no %s)", lib)
	}
	return nil
}

// initdb gives the node its data directory: a copy of the process's template (cp -a keeps the
// server user's ownership and modes).
func (n *Node) initdb() error {
	tmpl, err := n.tc.templateData()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "cp", "-a", tmpl, n.DataDir).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the template data directory to %s: %w\n%s", n.DataDir, err, out)
	}
	return nil
}

// writeConf (re)writes the harness settings, including the current port.
func (n *Node) writeConf(opts Options) error {
	path := filepath.Join(n.DataDir, harnessConf)
	conf := renderConf(serverSettings(opts, n.Port, n.BaseDir))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return n.tc.chown(path)
}

// pgctlStart starts the server and waits until it accepts connections.
func (n *Node) pgctlStart() error {
	offset := fileSize(n.LogFile)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := n.tc.command(ctx, "pg_ctl", "start", "-w", "-t", "60",
		"-D", n.DataDir, "-l", n.LogFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl start on port %d: %w\n%s\nserver log:\n%s",
			n.Port, err, strings.TrimSpace(string(out)), n.logSince(offset, 40))
	}
	n.setRunning(true)
	return nil
}

// pgctlStop stops the server with the given shutdown mode (fast, immediate).
func (n *Node) pgctlStop(mode string) error {
	n.resetPools()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := n.tc.command(ctx, "pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", n.DataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w\n%s", mode, err, strings.TrimSpace(string(out)))
	}
	n.setRunning(false)
	return nil
}

func (n *Node) setRunning(on bool) {
	n.mu.Lock()
	n.running = on
	n.mu.Unlock()
	trackRunning(n, on)
}

func (n *Node) isRunning() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

// Stop shuts the server down cleanly (pg_ctl stop -m fast).
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if err := n.pgctlStop("fast"); err != nil {
		t.Fatalf("stop node %s: %v", n.Name, err)
	}
}

// Crash kills the server without a checkpoint (pg_ctl stop -m immediate); the
// next start runs crash recovery.
func (n *Node) Crash(t testing.TB) {
	t.Helper()
	if err := n.pgctlStop("immediate"); err != nil {
		t.Fatalf("crash node %s: %v", n.Name, err)
	}
}

// Restart starts the server again after Stop or Crash, on the same port and
// data directory. Pools from Pool stay usable.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	if err := n.pgctlStart(); err != nil {
		t.Fatalf("restart node %s: %v", n.Name, err)
	}
	n.resetPools()
}

// Command prepares a binary of the PostgreSQL installation (e.g. "pg_ctl") to
// run as the OS user that owns the node's data directory.
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return n.tc.command(ctx, name, args...)
}

// registerCleanup stops the node when the test ends and removes its
// directories, or keeps them and logs how to inspect them if the test failed.
func registerCleanup(t testing.TB, n *Node) {
	t.Cleanup(func() {
		n.closePools()
		if !t.Failed() {
			if n.isRunning() {
				if err := n.pgctlStop("immediate"); err != nil {
					t.Logf("cleanup node %s: %v", n.Name, err)
					return
				}
			}
			if err := os.RemoveAll(n.BaseDir); err != nil {
				t.Logf("cleanup node %s: %v", n.Name, err)
			}
			return
		}
		t.Logf("node %s: last 80 lines of %s:\n%s", n.Name, n.LogFile, n.LogTail(80))
		if n.isRunning() && os.Getenv("STEEP_KEEP_RUNNING") != "" {
			t.Logf("node %s: left running (STEEP_KEEP_RUNNING), data directory %s, connect with %s",
				n.Name, n.DataDir, n.ConnString(""))
			return
		}
		if n.isRunning() {
			if err := n.pgctlStop("fast"); err != nil {
				t.Logf("cleanup node %s: %v", n.Name, err)
			}
		}
		start := fmt.Sprintf("%s start -D %s -l %s", filepath.Join(n.tc.home, "bin", "pg_ctl"), n.DataDir, n.LogFile)
		if n.tc.cred != nil {
			start = fmt.Sprintf("su %s -s /bin/sh -c '%s'", serverUser, start)
		}
		t.Logf("node %s: data directory kept: %s\n  start it with: %s\n  then connect with: %s",
			n.Name, n.DataDir, start, n.ConnString(""))
	})
}

// fileSize returns the size of path, 0 if it does not exist.
func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}
