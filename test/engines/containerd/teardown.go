package containerd

import (
	"bufio"
	"bytes"
	"context"
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
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/layerkeeper/layerkeeper/nodeagent/discovery/enginetest"
)

// teardown undoes Start, in order: pods through CRI, the daemon by PID, processes left in the
// harness's cgroups or shims serving its socket (by PID), mounts under Dir, cgroups, Dir.
func (c *Containerd) teardown(residue []string) {
	t := c.t
	if c.alive() && c.Runtime != nil {
		if err := c.RemoveAllPods(context.Background()); err != nil {
			t.Errorf("cleanup: removing pods through CRI: %v", err)
		}
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.stopDaemon()
	if t.Failed() && c.exited != nil {
		t.Logf("containerd log (tail):\n%s", c.Log(60))
	}
	// Shims exit on their own once their last container is deleted; give them a moment.
	deadline := time.Now().Add(5 * time.Second)
	for len(c.leftoverProcesses()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if pids := c.leftoverProcesses(); len(pids) > 0 {
		t.Errorf("cleanup: killing processes CRI removal left behind: %v", pids)
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		for deadline := time.Now().Add(10 * time.Second); len(c.leftoverProcesses()) > 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.removeShimSockets()
	if err := enginetest.UnmountUnder(c.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	c.removeCgroups()
	if left := c.Leftovers(); len(left) > 0 {
		t.Errorf("cleanup left behind (scratch directory %s kept):\n%s", c.Dir, strings.Join(left, "\n"))
	} else if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, p := range residue {
		_ = os.Remove(p) // only if still empty: another containerd may be using it
	}
}

// removeShimSockets removes the sockets of this containerd's shims under /run/containerd/s,
// named in each task bundle's address file: a shim removes its own when it exits cleanly,
// not when it is killed.
func (c *Containerd) removeShimSockets() {
	files, _ := filepath.Glob(filepath.Join(c.State, "io.containerd.runtime.v2.task", "*", "*", "address"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		p := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
		if filepath.Dir(p) != filepath.Join(shimSocketDir, "s") {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			_ = os.Remove(p)
		}
	}
}

// RemoveAllPods stops and removes every container, then every pod sandbox, through CRI, the
// way the kubelet tears pods down.
func (c *Containerd) RemoveAllPods(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var errs []error
	ctrs, err := c.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return err
	}
	for _, ct := range ctrs.Containers {
		if ct.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			if _, err := c.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ct.Id, Timeout: 10}); err != nil {
				errs = append(errs, fmt.Errorf("stopping container %s: %w", ct.Id, err))
			}
		}
		if _, err := c.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ct.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing container %s: %w", ct.Id, err))
		}
	}
	sbs, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, sb := range sbs.Items {
		if _, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stopping sandbox %s: %w", sb.Id, err))
		}
		if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox %s: %w", sb.Id, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Containerd) alive() bool {
	if c.exited == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stopDaemon sends containerd SIGTERM by its recorded PID, then SIGKILL after 20 s.
func (c *Containerd) stopDaemon() {
	if !c.alive() {
		return
	}
	_ = unix.Kill(c.PID, unix.SIGTERM)
	select {
	case <-c.exited:
		return
	case <-time.After(20 * time.Second):
	}
	c.t.Errorf("cleanup: containerd (PID %d) ignored SIGTERM for 20s; killing it", c.PID)
	_ = unix.Kill(c.PID, unix.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
	}
}

// Leftovers lists what of this containerd is still on the host: mounts whose mountinfo line
// names Dir, live processes (containerd itself, shims serving its socket, anything in its
// cgroups) and its cgroup directories. Empty after a clean teardown.
func (c *Containerd) Leftovers() []string {
	var out []string
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, c.Dir+"/") || strings.Contains(line, c.Dir+" ") {
				out = append(out, "mount: "+line)
			}
		}
	}
	if c.alive() {
		out = append(out, fmt.Sprintf("process: containerd %d", c.PID))
	}
	for _, pid := range c.leftoverProcesses() {
		out = append(out, fmt.Sprintf("process: %d %s", pid, cmdline(pid)))
	}
	for _, d := range c.cgroupDirs() {
		if _, err := os.Lstat(d); err == nil {
			out = append(out, "cgroup: "+d)
		}
	}
	return out
}

// leftoverProcesses returns the PIDs of shims serving this containerd's socket and of
// processes in its cgroup parent, in any hierarchy.
func (c *Containerd) leftoverProcesses() []int {
	seen := map[int]bool{}
	var pids []int
	add := func(pid int) {
		if pid > 0 && !seen[pid] && pid != os.Getpid() {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	for _, d := range c.cgroupDirs() {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					add(pid)
				}
			}
			return nil
		})
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args := strings.Split(cmdline(pid), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if (args[i] == "-address" || args[i] == "--address") && args[i+1] == c.Socket {
				add(pid)
			}
		}
	}
	sort.Ints(pids)
	return pids
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return string(bytes.TrimRight(b, "\x00"))
}

// cgroupDirs returns CgroupParent in every mounted cgroup hierarchy.
func (c *Containerd) cgroupDirs() []string {
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
				d := filepath.Join(fields[4], c.CgroupParent)
				if !slices.Contains(out, d) {
					out = append(out, d)
				}
			}
			break
		}
	}
	return out
}

// removeCgroups removes CgroupParent and everything below it in every hierarchy, deepest
// first (runc removes a container's own cgroup when it is deleted; the pod and parent
// directories are the harness's to remove, as the kubelet removes its pod cgroups).
func (c *Containerd) removeCgroups() {
	var dirs []string
	for _, root := range c.cgroupDirs() {
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if err = unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			c.t.Errorf("cleanup: removing cgroup %s: %v", d, err)
		}
	}
}

// freshPaths returns those of paths (innermost last) that do not exist yet, innermost
// first, for removal at the end if they are still empty.
func freshPaths(paths ...string) []string {
	var out []string
	for i := len(paths) - 1; i >= 0; i-- {
		if _, err := os.Lstat(paths[i]); errors.Is(err, fs.ErrNotExist) {
			out = append(out, paths[i])
		}
	}
	return out
}
