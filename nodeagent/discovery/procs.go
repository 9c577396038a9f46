package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const maxProcFile = 1 << 20

// readProcFile reads a small /proc file.
func readProcFile(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, max)
	}
	return b, nil
}

// procIndex maps names found in processes' cgroup paths to the PIDs in those cgroups.
type procIndex struct {
	byKey map[string][]int
}

// index builds the process index once, from HostProc/*/cgroup.
func (d *discoverer) index() *procIndex {
	if d.procs != nil {
		return d.procs
	}
	d.procs = &procIndex{byKey: map[string][]int{}}
	ents, err := os.ReadDir(d.opts.HostProc)
	if err != nil {
		d.fail("", "", d.opts.HostProc, fmt.Errorf("listing processes: %w", err))
		return d.procs
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		b, err := readProcFile(filepath.Join(d.opts.HostProc, e.Name(), "cgroup"), 64<<10)
		if err != nil {
			continue // exited, or a kernel thread we cannot read
		}
		for _, k := range cgroupKeys(b) {
			d.procs.byKey[k] = append(d.procs.byKey[k], pid)
		}
	}
	return d.procs
}

// cgroupKeys returns the names under which a process's cgroup file (v1 "N:controllers:/path"
// and v2 "0::/path" lines) can be found: each path component, without a ".scope" suffix,
// the part after its last '-' or ':' (cri-containerd-<id>.scope, docker-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope, cri-containerd:<id>), and every run of 64 hex digits.
// Components naming a conmon monitor (crio-conmon-<id>, libpod-conmon-<id>) are skipped: the
// monitor is not one of the container's processes.
func cgroupKeys(b []byte) []string {
	var keys []string
	add := func(k string) {
		if k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, comp := range strings.Split(parts[2], "/") {
			if comp == "" || comp == ".." || strings.Contains(comp, "conmon") {
				continue
			}
			add(comp)
			t := strings.TrimSuffix(comp, ".scope")
			add(t)
			if i := strings.LastIndexAny(t, "-:"); i >= 0 {
				add(t[i+1:])
			}
			for _, h := range hexRuns(comp, 64) {
				add(h)
			}
		}
	}
	return keys
}

// hexRuns returns the maximal runs of lowercase hex digits of exactly n characters.
func hexRuns(s string, n int) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		hex := i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f')
		if hex && start < 0 {
			start = i
		}
		if !hex && start >= 0 {
			if i-start == n {
				out = append(out, s[start:i])
			}
			start = -1
		}
	}
	return out
}

// cgroupNames says whether the process's cgroup names the container ID.
func (d *discoverer) cgroupNames(pid int, id string) bool {
	return slices.Contains(d.index().byKey[id], pid)
}

// processRoot returns the mount that is the process's "/" (the last one stacked there).
func (d *discoverer) processRoot(pid int) (Mount, error) {
	return ProcessRoot(d.opts.HostProc, pid)
}

// ProcessRoot returns the mount that is process pid's root directory, from
// hostProc/<pid>/mountinfo (the topmost mount at "/").
func ProcessRoot(hostProc string, pid int) (Mount, error) {
	p := filepath.Join(hostProc, strconv.Itoa(pid), "mountinfo")
	b, err := readProcFile(p, 64<<20)
	if err != nil {
		return Mount{}, err
	}
	ms, _ := ParseMountInfo(bytes.NewReader(b))
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].MountPoint == "/" {
			return ms[i], nil
		}
	}
	return Mount{}, fmt.Errorf("%s: no mount at /", p)
}

// rootMatches says whether a process's root mount is the container's writable layer: an
// overlay with the container's upperdir (a relative upperdir, as Docker and
// containers/storage pass for long options, must name the same <id>/diff), and the same
// device as the container's mount when that is known.
func rootMatches(root Mount, c *Container) bool {
	dirs, ok := root.Overlay()
	if !ok || dirs.UpperDir == "" {
		return false
	}
	if c.MountDevice != "" && root.Device() != c.MountDevice {
		return false
	}
	up := dirs.UpperDir
	if filepath.IsAbs(up) {
		return filepath.Clean(up) == c.UpperDir
	}
	return strings.HasSuffix(c.UpperDir, "/"+filepath.Clean(up))
}

