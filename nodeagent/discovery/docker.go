package discovery

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// dockerConfig is the part of <root>/containers/<id>/config.v2.json that discovery reads.
type dockerConfig struct {
	ID    string `json:"ID"`
	Name  string `json:"Name"`
	State struct {
		Running bool `json:"Running"`
		Pid     int  `json:"Pid"`
	} `json:"State"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
}

// dockerRoots are the Docker data roots to look in: the configured and default ones, the one
// in daemon.json, and every root the mount table reveals (container rootfs mounts
// <root>/overlay2/<id>/merged or, with the containerd image store, <root>/rootfs/overlayfs/<id>;
// shm mounts <root>/containers/<id>/mounts/shm; a root on its own filesystem or bind-mounted
// onto itself).
func (d *discoverer) dockerRoots() []string {
	cands := []string{d.opts.DockerRoot}
	cands = append(cands, d.dockerConfigRoots()...)
	for _, m := range d.mounts {
		if r, _, ok := matchTail(m.MountPoint, "overlay2", "*", "merged"); ok && m.FSType == "overlay" {
			cands = append(cands, r)
		}
		if r, _, ok := matchTail(m.MountPoint, "rootfs", "overlayfs", "*"); ok && m.FSType == "overlay" {
			cands = append(cands, r)
		}
		if r, _, ok := matchTail(m.MountPoint, "containers", "*", "mounts", "shm"); ok {
			cands = append(cands, r)
		}
	}
	for _, mp := range d.probeMounts() {
		if d.fs.isDir(filepath.Join(mp, "containers")) &&
			(d.fs.isDir(filepath.Join(mp, "image")) || d.fs.isDir(filepath.Join(mp, "overlay2"))) {
			cands = append(cands, mp)
		}
	}
	return d.roots(v1alpha1.RuntimeDocker, cands)
}

// docker finds Docker containers in every data root: each entry of
// <root>/image/overlay2/layerdb/mounts/<containerID> whose <root>/overlay2/<mount-id>/diff
// exists (running when <root>/overlay2/<mount-id>/merged is mounted), and, with the containerd
// image store, each running <root>/rootfs/overlayfs/<containerID> mount.
func (d *discoverer) docker() []*candidate {
	var out []*candidate
	for _, root := range d.dockerRoots() {
		out = append(out, d.dockerOverlay2(root)...)
		out = append(out, d.dockerSnapshotter(root)...)
	}
	return out
}

func (d *discoverer) dockerOverlay2(root string) []*candidate {
	const rt = v1alpha1.RuntimeDocker
	home := filepath.Join(root, "overlay2")
	mounted := map[string]*Mount{} // mount ID -> rootfs mount
	for i := range d.mounts {
		m := &d.mounts[i]
		if m.FSType != "overlay" {
			continue
		}
		if r, wild, ok := matchTail(m.MountPoint, "overlay2", "*", "merged"); ok && r == root {
			mounted[wild[0]] = m
		}
	}
	mountsDir := filepath.Join(root, "image", "overlay2", "layerdb", "mounts")
	ents, err := d.fs.readDir(mountsDir)
	if err != nil {
		if !os.IsNotExist(err) {
			d.fail(rt, "", mountsDir, err)
		}
		return nil
	}
	var out []*candidate
	for _, e := range ents {
		if d.ctx.Err() != nil {
			break
		}
		id := e.Name()
		if !safeName(id) {
			continue
		}
		idPath := filepath.Join(mountsDir, id, "mount-id")
		b, err := d.fs.readFile(idPath, 4096)
		if err != nil {
			if !os.IsNotExist(err) {
				d.fail(rt, id, idPath, err)
			}
			continue // being created or removed
		}
		mountID := strings.TrimSpace(string(b)) // written without a newline; be lenient
		if !safeName(mountID) {
			d.errorf(rt, id, idPath, "mount-id %q is not a directory name", mountID)
			continue
		}
		upper := filepath.Join(home, mountID, "diff")
		if !d.fs.isDir(upper) {
			continue // removed after the layerdb entry was listed
		}
		cand := &candidate{c: Container{
			Runtime: rt, ID: id, EngineRoot: root, StorageID: mountID, UpperDir: upper,
		}}
		if m := mounted[mountID]; m != nil {
			dirs, _ := m.Overlay()
			if got := dirs.Resolve(home).UpperDir; got != upper {
				d.errorf(rt, id, m.MountPoint, "mounted upperdir %q is not the layer's %q", got, upper)
			} else {
				cand.mount = m
			}
		}
		d.dockerIdentity(cand, root)
		out = append(out, cand)
	}
	return out
}

// dockerSnapshotter finds running containers of a Docker daemon that uses the containerd image
// store: their rootfs is mounted at <root>/rootfs/overlayfs/<id>. (Stopped ones live only in
// containerd's snapshot database.)
func (d *discoverer) dockerSnapshotter(root string) []*candidate {
	const rt = v1alpha1.RuntimeDocker
	var out []*candidate
	for i := range d.mounts {
		m := &d.mounts[i]
		r, wild, ok := matchTail(m.MountPoint, "rootfs", "overlayfs", "*")
		if !ok || r != root || m.FSType != "overlay" {
			continue
		}
		dirs, _ := m.Overlay()
		if dirs.UpperDir == "" || !filepath.IsAbs(dirs.UpperDir) {
			d.errorf(rt, wild[0], m.MountPoint, "overlay upperdir %q is not an absolute path", dirs.UpperDir)
			continue
		}
		upper := filepath.Clean(dirs.UpperDir)
		cand := &candidate{c: Container{
			Runtime: rt, ID: wild[0], EngineRoot: root, StorageID: snapshotID(upper), UpperDir: upper,
		}, mount: m}
		d.dockerIdentity(cand, root)
		out = append(out, cand)
	}
	return out
}

// dockerIdentity reads <root>/containers/<id>/config.v2.json: the name, the labels (with the
// Kubernetes identity cri-dockerd sets) and the PID of a running container.
func (d *discoverer) dockerIdentity(cand *candidate, root string) {
	const rt = v1alpha1.RuntimeDocker
	c := &cand.c
	p := filepath.Join(root, "containers", c.ID, "config.v2.json")
	b, err := d.fs.readFile(p, maxMetadataBytes)
	if err != nil {
		d.fail(rt, c.ID, p, fmt.Errorf("container identity: %w", err))
		return
	}
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		d.fail(rt, c.ID, p, fmt.Errorf("container identity: %w", err))
		return
	}
	if cfg.ID != c.ID {
		d.errorf(rt, c.ID, p, "config.v2.json describes container %q", cfg.ID)
		return
	}
	c.Labels = cfg.Config.Labels
	c.Name = strings.TrimPrefix(cfg.Name, "/")
	if applyKubeLabels(c, c.Labels) {
		c.Sandbox = c.Labels[dockerTypeLabel] == dockerTypeSandbox
	}
	if cfg.State.Running && cfg.State.Pid > 0 {
		cand.pidHint = cfg.State.Pid
	}
}
