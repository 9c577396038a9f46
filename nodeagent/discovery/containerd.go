package discovery

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// containerd's shim task directories under its state directory: <state>/<dir>/<ns>/<id> is a
// task's bundle (config.json, init.pid, rootfs).
var containerdTaskDirs = []string{"io.containerd.runtime.v2.task", "io.containerd.runtime.v1.linux"}

// dockerContainerdNamespace is the containerd namespace dockerd keeps its containers in. They
// are Docker's and found through Docker's layout (dockerd does not mount the bundle rootfs).
const dockerContainerdNamespace = "moby"

// containerd finds running containerd containers: from rootfs mounts in the host mount table,
// and from task bundles whose init process has an overlay root (a containerd running in a
// private mount namespace, whose mounts the host table does not show).
//
// A stopped container's snapshot stays on disk, but which snapshot belongs to which container
// is recorded only in containerd's bolt databases, which containerd locks while it runs; such
// containers are found through containerd's API instead (containerdStopped).
func (d *discoverer) containerd() []*candidate {
	const rt = v1alpha1.RuntimeContainerd
	var out []*candidate
	states := []string{d.opts.ContainerdState}
	states = append(states, d.containerdConfigStates()...)
	for i := range d.mounts {
		m := &d.mounts[i]
		for _, td := range containerdTaskDirs {
			state, wild, ok := matchTail(m.MountPoint, td, "*", "*", "rootfs")
			if !ok {
				continue
			}
			states = append(states, state)
			ns, id := wild[0], wild[1]
			if ns == dockerContainerdNamespace {
				continue
			}
			bundle := filepath.Join(state, td, ns, id)
			cand := &candidate{c: Container{
				Runtime: rt, ID: id, Name: id, EngineNamespace: ns, EngineRoot: state,
			}, mount: m}
			upper, ok := d.containerdUpper(m)
			if !ok {
				continue
			}
			cand.c.UpperDir = upper
			cand.c.StorageID = snapshotID(upper)
			d.containerdBundle(cand, bundle)
			out = append(out, cand)
		}
		if state, _, ok := matchTail(m.MountPoint, "io.containerd.grpc.v1.cri", "sandboxes", "*", "shm"); ok {
			states = append(states, state)
		}
	}

	// Task bundles with no rootfs mount in the host table.
	for _, state := range d.roots(rt, states) {
		for _, td := range containerdTaskDirs {
			nsDir := filepath.Join(state, td)
			nss, err := d.fs.readDir(nsDir)
			if err != nil {
				if !os.IsNotExist(err) {
					d.fail(rt, "", nsDir, err)
				}
				continue
			}
			for _, ns := range nss {
				if !ns.IsDir() || !safeName(ns.Name()) || ns.Name() == dockerContainerdNamespace {
					continue
				}
				ids, err := d.fs.readDir(filepath.Join(nsDir, ns.Name()))
				if err != nil {
					d.fail(rt, "", filepath.Join(nsDir, ns.Name()), err)
					continue
				}
				for _, e := range ids {
					id := e.Name()
					if !e.IsDir() || !safeName(id) || slices.ContainsFunc(out, func(c *candidate) bool { return c.c.ID == id }) {
						continue
					}
					bundle := filepath.Join(nsDir, ns.Name(), id)
					cand := &candidate{c: Container{
						Runtime: rt, ID: id, Name: id, EngineNamespace: ns.Name(), EngineRoot: state,
					}}
					d.containerdBundle(cand, bundle)
					if cand.pidHint == 0 {
						continue // no init process recorded: the task is not running
					}
					// The pid file may be stale and the PID reused: accept the process only if
					// its cgroup names the container.
					if !d.cgroupNames(cand.pidHint, id) {
						continue
					}
					root, err := d.processRoot(cand.pidHint)
					if err != nil {
						continue // exited
					}
					dirs, ok := root.Overlay()
					if !ok || dirs.UpperDir == "" || !filepath.IsAbs(dirs.UpperDir) {
						continue
					}
					cand.c.UpperDir = filepath.Clean(dirs.UpperDir)
					cand.c.StorageID = snapshotID(cand.c.UpperDir)
					out = append(out, cand)
				}
			}
		}
	}
	return out
}

// containerdUpper returns the host path of the writable layer under a containerd rootfs mount:
// the overlay's upperdir, or for a snapshot without parents (which containerd bind-mounts)
// the bind source.
func (d *discoverer) containerdUpper(m *Mount) (string, bool) {
	const rt = v1alpha1.RuntimeContainerd
	if dirs, ok := m.Overlay(); ok {
		switch {
		case dirs.UpperDir == "":
			return "", false // a read-only view (e.g. a snapshot "view"), no writable layer
		case !filepath.IsAbs(dirs.UpperDir):
			d.errorf(rt, "", m.MountPoint, "overlay upperdir %q is relative; containerd passes it absolute", dirs.UpperDir)
			return "", false
		}
		return filepath.Clean(dirs.UpperDir), true
	}
	if src, ok := bindSource(d.mounts, m); ok {
		return src, true
	}
	d.errorf(rt, "", m.MountPoint, "rootfs is a %s mount whose source directory is not visible in the mount table", m.FSType)
	return "", false
}

// containerdBundle reads a task bundle's config.json (identity) and init.pid.
func (d *discoverer) containerdBundle(cand *candidate, bundle string) {
	const rt = v1alpha1.RuntimeContainerd
	c := &cand.c
	cfgPath := filepath.Join(bundle, "config.json")
	if b, err := d.fs.readFile(cfgPath, maxMetadataBytes); err != nil {
		if !os.IsNotExist(err) {
			d.fail(rt, c.ID, cfgPath, err)
		}
	} else if spec, err := parseOCISpec(b); err != nil {
		d.fail(rt, c.ID, cfgPath, err)
	} else {
		c.Annotations = spec.Annotations
		applyContainerdAnnotations(c, spec.Annotations)
	}
	pidPath := filepath.Join(bundle, "init.pid")
	if b, err := d.fs.readFile(pidPath, 64); err == nil {
		if pid, ok := parsePID(b); ok {
			cand.pidHint = pid
		}
	} else if !os.IsNotExist(err) {
		d.fail(rt, c.ID, pidPath, err)
	}
}

// snapshotID returns N from <root>/io.containerd.snapshotter.v1.overlayfs/snapshots/N/fs.
func snapshotID(upper string) string {
	if _, wild, ok := matchTail(upper, "snapshots", "*", "fs"); ok {
		return wild[0]
	}
	return ""
}

// bindSource finds the host path of a bind mount's source: another mount of the same
// filesystem whose root contains the bind's root.
func bindSource(mounts []Mount, m *Mount) (string, bool) {
	best := -1
	for i := range mounts {
		n := &mounts[i]
		if n.ID == m.ID || n.Major != m.Major || n.Minor != m.Minor {
			continue
		}
		if n.Root != "/" && !hasPathPrefix(m.Root, n.Root) {
			continue
		}
		if best < 0 || len(n.Root) > len(mounts[best].Root) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	n := mounts[best]
	rel := strings.TrimPrefix(strings.TrimPrefix(m.Root, n.Root), "/")
	if n.Root == "/" {
		rel = strings.TrimPrefix(m.Root, "/")
	}
	return filepath.Join(n.MountPoint, rel), true
}
