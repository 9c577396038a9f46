package discovery

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// FS is a node filesystem that holds writable layers, as statfs reports it.
type FS struct {
	// Path is the filesystem's mount point on the host (without HostRoot).
	Path string
	// Device is its "major:minor".
	Device string
	// CapacityBytes is its size (f_blocks*f_bsize), AvailableBytes what unprivileged users
	// may still write (f_bavail*f_bsize).
	CapacityBytes, AvailableBytes int64
	// Inodes and InodesFree are 0 on filesystems without a fixed inode table (btrfs).
	Inodes, InodesFree int64
	// Containers is how many of the given containers have their upper directory on it.
	Containers int
}

// Filesystems returns the filesystems holding the containers' upper directories, each once,
// ordered by path. Containers whose upper directory cannot be reached are left out; see
// StatFilesystems for the errors.
func Filesystems(containers []Container) []FS {
	fss, _ := StatFilesystems(containers)
	return fss
}

// StatFilesystems is Filesystems with an error for each upper directory that could not be
// examined.
func StatFilesystems(containers []Container) ([]FS, []error) {
	byDev := map[uint64]*FS{}
	var errs []error
	for _, c := range containers {
		if c.UpperDir == "" {
			continue
		}
		p := c.UpperDirPath()
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			// ENOENT: the container was removed since it was measured; its filesystem is
			// another container's or nobody's. (A layer that was never reachable fails its
			// scan, which reports it.)
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, &Error{Runtime: c.Runtime, ID: c.ID, Path: c.UpperDir, Err: err})
			}
			continue
		}
		dev := uint64(st.Dev)
		if fs := byDev[dev]; fs != nil {
			fs.Containers++
			continue
		}
		var sf unix.Statfs_t
		if err := unix.Statfs(p, &sf); err != nil {
			errs = append(errs, &Error{Runtime: c.Runtime, ID: c.ID, Path: c.UpperDir, Err: fmt.Errorf("statfs: %w", err)})
			continue
		}
		bs := int64(sf.Bsize)
		byDev[dev] = &FS{
			Path:           mountPointOf(c.HostRoot, c.UpperDir, dev),
			Device:         fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)),
			CapacityBytes:  int64(sf.Blocks) * bs,
			AvailableBytes: int64(sf.Bavail) * bs,
			Inodes:         int64(sf.Files),
			InodesFree:     int64(sf.Ffree),
			Containers:     1,
		}
	}
	out := make([]FS, 0, len(byDev))
	for _, fs := range byDev {
		out = append(out, *fs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, errs
}

// mountPointOf walks up from the host path p while the device stays dev, stopping at the host
// root, and returns the topmost directory on that device: the filesystem's mount point (or
// "/").
func mountPointOf(hostRoot, p string, dev uint64) string {
	h := hostFS{root: hostRoot}
	cur := filepath.Clean(p)
	for cur != "/" {
		parent := filepath.Dir(cur)
		var st unix.Stat_t
		if unix.Lstat(h.path(parent), &st) != nil || uint64(st.Dev) != dev {
			break
		}
		cur = parent
	}
	if !strings.HasPrefix(cur, "/") {
		return "/"
	}
	return cur
}
