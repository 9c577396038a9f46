package discovery

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/layerkeeper/layerkeeper/api/v1alpha1"
)

// csContainer is one entry of containers/storage's containers.json / volatile-containers.json.
type csContainer struct {
	ID       string   `json:"id"`
	Names    []string `json:"names"`
	Layer    string   `json:"layer"`
	Metadata string   `json:"metadata"`
}

// crioMetadata is the JSON CRI-O stores in a containers/storage entry's metadata (cri-o
// internal/storage RuntimeContainerMetadata); podman stores a subset (name, image).
type crioMetadata struct {
	Pod          bool   `json:"pod"`
	PodName      string `json:"pod-name"`
	MetadataName string `json:"metadata-name"`
	UID          string `json:"uid"`
	Namespace    string `json:"namespace"`
}

// csListFiles are the container lists of a containers/storage store; CRI-O marks its
// containers volatile, and with transient_store the lists live under the run root.
var csListFiles = []string{"containers.json", "volatile-containers.json"}

// storageRoots returns the containers/storage graph roots and run roots to look in: the
// configured and default ones, those in storage.conf and crio.conf, and those the mount table
// reveals (<root>/overlay/<layer>/merged rootfs mounts, the <root>/overlay self bind mount,
// <dir>/overlay-containers/<id>/userdata/shm mounts, which are under the graph root for podman
// and the run root for CRI-O).
func (d *discoverer) storageRoots() (graph, run []string) {
	const rt = v1alpha1.RuntimeContainersStorage
	gcands := []string{d.opts.StorageRoot}
	rcands := []string{d.opts.StorageRunRoot}
	cg, cr := d.storageConfigRoots()
	gcands = append(gcands, cg...)
	rcands = append(rcands, cr...)
	var either []string
	for _, m := range d.mounts {
		if r, _, ok := matchTail(m.MountPoint, "overlay", "*", "merged"); ok && m.FSType == "overlay" {
			gcands = append(gcands, r)
		}
		if r, _, ok := matchTail(m.MountPoint, "overlay"); ok && m.FSType != "overlay" {
			either = append(either, r)
		}
		if r, _, ok := matchTail(m.MountPoint, "overlay-containers", "*", "userdata", "shm"); ok {
			either = append(either, r)
		}
	}
	for _, mp := range d.probeMounts() {
		if d.fs.isDir(filepath.Join(mp, "overlay-containers")) {
			either = append(either, mp)
		}
	}
	for _, r := range either {
		// A graph root holds images; a run root only mount bookkeeping.
		if d.fs.isDir(filepath.Join(r, "overlay-images")) || d.fs.isDir(filepath.Join(r, "overlay", "l")) {
			gcands = append(gcands, r)
		} else {
			rcands = append(rcands, r)
		}
	}
	return d.roots(rt, gcands), d.roots(rt, rcands)
}

// containersStorage finds the containers of every containers/storage store (CRI-O, podman):
// each entry of the container lists whose <root>/overlay/<layer>/diff exists, running when
// <root>/overlay/<layer>/merged is mounted.
func (d *discoverer) containersStorage() []*candidate {
	const rt = v1alpha1.RuntimeContainersStorage
	graphs, runs := d.storageRoots()
	mounted := map[string]*Mount{} // <graph root>/overlay/<layer> -> rootfs mount
	for i := range d.mounts {
		m := &d.mounts[i]
		if r, wild, ok := matchTail(m.MountPoint, "overlay", "*", "merged"); ok && m.FSType == "overlay" {
			mounted[filepath.Join(r, "overlay", wild[0])] = m
		}
	}
	var out []*candidate
	seen := map[string]bool{}
	add := func(listDir string, graphs []string) {
		for _, name := range csListFiles {
			p := filepath.Join(listDir, "overlay-containers", name)
			b, err := d.fs.readFile(p, maxListBytes)
			if err != nil {
				if !os.IsNotExist(err) {
					d.fail(rt, "", p, err)
				}
				continue
			}
			var list []csContainer
			if err := json.Unmarshal(b, &list); err != nil {
				d.fail(rt, "", p, err)
				continue
			}
			for _, e := range list {
				if d.ctx.Err() != nil {
					return
				}
				if !safeName(e.ID) || !safeName(e.Layer) {
					d.errorf(rt, e.ID, p, "entry with id %q and layer %q is not usable", e.ID, e.Layer)
					continue
				}
				if seen[e.ID] {
					continue
				}
				// The entry's layer lives in the graph root (for a run-root list, whichever
				// graph root has it).
				var root string
				for _, g := range graphs {
					if d.fs.isDir(filepath.Join(g, "overlay", e.Layer, "diff")) {
						root = g
						break
					}
				}
				if root == "" {
					continue // layer not (or no longer) on disk
				}
				seen[e.ID] = true
				cand := &candidate{c: Container{
					Runtime: rt, ID: e.ID, EngineRoot: root, StorageID: e.Layer,
					UpperDir: filepath.Join(root, "overlay", e.Layer, "diff"),
				}}
				if m := mounted[filepath.Join(root, "overlay", e.Layer)]; m != nil {
					dirs, _ := m.Overlay()
					if got := dirs.Resolve(filepath.Join(root, "overlay")).UpperDir; got != cand.c.UpperDir {
						d.errorf(rt, e.ID, m.MountPoint, "mounted upperdir %q is not the layer's %q", got, cand.c.UpperDir)
					} else {
						cand.mount = m
					}
				}
				d.csIdentity(cand, e, root, runs)
				out = append(out, cand)
			}
		}
	}
	for _, g := range graphs {
		add(g, []string{g})
	}
	for _, r := range runs {
		add(r, graphs)
	}
	return out
}

