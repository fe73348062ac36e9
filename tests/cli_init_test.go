package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(sidecarBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errb.String(), ee.ExitCode()
		}
		t.Fatalf("run steep-repl %v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

func TestCLIInitFollowPrintsProgressUntilSynchronized(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	out, errOut, code := runCLI(t, "init", "node_b", "--from", "node_a", "--db", dbaURL(t, p.b),
		"--parallel", "2", "--json-progress", "--timeout", "90s")
	if code != 0 {
		t.Fatalf("init exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var last map[string]any
	prev := -1.0
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not NDJSON: %q: %v", sc.Text(), err)
		}
		if pct, ok := rec["percent"].(float64); ok {
			if pct < prev {
				t.Fatalf("percent went down: %v after %v", pct, prev)
			}
			prev = pct
		}
		last = rec
		lines++
	}
	if lines == 0 || last["state"] != "synchronized" || last["percent"] != 100.0 {
		t.Fatalf("last progress record %v after %d lines", last, lines)
	}
	harness.AssertEqual(t, p.a, p.b, "")

	status, _, code := runCLI(t, "init", "status", "node_b", "--db", dbaURL(t, p.b), "--no-color")
	if code != 0 || !strings.Contains(status, "SYNCHRONIZED") || !strings.Contains(status, "public.track") {
		t.Fatalf("init status (exit %d):\n%s", code, status)
	}
}

func TestCLIInitRefusalShowsTheSQLStateAndHint(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	_, errOut, code := runCLI(t, "init", "node_b", "--from", "node_a", "--db", dbaURL(t, p.b), "--parallel", "17")
	if code != 1 || !strings.Contains(errOut, "SQLSTATE 22023") || !strings.Contains(errOut, "HINT:") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = runCLI(t, "init", "node_b", "--db", dbaURL(t, p.b))
	if code != 2 || !strings.Contains(errOut, "--from") {
		t.Fatalf("missing --from: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestCLIInitCancelWaitsForUninitialized(t *testing.T) {
	scenario(t)
	t.Parallel()
	p := setupPair(t)
	p.addSlowTable(t, 20000, 2*time.Millisecond)
	if _, errOut, code := runCLI(t, "init", "node_b", "--from", "node_a", "--db", dbaURL(t, p.b), "--quiet"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	p.waitState(t, "copying", 30*time.Second)
	out, errOut, code := runCLI(t, "init", "cancel", "node_b", "--wait", "--db", dbaURL(t, p.b))
	if code != 0 {
		t.Fatalf("init cancel: exit %d\n%s%s", code, out, errOut)
	}
	if st := p.state(t); st != "uninitialized" {
		t.Fatalf("after init cancel --wait the node is %s", st)
	}
	p.assertNoInitLeftovers(t)
	out, _, code = runCLI(t, "init", "cancel", "node_b", "--db", dbaURL(t, p.b))
	if code != 0 || !strings.Contains(out, "no init to cancel") {
		t.Fatalf("second cancel: exit %d: %s", code, out)
	}
}
