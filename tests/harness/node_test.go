package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testOptions starts clusters without the extension, so the harness's own
// tests do not depend on it.
func testOptions() Options {
	o := DefaultOptions()
	o.Preload = false
	return o
}

func TestStartNCrashRestart(t *testing.T) {
	t.Parallel()
	nodes := StartN(t, 2, testOptions())
	if len(nodes) != 2 || nodes[0].Name != "node_a" || nodes[1].Name != "node_b" {
		t.Fatalf("nodes %v", nodes)
	}
	if nodes[0].Port == nodes[1].Port {
		t.Fatalf("both nodes on port %d", nodes[0].Port)
	}
	for _, n := range nodes {
		if len(filepath.Join(n.BaseDir, ".s.PGSQL.65535")) > 107 {
			t.Errorf("socket path too long under %s", n.BaseDir)
		}
		if got := QueryOne[string](t, n, "", "SHOW wal_level"); got != "logical" {
			t.Errorf("%s: wal_level %s", n.Name, got)
		}
		if got := QueryOne[string](t, n, "", "SHOW server_version"); !strings.HasSuffix(toolchainVersion(t), " "+got) {
			t.Errorf("%s: server_version %s, the toolchain is %s", n.Name, got, toolchainVersion(t))
		}
		if got := QueryOne[string](t, n, "", "SELECT datcollate FROM pg_database WHERE datname = current_database()"); got != "C" {
			t.Errorf("%s: datcollate %s", n.Name, got)
		}
	}

	a := nodes[0]
	a.CreateDatabase(t, "app")
	a.Exec(t, "app", "CREATE TABLE kv (k int PRIMARY KEY, v text); INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 100) g")
	a.Exec(t, "app", "UPDATE kv SET v = $1 WHERE k = $2", "changed", 7)
	pool := a.Pool(t, "app")

	a.Crash(t)
	a.Restart(t)
	if got := QueryOne[int64](t, a, "app", "SELECT count(*) FROM kv"); got != 100 {
		t.Errorf("after crash: %d rows, want 100", got)
	}
	if got := QueryOne[string](t, a, "app", "SELECT v FROM kv WHERE k = 7"); got != "changed" {
		t.Errorf("after crash: v = %q", got)
	}
	if !a.LogContains("database system was interrupted") && !a.LogContains("redo starts") {
		t.Errorf("no crash recovery in log:\n%s", a.LogTail(20))
	}
	if a.Pool(t, "app") != pool {
		t.Error("Pool not cached across restart")
	}

	a.Stop(t)
	if _, err := os.Stat(filepath.Join(a.DataDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid after Stop: %v", err)
	}
	a.Restart(t)
	a.Exec(t, "app", "INSERT INTO kv VALUES (101, 'after restart')")
	a.WaitFor(t, 10*time.Second, "101 rows", func() bool {
		return QueryOne[int64](t, a, "app", "SELECT count(*) FROM kv") == 101
	})
	if tail := a.LogTail(3); strings.Count(tail, "\n") > 2 || tail == "" {
		t.Errorf("LogTail(3) = %q", tail)
	}
}

func TestSettingsOverride(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Name = "custom"
	o.Settings = map[string]string{"max_connections": "30", "application_name": "it's me"}
	n := Start(t, o)
	if n.Name != "custom" || !strings.Contains(n.BaseDir, "sr-custom-") {
		t.Errorf("name %s, dir %s", n.Name, n.BaseDir)
	}
	if got := QueryOne[string](t, n, "", "SHOW max_connections"); got != "30" {
		t.Errorf("max_connections %s", got)
	}
	if got := QueryOne[string](t, n, "", "SELECT setting FROM pg_settings WHERE name = 'application_name'"); got != "it's me" {
		t.Errorf("application_name %q", got)
	}
	want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(n.Port) + "/postgres?sslmode=disable"
	if got := n.ConnString(""); got != want {
		t.Errorf("ConnString %s, want %s", got, want)
	}
}

func TestCheckExtension(t *testing.T) {
	home := t.TempDir()
	err := checkExtension(home)
	if err == nil || !strings.Contains(err.Error(), "extension not installed: run make install-ext") {
		t.Fatalf("got %v", err)
	}
	lib := filepath.Join(home, "lib", "postgresql")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lib, "steep_repl.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkExtension(home); err != nil {
		t.Fatal(err)
	}
}

func TestStartErrorHasServerLog(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Settings = map[string]string{"shared_buffers": "lots"}
	n, err := startNode(o, "bad")
	if n != nil {
		defer os.RemoveAll(n.BaseDir)
	}
	if err == nil {
		n.pgctlStop("immediate")
		t.Fatal("server started with shared_buffers = lots")
	}
	for _, want := range []string{"start node bad: pg_ctl start", "server log:", `invalid value for parameter "shared_buffers"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// toolchainVersion is what the installation's postgres --version says ("postgres (PostgreSQL) 18.4").
func toolchainVersion(t *testing.T) string {
	t.Helper()
	tc, err := getToolchain()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(tc.home, "bin", "postgres"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
