package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A second `make setup` must not touch the network: with npm, apt-get and dpkg replaced by
// stubs that fail loudly, setup still succeeds and says the toolchain is up to date.
func TestSetupSecondRunDownloadsNothing(t *testing.T) {
	root := repoRoot()
	// The first run (make test runs setup before the tests) must have completed.
	if _, err := os.Stat(filepath.Join(root, ".cache", "pg18", ".installed")); err != nil {
		t.Fatalf("toolchain not installed (run make setup first): %v", err)
	}
	stubs := t.TempDir()
	for _, tool := range []string{"npm", "apt-get", "apt-cache", "dpkg", "curl", "wget"} {
		script := "#!/bin/sh\necho \"stub $0 called: setup tried to download\" >&2\nexit 97\n"
		if err := os.WriteFile(filepath.Join(stubs, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "setup.sh"), "18")
	cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("second setup run failed: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "stub") || !strings.Contains(string(out), "up to date") {
		t.Fatalf("second setup run did not short-circuit:\n%s", out)
	}
}
