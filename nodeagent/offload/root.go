package offload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Resolution rules for every path opened inside a container: "/" is the container's root, no
// symlink (nor /proc magic link) is followed, and no mount point is crossed, so nothing
// outside the container's writable-layer filesystem (a volume, the host) can be reached.
const (
	resolveInRoot  = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV
	resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV
	// maxDepth bounds the directory depth walked under a hot path.
	maxDepth = 128
)

// ErrNotInLayer says a hot path is not on the container's root filesystem: a volume (or
// another mount) is mounted there, so its files do not fill the writable layer.
var ErrNotInLayer = errors.New("not on the container's root filesystem (a volume is mounted there)")

// Root is a container's root filesystem, reached through /proc/<pid>/root of one of its
// processes. Every path is resolved inside it; nothing is written into an upper directory
// behind overlayfs's back.
type Root struct {
	fd  int
	dev uint64
}

// OpenRoot opens /proc/<pid>/root under hostProc. When wantDev is not zero, the root must be
// on that device (the container's overlay mount), so a process that changed its root (or a
// reused PID) is refused.
func OpenRoot(hostProc string, pid int, wantDev uint64) (*Root, error) {
	p := path.Join(hostProc, strconv.Itoa(pid), "root")
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the root of process %d: %w", pid, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat of the root of process %d: %w", pid, err)
	}
	if wantDev != 0 && st.Dev != wantDev {
		unix.Close(fd)
		return nil, fmt.Errorf("the root of process %d is on device %d:%d, not the container's overlay %d:%d",
			pid, unix.Major(st.Dev), unix.Minor(st.Dev), unix.Major(wantDev), unix.Minor(wantDev))
	}
	return &Root{fd: fd, dev: st.Dev}, nil
}

// Close releases the root.
func (r *Root) Close() error { return unix.Close(r.fd) }

// File is a regular file found under a hot path.
type File struct {
	// Path is the file's path as the container sees it ("/opt/airflow/logs/a.log").
	Path string
	// Rel is the path relative to the hot path ("a.log").
	Rel string
	// Stat is its lstat when listed.
	Stat unix.Stat_t
}

// WalkStats counts what a walk left out.
type WalkStats struct {
	// Special counts entries that are neither regular files nor directories (symlinks,
	// FIFOs, sockets, devices): never shipped.
	Special int64
	// Mounts counts directories on another filesystem (volumes): not walked.
	Mounts int64
	// Errors are the directories that could not be read.
	Errors []error
}

func inRoot(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

func openat2(dirfd int, p string, flags uint64, resolve uint64) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, p, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.EXDEV {
			return -1, ErrNotInLayer
		}
		return fd, err
	}
}

// Walk calls fn for every regular file under hotPath, depth first, in directory order. It
// does not follow symlinks, does not cross mounts and stops at maxDepth; fn returning
// errStop ends the walk early without error. A hot path that does not exist has no files.
func (r *Root) Walk(hotPath string, fn func(File) error) (WalkStats, error) {
	var ws WalkStats
	fd, err := openat2(r.fd, inRoot(hotPath), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, resolveInRoot)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return ws, nil
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return ws, fmt.Errorf("hot path %s is not a directory in the container (a symlink or a file)", hotPath)
		}
		return ws, fmt.Errorf("hot path %s: %w", hotPath, err)
	}
	err = r.walkDir(fd, path.Clean(hotPath), "", 0, &ws, fn)
	if errors.Is(err, errStop) {
		err = nil
	}
	return ws, err
}

var errStop = errors.New("stop walking")

func (r *Root) walkDir(fd int, dir, rel string, depth int, ws *WalkStats, fn func(File) error) error {
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	for {
		entries, err := f.ReadDir(512)
		for _, e := range entries {
			name := e.Name()
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if !errors.Is(err, unix.ENOENT) {
					ws.Errors = append(ws.Errors, fmt.Errorf("%s: %w", path.Join(dir, name), err))
				}
				continue
			}
			childRel := name
			if rel != "" {
				childRel = rel + "/" + name
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				if st.Dev != r.dev {
					ws.Mounts++
					continue
				}
				if err := fn(File{Path: path.Join(dir, name), Rel: childRel, Stat: st}); err != nil {
					return err
				}
			case unix.S_IFDIR:
				if depth+1 >= maxDepth {
					ws.Errors = append(ws.Errors, fmt.Errorf("%s: deeper than %d directories, not walked", path.Join(dir, name), maxDepth))
					continue
				}
				cfd, err := openat2(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, resolveBeneath)
				if err != nil {
					if errors.Is(err, ErrNotInLayer) {
						ws.Mounts++
					} else if !errors.Is(err, unix.ENOENT) {
						ws.Errors = append(ws.Errors, fmt.Errorf("%s: %w", path.Join(dir, name), err))
					}
					continue
				}
				if err := r.walkDir(cfd, path.Join(dir, name), childRel, depth+1, ws, fn); err != nil {
					return err
				}
			default:
				ws.Special++
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			ws.Errors = append(ws.Errors, fmt.Errorf("reading %s: %w", dir, err))
			return nil
		}
		if len(entries) == 0 {
			return nil
		}
	}
}

// Open opens a regular file read-only. It first takes an O_PATH handle (which has no side
// effect whatever the file is), checks that it is a regular file on the container's
// filesystem, and only then opens that very inode for reading, so a FIFO or device swapped in
// at the last moment is never opened.
func (r *Root) Open(p string) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	pfd, err := openat2(r.fd, inRoot(p), unix.O_PATH|unix.O_NOFOLLOW, resolveInRoot)
	if err != nil {
		return nil, st, err
	}
	defer unix.Close(pfd)
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, st, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, st, fmt.Errorf("%s is not a regular file", p)
	}
	if st.Dev != r.dev {
		return nil, st, ErrNotInLayer
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, st, fmt.Errorf("reopening %s: %w", p, err)
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil || st2.Ino != st.Ino || st2.Dev != st.Dev {
		unix.Close(fd)
		return nil, st, fmt.Errorf("%s changed while being opened", p)
	}
	return os.NewFile(uintptr(fd), p), st2, nil
}

// Remove deletes p if it is still the file described by st: same inode, size and
// modification time. Anything else (replaced, grown, touched) is kept.
func (r *Root) Remove(p string, st unix.Stat_t) error {
	dir, base := path.Split(path.Clean("/" + p))
	dfd, err := openat2(r.fd, inRoot(dir), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, resolveInRoot)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	var now unix.Stat_t
	if err := unix.Fstatat(dfd, base, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Size != st.Size || now.Mtim != st.Mtim {
		return errChanged
	}
	return unix.Unlinkat(dfd, base, 0)
}

var errChanged = errors.New("changed since it was read")
