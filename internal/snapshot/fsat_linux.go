package snapshot

import "golang.org/x/sys/unix"

func openat2(dirfd int, rel string, flags int, mode uint32) (int, error) {
	how := &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(dirfd, rel, how)
		// EAGAIN: a rename raced with the lookup (openat2(2) says retry); a few times, not forever.
		if (err != unix.EINTR && err != unix.EAGAIN) || tries == 16 {
			return fd, err
		}
	}
}
