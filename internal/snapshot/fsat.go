package snapshot

import (
	"errors"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 returned ENOSYS (a kernel before 5.6, or a sandbox that
// filters it); tests set it to exercise the fallback.
var noOpenat2 atomic.Bool

// openBeneath opens rel (a relative path of plain components) beneath the directory dirfd
// without following any symbolic link, in rel's components or at its end, and without
// leaving dirfd: openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or, where the kernel lacks
// it, one openat per component with O_NOFOLLOW. A symlink anywhere is ELOOP. The fd is
// close-on-exec; mode matters only with O_CREAT.
func openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return -1, unix.EINVAL
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return -1, unix.EINVAL
		}
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if flags&unix.O_CREAT == 0 {
		mode = 0
	}
	if !noOpenat2.Load() {
		fd, err := openat2(dirfd, rel, flags, mode)
		if !errors.Is(err, unix.ENOSYS) {
			return fd, err
		}
		noOpenat2.Store(true)
	}
	return openEachComponent(dirfd, parts, flags, mode)
}

// openEachComponent is openBeneath's fallback: every directory on the way is opened with
// O_NOFOLLOW|O_DIRECTORY relative to the one before, and the last with flags|O_NOFOLLOW.
func openEachComponent(dirfd int, parts []string, flags int, mode uint32) (int, error) {
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	for _, p := range parts[:len(parts)-1] {
		fd, err := unix.Openat(cur, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
	}
	return unix.Openat(cur, parts[len(parts)-1], flags, mode)
}

// pathError words an errno of a no-symlink resolution for an error message about what (the
// snapshot directory or one of its files): it says what was refused, never where a link
// pointed nor anything about a path outside the directory it was resolved in. The errno stays
// answers errors.Is.
func pathError(what string, err error) error {
	errno := unwrapErrno(err)
	var msg string
	switch {
	case errors.Is(errno, unix.ELOOP):
		msg = what + " is, or passes through, a symbolic link: refused (symlinks are never followed)"
	case errors.Is(errno, unix.EXDEV):
		msg = what + " leads out of the directory it must stay in: refused"
	case errors.Is(errno, unix.ENOENT):
		msg = what + " does not exist"
	case errors.Is(errno, unix.ENOTDIR):
		msg = what + " is not a directory"
	case errors.Is(errno, unix.EEXIST):
		msg = what + " already exists"
	case errors.Is(errno, unix.EACCES), errors.Is(errno, unix.EPERM):
		msg = what + ": permission denied"
	default:
		msg = what + ": " + errno.Error()
	}
	return &fsError{msg: msg, err: errno}
}

// openDirAt opens directory name (one component) of dirfd without following a symlink; what
// names it in errors ("snapshot directory /srv/snap/x").
func openDirAt(dirfd int, name, what string) (int, error) {
	fd, err := openBeneath(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		// O_DIRECTORY|O_NOFOLLOW on a symlink is ENOTDIR: say what the entry is (it is inside
		// the directory being walked, so this tells nothing about anything outside it).
		var st unix.Stat_t
		if errors.Is(err, unix.ENOTDIR) && !strings.Contains(name, "/") &&
			unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = unix.ELOOP
		}
		return -1, pathError(what, err)
	}
	return fd, nil
}

// fsError is a refusal or failure about a path, worded without the path's target. Its errno
// answers errors.Is but is not unwrapped: an Errno passes for a net.Error, and a refusal (a
// symlink, a directory that is not ours) is not a transient failure to retry.
type fsError struct {
	msg string
	err error
}

func (e *fsError) Error() string        { return e.msg }
func (e *fsError) Is(target error) bool { return errors.Is(e.err, target) }

// unwrapErrno keeps only the errno of a *PathError-like error, so no path leaks through it.
func unwrapErrno(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
