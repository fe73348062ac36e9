package pgtools

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Programs says where PostgreSQL's client programs are: pg_dump (a snapshot's generate and
// schema export take the schema with it) and pg_restore (a snapshot's apply restores it).
type Programs struct {
	// BinDir is the directory holding pg_dump and pg_restore (steep-repl run --pg-bindir).
	// Empty: the PATH, else the directory `pg_config --bindir` names.
	BinDir string
}

// Find returns the path of program name: in BinDir when set (and only there), else on the
// PATH, else in `pg_config --bindir`.
func (p Programs) Find(name string) (string, error) {
	if p.BinDir != "" {
		path := filepath.Join(p.BinDir, name)
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			return "", fmt.Errorf("%s not found in --pg-bindir %s", name, p.BinDir)
		}
		return path, nil
	}
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	if cfg, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(cfg, "--bindir").Output(); err == nil {
			path := filepath.Join(strings.TrimSpace(string(out)), name)
			if _, err := os.Stat(path); err == nil {
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found: give --pg-bindir, or put it on the PATH or pg_config's --bindir", name)
}

// Program finds name and checks its major is at least min (0: any), naming both versions
// when it is older. It returns the path and the version the program reports.
func (p Programs) Program(ctx context.Context, name string, min int, minWhat string) (string, string, error) {
	path, err := p.Find(name)
	if err != nil {
		return "", "", err
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", path, err)
	}
	version, major, err := ParseVersion(string(out))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	if major < min {
		return "", "", fmt.Errorf("%s is version %s, older than %s (major %d): use the %s of PostgreSQL %d or newer (--pg-bindir)",
			path, version, minWhat, min, name, min)
	}
	return path, version, nil
}

// ParseVersion reads "pg_dump (PostgreSQL) 18.6" (or "... 19devel", "... 18.6 (Debian
// 18.6-1)") and returns "18.6" and 18.
func ParseVersion(out string) (string, int, error) {
	fields := strings.Fields(out)
	for i, f := range fields {
		if f == "(PostgreSQL)" && i+1 < len(fields) {
			v := fields[i+1]
			major, err := strconv.Atoi(LeadingDigits(v))
			if err != nil {
				break
			}
			return v, major, nil
		}
	}
	return "", 0, fmt.Errorf("unexpected --version output %q", strings.TrimSpace(out))
}

// LeadingDigits is the major of a version string ("18" of "18.6" or "19devel").
func LeadingDigits(v string) string {
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		return v
	}
	return v[:end]
}

// DBNameArg is the -d argument naming database db alone: as a conninfo, so a name that holds
// "=" is not taken for one.
func DBNameArg(db string) string {
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
}

// NamePattern quotes a name as a pg_dump pattern that matches exactly it.
func NamePattern(schema, name string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	if name == "" {
		return q(schema)
	}
	return q(schema) + "." + q(name)
}
