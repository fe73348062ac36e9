package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is the directory every snapshot directory must be beneath: the sidecar's
// --snapshot-root, opened once, so that every path below it is resolved from that handle
// without following a symbolic link.
//
// A nil or zero Root is "no root": any absolute directory is accepted (the extension lets only
// a superuser name one then), its parent is opened as named, and from the snapshot directory
// down everything is still resolved without symlinks.
type Root struct {
	path string
	f    *os.File
}

// OpenRoot opens path as the snapshot root; "" gives the zero Root (no root).
func OpenRoot(path string) (*Root, error) {
	if path == "" {
		return &Root{}, nil
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("snapshot root %q is not an absolute path", path)
	}
	clean := filepath.Clean(path)
	f, err := os.OpenFile(clean, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open snapshot root: %w", err)
	}
	return &Root{path: clean, f: f}, nil
}

// Path is the root's path ("" when there is none).
func (r *Root) Path() string {
	if r == nil {
		return ""
	}
	return r.path
}

// Close releases the root's handle.
func (r *Root) Close() error {
	if r == nil || r.f == nil {
		return nil
	}
	return r.f.Close()
}

// Beneath checks, without touching the file system, that dir names a directory strictly
// beneath root ("" for no root: any directory but "/") — absolute, clean, no "." or ".."
// component — and returns dir relative to root (to "/" without one).
func Beneath(root, dir string) (string, error) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" || strings.ContainsRune(dir, 0) {
		return "", fmt.Errorf("snapshot directory %q is not a clean absolute path below /", dir)
	}
	switch {
	case root == "":
		return dir[1:], nil
	case root == "/":
		return dir[1:], nil
	case strings.HasPrefix(dir, root+"/"):
		return dir[len(root)+1:], nil
	}
	return "", fmt.Errorf("snapshot directory %s is not beneath the sidecar's snapshot root %s (steep-repl run --snapshot-root): refused", dir, root)
}

// parent opens the directory that holds dir and returns it with dir's last component. Under
// a root every directory on the way is opened from the root's handle without following a
// symlink (and, with create, made 0700 when missing); without a root the parent is opened as
// named (with create, made with its missing parents, 0700).
func (r *Root) parent(dir string, create bool) (*os.File, string, error) {
	rel, err := Beneath(r.Path(), dir)
	if err != nil {
		return nil, "", err
	}
	if r.Path() == "" {
		p := filepath.Dir(dir)
		if create {
			if err := os.MkdirAll(p, 0o700); err != nil {
				return nil, "", pathError("create the parent of snapshot directory "+dir, err)
			}
		}
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, "", pathError("the parent of snapshot directory "+dir, err)
		}
		return f, filepath.Base(dir), nil
	}
	parts := strings.Split(rel, "/")
	cur, err := unix.Openat(int(r.f.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open snapshot root: %w", err)
	}
	walked := r.path
	for _, p := range parts[:len(parts)-1] {
		walked = filepath.Join(walked, p)
		if create {
			if err := unix.Mkdirat(cur, p, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(cur)
				return nil, "", pathError("create directory "+walked, err)
			}
		}
		next, err := openDirAt(cur, p, "directory "+walked)
		unix.Close(cur)
		if err != nil {
			return nil, "", err
		}
		cur = next
	}
	return os.NewFile(uintptr(cur), filepath.Dir(dir)), parts[len(parts)-1], nil
}

// CreateDir makes dir (0700, its missing parents too) for the generation of snapshot id and
// returns it open. A directory that exists already is refused unless it is this snapshot's
// own from an earlier attempt: owned by this process's user, closed to others, holding the
// generating marker with id (Dir.Clear then removes what that attempt wrote, when the
// generation starts afresh). Another snapshot's directory is never touched.
func (r *Root) CreateDir(dir, id string) (*Dir, error) {
	parent, base, err := r.parent(dir, true)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	pfd := int(parent.Fd())
	err = unix.Mkdirat(pfd, base, 0o700)
	fresh := err == nil
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, pathError("create snapshot directory "+dir, err)
	}
	fd, err := openDirAt(pfd, base, "snapshot directory "+dir)
	if err != nil {
		return nil, err
	}
	d := &Dir{path: dir, f: os.NewFile(uintptr(fd), dir)}
	var st unix.Stat_t
	if err := unix.Fstat(d.fd(), &st); err != nil {
		d.Close()
		return nil, fmt.Errorf("snapshot directory %s: %w", dir, unwrapErrno(err))
	}
	if st.Uid != uint32(os.Geteuid()) {
		d.Close()
		return nil, fmt.Errorf("snapshot directory %s already exists and was not created by this sidecar: generate into a directory that does not exist yet", dir)
	}
	if fresh {
		if err := d.startGenerating(id); err != nil {
			d.Close()
			return nil, err
		}
		if err := parent.Sync(); err != nil {
			d.Close()
			return nil, fmt.Errorf("sync the parent of snapshot directory %s: %w", dir, unwrapErrno(err))
		}
		return d, nil
	}
	if owner, err := d.readSmall(generatingName, 256); err != nil || owner != id || st.Mode&0o077 != 0 {
		another := d.exists(ManifestName)
		d.Close()
		if another {
			return nil, fmt.Errorf("snapshot directory %s holds another snapshot (its %s): a snapshot is never overwritten; generate into a new directory", dir, ManifestName)
		}
		return nil, fmt.Errorf("snapshot directory %s already exists and was not created by this snapshot's generation: generate into a directory that does not exist yet", dir)
	}
	return d, nil
}

// OpenDir opens the existing snapshot directory dir (for apply and delete), without following
// a symlink from the root (or, without a root, from dir's parent) down.
func (r *Root) OpenDir(dir string) (*Dir, error) {
	parent, base, err := r.parent(dir, false)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := openDirAt(int(parent.Fd()), base, "snapshot directory "+dir)
	if err != nil {
		return nil, err
	}
	return &Dir{path: dir, f: os.NewFile(uintptr(fd), dir)}, nil
}

// RemoveDir deletes a snapshot's files (table files, partial files, the manifest, the
// generating marker) from dir, leaving anything else, and dir itself when it ends up empty.
// A directory that is already gone counts as removed.
func (r *Root) RemoveDir(dir string) (int, error) {
	parent, base, err := r.parent(dir, false)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer parent.Close()
	fd, err := openDirAt(int(parent.Fd()), base, "snapshot directory "+dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d := &Dir{path: dir, f: os.NewFile(uintptr(fd), dir)}
	n, err := d.removeFiles()
	d.Close()
	if err != nil {
		return n, err
	}
	_ = unix.Unlinkat(int(parent.Fd()), base, unix.AT_REMOVEDIR) // only succeeds when empty
	return n, nil
}
