package snapshot

import (
	"errors"
	"fmt"
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
	case name == "." || name == ManifestName || name == ManifestName+".tmp" || name == generatingName:
		return fmt.Errorf("file name %q is reserved", name)
	case !filepath.IsLocal(name):
		return fmt.Errorf("file name %q is not local to the snapshot directory", name)
	}
	return nil
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

var ownFile = regexp.MustCompile(`^(\d{4,}_[A-Za-z0-9_]*\.copy(\.zst|\.lz4|\.gz)?(\.partial)?|schema\.dump(\.partial)?|manifest\.json(\.tmp)?|generating\.id)$`)

// IsSnapshotFile reports whether a directory entry is one this package writes (a table
// file, complete or partial, the schema archive, the manifest, the generating marker), so a retried generation
// of the same snapshot or a delete may remove it.
func IsSnapshotFile(name string) bool { return ownFile.MatchString(name) }
