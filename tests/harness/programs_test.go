package harness

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The client programs of the toolchain are of the server's major, load their own libpq and
// work against a running node: a custom-format schema dump, its table of contents, a query,
// and a base backup taken as the server's OS user into a directory a server could run.
func TestClientPrograms(t *testing.T) {
	t.Parallel()
	n := Start(t, testOptions())
	serverNum := QueryOne[int32](t, n, "", "SELECT current_setting('server_version_num')::int")
	serverMajor := strconv.Itoa(int(serverNum / 10000))
	// Of the server's major, or of a newer one where make setup could not fetch this major's
	// source (it says so; the programs serve older servers).
	for _, name := range ClientPrograms {
		if name == "pg_createsubscriber" && serverNum < 170000 {
			continue
		}
		v := ClientVersion(t, name)
		if m, err := strconv.Atoi(Major(v)); err != nil || m < int(serverNum/10000) {
			t.Errorf("%s --version says %s, older than the server's %s", name, v, serverMajor)
		} else if Major(v) != serverMajor && name == "pg_dump" {
			t.Logf("the client programs are %s's, standing in for %s's", v, serverMajor)
		}
	}

	n.CreateDatabase(t, "app")
	n.Exec(t, "app", `CREATE DOMAIN year AS int CHECK (VALUE BETWEEN 1900 AND 2200);
		CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE TABLE film (id int PRIMARY KEY, released year, mood mood);
		CREATE TABLE rental (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
		CREATE TABLE rental_2026 PARTITION OF rental FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
		INSERT INTO film VALUES (1, 2001, 'happy')`)

	dump := filepath.Join(t.TempDir(), "app.dump")
	n.RunClient(t, "app", "pg_dump", "--schema-only", "--format=custom", "--file", dump)
	toc := n.RunClient(t, "app", "pg_restore", "-l", dump)
	for _, want := range []string{"DOMAIN public year", "TYPE public mood", "TABLE public film", "TABLE public rental_2026"} {
		if !strings.Contains(toc, want) {
			t.Errorf("pg_restore -l of the dump has no %q:\n%s", want, toc)
		}
	}
	if !strings.Contains(toc, "Dumped from database version: "+serverMajor+".") {
		t.Errorf("pg_restore -l does not show a dump of a %s server:\n%s", serverMajor, toc)
	}

	if got := strings.TrimSpace(n.RunClient(t, "app", "psql", "-X", "-At", "-c", "SELECT released FROM film")); got != "2001" {
		t.Errorf("psql -c: %q, want 2001", got)
	}
	if got := strings.TrimSpace(n.RunClient(t, "", "psql", "-X", "-At", "-c", "SELECT 1")); got != "1" {
		t.Errorf("psql -c 'SELECT 1': %q", got)
	}
	if out := n.RunClient(t, "", "pg_basebackup", "--help"); !strings.Contains(out, "--pgdata") {
		t.Errorf("pg_basebackup --help:\n%s", out)
	}

	backup := filepath.Join(n.BaseDir, "backup")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := n.ClientAsServerUser(ctx, "", "pg_basebackup", "-D", backup, "-X", "fetch", "-c", "fast", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup as the server user: %v\n%s", err, out)
	}
	if v, err := os.ReadFile(filepath.Join(backup, "PG_VERSION")); err != nil || strings.TrimSpace(string(v)) != serverMajor {
		t.Errorf("base backup PG_VERSION %q (%v), want %s", v, err, serverMajor)
	}
	if _, err := os.Stat(filepath.Join(backup, "backup_manifest")); err != nil {
		t.Errorf("base backup has no manifest: %v", err)
	}
}
