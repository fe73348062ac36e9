package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// copySkipped is what a file-level base backup leaves out of a data directory: WAL (fetched
// by restore_command instead), slots, and the running server's pid files.
func copySkipped(rel string, isDir bool) bool {
	switch rel {
	case "postmaster.pid", "postmaster.opts", harnessConf:
		return true
	}
	parent := filepath.Dir(rel)
	if isDir {
		return parent == "pg_replslot" // slot directories; pg_wal/ and pg_wal/archive_status stay
	}
	return parent == "pg_wal" || filepath.Base(parent) == "archive_status" || parent == "pg_replslot" ||
		filepath.Dir(parent) == "pg_replslot"
}

// CopyDataDir copies src's data directory into dst (which must not exist) the way a
// low-level base backup between pg_backup_start and pg_backup_stop does: pg_wal and
// pg_replslot are left empty, pid files out. Files vanishing under a running server are skipped.
func CopyDataDir(src *Node, dst string) error {
	return filepath.WalkDir(src.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src.DataDir, path)
		if err != nil {
			return err
		}
		if rel != "." && copySkipped(rel, d.IsDir()) {
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			if err := copyFile(path, target, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("copy %s: %w", rel, err)
			}
		}
		return nil
	})
}

// StartFromDataDir starts a node on a data directory that fill prepares (a restored backup,
// a standby): fill gets the path of an empty directory to populate. The harness then writes
// its settings (port, sockets, opts.Settings such as restore_command) and starts the server.
func StartFromDataDir(t testing.TB, opts Options, name string, fill func(dataDir string) error) *Node {
	t.Helper()
	tc, err := getToolchain()
	if err != nil {
		t.Fatalf("start node %s: %v", name, err)
	}
	base, err := os.MkdirTemp("/tmp", "sr-"+name+"-")
	if err != nil {
		t.Fatalf("start node %s: %v", name, err)
	}
	n := &Node{Name: name, DataDir: filepath.Join(base, "data"), BaseDir: base,
		LogFile: filepath.Join(base, "server.log"), tc: tc, pools: map[string]*pgxpool.Pool{}}
	registerCleanup(t, n)
	if err := os.Mkdir(n.DataDir, 0o700); err != nil {
		t.Fatalf("start node %s: %v", name, err)
	}
	if err := fill(n.DataDir); err != nil {
		t.Fatalf("start node %s: fill data directory: %v", name, err)
	}
	if err := tc.chownTree(base); err != nil {
		t.Fatalf("start node %s: %v", name, err)
	}
	for attempt := 1; ; attempt++ {
		if n.Port, err = freePort(); err != nil {
			t.Fatalf("start node %s: %v", name, err)
		}
		if err := n.writeConf(opts); err != nil {
			t.Fatalf("start node %s: %v", name, err)
		}
		err = n.pgctlStart()
		if err == nil {
			return n
		}
		if attempt == 5 || !isBindError(err) {
			t.Fatalf("start node %s: %v", name, err)
		}
	}
}

// chownTree gives a whole directory tree to the server user.
func (tc *toolchain) chownTree(root string) error {
	if tc.cred == nil {
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(tc.cred.Uid), int(tc.cred.Gid))
	})
}

// WriteFile writes a file into the node's data directory (e.g. backup_label, standby.signal),
// owned by the server user.
func (n *Node) WriteFile(rel string, data []byte) error {
	path := filepath.Join(n.DataDir, rel)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return n.tc.chown(path)
}

// Reconfigure rewrites the node's harness settings with opts (port and sockets kept); they take
// effect at the next Restart (or reload, for reloadable settings).
func (n *Node) Reconfigure(t testing.TB, opts Options) {
	t.Helper()
	if err := n.writeConf(opts); err != nil {
		t.Fatalf("reconfigure node %s: %v", n.Name, err)
	}
}
