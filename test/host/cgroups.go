package host

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupDirs returns the cgroup path rel ("/layerkeeper-x/kubepods") in every mounted cgroup
// hierarchy (v1 controllers, named v1 hierarchies and the v2 unified one), whether or not it
// exists.
func CgroupDirs(rel string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i := 6; i+1 < len(fields); i++ {
			if fields[i] != "-" {
				continue
			}
			if fields[i+1] == "cgroup" || fields[i+1] == "cgroup2" {
				d := filepath.Join(UnescapeMountinfo(fields[4]), rel)
				if !slices.Contains(out, d) {
					out = append(out, d)
				}
			}
			break
		}
	}
	return out
}

// CreateCgroup creates rel in every hierarchy. In a v1 cpuset hierarchy it copies the
// parent's cpuset.cpus and cpuset.mems, without which no task could join it.
func CreateCgroup(rel string) error {
	for _, d := range CgroupDirs(rel) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := os.ReadFile(filepath.Join(d, f))
			if err != nil || strings.TrimSpace(string(cur)) != "" {
				continue // not a v1 cpuset hierarchy, or already set
			}
			parent, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(d, f), parent, 0o644); err != nil {
				return fmt.Errorf("%s/%s: %w", d, f, err)
			}
		}
	}
	return nil
}

// CgroupPIDs returns the PIDs of every process in rel or below it, in any hierarchy.
func CgroupPIDs(rel string) []int {
	seen := map[int]bool{}
	for _, d := range CgroupDirs(rel) {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 && pid != os.Getpid() {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// ExistingCgroups returns the directories of rel and below that exist, in every hierarchy.
func ExistingCgroups(rel string) []string {
	var dirs []string
	for _, root := range CgroupDirs(rel) {
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	return dirs
}

// RemoveCgroupTree removes rel and everything below it in every hierarchy, deepest first,
// retrying each directory for up to 5 s (a cgroup whose last task just exited is busy for a
// moment). It fails on a cgroup that still holds tasks.
func RemoveCgroupTree(rel string) error {
	dirs := ExistingCgroups(rel)
	sort.SliceStable(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if err = unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
