package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// Console screen size in the tmux tests.
const consoleWidth, consoleHeight = 160, 40

var (
	consoleBuild    sync.Once
	consoleBin      string
	consoleBuildErr error
	consoleSessions atomic.Int64
)

// steepConsoleBin builds bin steep-console once per test run, next to the sidecar binary
// (TestMain removes that directory at the end).
func steepConsoleBin(t testing.TB) string {
	t.Helper()
	consoleBuild.Do(func() {
		consoleBin = filepath.Join(filepath.Dir(sidecarBin), "steep-console")
		build := exec.Command("go", "build", "-o", consoleBin, "./console")
		build.Dir = repoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			consoleBuildErr = fmt.Errorf("build steep-console: %w\n%s", err, out)
		}
	})
	if consoleBuildErr != nil {
		t.Fatal(consoleBuildErr)
	}
	return consoleBin
}

// tmuxConsole is steep-console running in a detached tmux session of its own tmux server
// (a private socket), consoleWidth x consoleHeight, TERM=xterm-256color.
type tmuxConsole struct {
	t        testing.TB
	socket   string
	exitFile string
	last     string
	// pollEvery is the pause between two screen captures of waitScreen.
	pollEvery time.Duration
}

// startConsole runs steep-console with args in tmux; cleanup kills that tmux server and,
// when the test failed, logs the last screen.
func startConsole(t testing.TB, args ...string) *tmuxConsole {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is not installed: make test installs it (apt-get install tmux)")
	}
	bin := steepConsoleBin(t)
	dir := t.TempDir()
	c := &tmuxConsole{t: t, exitFile: filepath.Join(dir, "exit-status"), pollEvery: 20 * time.Millisecond,
		socket: fmt.Sprintf("steep-console-test-%d-%d", os.Getpid(), consoleSessions.Add(1))}
	conf := filepath.Join(dir, "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g status off\nset -g default-terminal xterm-256color\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	quoted := []string{shellQuote(bin)}
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	script := fmt.Sprintf("%s 2>%s; echo $? > %s", strings.Join(quoted, " "), shellQuote(filepath.Join(dir, "stderr")),
		shellQuote(c.exitFile))
	cmd := exec.Command("tmux", "-L", c.socket, "-f", conf, "new-session", "-d", "-s", "console",
		"-x", strconv.Itoa(consoleWidth), "-y", strconv.Itoa(consoleHeight), "env", "TERM=xterm-256color", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last console screen:\n%s", c.last)
			if b, err := os.ReadFile(filepath.Join(dir, "stderr")); err == nil && len(b) > 0 {
				t.Logf("console stderr:\n%s", b)
			}
		}
		_ = exec.Command("tmux", "-L", c.socket, "kill-server").Run()
	})
	return c
}

// screen is the pane's text now ("" once the console has exited).
func (c *tmuxConsole) screen() string {
	out, err := exec.Command("tmux", "-L", c.socket, "capture-pane", "-p", "-t", "console").Output()
	if err != nil {
		return ""
	}
	c.last = string(out)
	return c.last
}

// keys sends tmux key names or literal keys ("D", "Escape", "y").
func (c *tmuxConsole) keys(keys ...string) {
	c.t.Helper()
	args := append([]string{"-L", c.socket, "send-keys", "-t", "console"}, keys...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		c.t.Fatalf("tmux send-keys %v: %v\n%s", keys, err, out)
	}
}

// waitScreen polls the screen every pollEvery until cond holds, failing after timeout; it
// returns the screen that satisfied cond and when it was captured.
func (c *tmuxConsole) waitScreen(timeout time.Duration, what string, cond func(screen string) bool) (string, time.Time) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := c.screen()
		at := time.Now()
		if cond(s) {
			return s, at
		}
		if at.After(deadline) {
			c.t.Fatalf("console: timed out after %s waiting for %s; screen:\n%s", timeout, what, s)
		}
		time.Sleep(c.pollEvery)
	}
}

// waitExit waits for the console to exit and returns its exit status.
func (c *tmuxConsole) waitExit(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(c.exitFile); err == nil && strings.TrimSpace(string(b)) != "" {
			code, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				c.t.Fatalf("exit status %q: %v", b, err)
			}
			return code
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("console did not exit within %s; screen:\n%s", timeout, c.screen())
	return -1
}

// rowOf is the nodes-view line of node ("" when not on screen): the line whose first word,
// inside the table border, is the node's name.
func rowOf(screen, node string) string {
	for _, line := range strings.Split(screen, "\n") {
		f := strings.Fields(strings.TrimFunc(line, isBorder))
		if len(f) > 1 && f[0] == node {
			return line
		}
	}
	return ""
}

// isBorder reports box-drawing characters (tview draws a focused box with double lines).
func isBorder(r rune) bool {
	return r == ' ' || r >= 0x2500 && r <= 0x257F
}

var percentRE = regexp.MustCompile(`(\d+\.\d)%`)

// percentOf is the percent a row's progress bar shows, -1 when none.
func percentOf(row string) float64 {
	m := percentRE.FindStringSubmatch(row)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// rowState is the init state word a node row shows ("" when none of the eight is there).
func rowState(row string) string {
	for _, f := range strings.Fields(row) {
		switch f {
		case "UNINITIALIZED", "PREPARING", "COPYING", "CATCHING_UP", "SYNCHRONIZED", "REINITIALIZING", "DIVERGED", "FAILED":
			return f
		}
	}
	return ""
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// setupConsoleNodes starts node_a and node_b with the extension, both registered on both
// (superuser conninfo, so a console given one finds the other). No data, no sidecar.
func setupConsoleNodes(t testing.TB) (a, b *harness.Node) {
	t.Helper()
	return setupEmptyPair(t)
}
