package discovery

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// maxMetadataBytes caps one per-container metadata file (an OCI config.json, Docker's
	// config.v2.json, a pid file).
	maxMetadataBytes = 4 << 20
	// maxListBytes caps a runtime's list of all its containers (containers.json).
	maxListBytes = 64 << 20
	// maxDirEntries caps how many entries of one metadata directory are read.
	maxDirEntries = 100000
	// maxSymlinks bounds symbolic links followed while resolving a configured root.
	maxSymlinks = 40
)

// errSymlink says a metadata path contained a symbolic link, which discovery refuses to follow.
var errSymlink = errors.New("symbolic link in metadata path")

// hostFS reads the host's files through HostRoot.
//
// Runtime roots (which may legitimately be symbolic links, /var/lib/docker -> /data/docker)
// are resolved once by canonical, with links interpreted inside HostRoot. Every read below a
// root then walks the canonical path one component at a time with O_NOFOLLOW from a directory
// descriptor, so a link planted anywhere in a metadata tree yields an error, never a read of
// another file; the final file must be a regular file no larger than a cap.
type hostFS struct {
	root string // HostRoot; "" and "/" both mean this process's /
}

// path is the path this process uses for the host path p.
func (h hostFS) path(p string) string {
	if h.root == "" || h.root == "/" {
		return filepath.Clean("/" + p)
	}
	return filepath.Join(h.root, p)
}

// components splits a host path into its names, refusing relative paths.
func components(p string) ([]string, error) {
	if !filepath.IsAbs(p) {
		return nil, fmt.Errorf("host path %q is not absolute", p)
	}
	p = filepath.Clean(p)
	if p == "/" {
		return nil, nil
	}
	return strings.Split(p[1:], "/"), nil
}

// open opens the host path p with flags without following a symbolic link in any component.
func (h hostFS) open(p string, flags int) (*os.File, error) {
	names, err := components(p)
	if err != nil {
		return nil, err
	}
	base := h.root
	if base == "" {
		base = "/"
	}
	dirfd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: base, Err: err}
	}
	for i, name := range names {
		last := i == len(names)-1
		fl := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			fl = flags | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
		}
		fd, err := unix.Openat(dirfd, name, fl, 0)
		if err != nil {
			unix.Close(dirfd)
			sub := "/" + strings.Join(names[:i+1], "/")
			if err == unix.ELOOP || (err == unix.ENOTDIR && h.isSymlink(sub)) {
				return nil, &fs.PathError{Op: "open", Path: sub, Err: errSymlink}
			}
			return nil, &fs.PathError{Op: "open", Path: sub, Err: err}
		}
		unix.Close(dirfd)
		dirfd = fd
	}
	if len(names) == 0 {
		// The host root itself: reopen with the requested flags.
		fd, err := unix.Open(base, flags|unix.O_CLOEXEC, 0)
		unix.Close(dirfd)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: base, Err: err}
		}
		dirfd = fd
	}
	return os.NewFile(uintptr(dirfd), h.path(p)), nil
}

func (h hostFS) isSymlink(p string) bool {
	fi, err := os.Lstat(h.path(p))
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// stat returns the metadata of the host path p without following links (a link yields
// errSymlink).
func (h hostFS) stat(p string) (*unix.Stat_t, error) {
	f, err := h.open(p, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: errSymlink}
	}
	return &st, nil
}

// isDir says whether the host path p is a directory (reached without links).
func (h hostFS) isDir(p string) bool {
	st, err := h.stat(p)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// readFile reads the regular file at host path p, failing if it is larger than max bytes.
func (h hostFS) readFile(p string, max int64) ([]byte, error) {
	f, err := h.open(p, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("not a regular file (mode %#o)", st.Mode&unix.S_IFMT)}
	}
	if st.Size > max {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("file of %d bytes exceeds the %d-byte limit", st.Size, max)}
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	if int64(len(b)) > max {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("file exceeds the %d-byte limit", max)}
	}
	return b, nil
}

// readDir lists the names in the directory at host path p (reached without links), sorted.
func (h hostFS) readDir(p string) ([]fs.DirEntry, error) {
	f, err := h.open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(maxDirEntries + 1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(ents) > maxDirEntries {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: fmt.Errorf("more than %d entries", maxDirEntries)}
	}
	return ents, nil
}

// canonical resolves the host path p the way the host would, but with every symbolic link
// interpreted inside HostRoot (an absolute target restarts at HostRoot, ".." stops there). It
// is used for configured runtime roots only; the result names the same directory that the
// host's own paths (in the mount table) use.
func (h hostFS) canonical(p string) (string, error) {
	rest, err := components(p)
	if err != nil {
		return "", err
	}
	var done []string
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := "/" + strings.Join(append(done[:len(done):len(done)], name), "/")
		fi, err := os.Lstat(h.path(cur))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, name)
			continue
		}
		links++
		if links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		target, err := os.Readlink(h.path(cur))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return "/" + strings.Join(done, "/"), nil
}

// safeName says whether s can be used as one path component taken from metadata.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 255 && !strings.ContainsAny(s, "/\x00")
}