// attachProcesses finds the container's processes (the runtime's recorded PID and every
// process whose cgroup names the container) and keeps those whose root is the container's
// overlay. A container with no mount in the host table but such a process is running too.
func (d *discoverer) attachProcesses(cand *candidate) {
	c := &cand.c
	if cand.mount != nil {
		c.Running = true
		c.MergedDir = cand.mount.MountPoint
		c.MountDevice = cand.mount.Device()
	}
	if c.UpperDir == "" {
		return
	}
	var pids []int
	if cand.mount != nil || cand.pidHint != 0 {
		pids = append(pids, d.index().byKey[c.ID]...)
	}
	if cand.pidHint != 0 && !slices.Contains(pids, cand.pidHint) {
		if cand.mount == nil {
			// Without a mount, a stale pid file could name a reused PID: require the cgroup.
			return
		}
		pids = append(pids, cand.pidHint)
	}
	slices.Sort(pids)
	for _, pid := range slices.Compact(pids) {
		root, err := d.processRoot(pid)
		if err != nil || !rootMatches(root, c) {
			continue
		}
		if !c.Running {
			c.Running = true
			c.MountDevice = root.Device()
		}
		c.PIDs = append(c.PIDs, pid)
	}
}

// DeletedOpenBytes returns the disk space held by files that the given processes deleted but
// keep open: invisible to any walk of the upper directory, freed only when closed.
//
// It walks hostProc/<pid>/fd of each process and counts, once per inode, the allocated
// blocks (st_blocks*512) of regular files whose link target ends in " (deleted)", whose link
// count is 0, that live on the process's root overlay (st_dev equal to the device of the "/"
// mount in its mountinfo: files seen through overlayfs carry the overlay's own anonymous
// device, not the upper filesystem's, so this keeps out volumes, tmpfs and the host's files)
// and that the process holds open for writing. A descriptor opened only for reading is left
// out: a lower-layer file deleted in the container also shows as a deleted overlay file with
// a link count of 0, yet its blocks belong to the image and are freed by nothing, and through
// /proc the two cannot be told apart; an upper file is held for writing by whoever is still
// filling it. The figure is therefore a lower bound.
//
// Processes that exit during the walk are skipped; other errors are returned with the sum of
// what could be counted.
func DeletedOpenBytes(hostProc string, pids []int) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	var errs []error
	for _, pid := range pids {
		root, err := ProcessRoot(hostProc, pid)
		if err != nil {
			if !gone(err) {
				errs = append(errs, err)
			}
			continue
		}
		rootDev := unix.Mkdev(root.Major, root.Minor)
		fdDir := filepath.Join(hostProc, strconv.Itoa(pid), "fd")
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			if !gone(err) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range ents {
			link := filepath.Join(fdDir, e.Name())
			target, err := os.Readlink(link)
			if err != nil || !strings.HasSuffix(target, " (deleted)") {
				continue
			}
			// os.Stat follows the kernel's magic link to the open inode itself, even unlinked.
			fi, err := os.Stat(link)
			if err != nil {
				continue
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || st.Nlink != 0 || !fi.Mode().IsRegular() || uint64(st.Dev) != rootDev {
				continue
			}
			if !openForWriting(filepath.Join(hostProc, strconv.Itoa(pid), "fdinfo", e.Name())) {
				continue
			}
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				continue
			}
			seen[k] = true
			total += st.Blocks * 512
		}
	}
	return total, errors.Join(errs...)
}

// openForWriting reads the access mode from a /proc/<pid>/fdinfo/<fd> "flags:" line (octal).
func openForWriting(fdinfo string) bool {
	b, err := readProcFile(fdinfo, 64<<10)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "flags:")
		if !ok {
			continue
		}
		fl, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
		if err != nil {
			return false
		}
		acc := fl & unix.O_ACCMODE
		return acc == unix.O_WRONLY || acc == unix.O_RDWR
	}
	return false
}

// gone says whether an error means the process has exited.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
}
