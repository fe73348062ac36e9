package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// setupMajor is the major of the toolchain under test: the pg<major> of STEEP_PG_HOME (make
// test runs the suite once per major), 18 without it.
func setupMajor() string {
	if home := os.Getenv("STEEP_PG_HOME"); home != "" {
		if m, ok := strings.CutPrefix(filepath.Base(filepath.Clean(home)), "pg"); ok && m != "" {
			return m
		}
	}
	return "18"
}

// A second `make setup` must neither download nor build: with npm, apt-get, dpkg and the
// compiler tool chain replaced by stubs that fail loudly, setup still succeeds and says the
// toolchain (server, headers and client programs) is up to date.
func TestSetupSecondRunDownloadsNothing(t *testing.T) {
	root := repoRoot()
	major := setupMajor()
	// The first run (make test runs setup before the tests) must have completed.
	for _, stamp := range []string{".installed", ".clients"} {
		if _, err := os.Stat(filepath.Join(root, ".cache", "pg"+major, stamp)); err != nil {
			t.Fatalf("toolchain not installed (run make setup PG_MAJOR=%s first): %v", major, err)
		}
	}
	stubs := t.TempDir()
	for _, tool := range []string{"npm", "apt-get", "apt-cache", "dpkg", "curl", "wget",
		"gcc", "cc", "make", "bison", "flex", "tar"} {
		script := "#!/bin/sh\necho \"stub $0 called: setup tried to download or build\" >&2\nexit 97\n"
		if err := os.WriteFile(filepath.Join(stubs, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "setup.sh"), major)
	cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("second setup run failed: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "stub") || !strings.Contains(string(out), "up to date") ||
		!strings.Contains(string(out), "client=") {
		t.Fatalf("second setup run did not short-circuit:\n%s", out)
	}
}

// make setup leaves PostgreSQL's client programs of the server's major next to the server's
// programs, each loading the libpq built with it (lib-client, by rpath) while the npm server's
// own libpq stays in lib/ for the server's modules.
func TestSetupClientPrograms(t *testing.T) {
	major := setupMajor()
	home := filepath.Join(repoRoot(), ".cache", "pg"+major)
	majorNum, _ := strconv.Atoi(major)
	progs := []string{"pg_dump", "pg_restore", "pg_dumpall", "pg_basebackup", "pg_receivewal", "pg_recvlogical", "psql"}
	if majorNum >= 17 {
		progs = append(progs, "pg_createsubscriber")
	}
	// CLIENT_VERSION names the source package built: postgresql-<major>=<version>, or a newer
	// major's when the mirror cannot deliver this one's source (setup says so and why).
	recorded, err := os.ReadFile(filepath.Join(home, "CLIENT_VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	clientMajor, _, ok := strings.Cut(strings.TrimPrefix(string(recorded), "postgresql-"), "=")
	if cm, err := strconv.Atoi(clientMajor); !ok || err != nil || cm < majorNum {
		t.Fatalf("CLIENT_VERSION %q: want postgresql-<major >= %s>=<version>", recorded, major)
	}
	if clientMajor != major {
		t.Logf("PostgreSQL %s's client programs stand in for %s's: %s", clientMajor, major, strings.TrimSpace(string(recorded)))
	}
	for _, p := range progs {
		bin := filepath.Join(home, "bin", p)
		cmd := exec.Command(bin, "--version")
		cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(home, "lib")) // RPATH wins over it
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s --version: %v", bin, err)
			continue
		}
		if want := p + " (PostgreSQL) " + clientMajor + "."; !strings.HasPrefix(string(out), want) {
			t.Errorf("%s --version = %q, want %s*", p, out, want)
		}
		ldd, err := exec.Command("ldd", bin).Output()
		if err != nil {
			t.Logf("ldd %s: %v (libpq not checked)", bin, err)
			continue
		}
		if !strings.Contains(string(ldd), "/lib-client/libpq.so.5") {
			t.Errorf("%s does not load .cache/pg%s/lib-client/libpq.so.5:\n%s", p, major, ldd)
		}
	}
	for _, lib := range []string{"lib/libpq.so.5", "lib-client/libpq.so.5"} {
		if _, err := os.Stat(filepath.Join(home, lib)); err != nil {
			t.Errorf("%s: %v", lib, err)
		}
	}
	if out, err := exec.Command(filepath.Join(home, "bin", "postgres"), "--version").CombinedOutput(); err != nil {
		t.Errorf("the server no longer runs: %v\n%s", err, out)
	}
}
