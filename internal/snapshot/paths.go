package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ValidateFileName accepts only a plain file name: not empty, not absolute, no directory
// separator, no "." or "..", no NUL, not the manifest itself.
func ValidateFileName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case filepath.IsAbs(name) || strings.HasPrefix(name, "/"):
		return fmt.Errorf("file name %q is an absolute path", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("file name %q contains \"..\"", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("file name %q is not a plain name inside the snapshot directory", name)
	case name == "." || name == ManifestName || name == ManifestName+".tmp":
		return fmt.Errorf("file name %q is reserved", name)
	case !filepath.IsLocal(name):
		return fmt.Errorf("file name %q is not local to the snapshot directory", name)
	}
	return nil
}

// SafePath joins dir and a validated name and checks the result, with symlinks resolved,
// is a regular file inside dir (a symlink to a file inside dir is accepted, one leading out
// is refused).
func SafePath(dir, name string) (string, error) {
	if err := ValidateFileName(name); err != nil && name != ManifestName {
		return "", err
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("snapshot directory %s: %w", dir, err)
	}
	p := filepath.Join(realDir, name)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("snapshot file %s: %w", name, err)
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("snapshot file %s is a symlink leading out of the snapshot directory (to %s)", name, real)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("snapshot file %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("snapshot file %s is not a regular file", name)
	}
	return real, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// FileName names table number i's file: NNNN_schema_table.copy plus the compression's
// extension; schema and table are reduced to [A-Za-z0-9_] and shortened (the number keeps
// names unique).
func FileName(i int, schema, table, compression string) string {
	ext, _ := CompressionExt(compression)
	clean := func(s string) string {
		s = unsafeChars.ReplaceAllString(s, "_")
		if len(s) > 40 {
			s = s[:40]
		}
		return s
	}
	return fmt.Sprintf("%04d_%s_%s.copy%s", i, clean(schema), clean(table), ext)
}

var ownFile = regexp.MustCompile(`^(\d{4,}_[A-Za-z0-9_]*\.copy(\.zst|\.lz4|\.gz)?(\.partial)?|manifest\.json(\.tmp)?)$`)

// IsSnapshotFile reports whether a directory entry is one this package writes (a table
// file, complete or partial, or the manifest), so a generation may replace it.
func IsSnapshotFile(name string) bool { return ownFile.MatchString(name) }

// PrepareDir makes dir ready for a new generation: it creates it when missing, and removes
// the files of an earlier snapshot in it. Any other entry makes it refuse (it never deletes
// what it did not write). It returns the names it removed.
func PrepareDir(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create snapshot directory %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read snapshot directory %s: %w", dir, err)
	}
	var foreign []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsSnapshotFile(e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) > 0 {
		return nil, fmt.Errorf("snapshot directory %s holds files that are not a snapshot's (%s): use an empty directory",
			dir, strings.Join(foreign, ", "))
	}
	var removed []string
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return removed, fmt.Errorf("remove old snapshot file %s: %w", e.Name(), err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// RemoveFiles deletes a snapshot's files (table files, partial files, the manifest) from
// dir, leaving anything else, and the directory itself when it ends up empty.
func RemoveFiles(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read snapshot directory %s: %w", dir, err)
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && IsSnapshotFile(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return n, fmt.Errorf("remove snapshot file %s: %w", e.Name(), err)
			}
			n++
		}
	}
	_ = os.Remove(dir) // only succeeds when empty
	return n, nil
}
