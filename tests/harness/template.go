package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// One initdb per test process: every node starts from a copy of it. initdb costs about a
// second of CPU and the suite starts some 300 nodes on two cores; a copy of its 40 MB costs a
// fifth of that. The copies share a system identifier, which nothing under test reads.
var (
	templateOnce sync.Once
	templateBase string
	templateErr  error
)

// templateData returns the data directory every node copies, made on first use.
func (tc *toolchain) templateData() (string, error) {
	templateOnce.Do(func() {
		base, err := os.MkdirTemp("/tmp", "sr-template-")
		if err != nil {
			templateErr = err
			return
		}
		templateBase = base
		if err := tc.chown(base); err != nil {
			templateErr = err
			return
		}
		templateErr = tc.runInitdb(filepath.Join(base, "data"))
	})
	if templateErr != nil {
		return "", fmt.Errorf("template data directory: %w", templateErr)
	}
	return filepath.Join(templateBase, "data"), nil
}

// runInitdb makes a data directory that includes the harness's settings file.
func (tc *toolchain) runInitdb(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := tc.command(ctx, "initdb", "-D", dir, "-U", "postgres",
		"--auth=trust", "--locale=C", "--encoding=UTF8", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", dir, err, out)
	}
	conf := filepath.Join(dir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", conf, err)
	}
	_, err = fmt.Fprintf(f, "\ninclude '%s'\n", harnessConf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append include to %s: %w", conf, err)
	}
	return nil
}

// RemoveTemplate deletes the template data directory; a test binary's TestMain calls it last.
func RemoveTemplate() {
	if templateBase != "" {
		os.RemoveAll(templateBase)
	}
}
