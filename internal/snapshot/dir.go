package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// generatingName is the marker a generation writes first into the directory it created (the
// snapshot's id) and removes once the manifest is in place: a retried attempt recognizes its
// own directory by it, and nothing else is ever regenerated over.
const generatingName = "generating.id"

// Dir is an open snapshot directory: every file is created, read, renamed and removed
// relative to its handle, by a plain name, never following a symlink, so what the directory's
// path leads to later (a rename, a symlink swapped in) changes nothing. Safe for concurrent use.
type Dir struct {
	path string // as named, for messages
	f    *os.File
}

// Path is the directory's path as it was named.
func (d *Dir) Path() string { return d.path }

// Close releases the directory's handle.
func (d *Dir) Close() error { return d.f.Close() }

func (d *Dir) fd() int { return int(d.f.Fd()) }

// plainName refuses anything but one plain component (the manifest and marker included).
func plainName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("file name %q is not a plain name inside the snapshot directory", name)
	}
	return nil
}

// create makes file name, which must not exist, 0600, write-only.
func (d *Dir) create(name string) (*os.File, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	fd, err := openBeneath(d.fd(), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return nil, pathError("create snapshot file "+name, err)
	}
	return os.NewFile(uintptr(fd), d.path+"/"+name), nil
}

// replaceStale removes name when it is a regular file (left by an interrupted write of ours)
// so create can make it afresh; anything else there (a symlink, a directory) is refused.
func (d *Dir) replaceStale(name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return pathError("snapshot file "+name, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return refusedKind("snapshot file "+name, uint32(st.Mode))
	}
	if err := unix.Unlinkat(d.fd(), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return pathError("remove stale snapshot file "+name, err)
	}
	return nil
}

// open opens file name for reading: a regular file with no other hard link, reached without
// following a symlink.
func (d *Dir) open(name string) (*os.File, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	// O_NONBLOCK so a FIFO planted under the name cannot block the open; cleared below.
	fd, err := openBeneath(d.fd(), name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, pathError("snapshot file "+name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathError("snapshot file "+name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, refusedKind("snapshot file "+name, uint32(st.Mode))
	}
	if st.Nlink != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("snapshot file %s has other hard links: refused (copy a snapshot, do not link it)", name)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, pathError("snapshot file "+name, err)
	}
	return os.NewFile(uintptr(fd), d.path+"/"+name), nil
}

func refusedKind(what string, mode uint32) error {
	kind := "not a regular file"
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		kind = "a symbolic link"
	case unix.S_IFDIR:
		kind = "a directory"
	}
	return &fsError{msg: what + " is " + kind + ": refused (symlinks are never followed)", err: unix.EPERM}
}

// readSmall reads file name whole, refusing one longer than limit bytes.
func (d *Dir) readSmall(name string, limit int64) (string, error) {
	f, err := d.open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, unwrapErrno(err))
	}
	if int64(len(b)) > limit {
		return "", fmt.Errorf("%s is larger than %d bytes: refused", name, limit)
	}
	return string(b), nil
}

// writeSynced writes file name (which is made afresh) with b and syncs it.
func (d *Dir) writeSynced(name string, b []byte) error {
	if err := d.replaceStale(name); err != nil {
		return err
	}
	f, err := d.create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, unwrapErrno(err))
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", name, unwrapErrno(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, unwrapErrno(err))
	}
	return nil
}

// startGenerating marks a directory this generation just created: 0700 whatever the umask,
// and the marker holding the snapshot's id.
func (d *Dir) startGenerating(id string) error {
	if err := unix.Fchmod(d.fd(), 0o700); err != nil {
		return pathError("snapshot directory "+d.path, err)
	}
	if err := d.writeSynced(generatingName, []byte(id)); err != nil {
		return err
	}
	return d.sync()
}

// rename renames from to to inside the directory (replacing to's entry, never following it).
func (d *Dir) rename(from, to string) error {
	if err := unix.Renameat(d.fd(), from, d.fd(), to); err != nil {
		return pathError("rename "+from+" to "+to, err)
	}
	return nil
}

// remove unlinks name (ENOENT is not an error).
func (d *Dir) remove(name string) error {
	if err := unix.Unlinkat(d.fd(), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return pathError("remove snapshot file "+name, err)
	}
	return nil
}

func (d *Dir) sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync snapshot directory %s: %w", d.path, unwrapErrno(err))
	}
	return nil
}

// exists reports whether name is an entry of the directory (whatever it is).
func (d *Dir) exists(name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// entries lists the directory's names with whether each is a regular file (not followed).
func (d *Dir) entries() ([]string, map[string]bool, error) {
	fd, err := unix.Openat(d.fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, pathError("read snapshot directory "+d.path, err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("read snapshot directory %s: %w", d.path, unwrapErrno(err))
	}
	slices.Sort(names)
	regular := map[string]bool{}
	for _, n := range names {
		var st unix.Stat_t
		if unix.Fstatat(d.fd(), n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			regular[n] = true
		}
	}
	return names, regular, nil
}

// Clear readies a generation's own directory (from CreateDir) for a fresh start: it removes
// the files of an earlier attempt (not the marker). Any other entry makes it refuse: it never
// deletes what it did not write. It returns the names it removed.
func (d *Dir) Clear() ([]string, error) {
	names, regular, err := d.entries()
	if err != nil {
		return nil, err
	}
	var foreign []string
	for _, n := range names {
		var st unix.Stat_t
		switch {
		case !regular[n] && unix.Fstatat(d.fd(), n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
			foreign = append(foreign, n+" (a symbolic link)")
		case !regular[n] || !IsSnapshotFile(n):
			foreign = append(foreign, n)
		}
	}
	if len(foreign) > 0 {
		return nil, fmt.Errorf("snapshot directory %s holds entries that are not a snapshot's (%s): use a new directory",
			d.path, strings.Join(foreign, ", "))
	}
	var removed []string
	for _, n := range names {
		if n == generatingName {
			continue
		}
		if err := d.remove(n); err != nil {
			return removed, err
		}
		removed = append(removed, n)
	}
	return removed, d.sync()
}

// removeFiles deletes the snapshot's regular files (table files, partial files, the manifest,
// the marker), leaving anything else.
func (d *Dir) removeFiles() (int, error) {
	names, regular, err := d.entries()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if regular[name] && IsSnapshotFile(name) {
			if err := d.remove(name); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
