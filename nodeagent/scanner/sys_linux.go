//go:build linux

package scanner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// statxMask asks only for what the scan uses; STATX_MNT_ID is added for directories.
const statxMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK | unix.STATX_INO |
	unix.STATX_SIZE | unix.STATX_BLOCKS | unix.STATX_MTIME | unix.STATX_CTIME

// statxFlags never follows a symlink nor triggers an automount.
const statxFlags = unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT

// dirOpenFlags opens a directory and nothing else: O_DIRECTORY fails with ENOTDIR before a
// FIFO or device is opened, O_NOFOLLOW refuses a symlink, O_NONBLOCK is belt and braces.
const dirOpenFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK

// dirResolve keeps a path lookup below its starting directory, on its mount, with no symlink.
const dirResolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS

// maxChunk is the longest path handed to one openat2 call (PATH_MAX is 4096).
const maxChunk = 3072

var emptyPath = [1]byte{0}

// statxAt stats the NUL-terminated name at *name relative to dirfd. name points into memory
// the caller keeps alive (the getdents buffer), which avoids a copy and an allocation per file;
// nil is only valid with AT_EMPTY_PATH.
func statxAt(dirfd int, name *byte, flags, mask int, stx *unix.Statx_t) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
			uintptr(flags), uintptr(mask), uintptr(unsafe.Pointer(stx)), 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return e
		}
	}
}

// nullPathUnsupported is set once the kernel refused statx(fd, NULL, AT_EMPTY_PATH), which
// Linux accepts since 6.11 and serves without a path lookup.
var nullPathUnsupported atomic.Bool

// statxFd stats an open descriptor.
func statxFd(fd int, stx *unix.Statx_t) error {
	const flags, mask = statxFlags | unix.AT_EMPTY_PATH, statxMask | unix.STATX_MNT_ID
	if !nullPathUnsupported.Load() {
		err := statxAt(fd, nil, flags, mask, stx)
		if !errors.Is(err, unix.EFAULT) && !errors.Is(err, unix.EINVAL) {
			return err
		}
		nullPathUnsupported.Store(true)
	}
	return statxAt(fd, &emptyPath[0], flags, mask, stx)
}

// openDirAt opens the directory name below dirfd. With useOpenat2 name may be a relative
// path of several components: openat2 keeps the lookup below dirfd, on its mount and free of
// symlinks. Without it name must be one component (getdents names never contain '/'):
// O_NOFOLLOW then refuses a symlink and the caller checks the opened directory's mount,
// which is cheaper than openat2 per directory.
func openDirAt(dirfd int, name string, useOpenat2 bool) (int, error) {
	for attempt := 0; ; attempt++ {
		var fd int
		var err error
		if useOpenat2 {
			fd, err = unix.Openat2(dirfd, name, &unix.OpenHow{Flags: dirOpenFlags, Resolve: dirResolve})
		} else {
			fd, err = unix.Openat(dirfd, name, dirOpenFlags, 0)
		}
		// openat2 returns EAGAIN when a concurrent rename or mount may have raced the lookup.
		if (errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN)) && attempt < 16 {
			continue
		}
		return fd, err
	}
}

// openDirZ opens the one-component, NUL-terminated name below dirfd like
// openDirAt(dirfd, name, false), without copying the name.
func openDirZ(dirfd int, nameZ string) (int, error) {
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(unsafe.StringData(nameZ))),
			uintptr(dirOpenFlags), 0, 0, 0)
		switch e {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		default:
			return -1, e
		}
	}
}

func getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n, err
	}
}

// direntIter walks the linux_dirent64 records of a getdents buffer.
type direntIter struct {
	buf []byte
	off int
}

// next returns the next entry's inode number and type, its name without the NUL and the
// offset of the name in buf (NUL-terminated there). ok is false at the end of the buffer or
// on a malformed record.
func (d *direntIter) next() (ino uint64, typ byte, name []byte, nameOff int, ok bool) {
	const hdr = 19 // d_ino(8) d_off(8) d_reclen(2) d_type(1)
	for d.off+hdr <= len(d.buf) {
		rec := d.buf[d.off:]
		reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
		if reclen < hdr || reclen > len(rec) {
			d.off = len(d.buf)
			return 0, 0, nil, 0, false
		}
		nameOff = d.off + hdr
		d.off += reclen
		raw := rec[hdr:reclen]
		end := bytes.IndexByte(raw, 0)
		if end <= 0 {
			continue // no name or no terminator: skip the record
		}
		name = raw[:end]
		if (end == 1 && name[0] == '.') || (end == 2 && name[0] == '.' && name[1] == '.') {
			continue
		}
		return binary.NativeEndian.Uint64(rec[0:8]), rec[18], name, nameOff, true
	}
	return 0, 0, nil, 0, false
}

// opaqueXattrs are the xattrs overlayfs uses to mark an opaque directory.
var opaqueXattrs = [...]string{"trusted.overlay.opaque", "user.overlay.opaque"}

// isOpaque reports whether an overlay opaque xattr of the directory fd is "y". It lists the
// xattrs first (one syscall, usually empty) and reads a value only when a marker is listed.
func isOpaque(fd int, buf []byte) (bool, error) {
	n, err := unix.Flistxattr(fd, buf)
	if errors.Is(err, unix.ERANGE) {
		size, serr := unix.Flistxattr(fd, nil)
		if serr != nil {
			return false, serr
		}
		if size > 1<<16 {
			return false, errors.New("xattr list larger than 64 KiB")
		}
		buf = make([]byte, size)
		n, err = unix.Flistxattr(fd, buf)
	}
	switch {
	case errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENODATA):
		return false, nil
	case err != nil:
		return false, err
	}
	list := buf[:n]
	for _, x := range opaqueXattrs {
		if !containsName(list, x) {
			continue
		}
		var v [2]byte
		m, err := unix.Fgetxattr(fd, x, v[:])
		if err == nil && m == 1 && v[0] == 'y' {
			return true, nil
		}
	}
	return false, nil
}

func containsName(list []byte, name string) bool {
	for len(list) > 0 {
		i := bytes.IndexByte(list, 0)
		if i < 0 {
			i = len(list)
		}
		if string(list[:i]) == name {
			return true
		}
		list = list[min(i+1, len(list)):]
	}
	return false
}

// processCPU returns the user and system CPU time used by the whole process.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func statxNanos(t unix.StatxTimestamp) int64 {
	return t.Sec*int64(time.Second) + int64(t.Nsec)
}
