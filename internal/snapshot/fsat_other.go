//go:build unix && !linux

package snapshot

import "golang.org/x/sys/unix"

// openat2 is Linux's; elsewhere every path is opened component by component.
func openat2(int, string, int, uint32) (int, error) { return -1, unix.ENOSYS }