// csIdentity sets a containers/storage container's identity: from the OCI config.json that
// CRI-O writes to <runroot>/overlay-containers/<id>/userdata/ and <root>/... (podman writes it
// under the graph root) with the kubelet's labels as annotations; else from the CRI-O metadata
// in the container list; else the first name (podman). The run-root userdata directory, which
// holds the pid file, is also learned from config.json's bind mounts of hosts/hostname files.
func (d *discoverer) csIdentity(cand *candidate, e csContainer, root string, runs []string) {
	const rt = v1alpha1.RuntimeContainersStorage
	c := &cand.c
	if len(e.Names) > 0 {
		c.Name = e.Names[0]
	}
	var md crioMetadata
	if e.Metadata != "" {
		_ = json.Unmarshal([]byte(e.Metadata), &md) // podman's metadata lacks the pod fields
	}
	if md.PodName != "" {
		c.Pod, c.Namespace, c.PodUID, c.Sandbox = md.PodName, md.Namespace, md.UID, md.Pod
		if md.MetadataName != "" {
			c.Name = md.MetadataName
		}
	}

	userdata := func(dir string) string { return filepath.Join(dir, "overlay-containers", c.ID, "userdata") }
	var dirs []string
	for _, r := range runs {
		dirs = append(dirs, userdata(r))
	}
	dirs = append(dirs, userdata(root))
	var spec *ociSpec
	for _, dir := range dirs {
		p := filepath.Join(dir, "config.json")
		b, err := d.fs.readFile(p, maxMetadataBytes)
		if err != nil {
			if !os.IsNotExist(err) {
				d.fail(rt, c.ID, p, err)
			}
			continue
		}
		s, err := parseOCISpec(b)
		if err != nil {
			d.fail(rt, c.ID, p, fmt.Errorf("container identity: %w", err))
			continue
		}
		spec = &s
		break
	}
	if spec != nil {
		c.Annotations = spec.Annotations
		if l := crioLabelsFrom(spec.Annotations); l != nil {
			c.Labels = l
		}
		if !applyKubeLabels(c, spec.Annotations) && c.Labels != nil {
			applyKubeLabels(c, c.Labels)
		}
		if t, ok := spec.Annotations[crioContainerType]; ok && c.Pod != "" {
			c.Sandbox = t == crioSandboxType
		}
		// The run directory of this container, from the sources of its /etc/hosts and
		// /etc/hostname bind mounts.
		for _, m := range spec.Mounts {
			if r, wild, ok := matchTail(m.Source, "overlay-containers", "*", "userdata", "*"); ok && wild[0] == c.ID {
				if dir := userdata(r); !slices.Contains(dirs, dir) {
					dirs = append([]string{dir}, dirs...)
				}
			}
		}
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, "pidfile")
		b, err := d.fs.readFile(p, 64)
		if err != nil {
			if !os.IsNotExist(err) {
				d.fail(rt, c.ID, p, err)
			}
			continue
		}
		if pid, ok := parsePID(b); ok {
			cand.pidHint = pid
			break
		}
	}
}
