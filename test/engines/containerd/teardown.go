package containerd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/layerkeeper/layerkeeper/test/host"
)

// teardown undoes Start, in order: pods through CRI, the daemon by PID, processes left in the
// harness's cgroups or shims serving its socket (by PID), mounts under Dir, cgroups, Dir.
func (c *Containerd) teardown(residue []string) {
	t := c.t
	if c.alive() && c.Runtime != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		err := RemoveAllPods(ctx, c.Runtime, 10)
		cancel()
		if err != nil {
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
		if err := host.KillPIDs(pids, 10*time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	host.RemoveShimSockets(c.State)
	if err := host.UnmountUnder(c.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	// runc removes a container's own cgroup when it is deleted; the pod and parent
	// directories are the harness's to remove, as the kubelet removes its pod cgroups.
	if err := host.RemoveCgroupTree(c.CgroupParent); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if left := c.Leftovers(); len(left) > 0 {
		t.Errorf("cleanup left behind (scratch directory %s kept):\n%s", c.Dir, strings.Join(left, "\n"))
	} else if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, p := range residue {
		_ = os.Remove(p) // only if still empty: another containerd may be using it
	}
}

// RemoveAllPods stops and removes every container, then every pod sandbox, through CRI.
func (c *Containerd) RemoveAllPods(ctx context.Context) error {
	return RemoveAllPods(ctx, c.Runtime, 10)
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
		out = append(out, fmt.Sprintf("process: %d %s", pid, host.Cmdline(pid)))
	}
	for _, d := range host.ExistingCgroups(c.CgroupParent) {
		out = append(out, "cgroup: "+d)
	}
	return out
}

// leftoverProcesses returns the PIDs of shims serving this containerd's socket and of
// processes in its cgroup parent, in any hierarchy.
func (c *Containerd) leftoverProcesses() []int {
	pids := append(host.CgroupPIDs(c.CgroupParent), host.ShimPIDs(c.Socket)...)
	slices.Sort(pids)
	return slices.Compact(pids)
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
