package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	ctd "github.com/layerkeeper/layerkeeper/test/engines/containerd"
	"github.com/layerkeeper/layerkeeper/test/host"
)

// cgroupRootPrefix starts the name of every cluster's cgroup root; Down removes nothing else.
const cgroupRootPrefix = "/layerkeeper-cluster-"

// Down tears down the cluster recorded in dir (see Cluster.Down). With no cluster recorded
// there it only unmounts what is left under dir and removes it; with no dir, it does nothing.
func Down(ctx context.Context, dir string, log io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dir); isNotExist(err) {
		return nil
	}
	c, err := Load(dir)
	if errors.Is(err, errNoState) {
		if err := host.UnmountUnder(dir); err != nil {
			return err
		}
		return removeDir(dir)
	}
	if err != nil {
		return err
	}
	if log != nil {
		c.log = log
	}
	return c.Down(ctx)
}

// Down stops the cluster, only ever signalling the processes it recorded (checked against
// their start times): the kubelet, scheduler and controller manager first, then every pod
// through CRI, containerd, the shims still serving its socket and any process left in the
// cluster's cgroups, then the API server, etcd and MinIO. It then unmounts everything under
// the scratch directory, removes the cluster's cgroups in every hierarchy, the kubelet's
// /var/log/containers links and the iptables chains it created, restores the sysctls it
// changed, and removes the directory. Whatever it could not clean is returned as an error
// (and the directory kept).
func (c *Cluster) Down(ctx context.Context) error {
	t0 := time.Now()
	var errs []error
	stop := func(name string, grace time.Duration) {
		comp := c.component(name)
		if comp == nil || !comp.Alive() {
			return
		}
		killed, err := comp.Stop(grace, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", name, err))
		} else if killed {
			c.logf("%s (pid %d) ignored SIGTERM for %v; killed it", name, comp.PID, grace)
		} else {
			c.logf("stopped %s (pid %d)", name, comp.PID)
		}
		if ch := c.exited[name]; ch != nil {
			select {
			case <-ch:
			case <-time.After(time.Second):
			}
		}
	}
	stop(Kubelet, 15*time.Second)
	stop(Scheduler, 10*time.Second)
	stop(ControllerManager, 10*time.Second)
	if comp := c.component(Containerd); comp != nil && comp.Alive() {
		if rt, closeCRI, err := criClient(c.ContainerdSocket); err == nil {
			rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			if err := ctd.RemoveAllPods(rctx, rt, 5); err != nil {
				errs = append(errs, fmt.Errorf("removing the pods through CRI: %w", err))
			}
			cancel()
			closeCRI()
		}
	}
	stop(Containerd, 20*time.Second)
	// Shims exit once their last container is deleted; give them a moment, then kill by PID
	// whatever still serves this containerd or runs in this cluster's cgroups.
	left := c.leftoverProcesses()
	for deadline := time.Now().Add(5 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = c.leftoverProcesses() {
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		c.logf("killing processes the pods' removal left: %v", left)
		if err := host.KillPIDs(left, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	stop(APIServer, 15*time.Second)
	stop(Etcd, 10*time.Second)
	stop(MinIO, 5*time.Second)

	if c.ContainerdState != "" {
		host.RemoveShimSockets(c.ContainerdState)
	}
	if err := host.UnmountUnder(c.Dir); err != nil {
		errs = append(errs, err)
	}
	if strings.HasPrefix(c.CgroupRoot, cgroupRootPrefix) {
		if err := host.RemoveCgroupTree(c.CgroupRoot); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.restoreHost(); err != nil {
		errs = append(errs, err)
	}

	var leftovers []string
	if mps, _ := host.MountsUnder(c.Dir); len(mps) > 0 {
		leftovers = append(leftovers, "mounts: "+strings.Join(mps, ", "))
	}
	for _, comp := range c.Components {
		if comp.Alive() {
			leftovers = append(leftovers, fmt.Sprintf("process: %s (pid %d)", comp.Name, comp.PID))
		}
	}
	if pids := c.leftoverProcesses(); len(pids) > 0 {
		leftovers = append(leftovers, fmt.Sprintf("processes in the cluster's cgroups or serving its containerd: %v", pids))
	}
	if strings.HasPrefix(c.CgroupRoot, cgroupRootPrefix) {
		if cgs := host.ExistingCgroups(c.CgroupRoot); len(cgs) > 0 {
			leftovers = append(leftovers, "cgroups: "+strings.Join(cgs, ", "))
		}
	}
	for _, d := range c.hostDrift() {
		leftovers = append(leftovers, "host: "+d)
	}
	if len(leftovers) > 0 {
		errs = append(errs, fmt.Errorf("left behind (%s kept):\n  %s", c.Dir, strings.Join(leftovers, "\n  ")))
	} else if err := removeDir(c.Dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		c.logf("cluster %s down in %.1fs; %s removed", c.ID, time.Since(t0).Seconds(), c.Dir)
	}
	return errors.Join(errs...)
}

// leftoverProcesses returns the shims serving this cluster's containerd and the processes in
// its cgroups.
func (c *Cluster) leftoverProcesses() []int {
	var pids []int
	if c.ContainerdSocket != "" {
		pids = append(pids, host.ShimPIDs(c.ContainerdSocket)...)
	}
	if strings.HasPrefix(c.CgroupRoot, cgroupRootPrefix) {
		pids = append(pids, host.CgroupPIDs(c.CgroupRoot)...)
	}
	return pids
}

// removeDir removes the scratch directory, refusing anything that looks like a system path.
func removeDir(dir string) error {
	if !filepath.IsAbs(dir) || len(strings.Split(strings.Trim(dir, "/"), "/")) < 2 {
		return fmt.Errorf("refusing to remove %q", dir)
	}
	return os.RemoveAll(dir)
}
